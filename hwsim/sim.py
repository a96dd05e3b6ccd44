"""hwsim: the fixed-point graph executed with vectorised integer-exact arithmetic over a batch.

It mirrors Lava's ``PyDenseModelBitAcc``, ``PyConvModelFixed`` and ``PyLifModelBitAcc`` (the
equations are in ``snnc.compiler.ir``'s docstring) and must agree with them spike for spike.

Why it is fast: in a feed-forward graph a population's whole spike train depends only on its
sources' trains, so the synaptic part is one GEMM (or one batched convolution) per synapse over
(batch x time) and only the neuron recurrence loops over timesteps, vectorised over (batch x neurons).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from snnc.compiler.ir import Graph, Population, QConv, QCubaLIF, QDense
from snnc.models.quant import FixedPointFormat
from snnc.errors import GraphError


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


def rshift_toward_zero(x: np.ndarray, n: int) -> np.ndarray:
    """``sign(x) * (|x| >> n)``: Lava's decay rounding (SP/lava/proc/lif/models.py:145-171)."""
    return np.sign(x) * (np.abs(x) >> n)


def wrap_int32(x: np.ndarray) -> np.ndarray:
    """Two's-complement int32 wrap of int64 values: Lava sums u and v in int32
    (SP/lava/proc/lif/models.py:153-157 ``decayed_curr += activation_in``, 184-186)."""
    return ((x + 2**31) & (2**32 - 1)) - 2**31


def lava_weights(weight: np.ndarray, fmt: FixedPointFormat) -> np.ndarray:
    """The weights Lava's mixed-sign Dense really uses: clip to [-256, 255], then floor to the
    format's step (SP/lava/proc/dense/models.py:82-91, SP/lava/utils/weightutils.py:204-295).
    Identity for every graph the compiler writes; it matters for hand-built or imported graphs."""
    w = np.clip(weight.astype(np.int64), fmt.weight_min, fmt.weight_max + fmt.weight_step - 1)
    return (w // fmt.weight_step) * fmt.weight_step


def shift_signed(x: np.ndarray, exp: int) -> np.ndarray:
    """``x << exp`` or arithmetic (floor) ``x >> -exp``, as Lava applies weight_exp and bias_exp."""
    return x << exp if exp >= 0 else x >> -exp


def synaptic_input(spikes: np.ndarray, weight: np.ndarray, weight_exp: int) -> np.ndarray:
    """Exact ``(W @ s) << weight_exp`` for spikes or graded values (..., n_in) -> int64 (..., n_out).

    A float32 GEMM is exact while every partial sum stays below 2**24 (fan-in x max|w| x max|s|);
    beyond that float64 (exact below 2**53) is used. SP/lava/proc/dense/models.py:96-107.
    """
    top = 1 if spikes.dtype == bool else max(1, int(np.abs(spikes).max(initial=0)))
    bound = int(np.abs(weight).max(initial=0)) * weight.shape[1] * top
    dtype = np.float32 if bound < 2**24 else np.float64
    acc = spikes.astype(dtype, copy=False) @ weight.T.astype(dtype)
    return shift_signed(acc.astype(np.int64), weight_exp)


def wrap24(x: np.ndarray) -> np.ndarray:
    """Lava's Conv output wrap: ``(x + 2**23) % 2**24 - 2**23`` (SP/lava/proc/conv/utils.py:67-84,
    applied by PyConvModelFixed.clamp_precision, SP/lava/proc/conv/models.py:68-79)."""
    return ((x + 2**23) & (2**24 - 1)) - 2**23


def conv_input(spikes: np.ndarray, conv: QConv) -> np.ndarray:
    """Exact ``wrap24(conv(W, s))`` of (..., n_in) spikes or graded values -> int64 (..., n_out).

    Lava's Conv is a true convolution over (W, H, C) with the kernel the runtime flips
    (SP/lava/proc/conv/utils.py:186-218); that is PyTorch's cross-correlation in (C, H, W), which
    ``torch.nn.functional.conv2d`` computes. float32 is exact while every sum stays below 2**24
    (kernel volume x max|w| x max|s|), float64 (exact below 2**53) beyond.
    """
    lead = spikes.shape[:-1]
    top = 1 if spikes.dtype == bool else max(1, int(np.abs(spikes).max(initial=0)))
    volume = int(np.prod(conv.weight.shape[1:]))
    dtype = torch.float32 if int(np.abs(conv.weight).max(initial=0)) * volume * top < 2**24 else torch.float64
    x = torch.from_numpy(np.ascontiguousarray(spikes.reshape(-1, *conv.in_shape))).to(dtype)
    w = torch.from_numpy(np.ascontiguousarray(conv.weight)).to(dtype)
    with torch.no_grad():
        y = torch.nn.functional.conv2d(x, w, stride=conv.stride, padding=conv.padding,
                                       dilation=conv.dilation, groups=conv.groups)
    return wrap24(y.to(torch.int64).numpy().reshape(*lead, conv.out_size))


def fan_out(conv: QConv) -> np.ndarray:
    """Synapses each input neuron of ``conv`` really has (kernel taps that land inside the output
    map): the synaptic ops one of its spikes costs. int64 (n_in,)."""
    ones = torch.ones(1, *conv.out_shape, dtype=torch.float64)
    w = torch.ones(conv.out_shape[0], conv.in_shape[0] // conv.groups, *conv.kernel, dtype=torch.float64)
    with torch.no_grad():   # unpadded transpose: covers padded-input coordinates 0, 1, ...
        y = torch.nn.functional.conv_transpose2d(ones, w, stride=conv.stride, dilation=conv.dilation,
                                                 groups=conv.groups)
    (ph, pw), (_, h, w_) = conv.padding, conv.in_shape
    full = torch.zeros(1, conv.in_shape[0], h + 2 * ph, w_ + 2 * pw, dtype=torch.float64)
    hh, ww = min(full.shape[2], y.shape[2]), min(full.shape[3], y.shape[3])
    full[:, :, :hh, :ww] = y[:, :, :hh, :ww]
    full = full[:, :, ph:ph + h, pw:pw + w_]
    return full.reshape(-1).round().to(torch.int64).numpy()


class HwSim:
    """Bit-exact batch simulator of a fixed-point graph; build it with :meth:`from_graph`.

    Populations run in topological order; each one's input is the sum of its synapses' outputs.
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

    def run(self, inputs: np.ndarray) -> HwSimResult:
        """Run ``inputs`` (batch, T, n_in); every sample starts from zero state."""
        x = self.input.check_values(inputs)
        batch, steps = x.shape[:2]
        trains: dict[str, np.ndarray] = {self.input.name: x}
        spikes: dict[str, np.ndarray] = {}
        final_v: dict[str, np.ndarray] = {}
        activity: list[LayerActivity] = []
        for pop in self.populations:
            neu = pop.neuron
            assert isinstance(neu, QCubaLIF)
            a = np.zeros((batch, steps, neu.size), dtype=np.int64)
            synops = np.zeros(steps, dtype=np.int64)
            synapses = 0
            for syn, src in pop.inputs:
                delayed = np.zeros_like(trains[src])
                delayed[:, 1:] = trains[src][:, :-1]  # one-step delay: a[t] = W s[t-1]
                if isinstance(syn, QConv):
                    a += conv_input(delayed, syn)
                    fan = fan_out(syn)
                    synops += (delayed.astype(np.int64, copy=False) != 0).sum(axis=0) @ fan
                    synapses += int(fan.sum())
                else:
                    assert isinstance(syn, QDense)
                    a += synaptic_input(delayed, lava_weights(syn.weight, neu.fmt), syn.weight_exp)
                    synops += np.count_nonzero(delayed, axis=(0, 2)).astype(np.int64) * syn.out_size
                    synapses += int(syn.weight.size)
            out, active, v = self._neurons(a, neu)
            spikes[neu.name], final_v[neu.name], trains[neu.name] = out, v, out
            activity.append(LayerActivity(
                name=neu.name,
                neurons=neu.size,
                synapses=synapses,
                synops=synops,
                spikes=out.sum(axis=(0, 2)).astype(np.int64),
                updates=np.full(steps, batch * neu.size, dtype=np.int64),
                active_updates=active,
            ))
        return HwSimResult(spikes=spikes, activity=activity, batch=batch, timesteps=steps,
                           final_v=final_v, output_name=self.output_name)

    @staticmethod
    def _neurons(a: np.ndarray, p: QCubaLIF) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """CUBA-LIF recurrence over time for input ``a`` (batch, T, n); SP/lava/proc/lif/models.py:138-216.
        Returns spikes, active-neuron counts per step, and v after the last step."""
        fmt = p.fmt
        batch, steps, n = a.shape
        top = fmt.state_max                    # 2**23
        wrap = 2 * top                          # 2**24
        vmax = top - 1
        shift = int(np.log2(fmt.decay_unity))   # 12
        keep_u = fmt.decay_unity - p.du         # (4096 - (du + 1)) with du the register value
        keep_v = fmt.decay_unity - p.dv
        bias = shift_signed(p.bias_mant.astype(np.int64), p.bias_exp)
        vth = np.int64(p.vth) << fmt.vth_shift  # computed once, l.207-208
        u = np.zeros((batch, n), dtype=np.int64)
        v = np.zeros((batch, n), dtype=np.int64)
        out = np.zeros((batch, steps, n), dtype=bool)
        active = np.zeros(steps, dtype=np.int64)
        for t in range(steps):
            at = a[:, t]
            active[t] = np.count_nonzero((at != 0) | (u != 0) | (v != 0))
            u = wrap_int32(rshift_toward_zero(u * keep_u, shift) + wrap_int32(at << fmt.act_shift))
            u = np.where(u > top, u - wrap, u)        # l.163-171: wrap once ('>' then '<=')
            u = np.where(u <= -top, u + wrap, u)
            v = wrap_int32(rshift_toward_zero(v * keep_v, shift) + u + bias)
            np.clip(v, -vmax, vmax, out=v)             # l.174-186: v saturates
            s = v > vth                                # strict '>'
            v[s] = 0                                   # reset v only
            out[:, t] = s
        return out, active, v
