"""hwsim's fast CPU engine: exact integer GEMMs for the synapses, fused numba kernels for neurons.

Same results as the torch engine (``snnc.hwsim.sim``), bit for bit and count for count; faster
on a CPU because
- a dense synapse's whole input train (batch x T rows) is one exact int8 GEMM (``torch._int_mm``,
  int32 accumulation): Lava's mixed-sign weights are multiples of 2 in [-256, 254], i.e. 2 x an int8
  (SP/lava/utils/weightutils.py:204-295), and binary spikes are int8 0/1. It falls back to float32
  (exact while every sum < 2**24) or float64 when a graph's numbers do not fit;
- a dense synapse fed by sparse activity skips the GEMM and adds only the weight rows of the inputs
  that spiked (the event-driven path, in the kernel); below ``EVENT_DENSITY`` non-zero inputs this
  measured faster than the int8 GEMM (benchmarks/hwsim_scaling.py);
- each population's recurrence runs in one numba kernel per batch chunk, parallel over samples,
  state kept per sample instead of ~15 numpy passes over (batch x neurons) per step;
- samples run in chunks so the per-layer arrays stay small (cache, memory) whatever the batch.
"""
from __future__ import annotations

from typing import Collection

import numpy as np
import torch

from snnc.compiler.ir import Graph, QConv, QCubaLIF, QDense
from snnc.hwsim import kernels
from snnc.hwsim.sim import (HwSimResult, LayerActivity, chunk_size, conv_bound, conv_input, fan_out, lava_weights,
                             merge_results, shift_signed, wrap24)

EVENT_DENSITY = 0.02   # fraction of non-zero inputs below which a dense synapse runs event by event
CONV_EVENT_DENSITY = 0.03  # the same for a convolution (LeNet: the dense conv still won at 9%)
DEFAULT_CHUNK = 128    # most samples per chunk: (chunk x T) GEMM rows keep the int8 GEMM efficient

_NONE = np.zeros((0, 0, 0), dtype=np.int64)


class _Dense:
    """One dense synapse prepared once: int8 weights (or float ones) for the GEMM, W.T for events."""

    def __init__(self, syn: QDense, neu: QCubaLIF, graded_top: int):
        w = lava_weights(syn.weight, neu.fmt)                     # (out, in) int64
        step = neu.fmt.weight_step
        w8 = w // step
        top = max(1, graded_top)
        self.exp = syn.weight_exp
        self.mul = 1
        self.int8: torch.Tensor | None = None
        self.float: torch.Tensor | None = None
        if (np.all(w8 * step == w) and w8.min(initial=0) >= -128 and w8.max(initial=0) <= 127 and top <= 127
                and 128 * top * w.shape[1] < 2**31 and hasattr(torch, "_int_mm")):
            self.int8 = torch.from_numpy(np.ascontiguousarray(w8.T.astype(np.int8)))
            self.mul = step
        else:
            bound = int(np.abs(w).max(initial=0)) * w.shape[1] * top
            dtype = torch.float32 if bound < 2**24 else torch.float64
            self.float = torch.from_numpy(np.ascontiguousarray(w.T)).to(dtype)
        # events: int32 rows while every partial sum fits, else int64
        wide = int(np.abs(w).max(initial=0)) * w.shape[1] * top >= 2**31
        self.rows = np.ascontiguousarray(w.T.astype(np.int64 if wide else np.int32))

    def gemm(self, x: np.ndarray) -> tuple[np.ndarray, int]:
        """(batch, T, n_in) -> undelayed sums (batch, T, n_out) and the multiplier they still need."""
        lead, n_in = x.shape[:-1], x.shape[-1]
        if self.int8 is not None:
            xs = x.view(np.int8) if x.dtype == bool else x.astype(np.int8)
            y = torch._int_mm(torch.from_numpy(xs.reshape(-1, n_in)), self.int8)
            return y.numpy().reshape(*lead, -1), self.mul
        assert self.float is not None
        xf = torch.from_numpy(x.reshape(-1, n_in)).to(self.float.dtype)
        return (xf @ self.float).to(torch.int64).numpy().reshape(*lead, -1), 1


def _combine(parts: list[tuple[np.ndarray, int, int]]) -> tuple[np.ndarray, int, int]:
    """Several precomputed inputs of one population -> one int64 sum (mul 1, exp 0)."""
    if len(parts) == 1:
        return parts[0]
    total = np.zeros(parts[0][0].shape, dtype=np.int64)
    for arr, mul, exp in parts:
        total += shift_signed(arr.astype(np.int64) * mul, exp)
    return total, 1, 0


class FastEngine:
    """Prepared once per graph; :meth:`run` takes any batch."""

    def __init__(self, graph: Graph, *, chunk: int | None = None, event_density: float = EVENT_DENSITY,
                 conv_event_density: float = CONV_EVENT_DENSITY):
        self.graph = graph
        self.populations = graph.populations()
        self.input = graph.input
        self.output_name = graph.output.name
        self.chunk = chunk     # None: chunk_size() for the run's T
        self.event_density = event_density
        self.conv_event_density = conv_event_density
        graded = (2 ** self.input.bits - 1) if self.input.bits else 1
        self.dense = {syn.name: _Dense(syn, pop.neuron, graded if src == self.input.name else 1)
                      for pop in self.populations for syn, src in pop.inputs if isinstance(syn, QDense)}
        convs = [syn for pop in self.populations for syn, _ in pop.inputs if isinstance(syn, QConv)]
        self.fans = {c.name: fan_out(c) for c in convs}
        self.taps = {c.name: np.ascontiguousarray(c.weight.transpose(1, 2, 3, 0).astype(
            np.int32 if conv_bound(c, graded if src == self.input.name else 1) < 2**31 else np.int64))
            for pop in self.populations for c, src in pop.inputs if isinstance(c, QConv)}

    def run(self, inputs: np.ndarray, keep: Collection[str] | None = None) -> HwSimResult:
        """``keep`` as in :meth:`HwSim.run`."""
        x = self.input.check_values(inputs)
        step = max(1, int(self.chunk)) if self.chunk else chunk_size(self.graph, x.shape[1], DEFAULT_CHUNK)
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
        for pop in self.populations:
            neu = pop.neuron
            assert isinstance(neu, QCubaLIF)
            pre: list[tuple[np.ndarray, int, int]] = []
            events, rows, ev_exp = _NONE, np.zeros((0, neu.size), dtype=np.int32), 0
            synops = np.zeros(steps, dtype=np.int64)
            synapses = 0
            for syn, src in pop.inputs:
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
                        pre.append((y if conv_bound(syn, top) < 2**23 else wrap24(y), 1, 0))
                    else:
                        pre.append((conv_input(train, syn), 1, 0))
                    fan = self.fans[syn.name]
                    per_input = (train != 0).sum(axis=0, dtype=np.int64)       # (T, n_in)
                    synops[1:] += (per_input @ fan)[:-1]
                    synapses += int(fan.sum())
                    continue
                assert isinstance(syn, QDense)
                d = self.dense[syn.name]
                synops[1:] += counts[src].sum(axis=0)[:-1] * syn.out_size
                synapses += int(syn.weight.size)
                if events is _NONE and density < self.event_density:
                    events = train.view(np.uint8) if train.dtype == bool else train
                    rows, ev_exp = d.rows, d.exp
                else:
                    y, mul = d.gemm(train)
                    pre.append((y, mul, d.exp))
            p, mul, exp = _combine(pre) if pre else (_NONE, 1, 0)
            fmt = neu.fmt
            bias = shift_signed(neu.bias_mant.astype(np.int64), neu.bias_exp)
            out, v, active, nspk, _ = kernels.lif_layer(
                p, mul, exp, events, rows, ev_exp, np.ascontiguousarray(bias, dtype=np.int64),
                fmt.decay_unity - neu.du, fmt.decay_unity - neu.dv, int(np.log2(fmt.decay_unity)),
                fmt.act_shift, fmt.state_max, fmt.state_max - 1, int(neu.vth) << fmt.vth_shift)
            trains[neu.name], counts[neu.name] = out, nspk
            if keep is None or neu.name in keep:
                spikes[neu.name], final_v[neu.name] = out, v
            activity.append(LayerActivity(
                name=neu.name, neurons=neu.size, synapses=synapses, synops=synops,
                spikes=nspk.sum(axis=0), updates=np.full(steps, batch * neu.size, dtype=np.int64),
                active_updates=active.sum(axis=0)))
        return HwSimResult(spikes=spikes, activity=activity, batch=batch, timesteps=steps,
                           final_v=final_v, output_name=self.output_name)
