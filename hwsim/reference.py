"""The float graph executed as written: the discretised model before quantization, in float64.

hwsim runs what the chip computes; this runs what the float graph *means* (the equations of
``snnc.compiler.ir`` without rounding, wrapping, clipping or shifts). An imported network (NIR) has
no PyTorch model of ours, so this is what its source library's simulation is compared with, and
what the compiled fixed-point network is measured against (how much quantization changed).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from snnc.compiler.ir import Conv, CubaLIF, Dense, Graph
from snnc.errors import GraphError


@dataclass(frozen=True)
class FloatResult:
    """Spikes (batch, T, n) bool and v after the last step (batch, n) per population."""

    spikes: dict[str, np.ndarray]
    final_v: dict[str, np.ndarray]


def _synapse(x: np.ndarray, syn: Dense | Conv) -> np.ndarray:
    """(batch, T, n_in), already delayed by the synapse's one step -> (batch, T, n_out) in float64.
    A Dense with synaptic delays adds each delay group's sum ``d`` steps later (compiler/ir.py);
    what would arrive after the last step is dropped."""
    if isinstance(syn, Dense):
        if syn.delay is None:
            return x @ syn.weight.T
        steps = x.shape[1]
        out = np.zeros((*x.shape[:-1], syn.out_size))
        for d, w_d in syn.delay_groups():
            if d < steps:
                out[:, d:] += x[:, :steps - d] @ w_d.T
        return out
    lead = x.shape[:-1]
    with torch.no_grad():
        y = torch.nn.functional.conv2d(torch.from_numpy(np.ascontiguousarray(x.reshape(-1, *syn.in_shape))),
                                       torch.from_numpy(np.ascontiguousarray(syn.weight, dtype=np.float64)),
                                       stride=syn.stride, padding=syn.padding, dilation=syn.dilation,
                                       groups=syn.groups)
    return y.numpy().reshape(*lead, syn.out_size)


def run_float(graph: Graph, inputs: np.ndarray) -> FloatResult:
    """Run a float graph on (batch, T, n_in) inputs; every synapse delays one step, like the chip.
    Blocks run as in hwsim (``snnc.hwsim.sim.simulate_block``): feed-forward synapses over all steps
    at once, recurrent ones inside the loop over time from the previous step's spikes."""
    if graph.is_fixed_point:
        raise GraphError("run_float runs float graphs; use hwsim for a compiled graph")
    x = np.asarray(inputs, dtype=np.float64)
    if x.ndim != 3 or x.shape[2] != graph.input.size:
        raise ValueError(f"inputs must have shape (batch, T, {graph.input.size}), got {x.shape}")
    batch, steps = x.shape[:2]
    trains: dict[str, np.ndarray] = {graph.input.name: x}
    spikes: dict[str, np.ndarray] = {}
    final_v: dict[str, np.ndarray] = {}
    for block in graph.blocks():
        state = {}
        for pop in block:
            neu = pop.neuron
            assert isinstance(neu, CubaLIF)
            a = np.zeros((batch, steps, neu.size))
            for syn, src in pop.feedforward_inputs:
                delayed = np.zeros_like(trains[src])
                delayed[:, 1:] = trains[src][:, :-1]
                a += _synapse(delayed, syn)  # type: ignore[arg-type]
            trains[neu.name] = np.zeros((batch, steps, neu.size))
            state[neu.name] = [a, np.zeros((batch, neu.size)), np.zeros((batch, neu.size))]
        for t in range(steps):
            for pop in block:
                neu = pop.neuron
                a, u, v = state[neu.name]
                at = a[:, t].copy()
                if t > 0:
                    for syn, src in pop.recurrent_inputs:
                        at += trains[src][:, t - 1] @ syn.weight.T  # type: ignore[union-attr]
                u = (1.0 - neu.current_decay) * u + at  # type: ignore[union-attr]
                v = (1.0 - neu.voltage_decay) * v + u + (neu.bias if neu.bias is not None else 0.0)  # type: ignore[union-attr]
                if neu.spiking:  # type: ignore[union-attr]
                    s = v > neu.threshold  # type: ignore[union-attr]
                    v[s] = 0.0
                    trains[neu.name][:, t] = s
                state[neu.name][1:] = [u, v]
        for pop in block:
            name = pop.neuron.name
            spikes[name], final_v[name] = trains[name].astype(bool), state[name][2]
    return FloatResult(spikes, final_v)


def shifted_agreement(ours: dict[str, np.ndarray], source: dict[str, np.ndarray],
                      lags: dict[str, int | None]) -> dict[str, float | None]:
    """Per population, the fraction of (sample, step, neuron) entries on which snnc's spikes (``ours``:
    hwsim's or :func:`run_float`'s, (batch, T', n)) equal a source library's own simulation (``source``:
    (batch, T, n), same-step feed-forward input) once the chip's synaptic delays are taken out: source step
    ``t`` is compared with our step ``t + lags[name]`` (``snnc.compiler.nir_io.source_lags``; ``ours`` must
    run at least ``max(lags)`` steps longer). ``None`` where no shift lines the two up (lag ``None``).
    The measure ``float_agreement`` uses (snnc.pipeline), applied across libraries."""
    out: dict[str, float | None] = {}
    for name, src in source.items():
        lag = lags.get(name)
        if lag is None:
            out[name] = None
            continue
        steps = src.shape[1]
        mine = np.asarray(ours[name])[:, lag:lag + steps]
        if mine.shape != src.shape:
            raise ValueError(f"population '{name}': our spikes {np.asarray(ours[name]).shape} do not cover the "
                             f"source's {src.shape} at lag {lag}; run {lag} more steps (pad the input with zeros)")
        out[name] = float((mine.astype(bool) == np.asarray(src).astype(bool)).mean())
    return out
