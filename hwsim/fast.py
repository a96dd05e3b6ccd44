"""hwsim's fast CPU engine: exact integer GEMMs for the synapses, fused numba kernels for neurons.

Same results as the torch engine (``snnc.hwsim.sim``), bit for bit and count for count; faster
on a CPU because
- a dense synapse's whole input train (batch x T rows) is one exact int8 GEMM (``torch._int_mm``,
  int32 accumulation): Lava's mixed-sign weights are multiples of 2 in [-256, 254], i.e. 2 x an int8
  (SP/lava/utils/weightutils.py:204-295), and binary spikes are int8 0/1. It falls back to float32
  (exact while every sum < 2**24) or float64 when a graph's numbers do not fit;
- a dense synapse with synaptic delays (compiler/ir.py) is one GEMM per delay group over the
  steps that still arrive in the run, placed its delay later and combined exactly in int64 with
  each group's weight_exp shift (``FastEngine._delayed_sums``); it never takes the event path;
- a dense synapse fed by sparse activity skips the GEMM and adds only the weight rows of the inputs
  that spiked (the event-driven path, in the kernel); below ``EVENT_DENSITY`` non-zero inputs this
  measured faster than the int8 GEMM (benchmarks/hwsim_scaling.py);
- a convolution (not sparse enough for events) is one float32 ``conv2d`` over (batch x T) maps in
  channels-last layout, exact below the 2**23 bound (``_Conv``); a sum pool the compiler folded into
  it is taken apart again (``pool_factor``: f**2 fewer products, the same integer sums), and the
  neuron kernel reads the channels-last sums through an index, with no transposing pass;
- each population's recurrence runs in one numba kernel per batch chunk, parallel over samples,
  state kept per sample instead of ~15 numpy passes over (batch x neurons) per step, branch-free
  so that the per-neuron loop vectorises;
- samples run in chunks so the per-layer arrays stay small (cache, memory) whatever the batch;
- a recurrent block (``Graph.blocks()``: a population that feeds itself, or the populations of a
  cycle) keeps its feed-forward input as one GEMM over all timesteps and runs in one numba kernel
  (``kernels.lif_block``) whose per-sample time loop adds, at step t, the weight rows of the
  neurons that spiked at t - 1 (int8 rows summed in int16 / int32): the recurrent term costs in
  proportion to the recurrent spikes, and the populations of a cycle step side by side as one vector
  (benchmarks/hwsim_recurrent.py measured this against a dense alternative, docs/performance.md).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Collection

import numpy as np

from snnc.compiler.ir import Graph, Population, QConv, QCubaLIF, QDense
from snnc.hwsim import kernels
from snnc.lazy import LazyModule, imported
from snnc.hwsim.sim import (HwSimResult, LayerActivity, chunk_size, conv_bound, conv_input, fan_out, lava_weights,
                             merge_results, shift_signed, wrap24)

EVENT_DENSITY = 0.02   # fraction of non-zero inputs below which a dense synapse runs event by event
CONV_EVENT_DENSITY = 0.03  # the same for a convolution (LeNet: the dense conv still won at 9%)
DEFAULT_CHUNK = 128    # most samples per chunk: (chunk x T) GEMM rows keep the int8 GEMM efficient
#: dense-synapse work (multiply-adds over a whole run) from which importing torch for its int8 GEMM
#: pays: here torch's ``_int_mm`` ran ~200 G multiply-adds/s and numpy's float32 GEMM ~60 G (784x256
#: and 256x10 layers, 12,800 rows), so the int8 GEMM saves ~1.1e-11 s per multiply-add, and importing
#: torch costs ~1.9 s: break-even near 1.7e11. Below this (and while torch is not imported anyway),
#: the GEMMs run in numpy, exactly in float32 / float64 as the bounds allow, and ``snn-run`` of a small
#: network never imports torch (docs/performance.md, "Start-up").
TORCH_GEMM_MACS = 5e10

torch = LazyModule("torch")     # imported on first use: large int8 GEMMs, convolutions (snnc/lazy.py)

_NONE = np.zeros((0, 0, 0), dtype=np.int64)
_NONE2 = np.zeros((0, 0), dtype=np.int32)


class _Dense:
    """One dense synapse prepared once: int8 weights (or float ones) for the GEMM, W.T for events."""

    def __init__(self, syn: QDense, neu: QCubaLIF, graded_top: int, mask: np.ndarray | None = None):
        w = lava_weights(syn.weight, neu.fmt)                     # (out, in) int64
        # one delay group: its synapses only, and only the output rows that have one (``cols``: their
        # neurons), so per-connection or per-neuron delays cost one GEMM over all groups together
        self.cols = np.arange(w.shape[0], dtype=np.int64) if mask is None else np.flatnonzero(mask.any(axis=1))
        if mask is not None:
            w = np.where(mask, w, 0)[self.cols]
        step = neu.fmt.weight_step
        w8 = w // step
        top = max(1, graded_top)
        self.exp = syn.weight_exp
        self.mul = 1
        self.int8: np.ndarray | None = None        # W.T / mul as int8 (n_in, n_out), where Lava's format allows
        self._int8_t = None                         # ... as a torch tensor, made on the first torch GEMM
        self._float_t = None
        if (np.all(w8 * step == w) and w8.min(initial=0) >= -128 and w8.max(initial=0) <= 127 and top <= 127
                and 128 * top * w.shape[1] < 2**31):
            self.int8 = np.ascontiguousarray(w8.T.astype(np.int8))
            self.mul = step
        bound = int(np.abs(w).max(initial=0)) * w.shape[1] * top
        # the float GEMM's weights: exact while every partial sum < 2**24 (float32), else float64
        self.float = np.ascontiguousarray(w.T.astype(np.float32 if bound < 2**24 else np.float64))
        self.out = int(w.shape[0])
        # events: int32 rows while every partial sum fits, else int64 (a delay group never takes events)
        wide = int(np.abs(w).max(initial=0)) * w.shape[1] * top >= 2**31
        self.rows = np.ascontiguousarray(w.T.astype(np.int64 if wide else np.int32)) if mask is None else _NONE2

    def gemm(self, x: np.ndarray, use_torch: bool = True) -> tuple[np.ndarray, int]:
        """(batch, T, n_in) -> undelayed sums (batch, T, n_out) and the multiplier they still need.
        ``use_torch``: torch's exact int8 GEMM where the weights allow (else torch's float GEMM);
        without it numpy's float GEMM (the same integers: every sum is exact, :data:`TORCH_GEMM_MACS`)."""
        lead, n_in = x.shape[:-1], x.shape[-1]
        rows = x.reshape(-1, n_in)
        if not use_torch:
            return (rows.astype(self.float.dtype) @ self.float).astype(np.int64).reshape(*lead, -1), 1
        if self.int8 is not None and hasattr(torch, "_int_mm"):
            if self._int8_t is None:
                self._int8_t = torch.from_numpy(self.int8)
            xs = rows.view(np.int8) if x.dtype == bool else rows.astype(np.int8)
            return torch._int_mm(torch.from_numpy(xs), self._int8_t).numpy().reshape(*lead, -1), self.mul
        if self._float_t is None:
            self._float_t = torch.from_numpy(self.float)
        xf = torch.from_numpy(rows).to(self._float_t.dtype)
        return (xf @ self._float_t).to(torch.int64).numpy().reshape(*lead, -1), 1


def pool_factor(conv: QConv) -> int:
    """``f`` > 1 where ``conv`` is a sum pool (f x f, stride f) folded into the conv after it
    (compiler/lowering.py ``fuse_pool_into_conv``): stride (f, f), dilation 1, a kernel of f x f blocks
    of equal weights. Then ``conv(s) = conv'(sumpool_f(pad(s)))`` with the un-folded kernel (one
    weight per block), stride 1, no padding: the same integer sums with f**2 fewer products. Else 1."""
    f = int(conv.stride[0])
    kh, kw = conv.weight.shape[2:]
    if (f < 2 or tuple(conv.stride) != (f, f) or tuple(conv.dilation) != (1, 1) or kh % f or kw % f):
        return 1
    w = conv.weight
    small = w[:, :, ::f, ::f]
    return f if np.array_equal(np.repeat(np.repeat(small, f, axis=2), f, axis=3), w) else 1


class _Conv:
    """One convolution prepared once for the dense (non-event) path: float32 weights in
    channels-last layout (oneDNN's faster one on CPUs), with a folded sum pool taken apart again
    (:func:`pool_factor`). Exact while every partial sum < 2**23 (``conv_bound``: the float32 sums
    are exact below 2**24 and Lava's 24-bit wrap is the identity); otherwise ``sim.conv_input``."""

    def __init__(self, conv: QConv, top: int):
        self.conv = conv
        self.exact = conv_bound(conv, top) < 2**23
        self.f = pool_factor(conv)
        w = conv.weight[:, :, ::self.f, ::self.f] if self.f > 1 else conv.weight
        self.w = torch.from_numpy(np.ascontiguousarray(w)).float().contiguous(memory_format=torch.channels_last)
        co, ho, wo = conv.out_shape       # neuron (c, y, x) of the graph's order at (y, x, c) channels last
        self.order = np.ascontiguousarray(np.arange(ho * wo * co, dtype=np.int64).reshape(ho, wo, co).transpose(2, 0, 1)
                                          .reshape(-1))

    def __call__(self, train: np.ndarray) -> "np.ndarray | _ChannelsLast":
        """(batch, T, n_in) spikes or graded values -> exact sums (batch, T, n_out): channels last
        (:class:`_ChannelsLast`), or int32 / int64 in (C, H, W) order from ``conv_input``."""
        c = self.conv
        if not self.exact or train.dtype not in (np.bool_, np.int64) or train.shape[2] != c.in_size:
            return conv_input(train, c)
        lead = train.shape[:2]
        rows = train.reshape(-1, c.in_size)
        rows = rows.view(np.uint8) if rows.dtype == np.bool_ else rows
        f = self.f
        pad = tuple(c.padding) if f > 1 else (0, 0)     # f = 1: the conv pads
        x = torch.from_numpy(kernels.pooled_nhwc(rows, tuple(c.in_shape), pad, f)).permute(0, 3, 1, 2)
        with torch.no_grad():        # x: channels-last strides already (no copy)
            if f > 1:
                y = torch.nn.functional.conv2d(x, self.w, groups=c.groups)
            else:
                y = torch.nn.functional.conv2d(x, self.w, stride=c.stride, padding=c.padding,
                                               dilation=c.dilation, groups=c.groups)
            y = y.contiguous(memory_format=torch.channels_last).permute(0, 2, 3, 1)   # (rows, H, W, C) view
        return _ChannelsLast(y.numpy().reshape(*lead, c.out_size), self.order)


_IN_ORDER = np.zeros(0, dtype=np.int64)


@dataclass
class _ChannelsLast:
    """A convolution's exact sums as it computed them: float32 (batch, T, H * W * C), channels last.
    ``order[j]``: where neuron j of the graph's (C, H, W) order is; ``kernels.lif_layer`` reads them
    so, :meth:`chw` transposes (where they must be added to other sums)."""

    sums: np.ndarray
    order: np.ndarray

    def chw(self) -> np.ndarray:
        lead, n = self.sums.shape[:2], self.sums.shape[2]
        return self.sums.reshape(-1, n)[:, self.order].astype(np.int32).reshape(*lead, n)


def _combine(parts: list[tuple[np.ndarray, int, int]]) -> tuple[np.ndarray, int, int]:
    """Several precomputed inputs of one population -> one int64 sum (mul 1, exp 0)."""
    if len(parts) == 1:
        return parts[0]
    total = np.zeros(parts[0][0].shape, dtype=np.int64)
    for arr, mul, exp in parts:
        total += shift_signed(arr.astype(np.int64) * mul, exp)
    return total, 1, 0


@dataclass
class _FeedForward:
    """A population's feed-forward synapses prepared for a kernel (``FastEngine._feedforward``)."""

    pre: list[tuple[np.ndarray, int, int]]     # (sums before the delay, multiplier, weight_exp)
    synops: np.ndarray                          # (T,)
    synapses: int = 0
    events: np.ndarray = field(default_factory=lambda: _NONE)   # one dense synapse's train, taken event by event
    rows: np.ndarray | None = None              # its W.T
    ev_exp: int = 0
    int8: np.ndarray | None = None              # its W.T / mul as int8, where Lava's format allows
    mul: int = 1


#: one population's results: spikes, final v, active (batch, T), spikes (batch, T), synops (T,), synapses
_Done = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]


def uses_torch(graph: Graph, samples: int, steps: int) -> bool:
    """Whether the numba engine's run of ``samples`` x ``steps`` takes torch's GEMMs / convolutions
    (:data:`TORCH_GEMM_MACS`); ``snn-run`` imports torch before its clock starts where it does."""
    syns = [syn for pop in graph.populations() for syn, _ in pop.inputs]
    macs = samples * steps * sum(int(syn.weight.size) for syn in syns if isinstance(syn, QDense))
    return any(isinstance(syn, QConv) for syn in syns) or imported("torch") or macs >= TORCH_GEMM_MACS


class FastEngine:
    """Prepared once per graph; :meth:`run` takes any batch."""

    def __init__(self, graph: Graph, *, chunk: int | None = None, event_density: float = EVENT_DENSITY,
                 conv_event_density: float = CONV_EVENT_DENSITY):
        self.graph = graph
        self.populations = graph.populations()
        self.blocks = graph.blocks()
        self.input = graph.input
        self.output_name = graph.output.name
        self.chunk = chunk     # None: chunk_size() for the run's T
        self.event_density = event_density
        self.conv_event_density = conv_event_density
        self.use_torch = True      # set per run (:data:`TORCH_GEMM_MACS`)
        graded = (2 ** self.input.bits - 1) if self.input.bits else 1
        self.dense = {syn.name: _Dense(syn, pop.neuron, graded if src == self.input.name else 1)
                      for pop in self.populations for syn, src in pop.inputs if isinstance(syn, QDense)}
        # a Dense with synaptic delays: one prepared matrix per delay group [(d, _Dense)]
        self.delayed = {syn.name: [(int(d), _Dense(syn, pop.neuron, graded if src == self.input.name else 1,
                                                   syn.delay == d)) for d in np.unique(syn.delay)]
                        for pop in self.populations for syn, src in pop.inputs
                        if isinstance(syn, QDense) and syn.delay is not None}
        self.delayed_out = {syn.name: syn.out_size for pop in self.populations for syn, _ in pop.inputs
                            if syn.name in self.delayed}
        convs = [syn for pop in self.populations for syn, _ in pop.inputs if isinstance(syn, QConv)]
        self.fans = {c.name: fan_out(c) for c in convs}
        self.convs = {c.name: _Conv(c, graded if src == self.input.name else 1)
                      for pop in self.populations for c, src in pop.inputs if isinstance(c, QConv)}
        self.taps = {c.name: np.ascontiguousarray(c.weight.transpose(1, 2, 3, 0).astype(
            np.int32 if conv_bound(c, graded if src == self.input.name else 1) < 2**31 else np.int64))
            for pop in self.populations for c, src in pop.inputs if isinstance(c, QConv)}

    def uses_torch(self, samples: int, steps: int) -> bool:
        """Whether a run of ``samples`` x ``steps`` takes torch's GEMMs / convolutions (:func:`uses_torch`)."""
        return uses_torch(self.graph, samples, steps)

    def run(self, inputs: np.ndarray, keep: Collection[str] | None = None) -> HwSimResult:
        """``keep`` as in :meth:`HwSim.run`."""
        if isinstance(inputs, np.ndarray) and inputs.dtype == bool and not self.input.bits:
            self.input.check_values(inputs[:0])   # the same refusals (shape); no copy of the whole train
            x = inputs
        else:
            x = self.input.check_values(inputs)
        step = max(1, int(self.chunk)) if self.chunk else chunk_size(self.graph, x.shape[1], DEFAULT_CHUNK)
        self.use_torch = self.uses_torch(len(x), x.shape[1])
        if len(x) <= step:
            return self._run_chunk(x, keep)
        return merge_results([self._run_chunk(x[i:i + step], keep) for i in range(0, len(x), step)])

    def _run_chunk(self, x: np.ndarray, keep: Collection[str] | None) -> HwSimResult:
        batch, steps = x.shape[:2]
        trains: dict[str, np.ndarray] = {self.input.name: x}
        counts: dict[str, np.ndarray] = {}     # non-zero entries per (batch, T) of every train
        spikes: dict[str, np.ndarray] = {}
        final_v: dict[str, np.ndarray] = {}
        activity: list[LayerActivity] = []
        for block in self.blocks:
            if any(p.recurrent for p in block):
                done = self._recurrent_block(block, trains, counts, batch, steps)
            else:
                done = [self._population(block[0], trains, counts, steps)]
            for pop, (out, v, active, nspk, synops, synapses) in zip(block, done):
                neu = pop.neuron
                trains[neu.name], counts[neu.name] = out, nspk
                if keep is None or neu.name in keep:
                    spikes[neu.name], final_v[neu.name] = out, v
                activity.append(LayerActivity(
                    name=neu.name, neurons=neu.size, synapses=synapses, synops=synops,
                    spikes=nspk.sum(axis=0), updates=np.full(steps, batch * neu.size, dtype=np.int64),
                    active_updates=active.sum(axis=0)))
        return HwSimResult(spikes=spikes, activity=activity, batch=batch, timesteps=steps,
                           final_v=final_v, output_name=self.output_name)

    def _feedforward(self, pop: Population, inputs: tuple[tuple[object, str], ...], trains: dict[str, np.ndarray],
                     counts: dict[str, np.ndarray], steps: int, events_free: bool) -> _FeedForward:
        """The synapses ``inputs`` of ``pop`` (sources complete): GEMM / convolution sums, at most
        one sparse dense synapse left to the kernel's event path (where ``events_free``), and their
        synaptic ops per step and synapse count."""
        ff = _FeedForward(pre=[], synops=np.zeros(steps, dtype=np.int64))
        for syn, src in inputs:
            train = trains[src]
            if src not in counts:
                counts[src] = kernels.nonzero_counts(train.view(np.uint8) if train.dtype == bool else train)
            density = counts[src].sum() / max(1, train.size)
            if isinstance(syn, QConv):
                if density < self.conv_event_density:
                    y = kernels.conv_events(train.view(np.uint8) if train.dtype == bool else train,
                                            self.taps[syn.name], tuple(syn.in_shape), tuple(syn.out_shape),
                                            tuple(syn.stride), tuple(syn.padding), tuple(syn.dilation), syn.groups)
                    top = 1 if train.dtype == bool else max(1, int(np.abs(train).max(initial=0)))
                    ff.pre.append((y if conv_bound(syn, top) < 2**23 else wrap24(y), 1, 0))
                else:
                    ff.pre.append((self.convs[syn.name](train), 1, 0))
                fan = self.fans[syn.name]
                per_input = kernels.nonzero_per_input(train.view(np.uint8) if train.dtype == bool else train)
                ff.synops[1:] += (per_input @ fan)[:-1]
                ff.synapses += int(fan.sum())
                continue
            assert isinstance(syn, QDense)
            d = self.dense[syn.name]
            ff.synops[1:] += counts[src].sum(axis=0)[:-1] * syn.out_size   # at receipt, delays or not
            ff.synapses += int(syn.weight.size)
            if syn.name in self.delayed:
                ff.pre.append((self._delayed_sums(syn.name, train, steps), 1, 0))
            elif events_free and ff.events is _NONE and density < self.event_density:
                ff.events = train.view(np.uint8) if train.dtype == bool else train
                ff.rows, ff.ev_exp = d.rows, d.exp
                if d.int8 is not None:
                    ff.int8, ff.mul = d.int8, d.mul
            else:
                y, mul = d.gemm(train, self.use_torch)
                ff.pre.append((y, mul, d.exp))
        return ff

    def _delayed_sums(self, name: str, train: np.ndarray, steps: int) -> np.ndarray:
        """A Dense with synaptic delays as one exact int64 (batch, T, n_out) before the kernel's one-step
        delay: per delay group ``d`` one GEMM over its output rows, its first T - d steps placed ``d``
        steps later and shifted by weight_exp on their own (``kernels.add_delayed``), as Lava's
        DelayDense shifts each delay's sum (SP/lava/proc/dense/models.py:339-352; ``sim.dense_input``
        is the readable version). Never the event path: the kernel's events arrive one step late only.
        Cost: one GEMM per distinct delay (per-synapse delays 0..62: up to 63 GEMMs); delays per
        connection or per output neuron need one GEMM's work in all (each group only its rows)."""
        groups = self.delayed[name]
        total = np.zeros((train.shape[0], steps, self.delayed_out[name]), dtype=np.int64)
        for d, dense in groups:
            if d >= steps:
                continue            # arrives after the last step: never delivered
            y, mul = dense.gemm(train, self.use_torch)   # all T rows: no copy of the train; the last d are not added
            kernels.add_delayed(total, y, d, dense.cols, mul, dense.exp)
        return total

    def _population(self, pop: Population, trains: dict[str, np.ndarray], counts: dict[str, np.ndarray],
                    steps: int) -> _Done:
        """A feed-forward population: its input by GEMMs (or events), then one fused kernel."""
        neu = pop.neuron
        assert isinstance(neu, QCubaLIF)
        ff = self._feedforward(pop, pop.inputs, trains, counts, steps, True)
        rows = ff.rows if ff.rows is not None else np.zeros((0, neu.size), dtype=np.int32)
        order = _IN_ORDER
        if len(ff.pre) == 1 and isinstance(ff.pre[0][0], _ChannelsLast):
            p, mul, exp = ff.pre[0][0].sums, 1, 0         # read in the conv's order: no transposing pass
            order = ff.pre[0][0].order
        else:
            ff.pre = [(a.chw() if isinstance(a, _ChannelsLast) else a, m, e) for a, m, e in ff.pre]
            p, mul, exp = _combine(ff.pre) if ff.pre else (_NONE, 1, 0)
        fmt = neu.fmt
        bias = shift_signed(neu.bias_mant.astype(np.int64), neu.bias_exp)
        out, v, active, nspk, _ = kernels.lif_layer(
            p, mul, exp, ff.events, rows, ff.ev_exp, np.ascontiguousarray(bias, dtype=np.int64),
            fmt.decay_unity - neu.du, fmt.decay_unity - neu.dv, int(np.log2(fmt.decay_unity)),
            fmt.act_shift, fmt.state_max, fmt.state_max - 1, int(neu.vth) << fmt.vth_shift, order)
        return out, v, active, nspk, ff.synops, ff.synapses

    def _recurrent_block(self, block: tuple[Population, ...], trains: dict[str, np.ndarray],
                         counts: dict[str, np.ndarray], batch: int, steps: int) -> list[_Done]:
        """A block with recurrent synapses (``simulate_block``'s semantics): feed-forward synapses
        as GEMMs over all timesteps (one sparse one by events), the recurrent ones event by event
        inside the kernel's time loop, every population of the block stepping together."""
        names = [p.name for p in block]
        sizes = [p.neuron.size for p in block]
        seg = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        pres: list[np.ndarray] = []
        pre_at = np.full(len(block), -1, dtype=np.int64)
        pre_mul = np.ones(len(block), dtype=np.int64)
        pre_exp = np.zeros(len(block), dtype=np.int64)
        events, ev_rows, ev_mul, ev_exp, ev_at = _NONE, np.zeros((0, 0), dtype=np.int8), 1, 0, 0
        ffs = []
        width = 0
        for q, pop in enumerate(block):
            ff = self._feedforward(pop, pop.feedforward_inputs, trains, counts, steps, events is _NONE)
            if ff.events is not _NONE:
                events, ev_exp, ev_at = np.ascontiguousarray(ff.events), ff.ev_exp, int(seg[q])
                ev_rows, ev_mul = (ff.int8, ff.mul) if ff.int8 is not None else (ff.rows, 1)
            if ff.pre:
                ff.pre = [(a.chw() if isinstance(a, _ChannelsLast) else a, m, e) for a, m, e in ff.pre]
                arr, pre_mul[q], pre_exp[q] = _combine(ff.pre)
                pre_at[q] = width
                width += sizes[q]
                pres.append(arr)
            ffs.append(ff)
        pre = _NONE if not pres else pres[0] if len(pres) == 1 else np.concatenate(pres, axis=2)
        # recurrent weights W.T (n_src, n_dst), flat: int8 (x their multiplier, summed in int32) where
        # every synapse of the block has Lava's format (the int8 GEMM's weights), else exact int32 / int64
        recs = [(q, syn, src) for q, pop in enumerate(block) for syn, src in pop.recurrent_inputs]
        small = all(self.dense[syn.name].int8 is not None for _, syn, _ in recs)
        wide = any(self.dense[syn.name].rows.dtype == np.int64 for _, syn, _ in recs)
        rec, mats, base = [], [], 0
        for q, syn, src in recs:
            d = self.dense[syn.name]
            rows = d.int8 if small else d.rows     # type: ignore[union-attr]
            rec.append((names.index(src), int(seg[q]), int(syn.out_size), base, int(syn.weight_exp),
                        d.mul if small else 1))
            mats.append(rows.reshape(-1))
            base += rows.size
        rec_w = np.concatenate(mats).astype(np.int8 if small else np.int64 if wide else np.int32)
        acc_type = np.zeros(0, dtype=np.int64 if wide or ev_rows.dtype == np.int64 else np.int32)
        fmts = [p.neuron.fmt for p in block]
        par = lambda f: np.array([f(p.neuron, fmt) for p, fmt in zip(block, fmts)], dtype=np.int64)  # noqa: E731
        bias = np.concatenate([shift_signed(p.neuron.bias_mant.astype(np.int64), p.neuron.bias_exp) for p in block])
        out, v, active, nspk = kernels.lif_block(
            batch, steps, seg, pre, pre_at, pre_mul, pre_exp, events, ev_rows, ev_mul, ev_exp, ev_at,
            rec_w, np.array(rec, dtype=np.int64).reshape(-1, 6), acc_type, np.ascontiguousarray(bias, dtype=np.int64),
            par(lambda n, f: f.decay_unity - n.du), par(lambda n, f: f.decay_unity - n.dv),
            par(lambda n, f: int(np.log2(f.decay_unity))), par(lambda n, f: f.act_shift),
            par(lambda n, f: f.state_max), par(lambda n, f: f.state_max - 1),
            par(lambda n, f: int(n.vth) << f.vth_shift))
        done: list[_Done] = []
        for q, pop in enumerate(block):
            ff = ffs[q]
            for syn, src in pop.recurrent_inputs:      # counted like a Dense's: non-zero delayed inputs x out
                ff.synops[1:] += nspk[:, :-1, names.index(src)].sum(axis=0) * syn.out_size
                ff.synapses += int(syn.weight.size)
            lo, hi = seg[q], seg[q + 1]
            mine = (out, v) if len(block) == 1 else (np.ascontiguousarray(out[:, :, lo:hi]), v[:, lo:hi].copy())
            done.append((*mine, active[:, :, q], np.ascontiguousarray(nspk[:, :, q]), ff.synops, ff.synapses))
        return done
