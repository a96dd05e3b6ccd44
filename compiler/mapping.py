"""Map each layer onto neuro-cores under the target's per-core limits (dense synapse format).

A thin first mapper: a layer's neurons are split evenly over the fewest cores on which neurons,
input axons, output axons and synaptic memory all fit. Layers do not share cores.
"""
from __future__ import annotations

from dataclasses import dataclass
from math import ceil

from snnc.compiler.ir import Graph, QDense
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
    """Fewest cores per layer that satisfy every per-core limit; error if a layer cannot fit."""
    layers = []
    for syn, neu in graph.layers():
        assert isinstance(syn, QDense)
        fan_in, n = syn.in_size, syn.out_size
        if fan_in > target.input_axons_per_core:
            raise TargetLimitError(
                f"layer '{neu.name}': fan-in {fan_in} exceeds {target.name}'s {target.input_axons_per_core} "
                f"input axons per core, and this mapper does not split fan-in. Reduce the layer's input size.")
        cores = max(1, ceil(n / target.neurons_per_core))
        while synapse_words(fan_in, ceil(n / cores), target) > target.synapse_words_per_core:
            cores += 1
        layers.append(LayerMapping(neu.name, n, int(syn.weight.size), fan_in, cores, ceil(n / cores),
                                   synapse_words(fan_in, ceil(n / cores), target)))
    # each neuron of layer k sends one axon to every core of layer k+1
    for prev, nxt in zip(layers[:-1], layers[1:]):
        used = prev.neurons_per_core * nxt.cores
        if used > target.output_axons_per_core:
            raise TargetLimitError(
                f"layer '{prev.name}': {used} output-axon slots per core (neurons {prev.neurons_per_core} x "
                f"{nxt.cores} destination cores) exceed {target.output_axons_per_core}. Narrow '{nxt.name}'.")
    total = sum(m.cores for m in layers)
    return Mapping(tuple(layers), total, ceil(total / target.cores_per_chip))
