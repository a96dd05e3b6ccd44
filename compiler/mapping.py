"""Partition every population onto neuro-cores under the target's per-core limits (docs/mapping.md).

Per core we count, exactly, what Loihi 1 stores there (limits and sources: ``compiler/targets.py``):

* neurons (compartments);
* input axons: one per (input synapse node, source neuron) that has a synapse into the core;
* synaptic words: per input axon, its synapses into the core in dense-format blocks of <= 64 synapses
  with a 10-bit header, each block rounded up to 64-bit words; conv kernels are stored per axon (no
  population axons), so for convolutions this is an upper bound of what Loihi 1 needs;
* output-axon slots: one per (source neuron, input synapse node, destination core it reaches).

Dense-fed populations are split into contiguous, even neuron ranges. Conv-fed populations ((C, H, W)
shape) are split into blocks of (channel group x spatial tile); a convolution's connectivity factors
into channel x row x column, so every count above is an outer product of three small 1-D tables and
the search over block shapes is cheap. Violations raise one ``TargetLimitError`` listing each.

A target whose synaptic-memory format is not public (Loihi 2: ``Target.synapse_memory_known`` is
False) is mapped under neurons, input and output axons only; its cores' synapses are counted and
reported (resource ``synapses``, no limit), never priced in invented words. Synaptic delays on Loihi 1
take ``delay_bits`` per weight (nengo-loihi block.py ``SynapseConfig.bits_per_axon``); graded input
and delays are checked against the target (``Target.graded_spike_bits``, ``max_delay``), and
:func:`target_findings` gives the warnings (graded input on binary-spike silicon, delays beyond the
guaranteed slots, synapses per core above a published headline).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from itertools import chain, product
from math import ceil, prod
from typing import Any, Iterator

import numpy as np

from snnc.compiler.ir import CONVS, Graph, Population, QConv, Synapse
from snnc.compiler.passes import Finding
from snnc.compiler.targets import Target
from snnc.errors import GraphError, TargetLimitError

#: Per-core resources: the name in reports -> the Target field that limits it.
RESOURCES: dict[str, str] = {"neurons": "neurons_per_core", "input_axons": "input_axons_per_core",
                             "output_axons": "output_axons_per_core", "synapse_words": "synapse_words_per_core"}
#: The same for a target whose synaptic memory is not public: synapses are counted, with no limit.
RESOURCES_UNKNOWN_MEMORY: dict[str, str | None] = {"neurons": "neurons_per_core",
                                                   "input_axons": "input_axons_per_core",
                                                   "output_axons": "output_axons_per_core", "synapses": None}


def resources(target: Target | None) -> dict[str, str | None]:
    """The per-core resources counted for ``target`` (name -> the Target field limiting it, None: none)."""
    return dict(RESOURCES) if target is None or target.synapse_memory_known else dict(RESOURCES_UNKNOWN_MEMORY)

Block = tuple[int, int, int]


@dataclass(frozen=True)
class LayerMapping:
    """One population's mapping; every field is plain data (report.json). Per-core maxima."""

    name: str
    neurons: int
    synapses: int                    # real connections (conv: kernel taps that land inside the input)
    fan_in: int                      # largest number of input axons one neuron needs
    cores: int
    neurons_per_core: int
    synapse_words_per_core: int | None   # None: the target's synaptic memory is not public
    input_axons_per_core: int = 0
    output_axons_per_core: int = 0
    block: tuple[int, int, int] | None = None   # (channels, rows, cols) per core; None: contiguous ranges
    memory_fraction: float | None = 0.0   # synapse_words_per_core / the target's limit (None: not public)
    fanout_cores: float = 0.0        # mean destination cores per neuron (output-axon slots per neuron)


@dataclass(frozen=True)
class CoreUse:
    """Per-core use of each resource of one population, indexed by core (int64 arrays), and the core
    of each neuron (flat (C, H, W) order) so placement and tests can see the partition itself."""

    neurons: np.ndarray
    input_axons: np.ndarray
    synapse_words: np.ndarray
    output_axons: np.ndarray
    core_of: np.ndarray
    synapses: np.ndarray | None = None   # synapses stored per core (real connections into its neurons)


@dataclass(frozen=True)
class Mapping:
    """The partition of every population (``layers`` in ``graph.populations()`` order)."""

    layers: tuple[LayerMapping, ...]
    cores: int
    chips: int
    target: Target | None = field(default=None, compare=False)
    per_core: dict[str, CoreUse] = field(default_factory=dict, compare=False, repr=False)

    def to_json(self) -> dict[str, Any]:
        """The resource table for report.json: per layer and in total, max and mean use per core."""
        limits = _limits(self.target)
        res = resources(self.target)
        layers = []
        for lm in self.layers:
            use = self.per_core.get(lm.name)
            entry: dict[str, Any] = {**_layer_json(lm), "kind": "dense" if lm.block is None else "conv"}
            if self.target is not None and not self.target.synapse_memory_known:
                entry.pop("synapse_words_per_core", None)
                entry.pop("memory_fraction", None)
            if use is not None:
                entry["use"] = {r: _stats(getattr(use, r), limits.get(r)) for r in res}
            layers.append(entry)
        every = {r: np.concatenate([getattr(u, r) for u in self.per_core.values()] or [np.zeros(0, np.int64)])
                 for r in res}
        totals = {"cores": self.cores, "chips": self.chips, "neurons": sum(lm.neurons for lm in self.layers),
                  "synapses": sum(lm.synapses for lm in self.layers),
                  "use": {r: {"total": int(v.sum()), **_stats(v, limits.get(r))} for r, v in every.items()}}
        tgt = self.target
        target = None if tgt is None else {"name": tgt.name, "system": tgt.system, "limits": tgt.limits(),
                                           "sources": dict(tgt.sources)}
        if tgt is not None and tgt.unknown:
            target["unknown"] = dict(tgt.unknown)
        return {"cores": self.cores, "chips": self.chips, "target": target, "layers": layers, "totals": totals}


def _layer_json(lm: LayerMapping) -> dict[str, Any]:
    """A LayerMapping as JSON types (block as a list)."""
    d = {k: getattr(lm, k) for k in LayerMapping.__dataclass_fields__}
    d["block"] = list(lm.block) if lm.block is not None else None
    return d


def _limits(target: Target | None) -> dict[str, int]:
    return {} if target is None else {r: int(getattr(target, f)) for r, f in resources(target).items()
                                      if f is not None and getattr(target, f) is not None}


def _stats(v: np.ndarray, limit: int | None) -> dict[str, Any]:
    """Max and mean of a per-core array, absolute and as a fraction of the per-core limit."""
    mx, mean = (int(v.max()), float(v.mean())) if v.size else (0, 0.0)
    out: dict[str, Any] = {"max": mx, "mean": mean}
    if limit:
        out.update(limit=limit, max_fraction=mx / limit, mean_fraction=mean / limit)
    return out


# --- synaptic memory ------------------------------------------------------------------------------

def words_for(n: np.ndarray | int, target: Target, delay_bits: int = 0) -> np.ndarray:
    """64-bit words one axon with ``n`` synapses into a core takes (vectorised over ``n``).

    Blocks of <= ``synapse_block`` synapses, each with a header, each rounded up to whole words
    (nengo-loihi block.py SynapseConfig.bits_per_axon; dense format, no index bits). A delayed
    synapse stores ``delay_bits`` more per weight (bits_per_weight = weight + delay + tag bits there).
    A target whose memory format is not public has no words: zeros (see :func:`resources`).
    """
    n = np.asarray(n, dtype=np.int64)
    if not target.synapse_memory_known:
        return np.zeros_like(n)
    per = target.stored_weight_bits + delay_bits
    full, rest = np.divmod(n, target.synapse_block)
    bits = lambda k: -(-(k * per + target.synapse_block_header_bits)  # noqa: E731
                       // target.synapse_word_bits)
    return full * bits(target.synapse_block) + np.where(rest > 0, bits(rest), 0)


def delay_bits(syn: Synapse) -> int:
    """Bits a synapse's delay field takes per weight on Loihi 1: enough for its longest delay (0: none)."""
    d = getattr(syn, "delay", None)
    return 0 if d is None else int(d.max()).bit_length()


def _memory_limit(target: Target) -> float:
    """The synaptic words a core holds; unbounded where the target's memory is not public (unchecked)."""
    return float("inf") if target.synapse_words_per_core is None else target.synapse_words_per_core


def synapse_words(fan_in: int, neurons: int, target: Target) -> int:
    """Words of ``fan_in`` dense axons into ``neurons`` on one core: 784 inputs fit 142 neurons, not 143."""
    return int(fan_in * words_for(neurons, target))


# --- convolution connectivity, factored into channel x row x column --------------------------------

@dataclass(frozen=True)
class _ConvTables:
    """1-D connection counts of a convolution: ``ch`` (C_out, C_in) is 1 where the channels share a
    group; ``rows`` (H_out, H_in) counts the kernel rows that take output row oy to input row y; ``cols``
    likewise. The synapse count between (o, oy, ox) and (c, y, x) is ch[o, c] * rows[oy, y] * cols[ox, x]."""

    ch: np.ndarray
    rows: np.ndarray
    cols: np.ndarray


def _axis_table(n_out: int, n_in: int, k: int, stride: int, pad: int, dil: int) -> np.ndarray:
    """(n_out, n_in) counts of kernel taps mapping output index to input index (PyTorch geometry)."""
    pos = np.arange(n_out)[:, None] * stride - pad + np.arange(k)[None, :] * dil     # (n_out, k)
    table = np.zeros((n_out, n_in), dtype=np.int64)
    o, _ = np.nonzero((pos >= 0) & (pos < n_in))
    np.add.at(table, (o, pos[(pos >= 0) & (pos < n_in)]), 1)
    return table


def conv_tables(conv: QConv) -> _ConvTables:
    """The factored connectivity of ``conv`` (exact, including padding, stride, dilation, groups)."""
    (c_out, h_out, w_out), (c_in, h_in, w_in) = conv.out_shape, conv.in_shape
    g = conv.groups
    ch = (np.arange(c_out)[:, None] // (c_out // g) == np.arange(c_in)[None, :] // (c_in // g)).astype(np.int64)
    rows = _axis_table(h_out, h_in, conv.kernel[0], conv.stride[0], conv.padding[0], conv.dilation[0])
    cols = _axis_table(w_out, w_in, conv.kernel[1], conv.stride[1], conv.padding[1], conv.dilation[1])
    return _ConvTables(ch, rows, cols)


def conv_synapses(conv: QConv) -> int:
    """Real connections of ``conv``: over outputs, the kernel taps that land inside the input."""
    return _synapses(conv, conv_tables(conv))


def _synapses(syn: Synapse, t: _ConvTables | None) -> int:
    """Real connections of a synapse node: dense out x in (zeros are stored too), conv from its tables."""
    return syn.in_size * syn.out_size if t is None else int(t.ch.sum() * t.rows.sum() * t.cols.sum())


# --- partitions -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Split:
    """One partition of a population: the core of each neuron and what each core uses."""

    block: Block | None
    core_of: np.ndarray              # (N,) core index of each neuron, flat (C, H, W) order
    neurons: np.ndarray              # (cores,)
    input_axons: np.ndarray
    synapse_words: np.ndarray

    @property
    def cores(self) -> int:
        return int(self.neurons.size)


def _grouped(table: np.ndarray, size: int) -> np.ndarray:
    """Sum rows of ``table`` in consecutive groups of ``size`` (the rows one tile holds)."""
    return np.add.reduceat(table, np.arange(0, table.shape[0], size), axis=0)


def _histogram(r: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct positive values of ``r`` (tiles, n) and how often each occurs per tile."""
    vals = np.unique(r[r > 0])
    return vals, (r[:, :, None] == vals[None, None, :]).sum(axis=1)


def _conv_axons_only(t: _ConvTables, block: Block) -> np.ndarray:
    """Input axons per core of one conv: distinct channels x rows x columns that reach the tile
    (the cheap test that rejects most candidate blocks)."""
    parts = [(_grouped(m, b) > 0).sum(1) for m, b in zip((t.ch, t.rows, t.cols), block)]
    return np.einsum("i,j,k->ijk", *parts).reshape(-1)


def _conv_words(t: _ConvTables, block: Block, target: Target) -> np.ndarray:
    """Synaptic words per core of one conv: an axon (c, y, x) has ch * rows * cols synapses into a
    tile, so the words are a contraction of three per-tile histograms of those counts."""
    (vc, hc), (vr, hr), (vw, hw) = (_histogram(_grouped(m, b)) for m, b in zip((t.ch, t.rows, t.cols), block))
    per_axon = words_for(vc[:, None, None] * vr[None, :, None] * vw[None, None, :], target)
    return np.einsum("ia,jb,kc,abc->ijk", hc, hr, hw, per_axon, optimize=True).reshape(-1)


def conv_core_use(conv: QConv, block: Block, target: Target) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Input axons and synaptic words per core, and each output neuron's core, when ``conv``'s output
    is split into ``block`` tiles: what the mapper checks (tests compare it with brute force)."""
    t = conv_tables(conv)
    return _conv_axons_only(t, block), _conv_words(t, block, target), _block_core_of(conv.out_shape, block)


def _dest_cores(syn: Synapse, t: _ConvTables | None, split: _Split) -> np.ndarray:
    """(in_size,) destination cores of ``split`` each source neuron of ``syn`` reaches."""
    if t is None or split.block is None:
        return np.full(syn.in_size, split.cores, dtype=np.int64)
    parts = [(_grouped(m, b) > 0).sum(0) for m, b in zip((t.ch, t.rows, t.cols), split.block)]
    return np.einsum("i,j,k->ijk", *parts).reshape(-1)


def _block_core_of(shape: tuple[int, int, int], block: Block) -> np.ndarray:
    """Core index of every neuron (flat (C, H, W) order) when cores hold ``block``-sized tiles."""
    idx = [np.arange(n) // b for n, b in zip(shape, block)]
    n = [ceil(s / b) for s, b in zip(shape, block)]
    return ((idx[0][:, None, None] * n[1] + idx[1][None, :, None]) * n[2] + idx[2][None, None, :]).reshape(-1)


# --- the population planner --------------------------------------------------------------------------

@dataclass(frozen=True)
class _Plan:
    """What the planner knows of a population: its inputs (conv tables where a conv), its (C, H, W)
    when a conv feeds it (None: split into contiguous ranges) and the exact per-neuron fan-in."""

    pop: Population
    shape: tuple[int, int, int] | None
    tables: tuple[_ConvTables | None, ...]
    fan_in: np.ndarray               # (N,) input axons each neuron needs

    @property
    def size(self) -> int:
        return int(self.pop.neuron.size)


def _plan(pop: Population) -> _Plan:
    """Tables of every input synapse and the population's (C, H, W) when a conv feeds it."""
    convs = [s for s, _ in pop.inputs if isinstance(s, CONVS)]
    shape = tuple(pop.neuron.shape) if pop.neuron.shape is not None and len(pop.neuron.shape) == 3 else None
    if convs:
        shape = shape or convs[0].out_shape
        bad = [c.name for c in convs if c.out_shape != shape]
        if bad:
            raise GraphError(f"population '{pop.name}': convolutions {bad} do not produce its shape {shape}")
    tables = tuple(conv_tables(s) if isinstance(s, CONVS) else None for s, _ in pop.inputs)  # type: ignore[arg-type]
    fan = np.zeros(pop.neuron.size, dtype=np.int64)
    for (syn, _), t in zip(pop.inputs, tables):
        fan += syn.in_size if t is None else np.einsum(
            "i,j,k->ijk", t.ch.sum(1), t.rows.sum(1), t.cols.sum(1)).reshape(-1)
    return _Plan(pop, shape if convs else None, tables, fan)  # type: ignore[arg-type]


def _dense_split(plan: _Plan, k: int, target: Target) -> _Split:
    """``k`` contiguous, even neuron ranges (sizes differ by at most one)."""
    sizes = np.full(k, plan.size // k, dtype=np.int64)
    sizes[: plan.size % k] += 1
    fan = sum(s.in_size for s, _ in plan.pop.inputs)
    return _Split(None, np.repeat(np.arange(k), sizes), sizes, np.full(k, fan, dtype=np.int64),
                  _dense_words(plan, sizes, target))


def _dense_words(plan: _Plan, per_core: np.ndarray, target: Target) -> np.ndarray:
    """Words of every (dense) input axon into cores of ``per_core`` neurons: each synapse node in its
    own format (a delayed one with its delay bits per weight)."""
    bits = [delay_bits(s) for s, _ in plan.pop.inputs]
    if not any(bits):   # one format for all: the sum of the fan-in times one table
        return sum(s.in_size for s, _ in plan.pop.inputs) * words_for(per_core, target)
    return sum(s.in_size * words_for(per_core, target, b) for (s, _), b in zip(plan.pop.inputs, bits))


def _dense_splits(plan: _Plan, target: Target) -> Iterator[_Split]:
    """Even splits with k = fewest feasible cores, then k + 1, ... (more cores only ever help)."""
    per_core = np.arange(1, min(plan.size, target.neurons_per_core) + 1)
    fits = per_core[_dense_words(plan, per_core, target) <= _memory_limit(target)]
    for k in range(ceil(plan.size / int(fits.max())), plan.size + 1):
        yield _dense_split(plan, k, target)


def _tile_sizes(n: int) -> np.ndarray:
    """Every distinct tile size that splits ``n`` into ceil(n / size) tiles: ceil(n / k), k = 1..n."""
    return np.unique(-(-n // np.arange(1, n + 1)))


def _block_split(plan: _Plan, block: Block, target: Target) -> _Split | None:
    """The partition into ``block`` tiles, or None where a core breaks a limit."""
    assert plan.shape is not None
    n = [ceil(s / b) for s, b in zip(plan.shape, block)]
    ext = [np.diff(np.minimum(np.arange(m + 1) * b, s)) for m, b, s in zip(n, block, plan.shape)]
    neurons = np.einsum("i,j,k->ijk", *ext).reshape(-1)
    axons = np.zeros(prod(n), dtype=np.int64)
    for (syn, _), t in zip(plan.pop.inputs, plan.tables):
        axons += syn.in_size if t is None else _conv_axons_only(t, block)
    if axons.max() > target.input_axons_per_core:
        return None
    words = np.zeros(prod(n), dtype=np.int64)
    for (syn, _), t in zip(plan.pop.inputs, plan.tables):
        words += (syn.in_size * words_for(neurons, target, delay_bits(syn)) if t is None
                  else _conv_words(t, block, target))
    if words.max() > _memory_limit(target):
        return None
    return _Split(block, _block_core_of(plan.shape, block), neurons, axons, words)


def _block_candidates(plan: _Plan, target: Target) -> list[tuple[int, Block]]:
    """(cores, block) for every block of at most the neuron limit, fewest cores first.

    Fewer cores than total synapses x weight bits / core memory can never fit, so those are skipped.
    """
    assert plan.shape is not None
    synapses = sum(_synapses(s, t) for (s, _), t in zip(plan.pop.inputs, plan.tables))
    floor = (ceil(synapses * target.stored_weight_bits / target.synapse_word_bits / target.synapse_words_per_core)
             if target.synapse_memory_known else 1)
    out = []
    for block in product(*(_tile_sizes(s) for s in plan.shape)):
        b = tuple(int(x) for x in block)
        cores = prod(ceil(s / x) for s, x in zip(plan.shape, b))
        if prod(b) <= target.neurons_per_core and cores >= floor:
            out.append((cores, b))
    return sorted(out)


def _block_splits(plan: _Plan, target: Target) -> Iterator[_Split]:
    """Feasible block partitions, fewest cores first. Among equal core counts, the one whose source
    neurons reach the fewest of its cores comes first (fewer output-axon slots for the producer and
    fewer spike messages), then the one with the most memory and axon headroom."""
    cands = _block_candidates(plan, target)
    i = 0
    while i < len(cands):
        j = i
        while j < len(cands) and cands[j][0] == cands[i][0]:
            j += 1
        ok = [s for s in (_block_split(plan, b, target) for _, b in cands[i:j]) if s is not None]
        ok.sort(key=lambda s: (_spread(plan, s), max(s.synapse_words.max() / _memory_limit(target),
                                                      s.input_axons.max() / target.input_axons_per_core), s.block))
        yield from ok
        i = j


def _spread(plan: _Plan, split: _Split) -> float:
    """Mean destination cores per source neuron, over the population's conv inputs."""
    return float(sum(_dest_cores(syn, t, split).mean() for (syn, _), t in zip(plan.pop.inputs, plan.tables)
                     if t is not None))


def _splits(plan: _Plan, target: Target) -> Iterator[_Split]:
    return _block_splits(plan, target) if plan.shape is not None else _dense_splits(plan, target)


# --- design rules ------------------------------------------------------------------------------------

def _fan_in_violation(plan: _Plan, target: Target) -> str | None:
    """A neuron's inputs must all arrive at its own core: fan-in over the axon limit cannot be split."""
    worst = int(plan.fan_in.max())
    if worst <= target.input_axons_per_core:
        return None
    parts = []
    for (syn, src), t in zip(plan.pop.inputs, plan.tables):
        if t is None:
            parts.append(f"{syn.name}: {syn.in_size} inputs from '{src}'")
        else:
            parts.append(f"{syn.name}: {syn.in_shape[0] // syn.groups} input channels x "  # type: ignore[union-attr]
                         f"{int(t.rows.sum(1).max())}x{int(t.cols.sum(1).max())} kernel taps")
    return (f"layer '{plan.pop.name}': a neuron's fan-in {worst} exceeds {target.budget('input_axons_per_core')} "
            f"input axons per core ({'; '.join(parts)}). {_whole_fan_in(target)} Use fewer "
            f"input channels or inputs, a smaller kernel, grouped convolution, or more pooling before this layer.")


def _whole_fan_in(target: Target) -> str:
    """Why fan-in cannot be split: Loihi 1's rule; on other chips, snnc's (it never splits a neuron's inputs)."""
    if target.chip == "Loihi 1":
        return "On Loihi 1 all of a neuron's inputs must arrive at its own core, so fan-in cannot be split across cores."
    return (f"snnc delivers all of a neuron's inputs to its own core (it does not split a neuron's fan-in over "
            f"{target.chip} cores), so the budget applies to one neuron's fan-in.")


def _fit_outputs(name: str, chosen: dict[str, _Split], more: Iterator[_Split],
                 cons: list[tuple[Synapse, _ConvTables | None, str]], size: int,
                 target: Target) -> tuple[_Split, np.ndarray, np.ndarray, str | None]:
    """The first partition of ``name`` (its current one, else one with more cores) whose cores'
    output-axon slots fit, with its per-core slots and each neuron's slots.

    The slots of a neuron depend on its consumers' partitions; a finer split of this population
    puts fewer neurons on each core, so it helps. A population that feeds itself (a recurrent
    synapse: ``cons`` names it) also reaches each of its own cores, so its slots are recounted for
    every candidate: one more core adds a slot per neuron but takes neurons off every core.
    Without a recurrent synapse one neuron per core always fits unless a single neuron needs more
    slots than a core has; with one, every partition can fail, and the error says so.
    """
    limit = target.output_axons_per_core
    recurrent = any(dest == name for _, _, dest in cons)
    split = chosen[name]
    slots = _slots_per_neuron(cons, chosen, size)
    if slots.max() > limit and not recurrent:
        per_core = np.bincount(split.core_of, weights=slots, minlength=split.cores).astype(np.int64)
        return split, per_core, slots, (
            f"layer '{name}': one neuron reaches {int(slots.max())} destination cores, over "
            f"{target.budget('output_axons_per_core')} output axons per core (one slot per neuron and destination core). Its consumers are "
            f"split over too many cores: narrow them or reduce their fan-in.")
    best: tuple[_Split, np.ndarray, np.ndarray] | None = None
    for cand in chain([split], more):
        if recurrent:
            slots = _slots_per_neuron(cons, {**chosen, name: cand}, size)
        per_core = np.bincount(cand.core_of, weights=slots, minlength=cand.cores).astype(np.int64)
        if per_core.max() <= limit:
            return cand, per_core, slots, None
        if best is None or per_core.max() < best[1].max():
            best = cand, per_core, slots
    assert recurrent and best is not None, "one neuron per core always fits"
    cand, per_core, slots = best
    return cand, per_core, slots, (
        f"layer '{name}': no partition fits {target.budget('output_axons_per_core')} output axons per core: through its "
        f"recurrent synapse each neuron also reaches every core of its own layer, so its cores need at least "
        f"{int(per_core.max())} slots (one per neuron and destination core). Use fewer neurons in the "
        f"recurrent layer or split it into smaller recurrent groups.")


def _chip_violation(cores: int, layers: list[LayerMapping], target: Target, partial: bool) -> str | None:
    """The whole network must fit the target system's chips (``partial``: only the layers that fit
    were counted, so the need is a lower bound)."""
    chips = ceil(cores / target.cores_per_chip)
    if chips <= target.max_chips:
        return None
    big = ", ".join(f"'{m.name}' {m.cores}" for m in sorted(layers, key=lambda m: -m.cores)[:3])
    who = "the layers that fit already need at least" if partial else "the network needs"
    larger = [b for b in target.boards if b.chips >= chips and b.chips > target.max_chips]
    bigger = (f" A larger {target.chip} system ({larger[0].name}, {larger[0].chips:,} chips) would hold it; snnc "
              f"budgets the target system." if larger and target.budget_labels else "")
    binds = ("synaptic memory per core is what usually binds" if target.synapse_memory_known else
             f"at most {target.neurons_per_core:,} neurons and {target.input_axons_per_core:,} input axons per core")
    return (f"{who} {cores} cores = {chips} chips of {target.cores_per_chip} cores, but the target "
            f"system ({target.system or target.name}) has {target.max_chips} chips ({target.max_cores} cores). "
            f"Largest layers by cores: {big}. Use fewer channels or neurons, or smaller fan-in per neuron "
            f"({binds}).{bigger}")


def _feature_violations(graph: Graph, target: Target) -> list[str]:
    """Graded input wider than the target's spike payload, and delays longer than it holds (errors; on
    a binary-spike target graded input is a warning instead: :func:`target_findings`)."""
    out = []
    bits = graph.input.bits
    if target.graded_spike_bits and bits > target.graded_spike_bits:
        out.append(f"input '{graph.input.name}' carries graded {bits}-bit values, over {target.name}'s "
                   f"{target.graded_spike_bits}-bit graded spike payload ({target.sources.get('graded_spike_bits', '')}). "
                   f"Quantize the input to at most {target.graded_spike_bits} bits.")
    if target.max_delay is not None:
        for pop in graph.populations():
            for syn, src in pop.inputs:
                d = int(getattr(syn, "max_delay", 0) or 0)
                if d > target.max_delay:
                    out.append(f"layer '{pop.name}' ({syn.name}): synaptic delay {d} steps exceeds {target.name}'s "
                               f"{target.max_delay} ({target.sources.get('max_delay', '')}). Shorten the delay or "
                               f"relay the spikes through intermediate neurons.")
    return out


def target_findings(graph: Graph, mapping: Mapping | None, target: Target) -> list[Finding]:
    """Warnings about what runs in Lava's model but is not what the target's silicon guarantees (not
    numerical: ``--strict`` does not refuse them): graded input on a binary-spike chip, delays beyond
    the guaranteed delay slots, and cores holding more synapses than a published per-chip headline."""
    out: list[Finding] = []
    bits = graph.input.bits
    if bits and not target.graded_spike_bits:
        out.append(Finding(
            "graded_input_binary_chip", graph.input.name, "warning",
            f"input '{graph.input.name}' carries graded {bits}-bit values: Lava's model (and every snnc engine) "
            f"runs them, but {target.chip} silicon has binary spikes only (graded spikes came with Loihi 2), so "
            f"this network does not run on the chip as compiled. Compile with --target loihi2 (graded spikes up to "
            f"24 bits), or feed binary spikes (a rate or Poisson input code)."))
    if target.delay_slots is not None:
        for pop in graph.populations():
            for syn, _ in pop.inputs:
                d = int(getattr(syn, "max_delay", 0) or 0)
                if d > target.delay_slots - 1:
                    out.append(Finding(
                        "delay_slots", syn.name, "warning",
                        f"layer '{pop.name}' ({syn.name}): synaptic delays up to {d} steps, beyond the "
                        f"{target.delay_slots} delay slots (0..{target.delay_slots - 1}) {target.chip} guarantees "
                        f"({target.sources.get('delay_slots', '')}). Lava's DelayDense and snnc's engines run them, "
                        f"and the synapse words carry {delay_bits(syn)} delay bits per weight in this mapping, but "
                        f"longer delays cost compartments snnc does not count. Keep delays <= "
                        f"{target.delay_slots - 1} or compile with --target loihi2 (delays up to 62)."))
    bound = target.synapses_per_core_headline
    if bound is not None and mapping is not None:
        for lm in mapping.layers:
            use = mapping.per_core.get(lm.name)
            if use is None or use.synapses is None or not use.synapses.size:
                continue
            worst = int(use.synapses.max())
            if worst > bound:
                out.append(Finding(
                    "synapses_per_core_headline", lm.name, "warning",
                    f"layer '{lm.name}': a core holds {worst:,} synapses, above {bound:,} per core ("
                    f"{target.sources.get('synapses_per_core_headline', '')}). {target.chip}'s synaptic-memory "
                    f"budget is not public, so snnc did not check it; a core this full is unlikely to fit. "
                    f"Reduce the layer's fan-in or its width (snnc packs up to the {target.neurons_per_core:,}-neuron "
                    f"budget per core; the synapses of one neuron are its fan-in)."))
    return out


def _raise(errors: list[str], target: Target) -> None:
    if errors:
        head = (f"the network does not fit {target.name} ({len(errors)} design-rule violation"
                f"{'s' if len(errors) > 1 else ''}, found before any simulation):")
        raise TargetLimitError("\n".join([head, *(f"  - {e}" for e in errors)]))


# --- the mapper ---------------------------------------------------------------------------------------

def map_cores(graph: Graph, target: Target) -> Mapping:
    """Fewest cores per population such that every core meets every per-core limit, then output axons
    per source core, then chips; one TargetLimitError lists every violation."""
    pops = graph.populations()
    plans = {p.name: _plan(p) for p in pops}
    errors: list[str] = _feature_violations(graph, target)
    gens: dict[str, Iterator[_Split]] = {}
    chosen: dict[str, _Split] = {}
    for name, plan in plans.items():
        msg = _fan_in_violation(plan, target)
        if msg:
            errors.append(msg)
            continue
        gens[name] = _splits(plan, target)
        chosen[name] = next(gens[name])
    consumers: dict[str, list[tuple[Synapse, _ConvTables | None, str]]] = {n: [] for n in plans}
    for p in pops:
        for (syn, src), t in zip(p.inputs, plans[p.name].tables):
            if src in consumers:
                consumers[src].append((syn, t, p.name))
    out_use: dict[str, np.ndarray] = {}
    fanout: dict[str, float] = {}
    for block in reversed(graph.blocks()):   # consumers are final before their producers are refined
        names = [p.name for p in block
                 if p.name in chosen and all(d in chosen for _, _, d in consumers[p.name])]
        msgs: dict[str, str | None] = {}
        changed = True
        while changed:   # a cycle's populations are each other's consumers: refine until none changes
            changed = False
            for name in reversed(names):
                split, out_use[name], slots, msgs[name] = _fit_outputs(
                    name, chosen, gens[name], consumers[name], plans[name].size, target)
                changed |= split is not chosen[name]
                chosen[name], fanout[name] = split, float(slots.mean())
        errors += [m for m in (msgs[n] for n in names) if m]
    layers, per_core = _layers(pops, plans, chosen, out_use, fanout, target)
    cores = sum(m.cores for m in layers)
    errors += [m for m in [_chip_violation(cores, layers, target, partial=bool(errors))] if m]
    _raise(errors, target)
    return Mapping(tuple(layers), cores, ceil(cores / target.cores_per_chip), target, per_core)


def _slots_per_neuron(cons: list[tuple[Synapse, _ConvTables | None, str]], chosen: dict[str, _Split],
                      size: int) -> np.ndarray:
    """(size,) output-axon slots each source neuron needs: the destination cores it reaches, summed
    over the synapse nodes it feeds (each node is its own axon, as nengo-loihi counts them)."""
    total = np.zeros(size, dtype=np.int64)
    for syn, t, dest in cons:
        total += _dest_cores(syn, t, chosen[dest])
    return total


def _layers(pops: list[Population], plans: dict[str, _Plan], chosen: dict[str, _Split],
            out_use: dict[str, np.ndarray], fanout: dict[str, float],
            target: Target) -> tuple[list[LayerMapping], dict[str, CoreUse]]:
    """LayerMapping and per-core arrays of every population that has a partition."""
    layers, per_core = [], {}
    for p in pops:
        if p.name not in chosen:
            continue
        s, plan = chosen[p.name], plans[p.name]
        outs = out_use.get(p.name, np.zeros(s.cores, dtype=np.int64))
        # a neuron's fan-in is its synapse count (a kernel tap reaches each input once)
        syn_core = np.bincount(s.core_of, weights=plan.fan_in, minlength=s.cores).astype(np.int64)
        per_core[p.name] = CoreUse(s.neurons, s.input_axons, s.synapse_words, outs, s.core_of, syn_core)
        synapses = sum(_synapses(syn, t) for (syn, _), t in zip(p.inputs, plan.tables))
        known = target.synapse_memory_known
        layers.append(LayerMapping(
            name=p.name, neurons=plan.size, synapses=synapses, fan_in=int(plan.fan_in.max()), cores=s.cores,
            neurons_per_core=int(s.neurons.max()),
            synapse_words_per_core=int(s.synapse_words.max()) if known else None,
            input_axons_per_core=int(s.input_axons.max()), output_axons_per_core=int(outs.max()),
            block=s.block,
            memory_fraction=float(s.synapse_words.max() / target.synapse_words_per_core) if known else None,
            fanout_cores=fanout.get(p.name, 0.0)))
    return layers, per_core
