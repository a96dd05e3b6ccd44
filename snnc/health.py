"""Is the compiled network alive? Health findings on the report's samples, the training curves and the
confusion matrix the report carries (docs/reliability.md, "Health findings").

A network can pass verification (every engine agrees spike for spike) and still compute nothing: silent
layers agree perfectly. These checks read what :func:`snnc.pipeline.build_report` already measured with
hwsim on the report's input samples (activity per layer, the decision curve of
:func:`snnc.hwsim.energy.decision_steps`) and the graph's depth; each result is a
:class:`~snnc.compiler.passes.Finding` with ``health=True`` (``snn-compile --strict`` refuses them).

* ``silent_layer``: a spiking population with no spike in any sample and step.
* ``undecided_output``: at least :data:`UNDECIDED_LIMIT` of the samples end in a tie at the last step
  (the top score shared; an output with no spike at all is a tie).
* ``timesteps_below_depth``: T < :data:`DEPTH_FACTOR` x depth, where depth is the longest synaptic path
  from the input to the output. Every Dense or Conv connection delays by one step, so input from step 1
  reaches a population ``d`` synapses away at step ``d + 1``, and the last ``d`` input steps never reach
  the output at all.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Callable

import numpy as np

from snnc.compiler.ir import Graph
from snnc.compiler.passes import Finding
from snnc.errors import StrictModeError

#: the share of samples left tied at T from which undecided outputs are a finding. The digits demo
#: model (64-128-10, T=20, `make demo`) leaves 0 of 32 tied; a dead network leaves all of them.
UNDECIDED_LIMIT = 0.25
#: T below this multiple of the depth is a finding. Measured on digits (docs/reliability.md, "T and
#: depth": MLPs 2, 3 and 4 synapses deep, 5 epochs each at T = 2..20): at T <= depth + 1 they stay at
#: chance, at 2 x depth they reach 68-92% of their T=20 accuracy, from 3 x depth on 96-100%.
DEPTH_FACTOR = 3.0

WHAT_HELPS_SILENT = ("retrain (snn-train calibrates silent layers at its start), check the input encoding "
                     "(snn-train --encoding) and the data, or give the network more timesteps (--timesteps)")


def synaptic_depth(graph: Graph) -> dict[str, int]:
    """Per population, the longest path from the input in steps of delay: each synapse hop is one step,
    plus the shortest synaptic delay of that synapse (``QDense.delay``: the earliest its input can
    arrive); residual blocks and other DAGs: the longest of their branches. Recurrent synapses do not
    count (a cycle adds no depth the input must cross); a population with only recurrent input is 1 deep."""
    depth: dict[str, int] = {graph.input.name: 0}
    for pop in graph.populations():     # every feed-forward source is done before its targets
        depth[pop.name] = max((depth[src] + 1 + _least_delay(syn) for syn, src in pop.feedforward_inputs),
                              default=1)
    del depth[graph.input.name]
    return depth


def _least_delay(syn: Any) -> int:
    delay = getattr(syn, "delay", None)
    return 0 if delay is None else int(delay.min())


def timesteps_problem(graph: Graph, steps: int) -> tuple[int, int, str | None]:
    """(depth, the fewest timesteps that suit it, why ``steps`` are too few or None): the output can
    respond at step depth + 1 at the earliest, and below DEPTH_FACTOR x depth accuracy drops steeply."""
    out = graph.output.name
    d = synaptic_depth(graph)[out]
    needed = int(math.ceil(DEPTH_FACTOR * d))
    if steps >= needed:
        return d, needed, None
    return d, needed, (f"T={steps} is short for a network {d} synapses deep (input to '{out}'): every synapse delays "
                       f"by one step on Loihi and in Lava, so the output can respond at the earliest at step {d + 1} "
                       f"and only {max(0, steps - d)} of the {steps} input steps ever reach it. Below "
                       f"{DEPTH_FACTOR:g} x depth = {needed} steps accuracy drops steeply (docs/reliability.md).")


def model_timesteps_warning(model: Any, timesteps: int) -> str | None:
    """Before training ``model`` (a SpikingNet) at ``timesteps``: what :func:`timesteps_problem` says of its
    graph and the fix, or None (also when the model makes no graph: snn-compile explains that)."""
    from snnc.compiler.frontend import graph_from_module
    from snnc.errors import SnncError

    try:
        graph = graph_from_module(model)
    except SnncError:
        return None
    _, needed, short = timesteps_problem(graph, timesteps)
    return None if short is None else f"{short} Train with --timesteps {needed} or more."


def _rate(spikes: float, neurons: int, timesteps: int) -> float:
    """Spikes per neuron per step from a mean per inference."""
    return spikes / max(1, neurons * timesteps)


RANDOM_INPUT = (" These samples are random input spikes (the model records no dataset): snn-compile --data FILE "
                "checks it on real ones.")


def health_findings(graph: Graph, report: dict[str, Any], inputs: np.ndarray,
                    random_inputs: bool = False) -> tuple[dict[str, Any], list[Finding]]:
    """The report's ``health`` section and its findings, from the report's ``activity`` and
    ``latency.time_to_decision`` sections (measured by hwsim on ``inputs``) and the graph;
    ``random_inputs``: the samples are random spikes, not data (the messages say so)."""
    note = RANDOM_INPUT if random_inputs else ""
    act = report["activity"]
    samples, steps = int(act["samples"]), int(act["timesteps"])
    layers = {layer["name"]: layer for layer in act["layers"]}
    readout = graph.meta.get("readout") or {}
    integrator = graph.output.name if readout.get("kind") == "membrane" else None
    input_rate = float(np.mean(np.asarray(inputs) != 0)) if np.size(inputs) else 0.0
    rates = {graph.input.name: input_rate}
    rates.update({n: _rate(layer["spikes"], layer["neurons"], steps) for n, layer in layers.items()})
    found: list[Finding] = []

    silent = []
    for pop in graph.populations():
        layer = layers.get(pop.name)
        if layer is None or pop.name == integrator or layer["spikes"] > 0:
            continue
        silent.append(pop.name)
        fed = []
        for _, src in pop.inputs:
            size, is_input = graph.nodes[src].size, src == graph.input.name
            what, unit = ("the input", "lines") if is_input else (f"'{src}'", "neurons")
            rate = "silent too" if rates[src] == 0 else f"{rates[src]:.3f} spikes per {unit[:-1]} per step"
            fed.append(f"{what} ({size} {unit}, {rate})")
        live = [src for _, src in pop.inputs if rates[src] > 0]
        why = (" Its inputs are active, so its weights are too weak or too negative for its threshold."
               if live else " Nothing reaches it: start with the first silent layer.")
        found.append(Finding(
            "silent_layer", pop.name, "warning",
            f"layer '{pop.name}' ({layer['neurons']} neurons) never spiked: 0 spikes in {samples} samples x "
            f"{steps} steps; it is fed by {' and '.join(fed)}.{why} Every layer after it receives nothing from it. "
            f"What helps: {WHAT_HELPS_SILENT}.{note}", health=True))

    ttd = (report.get("latency") or {}).get("time_to_decision") or {}
    undecided = float(ttd.get("undecided_fraction") or 0.0)
    out = graph.output.name
    if undecided >= UNDECIDED_LIMIT:
        tied = int(round(undecided * samples))
        none = " (its output never spiked)" if out in silent else ""
        found.append(Finding(
            "undecided_output", out, "warning",
            f"output '{out}'{none}: {tied} of {samples} samples ({undecided:.0%}) end in a tie after the last "
            f"step {steps} (the top score shared, no output spike counts as a tie), at or above the "
            f"{UNDECIDED_LIMIT:.0%} this check allows; a tie decides for the lowest class index, so accuracy "
            f"on these samples is luck. What helps: more timesteps (--timesteps), retraining (a larger "
            f"snn-train --lr, --readout membrane, another --encoding), and checking the data.{note}", health=True))

    d, needed, short = timesteps_problem(graph, steps)
    first = d + 1
    if short:
        found.append(Finding(
            "timesteps_below_depth", out, "warning",
            f"{short} Raise the timesteps to at least {needed}: snn-compile --timesteps {needed}, and train at it "
            f"(snn-train --timesteps {needed}).", health=True))

    section = {"silent_layers": silent, "undecided_fraction": undecided, "undecided_limit": UNDECIDED_LIMIT,
               "depth": d, "first_output_step": first, "timesteps": steps, "depth_factor": DEPTH_FACTOR,
               "min_timesteps": needed, "rates": rates, "samples": samples, "random_inputs": random_inputs}
    return section, found


def health_summary(report: dict[str, Any]) -> str | None:
    """One phrase of what the health findings say ('3 layers are silent, ...'), or None if healthy;
    what a 'PASS' line must not hide."""
    found = [f for f in report.get("findings") or [] if f.get("health")]
    if not found:
        return None
    rules = [f["rule"] for f in found]
    parts = []
    silent = rules.count("silent_layer")
    if silent:
        parts.append(f"{silent} layer{'s are' if silent > 1 else ' is'} silent")
    if "undecided_output" in rules:
        frac = (report.get("health") or {}).get("undecided_fraction")
        parts.append(f"{frac:.0%} of samples undecided" if frac is not None else "outputs undecided")
    if "timesteps_below_depth" in rules:
        h = report.get("health") or {}
        parts.append(f"T={h.get('timesteps')} is short for depth {h.get('depth')}")
    return ", ".join(parts)


def refuse_health_findings(findings: list[dict[str, Any]], source: Path) -> None:
    """``--strict``: StrictModeError listing every health finding (report.json form), if there is any."""
    found = [f for f in findings if f.get("health")]
    if found:
        raise StrictModeError(
            f"{source}: --strict: the compiled network does not work on the report's samples "
            f"({len(found)} health finding(s)); nothing was written:\n" +
            "\n".join(f"  [{f['rule']}] {f['message']}" for f in found) +
            "\nFix the model as each finding says, or compile without --strict to write the artifact with "
            "these findings in report.json (docs/reliability.md).")


# --- the confusion matrix -----------------------------------------------------------------------------

def confusion(labels: np.ndarray, decided: np.ndarray, classes: int) -> dict[str, Any]:
    """Counts of (true label, decision) on the report's samples: rows are labels, columns decisions."""
    m = np.zeros((classes, classes), dtype=np.int64)
    ok = (labels >= 0) & (labels < classes) & (decided >= 0) & (decided < classes)
    np.add.at(m, (labels[ok].astype(np.int64), decided[ok].astype(np.int64)), 1)
    return {"engine": "hwsim", "samples": int(len(labels)), "classes": classes, "matrix": m.tolist(),
            "rows": "true label", "columns": "decision (ties go to the lowest class)"}


# --- the training log beside a checkpoint -------------------------------------------------------------

#: config keys copied into report.json (paths and devices would differ between machines)
TRAINING_CONFIG = ("dataset", "arch", "rule", "loss", "hidden", "epochs", "timesteps", "batch_size", "lr",
                   "lr_scaling", "encoding", "readout", "preset", "seed", "max_steps", "hardware_exact")
EPOCH_KEYS = ("epoch", "loss", "train_accuracy", "test_accuracy")   # not samples/s: timing would make
#: two compiles of the same checkpoint differ (report.json is byte-identical, tests/test_determinism.py)


def _number(x: Any) -> float | None:
    if isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x):
        return None
    return float(x)


def training_section(model_path: Path, metadata: dict[str, Any],
                     say: Callable[[str], None] = lambda _m: None) -> dict[str, Any] | None:
    """The epoch curves of MODEL.log.json (written by snn-train beside MODEL.pt), if the log belongs to
    this checkpoint: its config's ``out`` names this file and its last epoch is the checkpoint's.
    Anything else (no log, a damaged one, another run's) gives None, with a note through ``say``."""
    log = model_path.with_suffix(".log.json")
    if not log.is_file():
        return None
    try:
        data = json.loads(log.read_text(encoding="utf-8"))
        config, epochs = data["config"], data["epochs"]
        if not isinstance(config, dict) or not isinstance(epochs, list) or not epochs:
            raise TypeError("config or epochs of the wrong type")
        if not all(isinstance(e, dict) and isinstance(e.get("epoch"), int) for e in epochs):
            raise TypeError("an epoch without its number")
        rows = [{k: (e[k] if k == "epoch" else _number(e.get(k))) for k in EPOCH_KEYS} for e in epochs]
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError, AttributeError) as e:
        say(f"training log {log}: not readable ({type(e).__name__}: {e}); the report shows no training curves. "
            f"snn-train rewrites it with the checkpoint.")
        return None
    out = config.get("out")
    last = rows[-1]["epoch"]
    recorded = metadata.get("epochs")
    if not isinstance(out, str) or Path(out).name != model_path.name or (recorded is not None and recorded != last):
        say(f"training log {log}: written for {out!r} up to epoch {last}, not for this checkpoint "
            f"({model_path.name}, epoch {recorded}); the report shows no training curves.")
        return None
    return {"log": log.name, "config": {k: config[k] for k in TRAINING_CONFIG if k in config},
            "epochs": rows}
