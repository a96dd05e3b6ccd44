"""Passes over the graph: quantize to the target's integers, then design-rule checks.

Each pass is a pure function graph -> graph (or graph -> findings); errors name the layer, the
limit, the value and what to do.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from snnc.compiler.ir import Conv, CubaLIF, Dense, Graph, Input, QConv, QCubaLIF, QDense
from snnc.compiler.targets import Target
from snnc.errors import TargetLimitError

# quantize() uses training's quantizers (snnc.models.quant, torch) and imports them when it runs: the
# findings and checks here are read by snn-run / snn-report / the compile helper without torch


def calibrate_scale(weights: list[np.ndarray], threshold: float, bias: np.ndarray | None, target: Target) -> float:
    """Largest integer-units-per-float-unit scale at which weights, bias and threshold all fit.

    Used for float-trained models only; hardware-exact models carry the scale they trained with.
    """
    fp = target.fixed_point
    limits = [fp.vth_max / threshold]
    pos = max(float(w.max(initial=0.0)) for w in weights)
    neg = max(float(-w.min(initial=0.0)) for w in weights)
    if pos > 0:
        limits.append(fp.weight_max / pos)
    if neg > 0:
        limits.append(-fp.weight_min / neg)
    if bias is not None and np.abs(bias).max(initial=0) > 0:
        limits.append(fp.bias_mant_max / float(np.abs(bias).max()))
    return min(limits)


def _decay(name: str, what: str, value: float, target: Target) -> int:
    from snnc.models.quant import decay_to_int

    d = decay_to_int(value, target.fixed_point)
    if not 0 <= d <= target.fixed_point.decay_unity:
        raise TargetLimitError(
            f"layer '{name}': {what} {value} is outside [0, 1] (it would be {d} of 4096 as a "
            f"{target.name} 12-bit decay). Use a decay fraction between 0 (no decay) and 1.")
    return d


def quantize(graph: Graph, target: Target) -> Graph:
    """Float graph -> fixed-point graph with exactly the integers the target holds.

    Every population gets one scale (integer units per threshold unit) shared by all its input
    synapses; a synapse from graded input gets ``weight_exp = -bits``; weights from a signed input
    (channels ``[x+, x-]`` with weights ``[W, -W]``) stay in the symmetric range.
    """
    import torch

    from snnc.models.quant import bias_to_int, threshold_to_int, weight_to_int

    fp = target.fixed_point
    scales: dict[str, float] = {}
    clipped: dict[str, int] = {}
    replaced: dict[str, Any] = {}
    for pop in graph.populations():
        lif = pop.neuron
        assert isinstance(lif, CubaLIF)
        weights = [syn.weight for syn, _ in pop.inputs]
        scale = lif.int_scale if lif.int_scale is not None else calibrate_scale(
            weights, lif.threshold, lif.bias, target)
        vth = threshold_to_int(lif.threshold, scale)
        if vth > fp.vth_max and lif.spiking:
            raise TargetLimitError(
                f"layer '{lif.name}': threshold {lif.threshold} x weight scale {scale:g} = {vth}, but "
                f"{target.name} holds a {fp.vth_max.bit_length()}-bit threshold mantissa (max {fp.vth_max}), "
                f"{vth / fp.vth_max:.1f}x too large. Lower the layer's weight_scale or its threshold.")
        if vth < 1:
            raise TargetLimitError(
                f"layer '{lif.name}': threshold {lif.threshold} quantizes to {vth} at weight scale {scale:g}; "
                f"the weights are too large relative to the threshold for {fp.weight_max}-level weights. "
                f"Raise the threshold or regularise the weights.")
        clipped[lif.name] = sum(int(((w * scale > fp.weight_max + fp.weight_step / 2) |
                                     (w * scale < fp.weight_min - fp.weight_step / 2)).sum()) for w in weights)
        for syn, src in pop.inputs:
            source = graph.nodes[src]
            with torch.no_grad():
                w = weight_to_int(torch.from_numpy(syn.weight).double(), scale, fp).numpy().astype(np.int64)
            if isinstance(syn, Conv):
                if isinstance(source, Input) and source.bits:
                    raise TargetLimitError(
                        f"layer '{lif.name}' ({syn.name}): a convolution cannot take graded input: Lava's Conv "
                        f"ignores weight_exp (SP/lava/proc/conv/models.py:34-51). Use binary spike input.")
                replaced[syn.name] = QConv(syn.name, w, syn.in_shape, syn.stride, syn.padding, syn.dilation,
                                           syn.groups)
                continue
            assert isinstance(syn, Dense)
            if isinstance(source, Input) and graph.meta.get("signed_input"):
                w = np.maximum(w, -fp.weight_max)
            exp = -source.bits if isinstance(source, Input) else 0
            replaced[syn.name] = QDense(syn.name, w, exp, syn.delay)
        with torch.no_grad():
            b = (bias_to_int(torch.from_numpy(lif.bias).double(), scale, fp).numpy().astype(np.int64)
                 if lif.bias is not None else np.zeros(lif.size, dtype=np.int64))
        du = _decay(lif.name, "current_decay", lif.current_decay, target)
        dv = _decay(lif.name, "voltage_decay", lif.voltage_decay, target)
        scales[lif.name] = scale
        replaced[lif.name] = QCubaLIF(lif.name, lif.size, du, dv, vth if lif.spiking else fp.vth_max, b,
                                      fp.bias_exp, fp, shape=lif.shape)
    meta = {**graph.meta, "target": target.name, "weight_scales": scales, "weights_clipped": clipped}
    nodes = [replaced.get(n.name, n) for n in graph.ordered()]
    return Graph.build(nodes, list(graph.edges), meta=meta)


@dataclass(frozen=True)
class Finding:
    """One design-rule result: ``error`` stops the compile, ``warning`` goes into the report.
    ``numerical``: the compiled network computes something other than the model there (``--strict``
    makes it an error; see snnc.compiler.numerics). ``health``: the network computes what the model
    computes, but does not work on the report's samples (silent layers, undecided outputs, too few
    timesteps for its depth; ``--strict`` makes it an error; see snnc.health)."""

    rule: str
    node: str
    severity: str
    message: str
    numerical: bool = False
    health: bool = False


def _max_input(graph: Graph, source: str) -> int:
    """Largest value one input line carries per step: 1 for spikes, 2**bits - 1 for graded input."""
    node = graph.nodes[source]
    return 2 ** node.bits - 1 if isinstance(node, Input) and node.bits else 1


def rule_current_cannot_wrap(graph: Graph, target: Target) -> list[Finding]:
    """Worst-case synaptic input per step (all input synapses of a population) must keep u inside 24 bits.

    Beyond 2**18 (a << 6 > 2**24) Lava's single wrap, then its int32 sums, decide u: every snnc engine
    reproduces that exactly, but it is not what a true 24-bit wrap on silicon would do.
    """
    out = []
    for pop in graph.populations():
        worst = np.zeros((2, pop.neuron.size), dtype=np.int64)   # largest positive / negative input per neuron
        for syn, src in pop.inputs:
            w = syn.weight.astype(np.int64) * _max_input(graph, src)
            for k, part in enumerate((np.clip(w, 0, None), -np.clip(w, None, 0))):
                if isinstance(syn, QConv):  # per output channel (interior neurons see every tap)
                    worst[k] += np.repeat(part.reshape(part.shape[0], -1).sum(axis=1), syn.out_size // part.shape[0])
                else:
                    total = part.sum(axis=1)
                    worst[k] += total << syn.weight_exp if syn.weight_exp >= 0 else total >> -syn.weight_exp
        bound = int(worst.max(initial=0))
        if bound > target.max_synaptic_sum:
            fan_in = sum(syn.in_size for syn, _ in pop.inputs)
            out.append(Finding("current_cannot_wrap", pop.inputs[0][0].name, "warning",
                               f"layer '{pop.name}': if all {fan_in} inputs are active together the synaptic "
                               f"input reaches {bound} > {target.max_synaptic_sum}, and u can leave its 24 bits "
                               f"(Lava's wrap, exact in hwsim, differs from a true 24-bit wrap)."))
    return out


def _synapses(graph: Graph) -> list[tuple[QDense | QConv, str]]:
    return [(syn, pop.name) for pop in graph.populations() for syn, _ in pop.inputs]  # type: ignore[misc]


def rule_netx_sign_mode(graph: Graph, target: Target) -> list[Finding]:
    """lava-dl netx misquantizes weight matrices with no positive entry (netx/utils.py optimize_weight_bits)."""
    out = []
    for syn, name in _synapses(graph):
        if isinstance(syn, QConv):
            continue   # netx's Conv block uses weights as they are (no optimize_weight_bits)
        if syn.weight.max(initial=0) <= 0 and syn.weight.min(initial=0) < 0:
            out.append(Finding("netx_sign_mode", syn.name, "warning",
                               f"layer '{name}' ({syn.name}): all weights are <= 0. snnc's runtime and hwsim are "
                               f"exact, but lava-dl's netx loader rescales such matrices wrongly, so network.net "
                               f"run through netx would differ."))
    return out


def rule_weights_representable(graph: Graph, target: Target) -> list[Finding]:
    """Weights outside the format (odd, or beyond [-256, 254]) are changed by the chip's Dense."""
    fp, out = target.fixed_point, []
    for syn, name in _synapses(graph):
        w = syn.weight
        bad = int(((w < fp.weight_min) | (w > fp.weight_max) | (w % fp.weight_step != 0)).sum())
        if bad:
            what = ("Lava's Conv uses them as they are (so does hwsim), but Loihi's 8-bit synapses cannot hold "
                    "them" if isinstance(syn, QConv) else "the chip clips and floors them (every engine does the same)")
            out.append(Finding("weights_representable", syn.name, "warning",
                               f"layer '{name}' ({syn.name}): {bad} weights are not even integers in "
                               f"[{fp.weight_min}, {fp.weight_max}]; {what}.", True))
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
