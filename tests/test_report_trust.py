"""The trust sections of the report as a reader sees them: the second reference engine (or why it
did not run), the Lava-vs-silicon verdict, both cost models and NeuroBench's metrics, in the terminal
report and on report.html, each showing the numbers report.json holds."""
from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from rich.console import Console

from html_helpers import Page
from snnc.html_report import si
from snnc.pipeline import compile_model
from snnc.report import render


def _text(report: dict) -> str:
    buf = io.StringIO()
    render(report, Console(file=buf, width=200, color_system=None))
    return buf.getvalue()


def _page(path: Path) -> tuple[Page, str]:
    html = path.read_text(encoding="utf-8")
    page = Page()
    page.feed(html)
    return page, " ".join(" ".join(page.text).split())


@pytest.mark.slow
def test_report_shows_every_engine_both_cost_models_silicon_and_neurobench(model_path: Path, tmp_path: Path) -> None:
    res = compile_model(model_path, out=tmp_path / "a", verify=2, report_samples=8)
    r = json.loads((res.out / "report.json").read_text())
    assert r["verification"]["engines"] == ["torch", "hwsim", "lava", "emulator"] and r["verification"]["passed"]
    text = _text(r)
    page, words = _page(res.out / "report.html")
    # the emulator's pairs are in the verification line and table
    assert "lava-emulator: 0" in text and "hwsim-emulator" in words
    # both cost models with their own figures
    em = r["energy_models"]
    assert set(em["models"]) == {"loihi1-davies2018", "loihi1-sanafe2025"} and em["primary"] == "loihi1-davies2018"
    assert "energy-models" in page.ids
    for name, m in em["models"].items():
        assert name in text and name in words
        assert si(m["dynamic_j"], "J") in text and si(m["dynamic_j"], "J") in words
        assert si(m["latency_per_step_s"], "s") in words
    # the silicon verdict: this network enters no diverging regime
    assert r["numerics"]["silicon"]["verdict"] == "agrees"
    assert "Lava vs silicon-tested semantics (nengo-loihi's emulator): agrees" in text
    assert "silicon" in page.ids and all(g["what"] in words for g in r["numerics"]["silicon"]["regimes"])
    # NeuroBench's numbers as report.json holds them
    m = r["neurobench"]["metrics"]
    assert f"footprint {m['Footprint']:,} B" in text
    assert f"{m['SynapticOperations']['Effective_ACs']:,.1f} ACs" in text and f"{m['ActivationSparsity']:.4f}" in words
    assert "nb-footprint" in page.ids and f"{m['Footprint']:,} B" in words


@pytest.mark.slow
def test_report_says_why_the_emulator_did_not_run(model_path: Path, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SNNC_EMULATOR_PYTHON", str(tmp_path / "no-such-python"))
    res = compile_model(model_path, out=tmp_path / "a", verify=1, report_samples=4)
    v = res.report["verification"]
    assert v["engines"] == ["torch", "hwsim", "lava"] and v["passed"]
    why = v["not_run"]["emulator"]
    assert "no-such-python" in why
    assert f"emulator: not run: {why}" in _text(res.report)
    page, words = _page(res.out / "report.html")
    assert "not-run-emulator" in page.ids and why in words


@pytest.mark.slow
def test_no_emulator_leaves_it_out_and_says_so(model_path: Path, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    from snnc.cli import compile_main

    assert compile_main([str(model_path), "--verify", "1", "--no-emulator", "--out", str(tmp_path / "a")]) == 0
    out = " ".join(capsys.readouterr().out.split())
    v = json.loads((tmp_path / "a" / "report.json").read_text())["verification"]
    assert v["engines"] == ["torch", "hwsim", "lava"] and v["not_run"] == {"emulator": "left out (--no-emulator)"}
    assert "verifying 1 samples on torch, hwsim and Lava " in out and "Loihi emulator where" not in out
    assert "emulator: not run: left out (--no-emulator)" in out
