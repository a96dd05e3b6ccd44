"""CUBA-LIF layers in discrete time: a pure step function per mode, and a thin module shell.

The equations are written once, in ``snnc.compiler.ir``'s module docstring. Two modes:

* float: the equations in real arithmetic (no rounding, wrapping, clipping);
* hardware-exact: weights, bias, decays and threshold fake-quantized to exactly the integers the
  chip holds, and state updated with Loihi's integer arithmetic (round toward zero, 24-bit wrap of
  u, clip of v, ``<< 6``), in float64, which is exact for these magnitudes (< 2**53). Gradients pass
  straight through rounding; spikes use the rule's surrogate.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from snnc.models.quant import (LOIHI_FIXED_POINT, FixedPointFormat, bias_to_int, decay_to_int,
                               threshold_to_int, trunc_ste, weight_to_int)
from snnc.models.rules import Rule


def delay_one_step(spikes: torch.Tensor) -> torch.Tensor:
    """Shift (batch, T, n) spikes one step later: every Dense connection delivers at t + 1."""
    return torch.nn.functional.pad(spikes, (0, 0, 1, 0))[:, :-1]


def wrap_int32(x: torch.Tensor) -> torch.Tensor:
    """Two's-complement int32 wrap (Lava sums u and v in int32); identity gradient."""
    return x - (torch.floor((x + 2.0**31) / 2.0**32) * 2.0**32).detach()


def _decay(x: torch.Tensor, keep: float, round_to_zero: bool, leak_gradient: bool = True) -> torch.Tensor:
    """``x * keep`` (rounded toward zero on the chip); the gradient is ``keep``, or the identity when
    the leak is kept out of the gradient (Lee et al. 2020 do so for the membrane only: the synaptic
    current's decay always keeps its true gradient)."""
    y = x * keep
    if round_to_zero:
        y = trunc_ste(y)
    return y if leak_gradient else x + (y - x).detach()


def _reset_and_carry(v: torch.Tensor, s: torch.Tensor, rule: Rule, unit: float) -> torch.Tensor:
    """v := 0 where s, with or without gradient through the mask, plus the rule's forward-zero term."""
    v = v * (1.0 - (s if rule.reset_gradient else s.detach()))
    term = rule.temporal_term(s)
    return v if term is None else v + term * unit


def cuba_float_step(a: torch.Tensor, u: torch.Tensor, v: torch.Tensor, bias: torch.Tensor | float,
                    du: float, dv: float, threshold: float, rule: Rule
                    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One float CUBA-LIF step -> (spikes, u, v)."""
    u = _decay(u, 1.0 - du, False) + a
    v = _decay(v, 1.0 - dv, False, rule.leak_gradient) + u + bias
    s = rule.spike(v / threshold - 1.0)
    return s, u, _reset_and_carry(v, s, rule, threshold)


def cuba_hw_step(a: torch.Tensor, u: torch.Tensor, v: torch.Tensor, bias: torch.Tensor | float,
                 du: int, dv: int, vth: int, unit: float, rule: Rule,
                 fmt: FixedPointFormat = LOIHI_FIXED_POINT
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One integer-exact CUBA-LIF step on integer-valued float64 tensors -> (spikes, u, v).

    ``a`` is the integer synaptic input, ``bias`` the integer bias mantissa, ``du`` the effective
    current decay; ``unit`` = the float threshold in state units, so the surrogate sees
    ``v / threshold - 1`` exactly as float mode does.
    """
    one = float(fmt.decay_unity)
    top = float(fmt.state_max)
    u = wrap_int32(_decay(u, (one - du) / one, True) + wrap_int32(a * float(2 ** fmt.act_shift)))
    u = u - 2 * top * (u > top).to(u.dtype).detach()        # wrap once: '>' then '<=' as Lava does
    u = u + 2 * top * (u <= -top).to(u.dtype).detach()
    v = wrap_int32(_decay(v, (one - dv) / one, True, rule.leak_gradient) + u + bias * float(2 ** fmt.bias_exp))
    v = torch.clamp(v, -(top - 1), top - 1)
    vth_eff = float(vth * 2 ** fmt.vth_shift)
    s = rule.spike((v - vth_eff) / unit)
    return s, u, _reset_and_carry(v, s, rule, unit)


class CubaDense(nn.Module):
    """Dense synapses into a population of CUBA-LIF neurons: one deployable layer.

    Parameters are in *threshold units* (the float model); ``weight_scale`` is the number of chip
    integer units per float unit that hardware-exact mode uses (64 is slayer's convention: with
    threshold 1.0 the chip threshold is 64 and weights step by 2/64).
    """

    def __init__(self, in_features: int, out_features: int, *, bias: bool = True,
                 current_decay: float = 0.5, voltage_decay: float = 0.2, threshold: float = 1.0,
                 weight_scale: float = 64.0):
        super().__init__()
        if not threshold > 0:
            raise ValueError(f"threshold must be > 0, got {threshold}")
        self.in_features, self.out_features = int(in_features), int(out_features)
        self.current_decay, self.voltage_decay = float(current_decay), float(voltage_decay)
        self.threshold, self.weight_scale = float(threshold), float(weight_scale)
        self.weight = nn.Parameter(torch.empty(self.out_features, self.in_features))
        nn.init.uniform_(self.weight, -1.0 / in_features**0.5, 1.0 / in_features**0.5)
        self.bias = nn.Parameter(torch.zeros(self.out_features)) if bias else None

    def spec(self) -> dict[str, Any]:
        """Plain-data description (goes into checkpoints; see :func:`layer_from_spec`)."""
        return {"kind": "cuba_dense", "in_features": self.in_features, "out_features": self.out_features,
                "bias": self.bias is not None, "current_decay": self.current_decay,
                "voltage_decay": self.voltage_decay, "threshold": self.threshold,
                "weight_scale": self.weight_scale}

    def integer_params(self) -> dict[str, Any]:
        """The exact integers hardware-exact mode uses (what the compiler must write)."""
        s = self.weight_scale
        with torch.no_grad():
            w = weight_to_int(self.weight.double(), s).to(torch.int64)
            b = (bias_to_int(self.bias.double(), s).to(torch.int64) if self.bias is not None
                 else torch.zeros(self.out_features, dtype=torch.int64))
        return {"weight": w, "bias": b, "du": decay_to_int(self.current_decay),
                "dv": decay_to_int(self.voltage_decay), "vth": threshold_to_int(self.threshold, s)}

    def forward(self, s_in: torch.Tensor, rule: Rule, hardware_exact: bool) -> torch.Tensor:
        """Spikes (batch, T, in) -> spikes (batch, T, out), with the one-step synaptic delay."""
        x = delay_one_step(s_in)
        batch, steps, _ = x.shape
        if hardware_exact:
            s = self.weight_scale
            x = x.double()
            w = weight_to_int(self.weight.double(), s)
            bias: torch.Tensor | float = (bias_to_int(self.bias.double(), s) if self.bias is not None else 0.0)
            du, dv = decay_to_int(self.current_decay), decay_to_int(self.voltage_decay)
            vth = threshold_to_int(self.threshold, s)
            unit = self.threshold * s * 2 ** LOIHI_FIXED_POINT.vth_shift  # v/unit - 1 as in float mode
            a = x @ w.t()
            step = lambda at, u, v: cuba_hw_step(at, u, v, bias, du, dv, vth, unit, rule)  # noqa: E731
        else:
            a = x.to(self.weight.dtype) @ self.weight.t()
            bias = self.bias if self.bias is not None else 0.0
            step = lambda at, u, v: cuba_float_step(  # noqa: E731
                at, u, v, bias, self.current_decay, self.voltage_decay, self.threshold, rule)
        u = torch.zeros(batch, self.out_features, dtype=a.dtype, device=a.device)
        v = torch.zeros_like(u)
        out = []
        for t in range(steps):
            st, u, v = step(a[:, t], u, v)
            out.append(st)
        spikes = torch.stack(out, dim=1)
        scale = rule.spike_gradient_scale(spikes, 1.0 - self.voltage_decay)
        if scale is not None:  # forward unchanged, gradient of each neuron's spike train scaled
            spikes = spikes.detach() + (spikes - spikes.detach()) * scale[:, None, :]
        return spikes
