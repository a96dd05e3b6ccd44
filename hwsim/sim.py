"""hwsim: the fixed-point graph executed with integer-exact arithmetic over a batch of samples.

Two engines, the same results bit for bit and count for count (tests/test_hwsim_engines.py), both
checked spike for spike against Lava's ``PyDenseModelBitAcc``, ``PyConvModelFixed`` and
``PyLifModelBitAcc`` (the equations are in ``snnc.compiler.ir``'s docstring):

- "torch" (this module): the readable mirror of Lava's models, whole-array torch operations on any
  device (the GPU path). In a feed-forward graph a population's whole spike train depends only on
  its sources' trains, so the synaptic part is one GEMM (or one batched convolution) per synapse
  over (batch x time) and only the neuron recurrence loops over timesteps, vectorised over
  (batch x neurons). A recurrent block (``Graph.blocks()``) keeps that for its feed-forward
  synapses and adds its recurrent ones inside the loop over time (:func:`simulate_block`).
  A Dense with synaptic delays (compiler/ir.py; Lava's ``DelayDense``) is one GEMM per delay group
  over (batch x time), placed its delay later (:func:`dense_input`); its synaptic ops are counted
  when the spike is received, as without delays.
- "numba" (``snnc.hwsim.fast``): the CPU engine, exact int8 GEMMs and fused per-sample kernels;
  several times faster on a CPU (benchmarks/).
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Collection, Iterator, TypeVar

import numpy as np

from snnc.compiler.ir import Graph, Population, QConv, QCubaLIF, QDense
from snnc.errors import GraphError
from snnc.lazy import LazyModule
from snnc.models.fixed_point import FixedPointFormat

if TYPE_CHECKING:
    from snnc.hwsim.headroom import StateWatch

torch = LazyModule("torch")    # the torch engine's; the numba engine's path never reads it (snnc/lazy.py)

ArrayT = TypeVar("ArrayT", np.ndarray, "torch.Tensor")
CHUNK_BYTES = 256 * 2**20   # per-layer working set of one batch chunk: (chunk x T x widest layer) int64


def chunk_size(graph: Graph, steps: int, most: int) -> int:
    """Samples per chunk: at most ``most``, fewer where the widest population's (chunk x T) int64
    synaptic input would exceed CHUNK_BYTES (a LeNet conv layer at T=100 is 12 MiB per sample)."""
    widest = max(p.neuron.size for p in graph.populations())
    return int(max(1, min(most, CHUNK_BYTES // (8 * max(1, steps) * widest))))




@dataclass(frozen=True)
class LayerActivity:
    """Per-timestep counts of one layer, summed over the batch (arrays of length T)."""

    name: str
    neurons: int
    synapses: int
    synops: np.ndarray          # synaptic ops: each incoming spike x fan-out (dense format)
    spikes: np.ndarray          # output spikes
    updates: np.ndarray         # neuron updates (every neuron, every step)
    active_updates: np.ndarray  # updates of neurons with input or non-zero state


@dataclass(frozen=True)
class HwSimResult:
    """Spikes of every layer, bool arrays of shape (batch, T, neurons), and activity counts."""

    spikes: dict[str, np.ndarray]
    activity: list[LayerActivity]
    batch: int
    timesteps: int
    final_v: dict[str, np.ndarray]   # v after the last step, int64 (batch, neurons), per population
    output_name: str

    @property
    def output(self) -> np.ndarray:
        return self.spikes[self.output_name]


def rshift_toward_zero(x: torch.Tensor, n: int) -> torch.Tensor:
    """``sign(x) * (|x| >> n)``: Lava's decay rounding (SP/lava/proc/lif/models.py:145-171)."""
    return x.sign() * (x.abs() >> n)


def wrap_int32(x: torch.Tensor) -> torch.Tensor:
    """Two's-complement int32 wrap of int64 values: Lava sums u and v in int32
    (SP/lava/proc/lif/models.py:153-157 ``decayed_curr += activation_in``, 184-186)."""
    return ((x + 2**31) & (2**32 - 1)) - 2**31


def lava_weights(weight: np.ndarray, fmt: FixedPointFormat) -> np.ndarray:
    """The weights Lava's mixed-sign Dense really uses: clip to [-256, 255], then floor to the
    format's step (SP/lava/proc/dense/models.py:82-91, SP/lava/utils/weightutils.py:204-295).
    Identity for every graph the compiler writes; it matters for hand-built or imported graphs."""
    w = np.clip(weight.astype(np.int64), fmt.weight_min, fmt.weight_max + fmt.weight_step - 1)
    return (w // fmt.weight_step) * fmt.weight_step


def shift_signed(x: ArrayT, exp: int) -> ArrayT:
    """``x << exp`` or arithmetic (floor) ``x >> -exp``, as Lava applies weight_exp and bias_exp."""
    return x << exp if exp >= 0 else x >> -exp


def _exact_dtype(bound: int) -> torch.dtype:
    """float32 sums are exact while every partial sum stays below 2**24, float64 below 2**53."""
    return torch.float32 if bound < 2**24 else torch.float64


def _top(x: torch.Tensor) -> int:
    """The largest |value| a synapse receives: 1 for spikes, the largest graded value otherwise."""
    if x.dtype == torch.bool or x.numel() == 0:
        return 1
    return max(1, int(x.abs().max()))


def _dense(x: torch.Tensor, weight: np.ndarray, weight_exp: int) -> torch.Tensor:
    """Exact ``(W @ s) << weight_exp`` for spikes or graded values (..., n_in) -> int64 (..., n_out).
    SP/lava/proc/dense/models.py:96-107."""
    dtype = _exact_dtype(int(np.abs(weight).max(initial=0)) * weight.shape[1] * _top(x))
    w = torch.from_numpy(np.ascontiguousarray(weight.T)).to(device=x.device, dtype=dtype)
    return shift_signed((x.to(dtype) @ w).to(torch.int64), weight_exp)


def wrap24(x: ArrayT) -> ArrayT:
    """Lava's Conv output wrap: ``(x + 2**23) % 2**24 - 2**23`` (SP/lava/proc/conv/utils.py:67-84,
    applied by PyConvModelFixed.clamp_precision, SP/lava/proc/conv/models.py:68-79)."""
    return ((x + 2**23) & (2**24 - 1)) - 2**23


def conv_bound(conv: QConv, top: int) -> int:
    """The largest |sum| a convolution can produce: kernel volume x max|w| x max|input|. Below
    2**23 Lava's 24-bit wrap is the identity."""
    return int(np.abs(conv.weight).max(initial=0)) * int(np.prod(conv.weight.shape[1:])) * top


def _conv(x: torch.Tensor, conv: QConv, dtype_out: torch.dtype | None = None, wrap: bool = True) -> torch.Tensor:
    """Exact ``wrap24(conv(W, s))`` of (..., n_in) spikes or graded values -> (..., n_out) integers.

    Lava's Conv is a true convolution over (W, H, C) with the kernel the runtime flips
    (SP/lava/proc/conv/utils.py:186-218); that is PyTorch's cross-correlation in (C, H, W), which
    ``torch.nn.functional.conv2d`` computes, exactly in the float type ``_exact_dtype`` picks for
    the bound kernel volume x max|w| x max|s|. Below 2**23 the wrap is skipped (the identity) and
    ``dtype_out`` (default int64; int32 halves the memory traffic) is returned; above, int64 wrapped (unless
    ``wrap`` is False: the exact sum, which snnc.hwsim.headroom compares with the wrapped one).
    """
    lead = x.shape[:-1]
    bound = conv_bound(conv, _top(x))
    cl = torch.channels_last    # oneDNN's faster layout on CPUs (LeNet's convs: 1.6x, measured)
    w = torch.from_numpy(np.ascontiguousarray(conv.weight)).to(device=x.device, dtype=_exact_dtype(bound))
    with torch.no_grad():
        y = torch.nn.functional.conv2d(x.reshape(-1, *conv.in_shape).to(w.dtype).contiguous(memory_format=cl),
                                       w.contiguous(memory_format=cl), stride=conv.stride, padding=conv.padding,
                                       dilation=conv.dilation, groups=conv.groups)
    if bound < 2**23:
        return y.to(torch.int64 if dtype_out is None else dtype_out).reshape(*lead, conv.out_size)
    y = y.to(torch.int64).reshape(*lead, conv.out_size)
    return wrap24(y) if wrap else y


def conv_input(spikes: np.ndarray, conv: QConv) -> np.ndarray:
    """:func:`_conv` for numpy arrays (the numba engine's dense convolutions): int32 below the wrap."""
    return _conv(torch.from_numpy(np.ascontiguousarray(spikes)), conv, torch.int32).numpy()


def transpose_ones(conv: QConv, y: torch.Tensor) -> torch.Tensor:
    """For each (batch of) output maps ``y`` (k, C_out, H_out, W_out), how many taps of ``conv``
    connect each input neuron to a non-zero of ``y``: (k, n_in) float64. With ``y`` all ones that
    is each input's real fan-out; with a core's neurons marked, whether an input reaches that core."""
    w = torch.ones(conv.out_shape[0], conv.in_shape[0] // conv.groups, *conv.kernel, dtype=torch.float64)
    with torch.no_grad():   # unpadded transpose: covers padded-input coordinates 0, 1, ...
        t = torch.nn.functional.conv_transpose2d(y.to(torch.float64), w, stride=conv.stride,
                                                 dilation=conv.dilation, groups=conv.groups)
    (ph, pw), (_, h, w_) = conv.padding, conv.in_shape
    full = torch.zeros(len(y), conv.in_shape[0], h + 2 * ph, w_ + 2 * pw, dtype=torch.float64)
    hh, ww = min(full.shape[2], t.shape[2]), min(full.shape[3], t.shape[3])
    full[:, :, :hh, :ww] = t[:, :, :hh, :ww]
    return full[:, :, ph:ph + h, pw:pw + w_].reshape(len(y), -1)


def fan_out(conv: QConv) -> np.ndarray:
    """Synapses each input neuron of ``conv`` really has (kernel taps that land inside the output
    map): the synaptic ops one of its spikes costs. int64 (n_in,)."""
    ones = torch.ones(1, *conv.out_shape, dtype=torch.float64)
    return transpose_ones(conv, ones)[0].round().to(torch.int64).numpy()


def delayed_train(train: torch.Tensor, steps: int = 1) -> torch.Tensor:
    """A source's train as its synapse delivers it: ``steps`` late (default one: a[t] = W s[t-1]);
    what would arrive after the last step is dropped."""
    delayed = torch.zeros_like(train)
    if steps < train.shape[1]:
        delayed[:, steps:] = train[:, :train.shape[1] - steps]
    return delayed


def dense_input(delayed: torch.Tensor, syn: QDense, fmt: FixedPointFormat) -> torch.Tensor:
    """A Dense's input to its population (batch, T, n_out) int64 from its source's train already
    delayed by the synapse's one step (``delayed_train``), synaptic delays included.

    Without delays: ``(W @ s[t-1]) << weight_exp`` (``_dense``). With delays (compiler/ir.py,
    ``QDense.delay_groups``): one GEMM per delay ``d`` over the first T - d steps, placed ``d`` steps
    later, each group shifted by weight_exp on its own before the groups are added, as Lava's
    ``PyDelayDenseModelBitAcc`` shifts ``a_accum`` (one column per delay) before adding it to its
    buffer (SP/lava/proc/dense/models.py:339-352; the per-group floor shift of a negative weight_exp
    differs from a shift of the total). What arrives after step T - 1 is never delivered. Lava's
    buffer is int32, and wrapping it changes nothing downstream: u takes ``wrap_int32(a << 6)``.
    """
    # clip and floor, as Lava's DelayDense does too (SP/lava/proc/dense/models.py:319-328)
    return delayed_dense(delayed, lava_weights(syn.weight, fmt), syn.weight_exp, syn.delay)


def delayed_dense(delayed: torch.Tensor, weight: np.ndarray, weight_exp: int,
                  delay: np.ndarray | None) -> torch.Tensor:
    """``sum_d shift(W_d @ s[t-1-d], weight_exp)`` for integer ``weight`` (out, in) used as given and
    ``delay`` (out, in) or None (then ``_dense``): :func:`dense_input` without Lava's weight clipping,
    for checks that run other integer matrices through a synapse's timing (the groups are shifted
    one by one, so ``>>`` of a negative exponent floors each group's sum)."""
    if delay is None:
        return _dense(delayed, weight, weight_exp)
    steps = delayed.shape[1]
    a = torch.zeros((*delayed.shape[:-1], weight.shape[0]), dtype=torch.int64, device=delayed.device)
    for d in np.unique(delay):
        if int(d) < steps:
            a[:, int(d):] += _dense(delayed[:, :steps - int(d)], np.where(delay == d, weight, 0), weight_exp)
    return a


def synaptic_input(pop: Population, trains: dict[str, torch.Tensor], shape: tuple[int, int],
                   inputs: tuple[tuple[object, str], ...] | None = None) -> tuple[torch.Tensor, torch.Tensor, int]:
    """A population's summed synaptic input (batch, T, n) int64 from its sources' trains, the
    synaptic ops per step (each non-zero input x its real fan-out) and its synapse count, over
    ``inputs`` (default: all of the population's synapses). A Dense with synaptic delays goes
    through :func:`dense_input`; its synaptic ops are counted at receipt (the step after the spike,
    as without delays), so a delay never changes the counts, and ops whose arrival falls after the
    last step still count (Lava's DelayDense does that accumulation work when the spike arrives)."""
    neu = pop.neuron
    assert isinstance(neu, QCubaLIF)
    dev = next(iter(trains.values())).device
    a = torch.zeros((*shape, neu.size), dtype=torch.int64, device=dev)
    synops = torch.zeros(shape[1], dtype=torch.int64, device=dev)
    synapses = 0
    for syn, src in (pop.inputs if inputs is None else inputs):
        delayed = delayed_train(trains[src])
        if isinstance(syn, QConv):
            a += _conv(delayed, syn)
            fan = torch.from_numpy(fan_out(syn)).to(dev)
            synops += (delayed != 0).sum(dim=0) @ fan
            synapses += int(fan.sum())
        else:
            assert isinstance(syn, QDense)
            a += dense_input(delayed, syn, neu.fmt)
            # counted when the synapse receives the spike (the step after it), whatever its delay:
            # Lava's DelayDense accumulates at receipt, so spikes arriving after T count too
            synops += (delayed != 0).sum(dim=(0, 2)) * syn.out_size
            synapses += int(syn.weight.size)
    return a, synops, synapses


@dataclass
class BlockOutput:
    """One population's results from :func:`simulate_block`."""

    spikes: torch.Tensor     # (batch, T, n) bool
    active: torch.Tensor     # (T,) active neuron updates
    v: torch.Tensor          # (batch, n) v after the last step
    synops: torch.Tensor     # (T,) synaptic ops of all its synapses
    synapses: int


def simulate_block(block: tuple[Population, ...], trains: dict[str, torch.Tensor], shape: tuple[int, int], *,
                   traces: dict[str, dict[str, torch.Tensor]] | None = None, trace_v: Collection[str] = (),
                   watches: "dict[str, StateWatch] | None" = None) -> dict[str, BlockOutput]:
    """Run one block of ``Graph.blocks()`` given the trains of everything before it; adds the
    block's trains to ``trains``. The one place the engines' semantics of recurrence live.

    A feed-forward population (a block of its own): one GEMM / convolution per synapse over
    (batch x time), then the neuron recurrence. A recurrent block: the feed-forward synapses the
    same way; the recurrent ones (source in the block) inside the loop over time, where step ``t``
    adds ``W s_src[t-1]`` of the spikes the loop produced one step earlier (every synapse delays one
    step, compiler/ir.py), computed exactly as ``synaptic_input`` computes them (``_dense``). The
    populations of a block step in order; each reads only the previous step, so the order is free.
    ``traces`` / ``trace_v`` / ``watches``: per population, as ``HwSim._neurons`` takes them.
    """
    traces, watches = traces if traces is not None else {}, watches or {}
    results: dict[str, BlockOutput] = {}
    if not any(p.recurrent for p in block):
        (pop,) = block
        a, synops, synapses = synaptic_input(pop, trains, shape)
        out, active, v = HwSim._neurons(a, pop.neuron, traces.get(pop.name), pop.name in trace_v,  # type: ignore[arg-type]
                                        watches.get(pop.name))
        trains[pop.name] = out
        return {pop.name: BlockOutput(out, active, v, synops, synapses)}
    batch, steps = shape
    ff = {p.name: synaptic_input(p, trains, shape, p.feedforward_inputs) for p in block}
    lifs = {p.name: _LifStepper(p.neuron, batch, steps, next(iter(trains.values())).device,  # type: ignore[arg-type]
                                traces.get(p.name), p.name in trace_v, watches.get(p.name)) for p in block}
    loops = {p.name: [(_DenseOp(s, p.neuron.fmt, ff[p.name][0].device), src)  # type: ignore[union-attr]
                      for s, src in p.recurrent_inputs] for p in block}
    for t in range(steps):
        for p in block:
            at = ff[p.name][0][:, t]
            if t > 0 and loops[p.name]:
                at = at.clone()
                for op, src in loops[p.name]:
                    at += op(lifs[src].out[:, t - 1])
            lifs[p.name].step(t, at)
    for p in block:
        trains[p.name] = lifs[p.name].out
    for p in block:
        rec_synops, rec_synapses = _recurrent_counts(p, trains, shape)
        lif = lifs[p.name]
        results[p.name] = BlockOutput(lif.out, lif.active, lif.v, ff[p.name][1] + rec_synops,
                                      ff[p.name][2] + rec_synapses)
    return results


def _recurrent_counts(pop: Population, trains: dict[str, torch.Tensor],
                      shape: tuple[int, int]) -> tuple[torch.Tensor, int]:
    """Synaptic ops per step and synapse count of a population's recurrent (Dense) synapses."""
    synops = torch.zeros(shape[1], dtype=torch.int64, device=trains[pop.name].device)
    synapses = 0
    for syn, src in pop.recurrent_inputs:
        assert getattr(syn, "delay", None) is None, "Graph.check refuses delays on a cycle"
        synops += (delayed_train(trains[src]) != 0).sum(dim=(0, 2)) * syn.out_size
        synapses += int(syn.weight.size)
    return synops, synapses


class _DenseOp:
    """``_dense`` for one recurrent synapse, its weight converted once (called every step)."""

    def __init__(self, syn: QDense, fmt: FixedPointFormat, dev: torch.device):
        assert syn.delay is None, "a recurrent synapse has no delays (Graph.check refuses them)"
        w = lava_weights(syn.weight, fmt)
        self.dtype = _exact_dtype(int(np.abs(w).max(initial=0)) * w.shape[1])   # binary spikes: top = 1
        self.w = torch.from_numpy(np.ascontiguousarray(w.T)).to(device=dev, dtype=self.dtype)
        self.exp = syn.weight_exp

    def __call__(self, s: torch.Tensor) -> torch.Tensor:
        return shift_signed((s.to(self.dtype) @ self.w).to(torch.int64), self.exp)


class HwSim:
    """Bit-exact batch simulator of a fixed-point graph; build it with :meth:`from_graph`.

    Blocks of populations (``Graph.blocks()``: one population, or the populations of a cycle) run
    in order; each population's input is the sum of its synapses' outputs (:func:`simulate_block`).
    """

    def __init__(self, graph: Graph):
        self.graph = graph
        self.populations: list[Population] = graph.populations()
        self.input = graph.input
        self.output_name = graph.output.name

    @classmethod
    def from_graph(cls, graph: Graph) -> "HwSim":
        if not graph.is_fixed_point:
            raise GraphError("hwsim runs fixed-point graphs only: quantize the graph first")
        return cls(graph)

    def run(self, inputs: np.ndarray, *, engine: str = "auto", device: str | torch.device = "cpu",
            chunk: int | None = None, keep: Collection[str] | None = None) -> HwSimResult:
        """Run ``inputs`` (batch, T, n_in); every sample starts from zero state.

        ``engine``: "numba" (the fast CPU engine), "torch" (this module, on ``device``: "cpu",
        "cuda", ...), or "auto": numba on the CPU, torch on any other device. Samples run ``chunk``
        at a time (memory stays bounded whatever the batch); the default suits each engine.
        ``keep``: the populations whose spikes and final v the result holds (default: all); the
        activity counts always cover every population. Whole test sets need only the output.
        """
        if engine == "auto":    # str(device): no torch.device, so that the numba engine never imports torch
            engine = "numba" if str(device).split(":")[0] == "cpu" else "torch"
        if engine == "numba":
            from snnc.hwsim.fast import FastEngine

            return FastEngine(self.graph, chunk=chunk).run(inputs, keep=keep)
        if engine != "torch":
            raise ValueError(f"unknown hwsim engine '{engine}': use numba, torch or auto")
        dev = torch.device(device)
        x = self.input.check_values(inputs)
        step = chunk or chunk_size(self.graph, x.shape[1], 1024)
        if len(x) <= step:
            return self._run_torch(x, dev, keep)
        return merge_results([self._run_torch(x[i:i + step], dev, keep) for i in range(0, len(x), step)])

    def _run_torch(self, x: np.ndarray, dev: torch.device, keep: Collection[str] | None = None) -> HwSimResult:
        batch, steps = x.shape[:2]
        trains: dict[str, torch.Tensor] = {self.input.name: torch.from_numpy(x).to(dev)}
        spikes: dict[str, np.ndarray] = {}
        final_v: dict[str, np.ndarray] = {}
        activity: list[LayerActivity] = []
        with _exact_float_math():
            for block in self.graph.blocks():
                done = simulate_block(block, trains, (batch, steps))
                for pop in block:
                    neu, r = pop.neuron, done[pop.name]
                    if keep is None or neu.name in keep:
                        spikes[neu.name], final_v[neu.name] = r.spikes.cpu().numpy(), r.v.cpu().numpy()
                    activity.append(LayerActivity(
                        name=neu.name,
                        neurons=neu.size,
                        synapses=r.synapses,
                        synops=r.synops.cpu().numpy(),
                        spikes=r.spikes.sum(dim=(0, 2)).cpu().numpy(),
                        updates=np.full(steps, batch * neu.size, dtype=np.int64),
                        active_updates=r.active.cpu().numpy(),
                    ))
        return HwSimResult(spikes=spikes, activity=activity, batch=batch, timesteps=steps,
                           final_v=final_v, output_name=self.output_name)

    @staticmethod
    def _neurons(a: torch.Tensor, p: QCubaLIF, trace: dict[str, torch.Tensor] | None = None,
                 trace_v: bool = False, watch: "StateWatch | None" = None
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """CUBA-LIF recurrence over time for input ``a`` (batch, T, n) int64 (:class:`_LifStepper`).
        Returns spikes (bool), active-neuron counts per step, and v after the last step."""
        batch, steps, n = a.shape
        lif = _LifStepper(p, batch, steps, a.device, trace, trace_v, watch)
        for t in range(steps):
            lif.step(t, a[:, t])
        return lif.out, lif.active, lif.v


class _LifStepper:
    """One population's CUBA-LIF state, advanced one step at a time; SP/lava/proc/lif/models.py:138-216.
    Holds spikes (bool), active-neuron counts per step, and v. With ``trace`` (a dict to fill), also
    each neuron's activity ("active", bool), and with ``trace_v`` its v after each step ("v", int64),
    both (batch, T, n): what the per-core counts and decision times read. ``watch``
    (snnc.hwsim.headroom) is shown, every step, the state the chip holds beside the unbounded
    integer result from the same previous state."""

    def __init__(self, p: QCubaLIF, batch: int, steps: int, dev: torch.device,
                 trace: dict[str, torch.Tensor] | None = None, trace_v: bool = False,
                 watch: "StateWatch | None" = None):
        fmt = self.fmt = p.fmt
        n = p.size
        self.top = fmt.state_max                    # 2**23
        self.wrap = 2 * self.top                    # 2**24
        self.vmax = self.top - 1
        self.shift = int(np.log2(fmt.decay_unity))   # 12
        self.keep_u = fmt.decay_unity - p.du         # (4096 - (du + 1)) with du the register value
        self.keep_v = fmt.decay_unity - p.dv
        self.bias = torch.from_numpy(shift_signed(p.bias_mant.astype(np.int64), p.bias_exp)).to(dev)
        self.vth = int(p.vth) << fmt.vth_shift       # computed once, l.207-208
        self.u = torch.zeros((batch, n), dtype=torch.int64, device=dev)
        self.v = torch.zeros((batch, n), dtype=torch.int64, device=dev)
        self.out = torch.zeros((batch, steps, n), dtype=torch.bool, device=dev)
        self.active = torch.zeros(steps, dtype=torch.int64, device=dev)
        self.trace, self.trace_v, self.watch = trace, trace_v, watch
        if trace is not None:
            trace["active"] = torch.zeros((batch, steps, n), dtype=torch.bool, device=dev)
            if trace_v:
                trace["v"] = torch.zeros((batch, steps, n), dtype=torch.int64, device=dev)

    def step(self, t: int, at: torch.Tensor) -> None:
        """Advance by step ``t`` with synaptic input ``at`` (batch, n) int64."""
        fmt, u, v, watch, shift = self.fmt, self.u, self.v, self.watch, self.shift
        busy = (at != 0) | (u != 0) | (v != 0)
        self.active[t] = busy.sum()
        u_exact = rshift_toward_zero(u * self.keep_u, shift) + (at << fmt.act_shift) if watch else None
        u = wrap_int32(rshift_toward_zero(u * self.keep_u, shift) + wrap_int32(at << fmt.act_shift))
        u = torch.where(u > self.top, u - self.wrap, u)      # l.163-171: wrap once ('>' then '<=')
        u = torch.where(u <= -self.top, u + self.wrap, u)
        v_exact = rshift_toward_zero(v * self.keep_v, shift) + u + self.bias if watch else None
        v = wrap_int32(rshift_toward_zero(v * self.keep_v, shift) + u + self.bias)
        v = v.clamp(-self.vmax, self.vmax)                   # l.174-186: v saturates
        if watch is not None:
            watch.step(t, at << fmt.act_shift, u_exact, u, v_exact, v, self.vth)  # type: ignore[arg-type]
        s = v > self.vth                                     # strict '>'
        v = v.masked_fill(s, 0)                              # reset v only
        self.out[:, t] = s
        if self.trace is not None:
            self.trace["active"][:, t] = busy
            if self.trace_v:
                self.trace["v"][:, t] = v
        self.u, self.v = u, v


def merge_results(parts: list[HwSimResult]) -> HwSimResult:
    """Results of consecutive batch chunks -> one result (spikes concatenated, counts summed)."""
    if len(parts) == 1:
        return parts[0]
    first = parts[0]
    activity = []
    for i, layer in enumerate(first.activity):
        same = [p.activity[i] for p in parts]
        activity.append(LayerActivity(
            name=layer.name, neurons=layer.neurons, synapses=layer.synapses,
            synops=sum(a.synops for a in same), spikes=sum(a.spikes for a in same),
            updates=sum(a.updates for a in same), active_updates=sum(a.active_updates for a in same)))
    return HwSimResult(
        spikes={k: np.concatenate([p.spikes[k] for p in parts]) for k in first.spikes},
        activity=activity, batch=sum(p.batch for p in parts), timesteps=first.timesteps,
        final_v={k: np.concatenate([p.final_v[k] for p in parts]) for k in first.final_v},
        output_name=first.output_name)


@contextlib.contextmanager
def _exact_float_math() -> Iterator[None]:
    """CUDA's TF32 (on by default for convolutions) rounds float32 products to 10 mantissa bits:
    the integer sums would no longer be exact. Off while hwsim runs; restored after."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved
