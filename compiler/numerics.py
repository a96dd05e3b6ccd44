"""Numerical honesty: where the compiled integers stop computing what the model computes, with numbers.

Four sources of difference, each reported per layer in report.json ``numerics`` and, where it
changes behaviour, as a finding (``snn-compile --strict`` makes every finding here an error):

* quantization of a float model (this module, from the float graph and the integers quantize
  wrote): weights clipped to the 8-bit range or rounded to its even grid, thresholds, decays and
  biases rounded or clipped. A hardware-exact model trained with those very integers (its layers
  carry ``int_scale``), so for it they are reported as the model's own, not as findings;
* state leaving its registers on the observed inputs (``snnc.hwsim.headroom``): u's 24-bit wrap,
  v's clip, a Conv's 24-bit output wrap; a finding for every source (``state_overflow``): a
  hardware-exact model reproduces Lava's wrap, but the network stops computing its equations there
  and a float model has none;
* Lava and silicon parting on the observed inputs (``snnc.hwsim.divergence``): where Lava's
  fixed-point models, which hwsim and the verification reproduce, and the silicon-tested Loihi 1
  semantics (nengo-loihi's emulator) compute different values: the 22-bit input accumulator, u's
  wrap at its bounds, u + bias, the per-synapse weight exponent, a Conv's output, Conv weights the
  8-bit synapses cannot hold (``silicon_divergence``). A different question from state_overflow:
  most u wraps are the same on both, and q0 wraps long before u does; each message names the other;
* the measured result (``snnc.pipeline.float_agreement``): the share of (sample, step, neuron)
  spikes on which the compiled network equals the float model it came from.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from snnc.compiler.ir import CubaLIF, Graph, QCubaLIF
from snnc.compiler.passes import Finding
from snnc.compiler.targets import Target
from snnc.hwsim.divergence import REGIME_BY_ID, WHERE

_EPS = 1e-9


def _compare(ideal: np.ndarray, stored: np.ndarray, half_step: float) -> dict[str, Any]:
    """How integers ``stored`` differ from the exact scaled values ``ideal``: an error above half a
    step is clipping (or a sign clamp), a smaller non-zero one is rounding."""
    err = np.abs(ideal.astype(np.float64) - stored.astype(np.float64))
    tol = _EPS * np.maximum(1.0, np.abs(ideal))
    clipped = err > half_step + tol
    rounded = (err > tol) & ~clipped
    top = float(np.abs(ideal).max(initial=0.0))
    return {"count": int(ideal.size), "clipped": int(clipped.sum()), "rounded": int(rounded.sum()),
            "max_error": float(err.max(initial=0.0)),
            "rms_error_of_max": float(np.sqrt(np.mean(err ** 2)) / top) if top > 0 and err.size else 0.0,
            "largest": top}


def _scalar(ideal: float, stored: int) -> dict[str, Any]:
    return {"exact": float(ideal), "stored": int(stored), "error": float(stored - ideal),
            "rounded": bool(abs(stored - ideal) > _EPS * max(1.0, abs(ideal)))}


def quantization_effects(float_graph: Graph, qgraph: Graph, target: Target) -> dict[str, dict[str, Any]]:
    """Per population of a quantized float graph: weights, threshold, decays and bias, each as the
    exact value (float x scale) beside the integer stored. Empty for a graph read as integers."""
    if float_graph.is_fixed_point:
        return {}
    fp = target.fixed_point
    scales = qgraph.meta.get("weight_scales") or {}
    out: dict[str, dict[str, Any]] = {}
    for fpop, qpop in zip(float_graph.populations(), qgraph.populations()):
        lif, q = fpop.neuron, qpop.neuron
        assert isinstance(lif, CubaLIF) and isinstance(q, QCubaLIF)
        scale = float(scales[lif.name])
        ideal_w = np.concatenate([(syn.weight * scale).ravel() for syn, _ in fpop.inputs])
        stored_w = np.concatenate([syn.weight.ravel() for syn, _ in qpop.inputs])
        bias = lif.bias if lif.bias is not None else np.zeros(lif.size)
        entry: dict[str, Any] = {
            "scale": scale, "in_model": lif.int_scale is not None,
            "synapses": [syn.name for syn, _ in qpop.inputs],
            "weights": _compare(ideal_w, stored_w, fp.weight_step / 2),
            "bias": _compare(bias * scale, q.bias_mant, 0.5),
            "current_decay": _scalar(lif.current_decay * fp.decay_unity, q.du),
            "voltage_decay": _scalar(lif.voltage_decay * fp.decay_unity, q.dv),
        }
        if lif.spiking:
            entry["threshold"] = _scalar(lif.threshold * scale, q.vth)
        out[lif.name] = entry
    return out


def _pct(x: float) -> str:
    return f"{100 * x:.3g}%"


def _quantization_findings(name: str, e: dict[str, Any], target: Target) -> list[Finding]:
    fp, out = target.fixed_point, []
    syn = ", ".join(e["synapses"])
    w, b = e["weights"], e["bias"]
    where = f"layer '{name}' ({syn})"
    if w["clipped"]:
        out.append(Finding("weights_clipped", name, "warning",
                           f"{where}: {w['clipped']} of {w['count']} weights x scale {e['scale']:.6g} lie outside "
                           f"[{fp.weight_min}, {fp.weight_max}] and were clipped (largest |w x scale| "
                           f"{w['largest']:.6g}, error up to {w['max_error']:.6g} weight units).", True))
    if w["rounded"]:
        out.append(Finding("weights_rounded", name, "warning",
                           f"{where}: {w['rounded']} of {w['count']} weights rounded to the even-integer grid "
                           f"(error up to {min(w['max_error'], fp.weight_step / 2):.3g} weight units; rms error "
                           f"{_pct(w['rms_error_of_max'])} of the largest weight).", True))
    th = e.get("threshold")
    if th and th["rounded"]:
        out.append(Finding("threshold_rounded", name, "warning",
                           f"layer '{name}': threshold x scale = {th['exact']:.6g} stored as vth {th['stored']} "
                           f"({_pct(th['error'] / th['exact'])}).", True))
    for key in ("current_decay", "voltage_decay"):
        d = e[key]
        if d["rounded"]:
            out.append(Finding("decay_rounded", name, "warning",
                               f"layer '{name}': {key} x {fp.decay_unity} = {d['exact']:.6g} stored as "
                               f"{d['stored']}/{fp.decay_unity}.", True))
    if b["clipped"]:
        out.append(Finding("bias_clipped", name, "warning",
                           f"layer '{name}': {b['clipped']} of {b['count']} biases x scale lie outside the 13-bit "
                           f"mantissa [{fp.bias_mant_min}, {fp.bias_mant_max}] and were clipped (largest "
                           f"{b['largest']:.6g}).", True))
    if b["rounded"]:
        out.append(Finding("bias_rounded", name, "warning",
                           f"layer '{name}': {b['rounded']} of {b['count']} biases rounded to integers (error up to "
                           f"{min(b['max_error'], 0.5):.3g} weight units).", True))
    return out


def _event(e: dict[str, Any]) -> str:
    return f"sample {e['sample']}, timestep {e['timestep']}, neuron {e['neuron']}"


def silicon_findings(silicon: dict[str, dict[str, Any]], state: dict[str, dict[str, Any]] | None = None
                     ) -> list[Finding]:
    """One ``silicon_divergence`` finding per layer whose silicon check (``SiliconCheck.to_json()``)
    diverges: regimes, counts, the first event, why it matters and what to do (REGIMES' remedies);
    naming the layer's state_overflow finding where it has one (``state``: ``StateRange.to_json()``)."""
    out: list[Finding] = []
    for name, s in silicon.items():
        if s["verdict"] != "diverges":
            continue
        counted = [f"{n} where {WHERE[r]}" for r, n in s["events"].items() if n]
        first = s["first"]
        seen = ""
        if counted:
            peak = (f"; peak |a| {s['peak_input']} weight units, q0 holds {s['input_range'][0]}..{s['input_range'][1]}"
                    if s["events"]["q0_wrap"] else "")
            seen = (f"on the {s['samples']} observed input samples ({s['timesteps']} timesteps), "
                    f"{sum(s['events'].values())} (sample, timestep, neuron) events: {'; '.join(counted)}{peak}; "
                    f"the first at {_event(first)} ({first['regime']}). ")
        structural = "".join(f"Structurally, {x['synapse']}: {x['detail']}, which Lava's Conv uses as they are but "
                             f"Loihi's 8-bit synapses cannot hold (see also the weights_representable design rule). "
                             for x in s["structural"])
        todo = "; ".join(f"{r}: {REGIME_BY_ID[r].remedy}" for r in s["regimes"])
        other = ""
        if state and state.get(name, {}).get("events"):
            other = (" This layer's state_overflow finding is the other question: where its state leaves the "
                     "registers and the equations stop holding, on Lava and silicon alike.")
        out.append(Finding("silicon_divergence", name, "warning",
                           f"layer '{name}': Lava's fixed-point model (which hwsim reproduces bit for bit) and the "
                           f"silicon-tested Loihi 1 semantics (nengo-loihi's emulator, compared with the chip in its "
                           f"hardware tests) compute different results here, so hwsim and Lava agreeing does not say "
                           f"what the chip computes: {seen}{structural}What to do: {todo}.{other} "
                           f"Regimes and sources: report.json numerics.silicon.regimes.", True))
    return out


def _silicon_note(name: str, silicon: dict[str, dict[str, Any]] | None) -> str:
    """state_overflow's pointer to the silicon check of the same layer (None: not checked)."""
    if silicon is None or name not in silicon:
        return ""
    if silicon[name]["verdict"] == "unchecked":
        return (f" What silicon computes there is not checked: {silicon[name].get('reason', 'no silicon-tested reference')}"
                f" (report.json numerics.layers.{name}.silicon).")
    if silicon[name]["verdict"] == "diverges":
        return (" Whether silicon computes the same there is a different question: this layer's "
                "silicon_divergence finding says where it does not.")
    hedge = " as far as checked" if silicon[name]["unchecked"] else ""
    return (f" Silicon would compute the same at these points{hedge} (most wraps are alike on both; report.json "
            f"numerics.layers.{name}.silicon).")


def numeric_findings(effects: dict[str, dict[str, Any]], state: dict[str, dict[str, Any]],
                     agreement: dict[str, float] | None, target: Target,
                     silicon: dict[str, dict[str, Any]] | None = None) -> list[Finding]:
    """Findings (``numerical=True``) from :func:`quantization_effects` (not for layers whose model
    trained with these integers), from the observed state ranges (``StateRange.to_json()``), from
    the float agreement (per population, fraction of equal spikes) and from the silicon checks
    (``SiliconCheck.to_json()``, :func:`silicon_findings`)."""
    out: list[Finding] = []
    for name, e in effects.items():
        if not e["in_model"]:
            out += _quantization_findings(name, e, target)
    for name, s in state.items():
        if not s["events"]:
            continue
        parts = [f"{s[k]} {what}" for k, what in (("u_wrapped", "u wraps (24 bits)"),
                                                  ("v_clipped", "v saturations that changed the outcome"),
                                                  ("conv_wrapped", "Conv output wraps (24 bits)")) if s[k]]
        first = s["first"]
        out.append(Finding("state_overflow", name, "warning",
                           f"layer '{name}': on the {s['samples']} observed input samples the state left its 24-bit "
                           f"registers: {', '.join(parts)} (peak |u| {s['peak_u']}, |v| {s['peak_v']}, limit "
                           f"{s['limit']}; first at sample {first['sample']}, timestep {first['timestep']}, "
                           f"neuron {first['neuron']}: {first['what']}). Lava's wrap is reproduced exactly, but "
                           f"the network no longer computes its equations there: lower the weights or the "
                           f"layer's weight_scale.{_silicon_note(name, silicon)}", True))
    out += silicon_findings(silicon or {}, state)
    for name, share in sorted((agreement or {}).items()):
        if share < 1.0:
            out.append(Finding("spikes_differ_from_float", name, "warning",
                               f"layer '{name}': the compiled spikes differ from the float model's on "
                               f"{_pct(1 - share)} of (sample, timestep, neuron) on the observed inputs "
                               f"(the sum of the quantization effects above).", True))
    return out
