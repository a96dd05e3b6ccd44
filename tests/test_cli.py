"""The four commands as a user runs them: the happy path with real Lava, and every bad input."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from snnc.cli import compile_main, report_main, run_main, train_main
from snnc.models.checkpoint import save

from conftest import make_model

BIN = Path(sys.executable).parent


def _cli(name: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / name), *args], capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_train_compile_verify_run_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = tmp_path / "model.pt"
    assert train_main(["--dataset", "digits", "--arch", "mlp", "--rule", "stbp-rect", "--epochs", "1",
                       "--max-steps", "5", "--hidden", "32", "--timesteps", "12", "--out", str(model)]) == 0
    assert "saved" in capsys.readouterr().out
    build = tmp_path / "build"
    proc = _cli("snn-compile", str(model), "--target", "loihi", "--out", str(build), "--verify", "6")
    assert proc.returncode == 0, proc.stderr
    assert "Verification PASS" in proc.stdout
    report = json.loads((build / "report.json").read_text())
    v = report["verification"]
    assert v["samples"] == 6 and v["passed"] is True and v["engines"] == ["torch", "hwsim", "lava", "emulator"]
    assert set(v["mismatches"]) == {"torch-hwsim", "torch-lava", "hwsim-lava", "torch-emulator", "hwsim-emulator",
                                   "lava-emulator"}
    assert all(n == 0 for per in v["mismatches"].values() for n in per.values())
    assert all(v["spikes"]["lava"][layer] > 0 for layer in ("lif1", "lif2"))  # compared real activity
    assert report["activity"]["synops"] > 0 and report["energy"]["total_j"] > 0
    assert report["latency"]["per_step_s"] > 0 and report["energy"]["model"] == "loihi1-davies2018"

    capsys.readouterr()
    assert run_main([str(build), "--backend", "hwsim", "--samples", "50", "--json"]) == 0
    hw = json.loads(capsys.readouterr().out)
    assert hw["samples"] == 50 and 0 <= hw["accuracy"] <= 1 and hw["samples_per_s"] > 0
    assert run_main([str(build), "--backend", "lava", "--samples", "3", "--json"]) == 0
    lava = json.loads(capsys.readouterr().out)
    assert lava["samples"] == 3 and lava["backend"] == "lava"
    assert report_main([str(build)]) == 0
    assert "loihi1-davies2018" in capsys.readouterr().out


def test_compile_without_out_writes_beside_the_model(model_path: Path) -> None:
    assert compile_main([str(model_path)]) == 0
    assert (model_path.parent / "model.loihi" / "manifest.json").is_file()


def _assert_clean_error(proc: subprocess.CompletedProcess, *needles: str) -> None:
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr
    assert proc.stderr.startswith("snn-compile: error: ")
    for needle in needles:
        assert needle in proc.stderr, proc.stderr


def test_bad_inputs_give_one_paragraph_and_no_artifact(tmp_path: Path) -> None:
    out = tmp_path / "build"
    _assert_clean_error(_cli("snn-compile", str(tmp_path / "nope.pt"), "--out", str(out)), "no such file")
    junk = tmp_path / "junk.pt"
    junk.write_text("hello")
    _assert_clean_error(_cli("snn-compile", str(junk), "--out", str(out)), "not a PyTorch model file")
    seq = tmp_path / "conv.pt"
    torch.save(torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3)), seq)
    _assert_clean_error(_cli("snn-compile", str(seq), "--out", str(out), "--allow-pickle-code-execution"),
                        "layer '0' is a Conv2d", "Supported layers")
    big = save(make_model(threshold=5000.0, weight_scale=64.0), tmp_path / "big.pt")
    _assert_clean_error(_cli("snn-compile", str(big), "--out", str(out)), "lif1", "131071")
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big.pt", "conv.pt", "junk.pt"]


def test_every_command_has_help_with_examples(capsys: pytest.CaptureFixture[str]) -> None:
    for name, main in (("snn-train", train_main), ("snn-compile", compile_main), ("snn-run", run_main),
                       ("snn-report", report_main)):
        with pytest.raises(SystemExit) as e:
            main(["--help"])
        assert e.value.code == 0
        text = capsys.readouterr().out
        assert "examples:" in text and f"  {name} " in text
