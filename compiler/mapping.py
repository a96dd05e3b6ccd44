"""Map each layer onto neuro-cores under the target's per-core limits (dense synapse format).

A thin first mapper: a layer's neurons are split evenly over the fewest cores on which neurons,
input axons, output axons and synaptic memory all fit. Layers do not share cores.
"""
from __future__ import annotations

from dataclasses import dataclass
from math import ceil

from snnc.compiler.ir import Graph
from snnc.compiler.targets import Target
from snnc.errors import TargetLimitError


@dataclass(frozen=True)
class LayerMapping:
    name: str
    neurons: int
    synapses: int
    fan_in: int
    cores: int
    neurons_per_core: int
    synapse_words_per_core: int


@dataclass(frozen=True)
class Mapping:
    layers: tuple[LayerMapping, ...]
    cores: int
    chips: int


def synapse_words(fan_in: int, neurons: int, target: Target) -> int:
    """64-bit words of dense-format synaptic memory for ``fan_in`` axons into ``neurons`` on one core.

    Per axon, synapses go in blocks of <= 64 with a 10-bit header, each rounded up to 64-bit words
    (nengo-loihi block.py SynapseConfig.bits_per_axon): 784 inputs fit 142 neurons per core.
    """
    full, rest = divmod(neurons, target.synapse_block)
    per_block = lambda n: ceil((n * target.stored_weight_bits + target.synapse_block_header_bits) / 64)  # noqa: E731
    return fan_in * (full * per_block(target.synapse_block) + (per_block(rest) if rest else 0))


def map_cores(graph: Graph, target: Target) -> Mapping:
    """Fewest cores per population that satisfy every per-core limit; error if one cannot fit."""
    layers = []
    pops = graph.populations()
    for pop in pops:
        fan_in = sum(syn.in_size for syn, _ in pop.inputs)
        n = pop.neuron.size
        if fan_in > target.input_axons_per_core:
            raise TargetLimitError(
                f"layer '{pop.name}': fan-in {fan_in} exceeds {target.name}'s {target.input_axons_per_core} "
                f"input axons per core, and this mapper does not split fan-in. Reduce the layer's input size.")
        cores = max(1, ceil(n / target.neurons_per_core))
        while synapse_words(fan_in, ceil(n / cores), target) > target.synapse_words_per_core:
            cores += 1
        layers.append(LayerMapping(pop.name, n, sum(int(syn.weight.size) for syn, _ in pop.inputs), fan_in,
                                   cores, ceil(n / cores), synapse_words(fan_in, ceil(n / cores), target)))
    by_name = {m.name: m for m in layers}
    # each neuron sends one axon to every core of every population it drives
    for pop in pops:
        for syn, src in pop.inputs:
            if src not in by_name:
                continue
            prev = by_name[src]
            dests = [by_name[p.name] for p in pops if any(s == src for _, s in p.inputs)]
            used = prev.neurons_per_core * sum(d.cores for d in dests)
            if used > target.output_axons_per_core:
                raise TargetLimitError(
                    f"layer '{prev.name}': {used} output-axon slots per core (neurons {prev.neurons_per_core} x "
                    f"{sum(d.cores for d in dests)} destination cores) exceed {target.output_axons_per_core}. "
                    f"Narrow '{pop.name}'.")
    total = sum(m.cores for m in layers)
    return Mapping(tuple(layers), total, ceil(total / target.cores_per_chip))
