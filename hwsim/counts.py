"""Raw activity counts per layer, per core, per timestep and per sample: what the report prices.

hwsim's engines count synaptic ops, neuron updates and spikes per layer and step, summed over the
batch: enough for throughput runs. A report needs more: the same counts for every core the
mapping made (the slowest core sets the step time), for every sample (an average hides the
spread), and the spike messages each core sends, classified by route (within a tile, tile hops
east-west and north-south, across chips, to the host). This module reruns the torch engine
(``snnc.hwsim.sim``, the readable mirror of Lava's models) once, with per-neuron traces, and
reduces them through the mapping and placement. Its totals equal the engines' layer counts exactly
(tests/test_energy.py).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import numpy as np
import torch

from snnc.compiler.ir import Graph, Population, QConv
from snnc.compiler.mapping import Mapping
from snnc.compiler.placement import Placement
from snnc.hwsim.sim import HwSim, _exact_float_math, delayed_train, simulate_block, transpose_ones

TRAFFIC = ("within_tile", "ew_hops", "ns_hops", "cross_chip", "to_host")
REACH_CHUNK = 64     # destination cores per conv_transpose when finding which cores a neuron reaches


@dataclass(frozen=True)
class LayerCounts:
    """One population's counts. Arrays indexed (sample, step, core of this layer) are int64."""

    name: str
    neurons_per_core: np.ndarray   # (cores,)
    synops: np.ndarray             # (batch, T, cores) synaptic ops on each core
    active: np.ndarray             # (batch, T, cores) neuron updates with input or non-zero state
    spikes: np.ndarray             # (batch, T, cores) spikes fired on each core
    messages: np.ndarray           # (batch, T, cores) spike messages sent (one per destination core)
    traffic: dict[str, np.ndarray]  # TRAFFIC key -> (batch,) messages (hops for *_hops) per sample
    reach: np.ndarray              # (cores, all cores) bool: destination cores each core sends to

    @property
    def cores(self) -> int:
        return int(self.neurons_per_core.size)


@dataclass(frozen=True)
class DetailedCounts:
    """Counts of every layer, the input's messages, every spike train and the output's v trace."""

    layers: list[LayerCounts]
    input_traffic: dict[str, np.ndarray]   # messages from the host into the mesh, per sample
    spikes: dict[str, np.ndarray]          # population -> (batch, T, n) bool
    output_v: np.ndarray                   # (batch, T, n) int64, the output's v after each step
    batch: int
    timesteps: int


def _per_core(x: torch.Tensor, onehot: torch.Tensor) -> np.ndarray:
    """(batch, T, n) per-neuron values -> (batch, T, cores), exactly (float64 sums of integers)."""
    b, t, n = x.shape
    return (x.reshape(b * t, n).to(torch.float64) @ onehot).round().to(torch.int64).reshape(b, t, -1).numpy()


def _onehot(core_of: np.ndarray, cores: int) -> torch.Tensor:
    m = torch.zeros(core_of.size, cores, dtype=torch.float64)
    m[torch.arange(core_of.size), torch.from_numpy(core_of.astype(np.int64))] = 1.0
    return m


def neuron_reach(syn: object, dest_core_of: np.ndarray, dest_cores: int) -> np.ndarray:
    """(n_in, dest_cores) bool: the destination cores each source neuron of ``syn`` has a synapse
    on. Dense: every core of the destination. Conv: the cores holding its projective field."""
    if not isinstance(syn, QConv):
        return np.ones((syn.in_size, dest_cores), dtype=bool)  # type: ignore[attr-defined]
    out = np.zeros((syn.in_size, dest_cores), dtype=bool)
    for lo in range(0, dest_cores, REACH_CHUNK):
        hi = min(dest_cores, lo + REACH_CHUNK)
        masks = torch.zeros(hi - lo, syn.out_size, dtype=torch.float64)
        mine = (dest_core_of >= lo) & (dest_core_of < hi)
        masks[torch.from_numpy(dest_core_of[mine] - lo), torch.from_numpy(np.flatnonzero(mine))] = 1.0
        out[:, lo:hi] = (transpose_ones(syn, masks.reshape(hi - lo, *syn.out_shape)) > 0.5).numpy().T
    return out


def _routes_table(graph: Graph, mapping: Mapping, placement: Placement) -> dict[str, np.ndarray]:
    """Source name (input or population) -> (n_src, all cores) uint8: messages one spike of each
    neuron sends to each global core. One per synapse node that reaches the core: each is its own
    output-axon slot and input axon there, as the mapper counts them (compiler/mapping.py)."""
    g = placement.cores     # uint8: a neuron reaches one core through at most a few synapse nodes
    reach = {graph.input.name: np.zeros((graph.input.size, g), dtype=np.uint8)}
    for p in graph.populations():
        reach[p.name] = np.zeros((p.neuron.size, g), dtype=np.uint8)
    for p in graph.populations():
        use = mapping.per_core[p.name]
        lm = next(m for m in mapping.layers if m.name == p.name)
        lo = placement.offset[p.name]
        for syn, src in p.inputs:
            reach[src][:, lo:lo + lm.cores] += neuron_reach(syn, use.core_of, lm.cores)
    return reach


def _traffic(spk: np.ndarray, reach: np.ndarray, src_core: np.ndarray | None,
             routes: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Per-sample messages by route for spikes ``spk`` (batch, n) of neurons on global cores
    ``src_core`` (None: the host, priced as within-tile messages into the mesh)."""
    b = spk.shape[0]
    out = {k: np.zeros(b, dtype=np.int64) for k in TRAFFIC}
    if src_core is None:
        out["within_tile"] = spk @ reach.sum(axis=1, dtype=np.int64)
        return out
    for core in np.unique(src_core):
        mine = src_core == core
        to = spk[:, mine] @ reach[mine].astype(np.int64)    # (batch, all cores) messages to each core
        out["within_tile"] += to[:, routes["same_tile"][core]].sum(axis=1)
        out["ew_hops"] += to @ routes["ew_hops"][core]
        out["ns_hops"] += to @ routes["ns_hops"][core]
        out["cross_chip"] += to[:, routes["cross_chip"][core]].sum(axis=1)
    return out


def _after_blocks(graph: Graph, trains: dict[str, torch.Tensor], shape: tuple[int, int],
                  traces: dict[str, dict[str, torch.Tensor]]) -> Iterator[Population]:
    """Each population once its block has run (traced; the output's v too), in order."""
    for block in graph.blocks():
        simulate_block(block, trains, shape, traces=traces, trace_v={graph.output.name})
        yield from block


def count(graph: Graph, mapping: Mapping, placement: Placement, inputs: np.ndarray) -> DetailedCounts:
    """Run ``inputs`` (batch, T, n_in) on the torch engine with traces and reduce them per core."""
    sim = HwSim.from_graph(graph)
    x = graph.input.check_values(inputs)
    batch, steps = x.shape[:2]
    reach = _routes_table(graph, mapping, placement)
    routes = placement.routes()
    trains: dict[str, torch.Tensor] = {graph.input.name: torch.from_numpy(x)}
    traces: dict[str, dict[str, torch.Tensor]] = {p.name: {} for p in sim.populations}
    layers: list[LayerCounts] = []
    output_v = np.zeros(0)
    with _exact_float_math():
        for pop in _after_blocks(graph, trains, (batch, steps), traces):
            neu = pop.neuron
            use = mapping.per_core[neu.name]
            cores = int(use.neurons.size)
            onehot = _onehot(use.core_of, cores)
            trace = traces[neu.name]
            is_output = neu.name == graph.output.name
            out = trains[neu.name]
            per_neuron_synops = torch.zeros((batch, steps, neu.size), dtype=torch.float64)
            for syn, src in pop.inputs:
                nz = delayed_train(trains[src]) != 0
                if isinstance(syn, QConv):   # non-zero inputs in each neuron's receptive field
                    per_neuron_synops += torch.nn.functional.conv2d(
                        nz.reshape(-1, *syn.in_shape).to(torch.float64),
                        torch.ones(syn.weight.shape, dtype=torch.float64), stride=syn.stride,
                        padding=syn.padding, dilation=syn.dilation, groups=syn.groups).reshape(batch, steps, -1)
                else:
                    per_neuron_synops += nz.sum(dim=-1, keepdim=True).to(torch.float64)
            mine = reach[neu.name]
            dests = torch.from_numpy(mine.sum(axis=1, dtype=np.int64) + (1 if is_output else 0)).to(torch.float64)
            spk = out.sum(dim=1).numpy().astype(np.int64)                 # (batch, n)
            traffic = _traffic(spk, mine, placement.offset[neu.name] + use.core_of, routes)
            if is_output:
                traffic["to_host"] = spk.sum(axis=1)
                output_v = trace["v"].numpy()
            core_reach = (onehot.numpy().T @ mine) > 0
            layers.append(LayerCounts(
                name=neu.name, neurons_per_core=use.neurons.astype(np.int64),
                synops=_per_core(per_neuron_synops, onehot), active=_per_core(trace["active"], onehot),
                spikes=_per_core(out, onehot), messages=_per_core(out.to(torch.float64) * dests, onehot),
                traffic=traffic, reach=core_reach))
    x_spk = (torch.from_numpy(x) != 0).sum(dim=1).numpy().astype(np.int64)   # graded: one message per value
    input_traffic = _traffic(x_spk, reach[graph.input.name], None, routes)
    spikes = {name: t.numpy() for name, t in trains.items() if name != graph.input.name}
    return DetailedCounts(layers=layers, input_traffic=input_traffic, spikes=spikes, output_v=output_v,
                          batch=batch, timesteps=steps)
