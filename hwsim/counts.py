"""Raw activity counts per layer, per core, per timestep and per sample: what the report prices.

hwsim's engines count synaptic ops, neuron updates and spikes per layer and step, summed over the
batch: enough for throughput runs. A report needs more: the same counts for every core the
mapping made (the slowest core sets the step time), for every sample (an average hides the
spread), and the spike messages each core sends, classified by route (within a tile, tile hops
east-west and north-south, across chips, to the host). This module reruns the torch engine
(``snnc.hwsim.sim``, the readable mirror of Lava's models) once, with per-neuron traces, and
reduces them through the mapping and placement. Its totals equal the engines' layer counts exactly
(tests/test_energy.py). A synaptic op is counted when its synapse receives the spike (the step after
it is sent), also for a Dense with synaptic delays, whose Lava model (DelayDense) accumulates at
receipt: a delay moves when the input arrives, not the work, and ops whose arrival falls after the
last step still count (``snnc.hwsim.sim.synaptic_input``, the one definition).

Beside them, the same run counted under SANA-FE's event definitions (Boyle et al., IEEE TCAD 2025;
docs/energy.md "Calibrated energy: SANA-FE"), which its calibrated Loihi model prices: every mapped
neuron is accessed every step; a neuron is *updated* when its v is non-zero before the step, a
synaptic event reached it in the previous step (zero weights included), its bias is non-zero, or
it fires; a spike sends one message per distinct destination core (not per synapse node), and an
output neuron with no synapse sends none; a message's synaptic events are processed in the step
the spike is sent. SANA-FE feeds spikes in through ``input`` units mapped on cores, so the input's
neurons are counted on the cores after the network's (placed by the same policy), 1024 to a core.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Iterator

import numpy as np

from snnc.compiler.ir import Graph, Population, QConv
from snnc.compiler.mapping import LayerMapping, Mapping
from snnc.compiler.placement import Placement, place
from snnc.hwsim.sim import (BlockOutput, HwSim, HwSimResult, LayerActivity, _exact_float_math, shift_signed,
                            simulate_block, transpose_ones)
from snnc.lazy import LazyModule

torch = LazyModule("torch")   # the counting run's; its results (DetailedCounts) unpickle without it (snnc.background)

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
    events: "EventCounts | None" = None   # the same run under SANA-FE's event definitions
    membrane_updates: int = 0      # NeuroBench's: batch x n at step 0, then each (sample, step, neuron) whose v changed

    @property
    def cores(self) -> int:
        return int(self.neurons_per_core.size)


@dataclass(frozen=True)
class EventCounts:
    """One population's counts under SANA-FE's definitions (module docstring). (batch, T, cores)
    int64 per core of the layer; (batch, T) for the messages it sends, by route."""

    updated: np.ndarray        # neurons SANA-FE's LIF counts as updated (fired ones included)
    events_dense: np.ndarray   # synaptic events processed on the core in step t, from spikes sent in t
    events_conv: np.ndarray    # the same through convolution synapse nodes
    messages_in: np.ndarray    # messages the core receives in step t: one per (spike, this core)
    messages_out: np.ndarray   # messages the core sends: one per (spike, distinct destination core)
    within_tile: np.ndarray    # (batch, T) of the messages sent in step t, those that stay in their tile
    hops_ew: np.ndarray        # (batch, T) east-west tile hops of the messages sent in step t
    hops_ns: np.ndarray        # (batch, T) north-south tile hops
    cross_chip: np.ndarray     # (batch, T) messages sent to another chip


@dataclass(frozen=True)
class InputEvents:
    """The input's spike sources as SANA-FE maps them: ``input`` units on the cores after the
    network's. Per input core: its place on the mesh and the messages it sends."""

    core: np.ndarray           # (input cores,) global core index
    chip: np.ndarray
    tile: np.ndarray
    tile_x: np.ndarray
    tile_y: np.ndarray
    neurons_per_core: np.ndarray
    core_of: np.ndarray        # (n_in,) input core (0-based among the input cores) of each input neuron
    messages_out: np.ndarray   # (batch, T, input cores) one per (non-zero value, distinct destination core)
    within_tile: np.ndarray    # (batch, T)
    hops_ew: np.ndarray        # (batch, T)
    hops_ns: np.ndarray
    cross_chip: np.ndarray


@dataclass(frozen=True)
class DetailedCounts:
    """Counts of every layer, the input's messages, every spike train and the output's v trace."""

    layers: list[LayerCounts]
    input_traffic: dict[str, np.ndarray]   # messages from the host into the mesh, per sample
    spikes: dict[str, np.ndarray]          # population -> (batch, T, n) bool
    output_v: np.ndarray                   # (batch, T, n) int64, the output's v after each step
    batch: int
    timesteps: int
    input_events: InputEvents | None = None   # the input under SANA-FE's definitions
    #: the same run as hwsim's result (spikes, final v and activity of every population, as the torch
    #: engine returns them; the engines agree bit for bit, tests/test_hwsim_engines.py), so that the
    #: report needs no second simulation
    result: HwSimResult | None = None


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
                  traces: dict[str, dict[str, torch.Tensor]], done: dict[str, BlockOutput]) -> Iterator[Population]:
    """Each population once its block has run (traced, v too: SANA-FE's 'updated' reads it), in order;
    each block's outputs into ``done``."""
    for block in graph.blocks():
        done.update(simulate_block(block, trains, shape, traces=traces, trace_v={p.name for p in block}))
        yield from block


def input_placement(graph: Graph, mapping: Mapping) -> Placement:
    """The network's placement extended by the input's cores (``neurons_per_core`` input units each,
    after the network's cores, by the same policy): where SANA-FE's input units sit."""
    tgt = mapping.target
    assert tgt is not None, "a mapping made by map_cores knows its target"
    n = graph.input.size
    cores = -(-n // tgt.neurons_per_core)
    unit = LayerMapping(name=graph.input.name, neurons=n, synapses=0, fan_in=0, cores=cores,
                        neurons_per_core=min(n, tgt.neurons_per_core), synapse_words_per_core=0)
    return place(replace(mapping, layers=(*mapping.layers, unit)), tgt)


def _route_sums(dest: np.ndarray, src_core: np.ndarray, routes: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Per source neuron, over its distinct destination cores ``dest`` (n, network cores) bool:
    messages, those within the tile, east-west and north-south tile hops, and messages that cross
    chips (one spike)."""
    g = dest.shape[1]
    out = {k: np.zeros(dest.shape[0], dtype=np.int64) for k in ("ew", "ns", "cross", "same")}
    out["messages"] = dest.sum(axis=1, dtype=np.int64)
    for core in np.unique(src_core):      # one source core at a time: (its neurons x cores) at most
        rows = src_core == core
        d = dest[rows].astype(np.int64)
        for key, table in (("ew", "ew_hops"), ("ns", "ns_hops"), ("cross", "cross_chip"), ("same", "same_tile")):
            out[key][rows] = d @ routes[table][core, :g].astype(np.int64)
    return out


def _per_step(x: torch.Tensor, per_neuron: np.ndarray) -> np.ndarray:
    """(batch, T, n) spikes x a per-neuron count -> (batch, T) int64, exactly."""
    return (x.to(torch.float64) @ torch.from_numpy(per_neuron.astype(np.float64))).round().to(torch.int64).numpy()


def _events(pop: Population, trains: dict[str, torch.Tensor], batch: int, steps: int, onehot: torch.Tensor,
            neurons: np.ndarray) -> tuple[torch.Tensor, np.ndarray, np.ndarray]:
    """Synaptic events that spikes sent in step t cause on each neuron (batch, T, n) float64 (dense:
    every synapse of the row, zero weights included; conv: the kernel taps inside the output map),
    and per core, split by synapse kind (dense, conv)."""
    neu = pop.neuron
    per_neuron = torch.zeros((batch, steps, neu.size), dtype=torch.float64)
    dense = np.zeros((batch, steps, neurons.size), dtype=np.int64)
    conv = np.zeros_like(dense)
    for syn, src in pop.inputs:
        nz = trains[src] != 0
        if isinstance(syn, QConv):   # non-zero inputs in each neuron's receptive field
            # the same for every output channel of a group: sum the group's input channels, box-filter
            # that one map per group, then each channel takes its group's map. float32 is exact: a
            # count is at most per_group * kh * kw < 2**24
            out_ch, per_group, kh, kw = syn.weight.shape
            assert per_group * kh * kw < 2**24
            c, h, w = syn.in_shape
            grouped = nz.reshape(-1, syn.groups, per_group, h, w).sum(dim=2, dtype=torch.int32).to(torch.float32)
            maps = torch.nn.functional.conv2d(
                grouped, torch.ones((syn.groups, 1, kh, kw), dtype=torch.float32), stride=syn.stride,
                padding=syn.padding, dilation=syn.dilation, groups=syn.groups).to(torch.float64)
            group_of = torch.arange(out_ch) // (out_ch // syn.groups)
            e = maps.index_select(1, group_of).reshape(batch, steps, -1)
            conv += _per_core(e, onehot)
        else:
            e = nz.sum(dim=-1, keepdim=True).to(torch.float64)
            dense += e.numpy().astype(np.int64) * neurons[None, None, :]
        per_neuron += e
    return per_neuron, dense, conv


def count(graph: Graph, mapping: Mapping, placement: Placement, inputs: np.ndarray) -> DetailedCounts:
    """Run ``inputs`` (batch, T, n_in) on the torch engine with traces and reduce them per core."""
    sim = HwSim.from_graph(graph)
    x = graph.input.check_values(inputs)
    batch, steps = x.shape[:2]
    reach = _routes_table(graph, mapping, placement)
    routes = placement.routes()
    extended = input_placement(graph, mapping)   # the network's cores, then the input units' (SANA-FE)
    ext_routes = extended.routes()
    trains: dict[str, torch.Tensor] = {graph.input.name: torch.from_numpy(x)}
    traces: dict[str, dict[str, torch.Tensor]] = {p.name: {} for p in sim.populations}
    layers: list[LayerCounts] = []
    output_v = np.zeros(0)
    done: dict[str, BlockOutput] = {}
    with _exact_float_math():
        for pop in _after_blocks(graph, trains, (batch, steps), traces, done):
            neu = pop.neuron
            use = mapping.per_core[neu.name]
            cores = int(use.neurons.size)
            onehot = _onehot(use.core_of, cores)
            trace = traces[neu.name]
            is_output = neu.name == graph.output.name
            out = trains[neu.name]
            neurons = use.neurons.astype(np.int64)
            sent_events, dense, conv = _events(pop, trains, batch, steps, onehot, neurons)
            per_neuron_synops = torch.zeros_like(sent_events)   # a synapse delivers one step late
            per_neuron_synops[:, 1:] = sent_events[:, :-1]
            mine = reach[neu.name]
            dests = torch.from_numpy(mine.sum(axis=1, dtype=np.int64) + (1 if is_output else 0)).to(torch.float64)
            spk = out.sum(dim=1).numpy().astype(np.int64)                 # (batch, n)
            src_core = placement.offset[neu.name] + use.core_of
            traffic = _traffic(spk, mine, src_core, routes)
            v = trace.pop("v")
            # NeuroBench's MembraneUpdates (hwsim/neurobench.py): v after the step, reset included
            membrane = batch * neu.size + int((v[:, 1:] != v[:, :-1]).sum())
            if is_output:
                traffic["to_host"] = spk.sum(axis=1)
                output_v = v.numpy()
            core_reach = (onehot.numpy().T @ mine) > 0
            # SANA-FE: updated = v non-zero before the step, an event received, a bias, or a spike
            v_before = torch.zeros_like(v, dtype=torch.bool)
            v_before[:, 1:] = v[:, :-1] != 0
            bias = torch.from_numpy(shift_signed(neu.bias_mant.astype(np.int64), neu.bias_exp) != 0)  # type: ignore[union-attr]
            updated = v_before | (per_neuron_synops > 0) | bias | out
            del v, v_before
            lo = placement.offset[neu.name]
            into = torch.zeros((batch, steps, cores), dtype=torch.float64)
            for src in dict.fromkeys(s for _, s in pop.inputs):     # distinct sources: one message per core
                hit = torch.from_numpy((reach[src][:, lo:lo + cores] > 0).astype(np.float32))
                into += ((trains[src] != 0).to(torch.float32) @ hit).to(torch.float64)   # exact below 2**24
            sums = _route_sums(mine > 0, src_core, ext_routes)
            events = EventCounts(
                updated=_per_core(updated, onehot), events_dense=dense, events_conv=conv,
                messages_in=into.round().to(torch.int64).numpy(),
                messages_out=_per_core(out.to(torch.float64) * torch.from_numpy(sums["messages"]).to(torch.float64),
                                       onehot),
                within_tile=_per_step(out, sums["same"]),
                hops_ew=_per_step(out, sums["ew"]), hops_ns=_per_step(out, sums["ns"]),
                cross_chip=_per_step(out, sums["cross"]))
            layers.append(LayerCounts(
                name=neu.name, neurons_per_core=neurons,
                synops=_per_core(per_neuron_synops, onehot), active=_per_core(trace["active"], onehot),
                spikes=_per_core(out, onehot), messages=_per_core(out.to(torch.float64) * dests, onehot),
                traffic=traffic, reach=core_reach, events=events, membrane_updates=membrane))
    x_nz = torch.from_numpy(x) != 0
    x_spk = x_nz.sum(dim=1).numpy().astype(np.int64)   # graded: one message per value
    input_traffic = _traffic(x_spk, reach[graph.input.name], None, routes)
    spikes = {name: t.numpy() for name, t in trains.items() if name != graph.input.name}
    return DetailedCounts(layers=layers, input_traffic=input_traffic, spikes=spikes, output_v=output_v,
                          batch=batch, timesteps=steps,
                          input_events=_input_events(graph, mapping, extended, x_nz, reach[graph.input.name]),
                          result=_result(graph, done, batch, steps))


def _result(graph: Graph, done: dict[str, BlockOutput], batch: int, steps: int) -> HwSimResult:
    """The traced run as :meth:`HwSim.run` returns it (built as the torch engine builds its result, in
    its order: block by block)."""
    spikes: dict[str, np.ndarray] = {}
    final_v: dict[str, np.ndarray] = {}
    activity: list[LayerActivity] = []
    for pop in (p for block in graph.blocks() for p in block):
        neu, r = pop.neuron, done[pop.name]
        spikes[neu.name], final_v[neu.name] = r.spikes.cpu().numpy(), r.v.cpu().numpy()
        activity.append(LayerActivity(name=neu.name, neurons=neu.size, synapses=r.synapses,
                                      synops=r.synops.cpu().numpy(), spikes=r.spikes.sum(dim=(0, 2)).cpu().numpy(),
                                      updates=np.full(steps, batch * neu.size, dtype=np.int64),
                                      active_updates=r.active.cpu().numpy()))
    return HwSimResult(spikes=spikes, activity=activity, batch=batch, timesteps=steps, final_v=final_v,
                       output_name=graph.output.name)


def _input_events(graph: Graph, mapping: Mapping, extended: Placement, x_nz: torch.Tensor,
                  reach: np.ndarray) -> InputEvents:
    """The input units' messages (SANA-FE): one per (non-zero value, distinct destination core)."""
    tgt = mapping.target
    assert tgt is not None
    lo = extended.offset[graph.input.name]
    core_of = np.arange(graph.input.size, dtype=np.int64) // tgt.neurons_per_core
    n_cores = int(core_of[-1]) + 1 if core_of.size else 0
    here = slice(lo, lo + n_cores)
    sums = _route_sums(reach > 0, lo + core_of, extended.routes())
    per_value = torch.from_numpy(sums["messages"]).to(torch.float64)
    return InputEvents(
        core=np.arange(lo, lo + n_cores, dtype=np.int64), chip=extended.chip[here], tile=extended.tile[here],
        tile_x=extended.tile_x[here], tile_y=extended.tile_y[here],
        neurons_per_core=np.bincount(core_of, minlength=n_cores).astype(np.int64), core_of=core_of,
        messages_out=_per_core(x_nz.to(torch.float64) * per_value, _onehot(core_of, n_cores)),
        within_tile=_per_step(x_nz, sums["same"]), hops_ew=_per_step(x_nz, sums["ew"]), hops_ns=_per_step(x_nz, sums["ns"]),
        cross_chip=_per_step(x_nz, sums["cross"]))
