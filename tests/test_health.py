"""Dead and doomed networks are flagged (silent layers, undecided outputs, T too short for the depth),
--strict refuses them, training warns when it is not learning, and the report carries the training
curves and the confusion matrix (issue 18)."""
from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import make_model
from html_helpers import Page
from snnc.cli import compile_main, report_main, train_main
from snnc.compiler.ir import CubaLIF, Dense, Graph, Input, Output
from snnc.errors import StrictModeError
from snnc.health import DEPTH_FACTOR, UNDECIDED_LIMIT, synaptic_depth, training_section
from snnc.models.checkpoint import save
from snnc.models.datasets import load_dataset
from snnc.models.network import mlp
from snnc.models.train import TrainingWarning, train
from snnc.pipeline import compile_model
from snnc.report import render


def _compile(tmp: Path, sizes=(64, 32, 32, 10), gain: float = 3.0, timesteps: int = 12, **kw):
    path = tmp / "model.pt"
    save(make_model(sizes, gain=gain), path, metadata={"dataset": "digits", "timesteps": timesteps})
    return path, compile_model(path, out=tmp / "build", report_samples=8, **kw)


def _health(report: dict) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for f in report["findings"]:
        if f["health"]:
            out.setdefault(f["rule"], []).append(f)
    return out


# --- depth ---------------------------------------------------------------------------------------------

def _lif(name: str, n: int) -> CubaLIF:
    return CubaLIF(name, n, 0.5, 0.2, 1.0)


def test_depth_is_the_longest_synaptic_path() -> None:
    """A skip connection does not shorten the path: the output is as deep as its longest branch."""
    w = lambda o, i: np.ones((o, i))    # noqa: E731
    nodes = [Input("in", (4,)), Dense("d1", w(3, 4)), _lif("a", 3), Dense("d2", w(3, 3)), _lif("b", 3),
             Dense("d3", w(2, 3)), Dense("skip", w(2, 4)), _lif("out", 2), Output("o")]
    edges = [("in", "d1"), ("d1", "a"), ("a", "d2"), ("d2", "b"), ("b", "d3"), ("d3", "out"),
             ("in", "skip"), ("skip", "out"), ("out", "o")]
    assert synaptic_depth(Graph.build(nodes, edges)) == {"a": 1, "b": 2, "out": 3}


def test_the_output_first_responds_at_step_depth_plus_one() -> None:
    """What the finding says about delays, measured: input from step 1 on reaches the population d
    synapses away at step d + 1 (each Dense delays one step)."""
    from snnc.compiler.frontend import graph_from_module
    from snnc.compiler.passes import quantize
    from snnc.compiler.targets import get_target
    from snnc.hwsim.sim import HwSim

    graph = quantize(graph_from_module(make_model((16, 16, 16, 16, 4), gain=20.0)), get_target("loihi"))
    res = HwSim.from_graph(graph).run(np.ones((1, 8, 16), dtype=bool))
    for name, d in synaptic_depth(graph).items():
        first = int(np.argmax(res.spikes[name][0].any(axis=1))) + 1
        assert res.spikes[name][0].any() and first == d + 1, (name, d, first)


# --- the health findings at compile time -------------------------------------------------------------

def test_a_dead_network_is_flagged_and_strict_refuses_it(tmp_path: Path) -> None:
    """Zero weights: every layer silent, every sample tied; each finding names the layer, its size,
    what feeds it and what helps; --strict writes nothing."""
    path, res = _compile(tmp_path, gain=0.0)
    found = _health(res.report)
    silent = found["silent_layer"]
    assert [f["node"] for f in silent] == ["lif1", "lif2", "lif3"] == res.report["health"]["silent_layers"]
    first = silent[0]["message"]
    assert "'lif1' (32 neurons)" in first and "fed by the input (64 lines" in first and "its weights" in first
    assert "'lif2' (32 neurons, silent too)" in silent[2]["message"]
    assert all("snn-train" in f["message"] and "--timesteps" in f["message"] for f in silent)
    tied = found["undecided_output"][0]
    assert res.report["health"]["undecided_fraction"] == 1.0 >= UNDECIDED_LIMIT
    assert "8 of 8 samples (100%)" in tied["message"] and tied["node"] == "lif3"
    assert all(not f["numerical"] for f in res.report["findings"] if f["health"])
    out = tmp_path / "strict"
    with pytest.raises(StrictModeError, match=r"--strict.*3 silent|nothing was written") as err:
        compile_model(path, out=out, report_samples=8, strict=True)
    assert "[silent_layer] layer 'lif1'" in str(err.value) and "[undecided_output]" in str(err.value)
    assert not out.exists() and not list(tmp_path.glob(".strict*"))


def test_a_live_network_has_no_health_findings_and_passes_strict(tmp_path: Path) -> None:
    _, res = _compile(tmp_path, sizes=(64, 32, 10), timesteps=12, strict=True)
    assert not _health(res.report) and res.report["health"]["silent_layers"] == []
    assert res.report["health"]["undecided_fraction"] < UNDECIDED_LIMIT


def test_a_membrane_readout_is_not_a_silent_layer(tmp_path: Path) -> None:
    """The integrator never spikes by design; random input (no dataset) is said to be random."""
    from snnc.models.readout import Readout

    path = tmp_path / "model.pt"
    save(make_model((64, 32, 10), readout=Readout("membrane")), path, metadata={"timesteps": 12})
    rep = compile_model(path, out=tmp_path / "build", report_samples=8).report
    assert rep["activity"]["layers"][-1]["spikes"] == 0 and rep["health"]["silent_layers"] == []
    assert rep["health"]["random_inputs"] and "confusion" not in rep
    dead = tmp_path / "dead.pt"
    save(make_model((64, 32, 10), gain=0.0, readout=Readout("membrane")), dead, metadata={"timesteps": 12})
    rep = compile_model(dead, out=tmp_path / "dead", report_samples=8).report
    found = _health(rep)
    assert [f["node"] for f in found["silent_layer"]] == ["lif1"]       # not the integrator 'lif2'
    assert "random input spikes" in found["silent_layer"][0]["message"]


@pytest.mark.parametrize("timesteps", [5, 12])
def test_timesteps_short_for_the_depth_are_flagged(tmp_path: Path, timesteps: int) -> None:
    _, res = _compile(tmp_path, sizes=(64, 32, 32, 10), timesteps=timesteps)
    need = math.ceil(DEPTH_FACTOR * 3)
    found = _health(res.report).get("timesteps_below_depth", [])
    assert res.report["health"]["depth"] == 3 and res.report["health"]["first_output_step"] == 4
    if timesteps >= need:
        assert found == []
        return
    msg = found[0]["message"]
    assert f"T={timesteps}" in msg and "3 synapses deep" in msg and "earliest at step 4" in msg
    assert f"only {timesteps - 3} of the {timesteps} input steps" in msg and f"--timesteps {need}" in msg


def test_pass_does_not_read_as_all_is_well(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The terminal and the page say the engines agree, and that the network does not work."""
    _, res = _compile(tmp_path, gain=0.0)
    report = dict(res.report, verification={"samples": 4, "timesteps": 12, "engines": ["hwsim", "lava"],
                                            "mismatches": {"hwsim-lava": {"lif1": 0}}, "passed": True})
    render(report)
    out = " ".join(capsys.readouterr().out.split())
    assert "Verification PASS" in out and "but 3 layers are silent" in out and "see the findings below" in out
    assert out.rindex("[silent_layer]") > out.index("Caveats")      # the findings come last
    page = (res.out / "report.html").read_text()
    assert 'id="findings"' in page and 'id="health"' in page and "3 layers are silent" in page
    assert page.index('id="findings"') < page.index('id="layers"')   # before the tables


@pytest.mark.slow
def test_cli_verify_on_a_dead_network(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The user's report: snn-compile --verify said 'Verification PASS' on three silent layers."""
    path = tmp_path / "model.pt"
    save(make_model((64, 32, 32, 10), gain=0.0), path, metadata={"dataset": "digits", "timesteps": 12})
    assert compile_main([str(path), "--verify", "2", "--out", str(tmp_path / "b")]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "Verification PASS" in out and "The engines agree, but 3 layers are silent" in out
    rep = json.loads((tmp_path / "b" / "report.json").read_text())
    assert {f["rule"] for f in rep["findings"] if f["health"]} >= {"silent_layer", "undecided_output"}


# --- training curves and the confusion matrix --------------------------------------------------------

def _log(path: Path, out: str, epochs: int = 3) -> None:
    rows = [{"epoch": e, "loss": 0.3 / e, "train_accuracy": 0.5 + 0.1 * e, "test_accuracy": 0.45 + 0.1 * e,
             "samples_per_s": 1000.0} for e in range(1, epochs + 1)]
    path.with_suffix(".log.json").write_text(json.dumps(
        {"config": {"out": out, "dataset": "digits", "timesteps": 12, "lr": 0.005, "device": "cpu"}, "epochs": rows}))


def _trained_artifact(tmp: Path) -> tuple[Path, Path]:
    path = tmp / "model.pt"
    save(make_model((64, 32, 10)), path, metadata={"dataset": "digits", "timesteps": 12, "epochs": 3})
    _log(path, f"/elsewhere/{path.name}")
    return path, compile_model(path, out=tmp / "build", report_samples=16).out


def test_training_curves_and_confusion_in_report_and_page(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path, art = _trained_artifact(tmp_path)
    rep = json.loads((art / "report.json").read_text())
    log = json.loads(path.with_suffix(".log.json").read_text())
    assert [e["loss"] for e in rep["training"]["epochs"]] == [e["loss"] for e in log["epochs"]]
    assert rep["training"]["log"] == "model.log.json" and "out" not in rep["training"]["config"]
    assert "device" not in rep["training"]["config"] and rep["training"]["config"]["lr"] == 0.005
    m = np.asarray(rep["confusion"]["matrix"])
    assert m.shape == (10, 10) and m.sum() == rep["confusion"]["samples"] == 16
    assert np.trace(m) / m.sum() == pytest.approx(rep["accuracy"]["value"])
    page = Page()
    page.feed((art / "report.html").read_text())
    assert {"training", "confusion"} <= page.ids and page.external == [] and "script" not in page.tags
    assert page.tags.get("image", 0) == 0 and page.tags["svg"] >= 7     # vector charts, no embedded bitmaps
    # snn-report keeps the training curves and redoes the confusion matrix on its samples
    assert report_main([str(art), "--json", "--no-html", "--samples", "8"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["training"] == rep["training"] and np.asarray(again["confusion"]["matrix"]).sum() == 8
    assert [f for f in again["findings"] if not f["health"]] == [f for f in rep["findings"] if not f["health"]]


def test_same_artifact_with_training_gives_the_same_page(tmp_path: Path) -> None:
    _, a = _trained_artifact(tmp_path / "a")
    _, b = _trained_artifact(tmp_path / "b")
    for name in ("report.html", "report.json"):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name


@pytest.mark.parametrize("case", ["other run", "other epoch", "damaged", "not a dict"])
def test_a_log_that_is_not_this_checkpoints_is_left_out(tmp_path: Path, case: str) -> None:
    path = tmp_path / "model.pt"
    path.write_bytes(b"")
    log = path.with_suffix(".log.json")
    if case == "other run":
        _log(path, "runs/other.pt")
    elif case == "other epoch":
        _log(path, "model.pt", epochs=2)
    elif case == "damaged":
        log.write_text('{"config": {"out": "model.pt"}, "epochs": [{"loss": 1}')
    else:
        log.write_text('{"config": {"out": "model.pt"}, "epochs": [[1, 2]]}')
    notes: list[str] = []
    assert training_section(path, {"epochs": 3}, notes.append) is None
    assert len(notes) == 1 and str(log) in notes[0] and "no training curves" in notes[0]


# --- training warnings --------------------------------------------------------------------------------

def _dead_model(classes: int = 10) -> torch.nn.Module:
    torch.manual_seed(0)
    model = mlp(64, classes, hidden=(32,), hardware_exact=True)
    with torch.no_grad():
        for layer in model.layers:
            layer.weight.zero_()
    model.refit_formats()
    return model


def test_training_a_dead_network_warns_once_per_kind() -> None:
    data = load_dataset("digits", "train", 0, timesteps=5)
    heard: list[tuple[str, str]] = []
    train(_dead_model(), data, epochs=2, timesteps=5, max_steps=4, min_rate=0,
          on_warning=lambda kind, msg: heard.append((kind, msg)))
    assert sorted(k for k, _ in heard) == ["loss_flat", "output_silent"]
    msgs = dict(heard)
    assert "epoch 1" in msgs["loss_flat"] and "0.5000" in msgs["loss_flat"] and "chance" in msgs["loss_flat"]
    for m in msgs.values():
        assert "--lr" in m and "--readout membrane" in m and "--timesteps" in m and "--encoding" in m
    with pytest.warns(TrainingWarning) as caught:        # the API without a callback: Python warnings
        train(_dead_model(), data, epochs=1, timesteps=5, max_steps=4, min_rate=0)
    assert sorted(str(w.message).split(":")[0] for w in caught) == ["epoch 1", "epoch 1, step 1"]
    assert all(w.filename == __file__ for w in caught)     # attributed to the caller of train()


def test_a_learning_network_does_not_warn() -> None:
    data = load_dataset("digits", "train", 0, timesteps=8)
    torch.manual_seed(0)
    model = mlp(64, 10, hidden=(32,), hardware_exact=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error", TrainingWarning)
        logs = train(model, data, epochs=2, timesteps=8, max_steps=6)
    assert logs[-1].loss < logs[0].loss


def test_snn_train_prints_its_warnings(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """T=2 for a 2-synapse MLP: its output can first spike at step 3, so nothing can be learnt."""
    out = tmp_path / "m.pt"
    assert train_main(["--dataset", "digits", "--timesteps", "2", "--epochs", "2", "--max-steps", "4",
                       "--out", str(out)]) == 0
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.startswith("snn-train: warning:")]
    assert len(lines) == 3 and any("not learning" in ln for ln in lines), err
    assert any("decided nothing" in ln for ln in lines)
    # said before the first step, from the model's graph: depth 2 wants T >= 6
    assert "short for a network 2 synapses deep" in lines[0] and "--timesteps 6 or more" in lines[0]


def test_snn_train_at_enough_timesteps_says_nothing_of_depth(tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    assert train_main(["--dataset", "digits", "--timesteps", "6", "--epochs", "1", "--max-steps", "2",
                       "--out", str(tmp_path / "m.pt")]) == 0
    assert "synapses deep" not in capsys.readouterr().err
