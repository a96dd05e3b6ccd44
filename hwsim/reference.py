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
    """(batch, T, n_in) -> (batch, T, n_out) in float64."""
    if isinstance(syn, Dense):
        return x @ syn.weight.T
    lead = x.shape[:-1]
    with torch.no_grad():
        y = torch.nn.functional.conv2d(torch.from_numpy(np.ascontiguousarray(x.reshape(-1, *syn.in_shape))),
                                       torch.from_numpy(np.ascontiguousarray(syn.weight, dtype=np.float64)),
                                       stride=syn.stride, padding=syn.padding, dilation=syn.dilation,
                                       groups=syn.groups)
    return y.numpy().reshape(*lead, syn.out_size)


def run_float(graph: Graph, inputs: np.ndarray) -> FloatResult:
    """Run a float graph on (batch, T, n_in) inputs; every synapse delays one step, like the chip."""
    if graph.is_fixed_point:
        raise GraphError("run_float runs float graphs; use hwsim for a compiled graph")
    x = np.asarray(inputs, dtype=np.float64)
    if x.ndim != 3 or x.shape[2] != graph.input.size:
        raise ValueError(f"inputs must have shape (batch, T, {graph.input.size}), got {x.shape}")
    batch, steps = x.shape[:2]
    trains: dict[str, np.ndarray] = {graph.input.name: x}
    spikes: dict[str, np.ndarray] = {}
    final_v: dict[str, np.ndarray] = {}
    for pop in graph.populations():
        neu = pop.neuron
        assert isinstance(neu, CubaLIF)
        a = np.zeros((batch, steps, neu.size))
        for syn, src in pop.inputs:
            delayed = np.zeros_like(trains[src])
            delayed[:, 1:] = trains[src][:, :-1]
            a += _synapse(delayed, syn)  # type: ignore[arg-type]
        bias = neu.bias if neu.bias is not None else 0.0
        u = np.zeros((batch, neu.size))
        v = np.zeros((batch, neu.size))
        out = np.zeros((batch, steps, neu.size), dtype=bool)
        for t in range(steps):
            u = (1.0 - neu.current_decay) * u + a[:, t]
            v = (1.0 - neu.voltage_decay) * v + u + bias
            if neu.spiking:
                s = v > neu.threshold
                v[s] = 0.0
                out[:, t] = s
        spikes[neu.name], final_v[neu.name], trains[neu.name] = out, v, out.astype(np.float64)
    return FloatResult(spikes, final_v)
