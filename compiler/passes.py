"""Passes over the graph: quantize to the target's integers, then design-rule checks.

Each pass is a pure function graph -> graph (or graph -> findings); errors name the layer, the
limit, the value and what to do.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch

from snnc.compiler.ir import CubaLIF, Dense, Graph, Input, Output, QCubaLIF, QDense
from snnc.compiler.targets import Target
from snnc.errors import TargetLimitError
from snnc.models.quant import bias_to_int, decay_to_int, threshold_to_int, weight_to_int


def calibrate_scale(weight: np.ndarray, threshold: float, bias: np.ndarray | None, target: Target) -> float:
    """Largest integer-units-per-float-unit scale at which weights, bias and threshold all fit.

    Used for float-trained models only; hardware-exact models carry the scale they trained with.
    """
    fp = target.fixed_point
    limits = [fp.vth_max / threshold]
    pos, neg = float(weight.max(initial=0.0)), float(-weight.min(initial=0.0))
    if pos > 0:
        limits.append(fp.weight_max / pos)
    if neg > 0:
        limits.append(-fp.weight_min / neg)
    if bias is not None and np.abs(bias).max(initial=0) > 0:
        limits.append(fp.bias_mant_max / float(np.abs(bias).max()))
    return min(limits)


def _decay(name: str, what: str, value: float, target: Target) -> int:
    d = decay_to_int(value, target.fixed_point)
    if not 0 <= d <= target.fixed_point.decay_unity:
        raise TargetLimitError(
            f"layer '{name}': {what} {value} is outside [0, 1] (it would be {d} of 4096 as a "
            f"{target.name} 12-bit decay). Use a decay fraction between 0 (no decay) and 1.")
    return d


def quantize(graph: Graph, target: Target) -> Graph:
    """Float graph -> fixed-point graph with exactly the integers the target holds."""
    fp = target.fixed_point
    nodes: list[Any] = []
    scales: dict[str, float] = {}
    clipped: dict[str, int] = {}
    for node in graph.ordered():
        if isinstance(node, (Input, Output)):
            nodes.append(node)
    body: list[Any] = []
    for dense, lif in graph.layers():
        assert isinstance(dense, Dense) and isinstance(lif, CubaLIF)
        scale = lif.int_scale if lif.int_scale is not None else calibrate_scale(
            dense.weight, lif.threshold, lif.bias, target)
        vth = threshold_to_int(lif.threshold, scale)
        if vth > fp.vth_max:
            raise TargetLimitError(
                f"layer '{lif.name}': threshold {lif.threshold} x weight scale {scale:g} = {vth}, but "
                f"{target.name} holds a {fp.vth_max.bit_length()}-bit threshold mantissa (max {fp.vth_max}), "
                f"{vth / fp.vth_max:.1f}x too large. Lower the layer's weight_scale or its threshold.")
        if vth < 1:
            raise TargetLimitError(
                f"layer '{lif.name}': threshold {lif.threshold} quantizes to {vth} at weight scale {scale:g}; "
                f"the weights are too large relative to the threshold for {fp.weight_max}-level weights. "
                f"Raise the threshold or regularise the weights.")
        w_scaled = dense.weight * scale
        clipped[lif.name] = int(((w_scaled > fp.weight_max + fp.weight_step / 2) |
                                 (w_scaled < fp.weight_min - fp.weight_step / 2)).sum())
        with torch.no_grad():
            w = weight_to_int(torch.from_numpy(dense.weight).double(), scale, fp).numpy().astype(np.int64)
            b = (bias_to_int(torch.from_numpy(lif.bias).double(), scale, fp).numpy().astype(np.int64)
                 if lif.bias is not None else np.zeros(lif.size, dtype=np.int64))
        du = _decay(lif.name, "current_decay", lif.current_decay, target)
        dv = _decay(lif.name, "voltage_decay", lif.voltage_decay, target)
        scales[lif.name] = scale
        body += [QDense(dense.name, w, 0), QCubaLIF(lif.name, lif.size, du, dv, vth, b, fp.bias_exp, fp)]
    meta = {**graph.meta, "target": target.name, "weight_scales": scales, "weights_clipped": clipped}
    return Graph.chain([nodes[0], *body, nodes[-1]], meta=meta)


@dataclass(frozen=True)
class Finding:
    """One design-rule result: ``error`` stops the compile, ``warning`` goes into the report."""

    rule: str
    node: str
    severity: str
    message: str


def rule_current_cannot_wrap(graph: Graph, target: Target) -> list[Finding]:
    """Worst-case synaptic input per step must keep u inside 24 bits.

    Beyond 2**18 (a << 6 > 2**24) Lava's single wrap, then its int32 sums, decide u: every snnc engine
    reproduces that exactly, but it is not what a true 24-bit wrap on silicon would do.
    """
    out = []
    for syn, neu in graph.layers():
        assert isinstance(syn, QDense)
        w = syn.weight.astype(np.int64)
        worst = int(max(np.clip(w, 0, None).sum(axis=1).max(initial=0), (-np.clip(w, None, 0)).sum(axis=1).max(initial=0)))
        bound = worst << syn.weight_exp if syn.weight_exp >= 0 else worst >> -syn.weight_exp
        if bound > target.max_synaptic_sum:
            out.append(Finding("current_cannot_wrap", syn.name, "warning",
                               f"layer '{neu.name}': if all {syn.in_size} inputs spike together the synaptic "
                               f"input reaches {bound} > {target.max_synaptic_sum}, and u can leave its 24 bits "
                               f"(Lava's wrap, exact in hwsim, differs from a true 24-bit wrap)."))
    return out


def rule_netx_sign_mode(graph: Graph, target: Target) -> list[Finding]:
    """lava-dl netx misquantizes weight matrices with no positive entry (netx/utils.py optimize_weight_bits)."""
    out = []
    for syn, neu in graph.layers():
        assert isinstance(syn, QDense)
        if syn.weight.max(initial=0) <= 0 and syn.weight.min(initial=0) < 0:
            out.append(Finding("netx_sign_mode", syn.name, "warning",
                               f"layer '{neu.name}': all weights are <= 0. snnc's runtime and hwsim are exact, "
                               f"but lava-dl's netx loader rescales such matrices wrongly, so network.net "
                               f"run through netx would differ."))
    return out


def rule_weights_representable(graph: Graph, target: Target) -> list[Finding]:
    """Weights outside the format (odd, or beyond [-256, 254]) are changed by the chip's Dense."""
    fp, out = target.fixed_point, []
    for syn, neu in graph.layers():
        assert isinstance(syn, QDense)
        w = syn.weight
        bad = int(((w < fp.weight_min) | (w > fp.weight_max) | (w % fp.weight_step != 0)).sum())
        if bad:
            out.append(Finding("weights_representable", syn.name, "warning",
                               f"layer '{neu.name}': {bad} weights are not even integers in [{fp.weight_min}, "
                               f"{fp.weight_max}]; the chip clips and floors them (every engine does the same)."))
    return out


RULES: list[Callable[[Graph, Target], list[Finding]]] = [
    rule_current_cannot_wrap, rule_weights_representable, rule_netx_sign_mode]


def check(graph: Graph, target: Target) -> list[Finding]:
    """Run every rule; raise one error listing all errors, return the warnings."""
    findings = [f for rule in RULES for f in rule(graph, target)]
    errors = [f for f in findings if f.severity == "error"]
    if errors:
        raise TargetLimitError(f"the network does not fit {target.name}:\n" +
                               "\n".join(f"  [{f.rule}] {f.message}" for f in errors))
    return findings
