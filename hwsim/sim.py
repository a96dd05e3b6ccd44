"""hwsim: the fixed-point graph executed with vectorised integer-exact arithmetic over a batch.

It mirrors Lava's ``PyDenseModelBitAcc`` + ``PyLifModelBitAcc`` (the equations are in
``snnc.compiler.ir``'s docstring) and must agree with them spike for spike.

Why it is fast: in a feed-forward graph a population's whole spike train depends only on its
sources' trains, so the synaptic part is one GEMM per synapse over (batch x time) and only the
neuron recurrence loops over timesteps, vectorised over (batch x neurons).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from snnc.compiler.ir import Graph, Population, QCubaLIF, QDense
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
            for syn, src in pop.inputs:
                assert isinstance(syn, QDense)
                delayed = np.zeros_like(trains[src])
                delayed[:, 1:] = trains[src][:, :-1]  # one-step Dense delay: a[t] = W s[t-1]
                a += synaptic_input(delayed, lava_weights(syn.weight, neu.fmt), syn.weight_exp)
                synops += np.count_nonzero(delayed, axis=(0, 2)).astype(np.int64) * syn.out_size
            out, active, v = self._neurons(a, neu)
            spikes[neu.name], final_v[neu.name], trains[neu.name] = out, v, out
            activity.append(LayerActivity(
                name=neu.name,
                neurons=neu.size,
                synapses=sum(int(syn.weight.size) for syn, _ in pop.inputs),
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
