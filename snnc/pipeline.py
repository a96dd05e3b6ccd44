"""The end-to-end flow behind the CLI: model -> graph -> fixed point -> artifact -> engines -> report."""
from __future__ import annotations

import contextlib
import copy
import importlib
import time
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from snnc.compiler.artifact import (GRAPH_FILE, HTML_REPORT_FILE, MANIFEST_FILE, NETWORK_FILE, NIR_FILE, ONNX_FILE,
                                    REPORT_FILE)
from snnc.compiler.ir import check_round_trip
from snnc.errors import SnncError, StrictModeError, VerificationError
from snnc.hwsim.energy import ANN_COST_MODEL, DEFAULT_COST_MODEL
from snnc.verify import VerificationResult, compare

# Everything else is imported where it is used (docs/performance.md, "Start-up"): snn-run reads an
# artifact and runs hwsim, and pays for none of the compiler's file formats (onnx alone is ~1 s), the
# report's counting and pricing, Lava, or the page's matplotlib and jinja2.
if TYPE_CHECKING:
    from snnc.background import Helper, Job
    from snnc.compiler.artifact import Artifact
    from snnc.compiler.ir import Graph
    from snnc.compiler.mapping import Mapping
    from snnc.compiler.passes import Finding
    from snnc.compiler.placement import Placement
    from snnc.compiler.targets import Target
    from snnc.hwsim.counts import DetailedCounts
    from snnc.models.network import SpikingNet


#: what this module imported at the top before its imports became lazy: still importable from it
#: (``snnc.pipeline.HwSim``, ``from snnc.pipeline import sample_inputs``), loaded on first use (PEP 562)
_MOVED = {
    "Artifact": "snnc.compiler.artifact", "load_artifact": "snnc.compiler.artifact",
    "manifest": "snnc.compiler.artifact", "sha256": "snnc.compiler.artifact",
    "staged_directory": "snnc.compiler.artifact", "write_json": "snnc.compiler.artifact",
    "read_graph": "snnc.compiler.graph_file", "write_graph": "snnc.compiler.graph_file", "Graph": "snnc.compiler.ir",
    "QConv": "snnc.compiler.ir", "Mapping": "snnc.compiler.mapping", "map_cores": "snnc.compiler.mapping",
    "target_findings": "snnc.compiler.mapping", "netx_limitation": "snnc.compiler.netx_hdf5",
    "read_netx": "snnc.compiler.netx_hdf5", "write_netx": "snnc.compiler.netx_hdf5",
    "read_nir": "snnc.compiler.nir_io", "write_nir": "snnc.compiler.nir_io",
    "numeric_findings": "snnc.compiler.numerics", "quantization_effects": "snnc.compiler.numerics",
    "read_onnx": "snnc.compiler.onnx_io", "write_onnx": "snnc.compiler.onnx_io", "Finding": "snnc.compiler.passes",
    "check": "snnc.compiler.passes", "quantize": "snnc.compiler.passes", "board_for": "snnc.compiler.placement",
    "place": "snnc.compiler.placement", "load_source": "snnc.compiler.sources", "Target": "snnc.compiler.targets",
    "get_target": "snnc.compiler.targets", "confusion": "snnc.health", "health_findings": "snnc.health",
    "refuse_health_findings": "snnc.health", "training_section": "snnc.health",
    "DetailedCounts": "snnc.hwsim.counts", "count": "snnc.hwsim.counts", "silicon_summary": "snnc.hwsim.divergence",
    "unchecked_layer": "snnc.hwsim.divergence", "activity_distribution": "snnc.hwsim.energy",
    "activity_summary": "snnc.hwsim.energy", "ann_comparison": "snnc.hwsim.energy", "estimate": "snnc.hwsim.energy",
    "load_cost_model": "snnc.hwsim.energy", "observe": "snnc.hwsim.headroom",
    "neurobench_metrics": "snnc.hwsim.neurobench", "HwSimPool": "snnc.hwsim.parallel",
    "shard_range": "snnc.hwsim.parallel", "warm_up": "snnc.hwsim.parallel", "run_float": "snnc.hwsim.reference",
    "HwSim": "snnc.hwsim.sim", "DATA_FILE_DATASET": "snnc.inputs", "data_file_spec": "snnc.inputs",
    "input_code": "snnc.inputs", "input_spec": "snnc.inputs", "sample_inputs": "snnc.inputs",
    "from_engine_input": "snnc.models.datasets", "SpikingNet": "snnc.models.network",
    "Readout": "snnc.models.readout", "torch": "torch"}


def __getattr__(name: str) -> Any:
    if name not in _MOVED:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    module = importlib.import_module(_MOVED[name])
    value = module if name == _MOVED[name] else getattr(module, name)
    globals()[name] = value
    return value


@dataclass(frozen=True)
class CompileResult:
    out: Path
    report: dict[str, Any]


def hardware_exact_model(model: SpikingNet, graph: Graph) -> SpikingNet:
    """The model as the chip computes it: hardware-exact mode at the scales the compiler used."""
    if model.hardware_exact:
        return model
    hw = copy.deepcopy(model)
    scales = graph.meta["weight_scales"]
    for name, pop in hw.named_populations():
        pop.weight_scale = float(scales[name])
    hw.hardware_exact = True
    return hw


def readout_v_name(graph: Graph) -> str | None:
    """The population whose v[T] carries the decision (membrane readout), else None."""
    from snnc.models.readout import Readout

    return graph.output.name if Readout.from_json(graph.meta.get("readout")).kind == "membrane" else None


def observables(graph: Graph, spikes: dict[str, np.ndarray], final_v: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """What verification compares: every population's spikes (batch, T, n), and the readout
    integrator's v after the last step as ``NAME.v[T]`` (batch, 1, n)."""
    out = {p.name: spikes[p.name] for p in graph.populations()}
    name = readout_v_name(graph)
    if name is not None:
        out[f"{name}.v[T]"] = np.asarray(final_v[name], dtype=np.int64)[:, None, :]
    return out


def decisions(graph: Graph, spikes: dict[str, np.ndarray], final_v: dict[str, np.ndarray]) -> np.ndarray:
    """Class per sample from an engine's output, by the graph's readout."""
    from snnc.models.readout import Readout

    readout = Readout.from_json(graph.meta.get("readout"))
    out = graph.output.name
    return readout.decide(final_v[out] if readout.kind == "membrane" else spikes[out])


def run_torch(model: SpikingNet, graph: Graph, inputs: np.ndarray, encoding: str) -> dict[str, np.ndarray]:
    """The hardware-exact model on the chip's inputs, as :func:`observables`."""
    import torch

    from snnc.models.datasets import from_engine_input

    with torch.no_grad():
        model.eval()
        traces = model.traces(from_engine_input(inputs, encoding))
        spikes, final_v = {}, {}
        for name, pop in model.named_populations():
            if pop.spiking:
                spikes[name] = traces[name].numpy() > 0.5
            else:  # v in threshold units -> the chip's integer v
                final_v[name] = np.round(traces[name][:, -1].double().numpy() * pop.state_unit).astype(np.int64)
                spikes[name] = np.zeros(traces[name].shape, dtype=bool)
    return observables(graph, spikes, final_v)


def verify_engines(model: SpikingNet | None, graph: Graph, inputs: np.ndarray,
                   encoding: str = "rate", lava_timeout: float | None = None,
                   progress: Callable[[str, int, int], None] | None = None, *,
                   emulator: bool = True, emulator_expected: str | None = None,
                   emulator_timeout: float | None = None,
                   say: Callable[[str], None] | None = None,
                   target: Target | str | None = None) -> VerificationResult:
    """torch (if a model is given), hwsim, Lava and nengo-loihi's Loihi emulator on the same inputs,
    every population and step (and the readout integrator's final v); ``progress`` hears Lava's samples.

    The emulator (snnc.runtime.emulator, a separate process) joins when ``emulator`` is True, it is
    installed and it can run the graph; otherwise the result's ``not_run`` says why (and ``say``
    hears it). Its mismatches fail verification like any other, unless ``emulator_expected`` gives
    the reason they are expected (the divergence checks found a regime where Lava's model and the
    silicon-tested semantics differ): then they are counted and reported with that reason. ``target``
    (default loihi): the emulator models Loihi 1 only, so for a target without that silicon reference
    (loihi2) it is not run and ``not_run`` says why."""
    from snnc.compiler.targets import get_target
    from snnc.hwsim.sim import HwSim
    from snnc.runtime.emulator import emulator_status, emulator_support_problem, run_on_emulator
    from snnc.runtime.lava_backend import run_on_lava_full

    not_run: dict[str, str] = {} if emulator else {"emulator": "left out (--no-emulator)"}
    tgt = get_target(target) if isinstance(target, str) else target
    if emulator and tgt is not None and tgt.silicon_reference is None:
        not_run["emulator"] = (f"nengo-loihi's emulator models Loihi 1, and the target is {tgt.name} ({tgt.chip}): "
                               f"{tgt.no_silicon_reason}")
        if say is not None:
            say(f"emulator not run: {not_run['emulator']}")
    elif emulator:
        reason = emulator_status() or emulator_support_problem(graph)
        if reason is not None:
            not_run["emulator"] = reason
            if say is not None:
                say(f"emulator not run: {reason}")
    runs: dict[str, dict[str, np.ndarray]] = {}
    if model is not None:
        runs["torch"] = run_torch(hardware_exact_model(model, graph), graph, inputs, encoding)
    hw = HwSim.from_graph(graph).run(inputs)
    runs["hwsim"] = observables(graph, hw.spikes, hw.final_v)
    v_name = readout_v_name(graph)
    lava = run_on_lava_full(graph, inputs, read_v=(v_name,) if v_name else (), timeout_s=lava_timeout,
                            progress=progress)
    runs["lava"] = observables(graph, lava.spikes, lava.final_v)
    if emulator and "emulator" not in not_run:
        runs["emulator"] = observables(graph, *run_on_emulator(graph, inputs, timeout_s=emulator_timeout))
    result = compare(runs, list(runs["hwsim"]))
    result.not_run = not_run
    if emulator_expected is not None and "emulator" in runs:
        result.expected["emulator"] = emulator_expected
    return result


def counted_run(graph: Graph, mapping: Mapping, inputs: np.ndarray) -> tuple[Placement, DetailedCounts]:
    """The mapping's placement and the report's raw counts of ``inputs`` (hwsim/counts.py: one traced
    run of the torch engine, whose ``result`` is also the run's hwsim result)."""
    from snnc.compiler.placement import place
    from snnc.hwsim.counts import count

    tgt = mapping.target
    assert tgt is not None, "a mapping made by map_cores knows its target"
    placement = place(mapping, tgt)
    return placement, count(graph, mapping, placement, inputs)


def cost_sections(graph: Graph, mapping: Mapping, inputs: np.ndarray, activity: dict[str, Any],
                  cost_model: str = DEFAULT_COST_MODEL,
                  counted: tuple[Placement, DetailedCounts] | None = None) -> tuple[dict[str, Any], DetailedCounts]:
    """The report's energy, latency, per-sample and per-core sections under ``cost_model`` (a
    shipped name or a file), the ANN comparison, and the raw counts they were priced from
    (``counted``: :func:`counted_run` of these inputs, when the caller has it)."""
    from snnc.hwsim.energy import (UNPRICED_TARGET_NOTE, activity_distribution, ann_comparison, compared_models,
                                   energy_models, estimate, load_cost_model, target_mismatch)
    from snnc.models.readout import Readout

    tgt = mapping.target
    assert tgt is not None, "a mapping made by map_cores knows its target"
    placement, counts = counted if counted is not None else counted_run(graph, mapping, inputs)
    cm = load_cost_model(cost_model)
    readout = Readout.from_json(graph.meta.get("readout"))
    est = estimate(counts, mapping, placement, cm, readout, graph.output.name, tgt.cores_per_tile)
    # the same counts under the pre-silicon and the silicon-calibrated Loihi 1 models, side by side
    # (a target with no public per-operation table, Loihi 2, compares none)
    beside = [(m, est if m is cm else estimate(counts, mapping, placement, m, readout, graph.output.name,
                                                tgt.cores_per_tile)) for m in compared_models(cm, tgt.compared_cost_models)]
    note = None if tgt.compared_cost_models else (
        f"{tgt.chip} has no public per-operation cost model to compare with; only {cm.name} is shown")
    mismatch = target_mismatch(cm, tgt.name, tgt.chip)
    if mismatch is not None:          # a Loihi 1 table asked for explicitly on a Loihi 2 mapping: said first
        est["energy"]["target_mismatch"] = mismatch
        est["energy"]["caveats"] = [mismatch, *est["energy"]["caveats"]]
    if tgt.measured_context:
        est["energy"]["not_priced_for_target"] = UNPRICED_TARGET_NOTE.format(chip=tgt.chip)
        est["energy"]["measured_context"] = [dict(m) for m in tgt.measured_context]
    sections = {**est, "energy_models": energy_models(cm.name, beside, note),
                "activity_distribution": activity_distribution(counts),
                "comparison": ann_comparison(mapping, activity, load_cost_model(ANN_COST_MODEL)),
                "placement": placement.to_json()}
    return sections, counts


def build_report(graph: Graph, mapping: Mapping, inputs: np.ndarray, labels: np.ndarray | None,
                 verification: VerificationResult | None, findings: list[Any],
                 cost_model: str = DEFAULT_COST_MODEL) -> tuple[dict[str, Any], DetailedCounts]:
    """report.json: activity from hwsim, energy and latency under ``cost_model``, the mapping and
    placement, and the verification result; with the raw counts report.html draws."""
    from snnc.health import confusion, health_findings
    from snnc.hwsim.energy import activity_summary
    from snnc.hwsim.neurobench import neurobench_metrics
    from snnc.models.readout import Readout

    # one simulation serves the whole report: the counting run's result is what HwSim.run returns (the
    # engines agree bit for bit), so no second run, and no numba start-up in snn-compile without --verify
    placement, counts = counted_run(graph, mapping, inputs)
    result = counts.result
    assert result is not None
    activity = activity_summary(result)
    sections, counts = cost_sections(graph, mapping, inputs, activity, cost_model, counted=(placement, counts))
    for layer, pop in zip(activity["layers"], graph.populations()):   # the same order
        layer["recurrent"] = sorted(pop.recurrent)      # synapses inside a cycle (compiler/ir.py)
    tgt = mapping.target
    assert tgt is not None
    report: dict[str, Any] = {
        "target": graph.meta.get("target"),
        "target_limits": target_section(tgt, mapping),
        "activity": activity,
        **sections,
        "mapping": mapping.to_json(),
        "quantization": {"weight_scales": graph.meta.get("weight_scales"),
                         "weights_clipped": graph.meta.get("weights_clipped"),
                         "hardware_exact_training": graph.meta.get("hardware_exact")},
        "findings": [asdict(f) for f in findings],
        "verification": (verification.to_json() if verification is not None
                         else {"samples": 0, "mismatches": {}, "passed": None}),
    }
    report["neurobench"] = neurobench_metrics(graph, result, inputs, membrane_updates={
        lc.name: lc.membrane_updates for lc in counts.layers})      # v was traced by the counting run
    if labels is not None:
        pred = decisions(graph, result.spikes, result.final_v)
        report["accuracy"] = {"engine": "hwsim", "samples": int(len(labels)),
                              "value": float((pred == labels).mean())}
        readout = Readout.from_json(graph.meta.get("readout"))
        report["confusion"] = confusion(labels, pred, readout.classes(graph.output.size))
    report["health"], unwell = health_findings(graph, report, inputs, labels is None)   # silent, undecided, T vs depth
    report["findings"] += [asdict(f) for f in unwell]
    return report, counts


def target_section(tgt: Target, mapping: Mapping) -> dict[str, Any]:
    """report.json ``target_limits``: the target, every limit (value or None where not public, whether
    it is checked, its source) and the smallest board that holds the mapped chips."""
    from snnc.compiler.placement import board_for

    return {"name": tgt.name, "chip": tgt.chip, "system": tgt.system, "limits": tgt.limit_table(),
            "board": board_for(mapping.chips, tgt),
            "neuron_groups_per_core": 1 if tgt.neuron_groups_per_core is not None else None}


def write_html(report: dict[str, Any], counts: DetailedCounts, inputs: np.ndarray, mapping: Mapping,
               path: Path, title: str, helper: Helper | None = None) -> Job | None:
    """report.html beside report.json (see snnc.html_report); with ``helper``, written by the helper
    process (its :class:`~snnc.background.Job`)."""
    tgt = mapping.target
    assert tgt is not None
    args = (path, report, counts, inputs)
    kw = dict(title=title, cores_per_tile=tgt.cores_per_tile, mesh=tgt.mesh_tiles)
    if helper is not None:
        return helper.call("snnc.html_report:write_page", *args, **kw)
    from snnc.html_report import write_page

    write_page(*args, **kw)
    return None


def rebuild_report(path: str | Path, *, cost_model: str | None = None, samples: int | None = None,
                   html: Path | None = None) -> dict[str, Any]:
    """An artifact's report again, from its graph and recorded inputs, priced under ``cost_model``
    (default: the one report.json was priced with) on ``samples`` test samples (default: as many
    as report.json had); the verification result is kept from compile time. Writes report.html to
    ``html`` when given."""
    from snnc.compiler.artifact import load_artifact
    from snnc.compiler.mapping import map_cores
    from snnc.compiler.targets import get_target
    from snnc.inputs import sample_inputs

    art = load_artifact(path)
    old = art.report()
    if cost_model is None:
        e = old.get("energy") or {}
        cost_model = e.get("model", DEFAULT_COST_MODEL) if e.get("file", "(shipped)") == "(shipped)" else e["file"]
    n = samples or int((old.get("activity") or {}).get("samples") or 32)
    if n < 1:
        raise SnncError(f"--samples {n}: need at least 1 sample.")
    spec = dict(art.manifest["input"])
    inputs, labels = sample_inputs(spec, art.graph.input, n)
    mapping = map_cores(art.graph, get_target(art.manifest.get("target", "loihi")))
    verification = old.get("verification")
    report, counts = build_report(art.graph, mapping, inputs, labels, None, [], cost_model)
    if verification is not None:
        report["verification"] = verification
    for key in ("quantization", "numerics", "training"):   # made at compile time, from the model
        if key in old:
            report[key] = old[key]
    # the compile-time findings, then health measured again on these samples
    report["findings"] = [f for f in old.get("findings") or [] if not f.get("health")] + report["findings"]
    if html is not None:
        write_html(report, counts, inputs, mapping, html, title=Path(art.manifest.get("source", {}).get("path", path)).name)
    return report


def compile_model(model_path: str | Path, *, target: str = "loihi", out: str | Path | None = None,
                  verify: int = 0, allow_pickle_code_execution: bool = False, timesteps: int | None = None,
                  report_samples: int = 32, on_stage: Callable[[str], None] | None = None,
                  nir_convention: str = "auto", nir_dt: float | None = None,
                  cost_model: str | None = None, strict: bool = False,
                  lava_timeout: float | None = None, data_file: str | Path | None = None,
                  input_shape: tuple[int, ...] | None = None,
                  progress: Callable[[str, int, int], None] | None = None, emulator: bool = True,
                  background: bool | Helper | None = None) -> CompileResult:
    """Compile ``model_path`` (any file :func:`load_source` reads) to an artifact directory; with
    ``verify`` > 0, check that every engine agrees spike for spike. The report is priced under
    ``cost_model`` (a shipped name or a JSON/YAML file, checked before anything is compiled; None: the
    target's default, loihi1-davies2018 for loihi, loihi2-counts-only for loihi2; a Loihi 1 table asked for
    with --target loihi2 prices the counts but is labelled as Loihi 1's cost in the report).
    ``strict``: any numerical finding (:func:`assess_numerics`) or health finding (snnc.health: silent
    layers, undecided outputs, T too short for the depth) is an error, and nothing is written.
    ``lava_timeout``: seconds the Lava verification may take (None: Lava's default bound).
    ``data_file``: report, numerics and verification on this data file's samples (``--data FILE``);
    ``input_shape``: the input of a netx file without an input layer (``--input-shape``).
    ``progress(task, done, total)``: the stages done (task 'compile stages') and the Lava samples
    verified (task 'lava samples'), for snnc.progress. ``emulator``: False leaves nengo-loihi's
    emulator out of the verification (``--no-emulator``; the report's verification.not_run says so).
    ``background``: graph.onnx and report.html written by a helper process that imports onnx and
    matplotlib while this one loads torch and compiles (snnc.background; same bytes); None (default):
    where that pays, i.e. while this process has not imported them (a command's first compile); or a
    started :class:`~snnc.background.Helper` (snn-compile starts one before its imports)."""
    from snnc.background import Helper
    from snnc.compiler.artifact import manifest, sha256, staged_directory, write_json
    from snnc.compiler.mapping import map_cores, target_findings
    from snnc.compiler.netx_hdf5 import netx_limitation
    from snnc.compiler.passes import check, quantize
    from snnc.compiler.sources import load_source
    from snnc.compiler.targets import get_target
    from snnc.health import refuse_health_findings, training_section
    from snnc.hwsim.energy import load_cost_model
    from snnc.inputs import data_file_spec, input_code, input_spec, sample_inputs
    from snnc.lazy import imported

    if background is None:       # where it pays: this process has not imported onnx and matplotlib yet
        background = not (imported("onnx") and imported("matplotlib"))
    with (contextlib.nullcontext(background) if isinstance(background, Helper)
          else Helper(enabled=background)) as helper:
        say = on_stage or (lambda _msg: None)
        stages = [0, 6 + (verify > 0)]

        def stage_done() -> None:
            stages[0] += 1
            if progress is not None:
                progress("compile stages", min(stages[0], stages[1]), stages[1])
        tgt = get_target(target)
        cost_model = tgt.default_cost_model if cost_model is None else cost_model
        load_cost_model(cost_model)
        model_path = Path(model_path)
        src = load_source(model_path, allow_pickle_code_execution=allow_pickle_code_execution,
                          nir_convention=nir_convention, nir_dt=nir_dt, input_shape=input_shape)
        for note in src.notes:
            say(note)
        stage_done()    # read
        model = src.model
        qgraph = src.graph if src.graph.is_fixed_point else quantize(src.graph, tgt)
        findings = check(qgraph, tgt)
        mapping = map_cores(qgraph, tgt)
        findings += target_findings(qgraph, mapping, tgt)   # graded input on binary-spike silicon, delay slots, ...
        stage_done()    # quantized, checked, mapped
        encoding = model.input_encoding if model is not None else None
        spec = {**input_spec(src.metadata, timesteps, encoding, data_file), "shape": list(qgraph.input.shape)}
        if spec.get("data_file"):
            spec = data_file_spec(spec, qgraph.input, str(model_path),
                                  adopt_timesteps=timesteps is None and not src.metadata.get("timesteps"))
        out_dir = Path(out) if out is not None else model_path.with_name(f"{model_path.stem}.{tgt.name}")
        say(f"compiled {len(mapping.layers)} populations onto {mapping.cores} cores")
        if spec.get("data_file"):
            say(f"report inputs: {spec['data_file']} ({'its test part' if spec.get('data_split') == 'test' else 'x_test/y_test if it has them, else x/y'}, "
                f"{spec['data_layout']})")
        elif not spec.get("dataset"):
            say(f"report inputs: random spikes ({model_path} records no dataset); pass --data FILE for real ones")
        inputs, labels = sample_inputs(spec, qgraph.input, max(report_samples, verify), network=str(model_path))
        stage_done()    # samples loaded
        numerics, agreement, found = assess_numerics(src.graph, qgraph, tgt, inputs)
        findings += found
        # before anything is written or verified: --strict refuses health findings (snnc.health) too
        report, counts = build_report(qgraph, mapping, inputs, labels, None, findings, cost_model)
        if src.kind == "checkpoint" and (training := training_section(model_path, src.metadata, say)):
            report["training"] = training      # snn-train's MODEL.log.json: the epoch curves
        if strict:
            refuse_numerical_findings(findings, model_path, src.kind, src.graph.meta.get("hardware_exact"))
            refuse_health_findings(report["findings"], model_path)
        stage_done()    # numerics and the report's counts
        report["numerics"] = numerics
        if agreement is not None:
            report["quantization"]["float_agreement"] = agreement
        with staged_directory(out_dir, on_error=helper.abort) as tmp:
            page_job = None
            if verify == 0:     # the report is complete: the page is drawn while the graph files are written
                page_job = write_html(report, counts, inputs, mapping, tmp / HTML_REPORT_FILE,
                                      title=model_path.name, helper=helper)
            files, onnx_job = _write_graph_files(qgraph, tmp, spec["timesteps"], helper)
            stage_done()    # graph files written and read back
            netx = (f"written: {NETWORK_FILE}" if NETWORK_FILE in files
                    else f"not written: {netx_limitation(qgraph)}")
            code = input_code(spec)
            if verify > 0:
                engines = "torch, hwsim and Lava" if model is not None else "hwsim and Lava"
                say(f"verifying {verify} samples on {engines}"
                    + (" (and nengo-loihi's Loihi emulator where it can run)" if emulator else ""))
                silicon = numerics.get("silicon") or {}
                expected = (None if silicon.get("verdict") != "diverges" else
                            f"the run enters regimes where Lava's model and the silicon-tested semantics differ, in "
                            f"layer(s) {', '.join(silicon['layers_diverging'])} (report.json numerics.silicon)")
                verification = verify_engines(model, qgraph, sample_inputs(spec, qgraph.input, verify, str(model_path))[0], code,
                                              lava_timeout=lava_timeout, progress=progress, say=say,
                                              emulator_expected=expected, emulator=emulator, target=tgt)
                stage_done()    # verified
                if not verification.passed:
                    raise VerificationError(verification.describe_failure())
                report["verification"] = verification.to_json()
                page_job = write_html(report, counts, inputs, mapping, tmp / HTML_REPORT_FILE,
                                      title=model_path.name, helper=helper)
            write_json(tmp / REPORT_FILE, report)
            source = {"path": str(model_path), "kind": src.kind, "sha256": sha256(model_path),
                      "metadata": src.metadata, "notes": src.notes}
            files = _digest_when_done(files, tmp, ONNX_FILE, onnx_job)
            if page_job is not None:
                page_job.result()
            write_json(tmp / MANIFEST_FILE, manifest(qgraph, target=tgt.name, input_spec=spec, files=files,
                                                     source=source, netx=netx))
        stage_done()    # report, page and manifest in place
        return CompileResult(out_dir.resolve(), report)


def _write_graph_files(qgraph: Graph, where: Path, timesteps: int, helper: Helper) -> tuple[dict[str, str], Job]:
    """graph.h5, graph.nir, graph.onnx and (when netx can hold the graph) network.net, each read back
    and checked equal to what was written -> (their sha256 digests, the ONNX job): graph.onnx is
    written by ``helper`` (snnc.background: on the second core, with onnx imported there), the others
    here meanwhile; its digest goes in once the job is done (:func:`_digest_when_done`)."""
    from snnc.compiler.artifact import sha256
    from snnc.compiler.graph_file import read_graph, write_graph
    from snnc.compiler.netx_hdf5 import netx_limitation, read_netx, write_netx
    from snnc.compiler.nir_io import read_nir, write_nir

    onnx_job = helper.call("snnc.compiler.onnx_io:write_checked", qgraph, where / ONNX_FILE)
    write_graph(qgraph, where / GRAPH_FILE)
    check_round_trip(qgraph, read_graph(where / GRAPH_FILE), GRAPH_FILE)
    write_nir(qgraph, where / NIR_FILE)
    check_round_trip(qgraph, read_nir(where / NIR_FILE).graph, NIR_FILE)
    files = {name: sha256(where / name) for name in (GRAPH_FILE, NIR_FILE)}
    if netx_limitation(qgraph) is None:
        write_netx(qgraph, where / NETWORK_FILE, timesteps)
        check_round_trip(qgraph, read_netx(where / NETWORK_FILE), NETWORK_FILE)
        files[NETWORK_FILE] = sha256(where / NETWORK_FILE)
    return files, onnx_job


def _digest_when_done(files: dict[str, str], where: Path, name: str, job: Job) -> dict[str, str]:
    """``files`` with ``name``'s digest, after its helper job (its error raised here)."""
    from snnc.compiler.artifact import sha256

    job.result()
    return {**files, name: sha256(where / name)}


def assess_numerics(float_graph: Graph, qgraph: Graph, target: Target, inputs: np.ndarray
                    ) -> tuple[dict[str, Any], dict[str, float] | None, list[Finding]]:
    """Where the compiled network stops computing the model (snnc.compiler.numerics): per layer the
    quantization effects, the state range observed on ``inputs`` and where Lava and silicon part on
    them (snnc.hwsim.divergence; both from one pass), the float agreement (for a float model, not
    for one trained with these integers) and the findings they make."""
    from snnc.compiler.numerics import numeric_findings, quantization_effects
    from snnc.hwsim.divergence import silicon_summary, unchecked_layer
    from snnc.hwsim.headroom import observe

    effects = quantization_effects(float_graph, qgraph, target)
    ranges, checks = observe(qgraph, inputs)
    state = {name: r.to_json() for name, r in ranges.items()}
    # the silicon regimes are Loihi 1 evidence: a target without that reference (loihi2) is "unchecked"
    why = None if target.silicon_reference is not None else target.no_silicon_reason
    silicon = {name: c.to_json() if why is None else unchecked_layer(c, why) for name, c in checks.items()}
    float_model = bool(effects) and not all(e["in_model"] for e in effects.values())
    agreement = float_agreement(float_graph, qgraph, inputs) if float_model else None
    layers = {name: {"quantization": effects.get(name), "state": st, "silicon": silicon[name]}
              for name, st in state.items()}
    return ({"samples": int(len(inputs)), "layers": layers, "silicon": silicon_summary(checks, why)},
            agreement, numeric_findings(effects, state, agreement, target, silicon))


def refuse_numerical_findings(findings: list[Finding], source: Path, kind: str | None = None,
                              hardware_exact: bool | None = None) -> None:
    """``--strict``: StrictModeError listing every numerical finding, if there is any; the advice fits
    where the model came from (``kind``: Source.kind; ``hardware_exact``: graph.meta['hardware_exact'])."""
    numerical = [f for f in findings if f.numerical]
    if numerical:
        raise StrictModeError(
            f"{source}: --strict: the compiled network would not compute exactly what the model computes "
            f"({len(numerical)} finding(s)); nothing was written:\n" +
            "\n".join(f"  [{f.rule}] {f.message}" for f in numerical) +
            f"\n{_strict_advice(numerical, kind, hardware_exact)}, or compile without --strict to accept these "
            f"differences (they are listed in report.json).")


def _strict_advice(numerical: list[Finding], kind: str | None, hardware_exact: bool | None) -> str:
    """What removes --strict's findings, for this source: retraining helps only where rounding did it."""
    rounding = any(f.rule not in ("state_overflow", "silicon_divergence") for f in numerical)
    if kind == "checkpoint" and hardware_exact is False and rounding:
        return ("The model was trained in float (snn-train --float, or hardware_exact=False): retrain it without "
                "--float (hardware-exact training on the chip's integers is the default, docs/rules.md), lower the "
                "weights")
    if kind == "checkpoint" and hardware_exact is False:
        return "Lower the weights or the layers' weight_scale (or retrain without --float, docs/rules.md)"
    if kind in ("nir",) and rounding:
        return ("The NIR graph holds float weights and thresholds, rounded here to the chip's integers: train the "
                "network with snn-train (hardware-exact by default, docs/rules.md) or quantization-aware in its "
                "own library, lower the weights")
    return ("Lower the weights or the layers' weight_scale (the state leaves the chip's 24-bit registers)"
            if any(f.rule == "state_overflow" for f in numerical) else "Follow each finding's 'What to do'")


def float_agreement(float_graph: Graph, qgraph: Graph, inputs: np.ndarray) -> dict[str, float]:
    """Per population, the fraction of (sample, step, neuron) spikes on which the compiled network
    equals the float graph it came from: how much quantization changed an imported network."""
    from snnc.hwsim.reference import run_float
    from snnc.hwsim.sim import HwSim

    ref = run_float(float_graph, inputs.astype(np.float64))
    hw = HwSim.from_graph(qgraph).run(inputs)
    return {name: float((ref.spikes[name] == hw.spikes[name]).mean()) for name in hw.spikes}


def run_artifact(path: str | Path, *, backend: str, dataset: str | None, samples: int,
                 data_dir: str | Path | None = None, workers: int = 1, device: str = "cpu",
                 shard: tuple[int, int] | None = None, lava_timeout: float | None = None,
                 data_file: str | Path | None = None, progress: Callable[[str, int, int], None] | None = None,
                 started: float | None = None) -> dict[str, Any]:
    """Run ``samples`` test samples through an artifact on ``backend``; accuracy and throughput.
    ``data_file`` (``--data FILE``) runs that file's samples (x_test/y_test if it has them, else x/y).

    hwsim runs on ``device`` (the numba engine on the CPU, the torch engine elsewhere), split over
    ``workers`` processes on the CPU. ``shard`` = (k, n) keeps the k-th of n equal parts of the
    samples, so that n machines can share a test set and add their ``correct`` counts.
    ``progress(task, done, total)`` hears the samples done (snnc.progress). ``started``: the
    ``time.perf_counter()`` the caller's wait began (a command: its process start), so that
    ``startup_s`` (all but the simulation) and ``wall_s`` (everything) count what the user waited.
    """
    from snnc.compiler.artifact import load_artifact
    from snnc.hwsim.parallel import HwSimPool, shard_range, warm_up
    from snnc.hwsim.sim import HwSim
    from snnc.inputs import DATA_FILE_DATASET, data_file_spec, sample_inputs

    t0 = time.perf_counter() if started is None else started
    art: Artifact = load_artifact(path)
    spec = dict(art.manifest["input"])
    if dataset and data_file:
        raise SnncError(f"--dataset {dataset} and --data {data_file}: give one of them.")
    if dataset or data_file:
        for key in ("data_file", "data_split", "data_layout", "data_sha256"):
            spec.pop(key, None)
    if dataset:
        spec["dataset"] = dataset
    if data_dir:
        spec["data_dir"] = str(data_dir)
    if data_file:
        spec.update(dataset=DATA_FILE_DATASET, data_file=str(Path(data_file).expanduser().resolve()), data_split="eval")
        spec = data_file_spec(spec, art.graph.input, str(path))
    inputs, labels = sample_inputs(spec, art.graph.input, samples, network=str(path))
    if shard is not None:
        part = shard_range(len(inputs), *shard)
        inputs, labels = inputs[part.start:part.stop], None if labels is None else labels[part.start:part.stop]
    result: dict[str, Any] = {"backend": backend}
    if backend == "hwsim":
        engine = "numba" if device == "cpu" else "torch"
        keep = {art.graph.output.name}     # all that decisions() reads: a whole test set fits in memory
        with contextlib.ExitStack() as stack:
            if device == "cpu":     # start (and warm) the workers before the clock starts
                run = partial(stack.enter_context(HwSimPool(art.graph, workers=workers, engine=engine)).run, keep=keep,
                              progress=progress)
                from snnc.hwsim.fast import uses_torch

                if uses_torch(art.graph, len(inputs), inputs.shape[1]):
                    importlib.import_module("torch")    # start-up: the run's GEMMs are torch's (hwsim/fast.py)
            else:
                warm_up(art.graph, engine, device)
                run = partial(HwSim.from_graph(art.graph).run, engine=engine, device=device, keep=keep)
            startup = time.perf_counter() - t0
            t1 = time.perf_counter()
            res = run(inputs)
            pred = decisions(art.graph, res.spikes, res.final_v)
            elapsed = time.perf_counter() - t1
        result.update(engine=engine, device=device, workers=workers)
    elif backend == "lava":
        startup = time.perf_counter() - t0
        t1 = time.perf_counter()
        from snnc.runtime.lava_backend import run_on_lava_full

        v_name = readout_v_name(art.graph)
        lava = run_on_lava_full(art.graph, inputs, read_v=(v_name,) if v_name else (),
                                record=(art.graph.output.name,),    # all decisions() reads: no sink per layer
                                timeout_s=lava_timeout, progress=progress)
        pred = decisions(art.graph, lava.spikes, lava.final_v)
        stats = lava.stats
        elapsed = stats.run_s + stats.read_s          # simulation and read-back of every sample
        startup += time.perf_counter() - t1 - elapsed  # building, compiling, spawning and stopping Lava
    else:
        raise SnncError(f"unknown backend '{backend}': use hwsim or lava.")
    result.update({"samples": int(len(inputs)), "timesteps": art.timesteps,
                   "samples_per_s": len(inputs) / elapsed if elapsed > 0 else None,
                   "startup_s": startup, "run_s": elapsed, "accuracy": None, "correct": None})
    if shard is not None:
        result["shard"] = f"{shard[0]}/{shard[1]}"
    if labels is not None:
        result["correct"] = int((pred == labels).sum())
        result["accuracy"] = result["correct"] / max(1, len(labels))
        result["dataset"] = spec["dataset"]
        if spec.get("data_file"):
            result["data_file"] = spec["data_file"]
    result["wall_s"] = time.perf_counter() - t0
    return result
