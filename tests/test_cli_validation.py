"""Every option of every command is checked at the edge: a bad value gets one line naming the option,
exit status 2, no traceback, nothing written, and it comes before any dataset load, training, compile
or Lava start (each case must take well under a second).

The table BAD lists bad values for every option of every parser; ``test_the_table_covers_every_option``
fails when an option is added without a row (and a checker, snnc.validate)."""
from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import pytest

from snnc import validate
from snnc.cli import (compile_main, compile_parser, report_main, report_parser, run_main, run_parser, train_main,
                      train_parser)
from snnc.models.checkpoint import load, save

from conftest import make_model

BIN = Path(sys.executable).parent

COMMANDS: dict[str, tuple[Callable[[], object], Callable[[list[str]], int]]] = {
    "snn-train": (train_parser, train_main), "snn-compile": (compile_parser, compile_main),
    "snn-run": (run_parser, run_main), "snn-report": (report_parser, report_main),
}

# placeholders, replaced by paths under the test's folder
MISSING, DIR, FILE, NO_PARENT = "<missing>", "<dir>", "<file>", "<no-parent>"
INT = ["0", "-5", "x", "1.5"]            # an option whose smallest value is 1
INT0 = ["-5", "x", "1.5"]                # ... whose smallest value is 0
HUGE = "1000000000001"

BAD: dict[tuple[str, str], list[str]] = {
    # snn-train
    ("snn-train", "--preset"): ["mnist-99"],
    ("snn-train", "--dataset"): ["nodata"],
    ("snn-train", "--data-dir"): [FILE],
    ("snn-train", "--data"): [MISSING, DIR],
    ("snn-train", "--data-layout"): ["sideways"],
    ("snn-train", "--arch"): ["transformer"],
    ("snn-train", "--rule"): ["magic"],
    ("snn-train", "--loss"): ["hinge"],
    ("snn-train", "--hidden"): [*INT, HUGE],
    ("snn-train", "--delays"): [*INT0, "63", HUGE],
    ("snn-train", "--current-decay"): ["-0.5", "2", "nan", "inf", "x"],
    ("snn-train", "--voltage-decay"): ["-1", "1.5", "nan", "-inf", "x"],
    ("snn-train", "--readout"): ["spikes"],
    ("snn-train", "--encoding"): ["morse"],
    ("snn-train", "--epochs"): [*INT, HUGE],
    ("snn-train", "--timesteps"): [*INT, "100001", HUGE],
    ("snn-train", "--batch-size"): [*INT, HUGE],
    ("snn-train", "--lr"): ["0", "-1", "nan", "inf", "x", "1000"],
    ("snn-train", "--lr-scaling"): ["sqrt"],
    ("snn-train", "--seed"): [*INT0, str(2 ** 32)],
    ("snn-train", "--max-steps"): [*INT, HUGE],
    ("snn-train", "--device"): ["cuda:99", "gpu!", "tpu:x"],
    ("snn-train", "--out"): [DIR, NO_PARENT, FILE],
    # snn-compile
    ("snn-compile", "model"): [MISSING, DIR],
    ("snn-compile", "--target"): ["loihi9"],
    ("snn-compile", "--out"): [FILE, NO_PARENT],
    ("snn-compile", "--verify"): [*INT0, HUGE],
    ("snn-compile", "--timesteps"): [*INT, "100001"],
    ("snn-compile", "--nir-convention"): ["rk4"],
    ("snn-compile", "--nir-dt"): ["0", "-1", "nan", "inf", "x"],
    ("snn-compile", "--cost-model"): ["loihi7", DIR],
    ("snn-compile", "--lava-timeout"): ["-1", "nan", "inf", "x"],
    ("snn-compile", "--data"): [MISSING, DIR],
    ("snn-compile", "--input-shape"): ["0,34,34", "2,34", "x", "-1"],
    # snn-run
    ("snn-run", "artifact"): [MISSING, FILE],
    ("snn-run", "--backend"): ["loihi"],
    ("snn-run", "--dataset"): ["nodata"],
    ("snn-run", "--data"): [MISSING, DIR],
    ("snn-run", "--samples"): [*INT, HUGE],
    ("snn-run", "--data-dir"): [FILE],
    ("snn-run", "--lava-timeout"): ["-1", "nan", "inf", "x"],
    ("snn-run", "--workers"): [*INT, HUGE],
    ("snn-run", "--device"): ["cuda:99", "auto", "gpu!"],
    ("snn-run", "--shard"): ["2/2", "-1/2", "x", "1/0"],
    # snn-report
    ("snn-report", "artifact"): [MISSING, FILE],
    ("snn-report", "--cost-model"): ["loihi7", DIR],
    ("snn-report", "--samples"): [*INT, HUGE],
    ("snn-report", "--html"): [DIR, NO_PARENT],
}


def _options(command: str) -> dict[str, object]:
    """Every option that takes a value (positionals by their name), but not --help and pure flags."""
    parser = COMMANDS[command][0]()
    return {(a.option_strings[-1] if a.option_strings else a.dest): a
            for a in parser._actions if a.nargs != 0}   # type: ignore[attr-defined]


def test_the_table_covers_every_option() -> None:
    """A new option fails here until it has a checker (snnc.validate) and bad values in BAD."""
    for command in COMMANDS:
        options = _options(command)
        listed = {opt for cmd, opt in BAD if cmd == command}
        assert set(options) == listed, f"{command}: options without bad values in BAD: {set(options) - listed}; " \
                                       f"rows for options that do not exist: {listed - set(options)}"
        for name, action in options.items():
            assert validate.is_checked(action), f"{command} {name}: no checker (use one of snnc.validate's)"  # type: ignore[arg-type]


CASES = [pytest.param(cmd, opt, bad, id=f"{cmd} {opt} {bad}") for (cmd, opt), bads in BAD.items() for bad in bads]


@pytest.fixture(scope="module", autouse=True)
def _registries_imported() -> None:
    """Import what the name checks read once, so that each case's time is the check's own."""
    for opt in ("--dataset", "--arch", "--rule", "--loss"):
        train_main([opt, "?"])
    compile_main(["?", "--target", "?"])
    validate.check_device("--device", "cpu")


def _path(tmp: Path, value: str) -> str:
    return {MISSING: str(tmp / "missing.pt"), DIR: str(tmp / "a-dir"), FILE: str(tmp / "a-file.bin"),
            NO_PARENT: str(tmp / "no" / "such" / "out")}.get(value, value)


def _snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): (p.read_bytes() if p.is_file() else b"<dir>") for p in sorted(root.rglob("*"))}


@pytest.mark.parametrize("command, option, bad", CASES)
def test_bad_value_is_refused_at_the_edge(command: str, option: str, bad: str, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)           # the default outputs (model.pt, MODEL.loihi) would land here
    (tmp_path / "a-dir").mkdir()
    (tmp_path / "a-file.bin").write_bytes(b"not a model")
    (tmp_path / "art").mkdir()            # parses as an artifact directory; never read, the bad value stops first
    value = _path(tmp_path, bad)
    positional = {"snn-compile": [str(tmp_path / "a-file.bin")], "snn-run": [str(tmp_path / "art")],
                  "snn-report": [str(tmp_path / "art")]}.get(command, [])
    if option.startswith("--"):
        argv = [*positional, f"{option}={value}"]    # '=': argparse would take '-inf' for an option
        if command == "snn-train" and option != "--out":
            argv += ["--out", str(tmp_path / "m.pt")]
    else:
        argv = [value]
    before = _snapshot(tmp_path)
    capsys.readouterr()
    t0 = time.perf_counter()
    code = COMMANDS[command][1](argv)
    took = time.perf_counter() - t0
    out, err = capsys.readouterr()
    assert code == 2, (argv, out, err)
    assert "Traceback" not in err and err.startswith(f"{command}: error: "), err
    assert len(err.strip().splitlines()) == 1, err
    assert option in err, err                       # names the option ...
    assert value in err or value.lower() in err.lower(), err   # ... and the value
    assert _snapshot(tmp_path) == before            # nothing written, nothing changed
    assert took < 1.0, f"{argv}: refused after {took:.2f} s: the check comes too late"


def test_the_installed_commands_answer_in_one_line(tmp_path: Path) -> None:
    """The entry points, as a user runs them: snn-run ART --samples 0 (a traceback before)."""
    (tmp_path / "art").mkdir()
    for argv in (["snn-run", str(tmp_path / "art"), "--samples", "0"],
                 ["snn-compile", str(tmp_path / "nope.pt"), "--timesteps", "0"],
                 ["snn-train", "--timesteps", "0", "--out", str(tmp_path / "m.pt")]):
        proc = subprocess.run([str(BIN / argv[0]), *argv[1:]], capture_output=True, text=True, timeout=120)
        assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
        assert proc.stderr.startswith(f"{argv[0]}: error: ") and len(proc.stderr.splitlines()) == 1, proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["art"]


# ------------------------------------------------------------------------------ --out and --resume

def _saved_run(tmp: Path, **config: object) -> Path:
    """A checkpoint at tmp/m.pt as snn-train leaves it: metadata, OUT.state.pt and OUT.log.json."""
    out = tmp / "m.pt"
    save(make_model(), out, metadata={"dataset": "digits", "timesteps": 12, "seed": 0, "epochs": 3,
                                      "test_accuracy": 0.875, "rule": "stbp-rect"})
    out.with_suffix(".state.pt").write_bytes(b"not a state")  # read after the checks under test
    base = {"dataset": "digits", "arch": "mlp", "hidden": [256], "lr": 0.005, "timesteps": 12, "seed": 0,
            "batch_size": 32, "epochs": 3, "preset": None, "hardware_exact": True, "max_steps": None}
    out.with_suffix(".log.json").write_text(json.dumps({"config": {**base, **config}, "epochs": []}))
    return out


def test_out_of_another_run_is_not_overwritten(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = _saved_run(tmp_path)
    before = _snapshot(tmp_path)
    assert train_main(["--out", str(out), "--epochs", "1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("snn-train: error: --out ") and str(out) in err and len(err.splitlines()) == 1
    for needle in ("dataset digits", "3 epoch", "87.5%", "--resume", "--overwrite", "another --out"):
        assert needle in err, err
    assert _snapshot(tmp_path) == before
    # the state or the log alone is another run's too
    out.unlink()
    assert train_main(["--out", str(out)]) == 2
    assert str(out.with_suffix(".state.pt")) in capsys.readouterr().err
    assert train_main(["--out", str(out), "--resume", "--overwrite"]) == 2
    assert "contradict" in capsys.readouterr().err


@pytest.mark.slow   # trains (briefly): ~7 s
def test_overwrite_replaces_the_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = _saved_run(tmp_path)
    assert train_main(["--out", str(out), "--overwrite", "--epochs", "1", "--max-steps", "1", "--hidden", "8",
                       "--timesteps", "4", "--device", "cpu"]) == 0
    meta = load(out).metadata
    assert meta["epochs"] == 1 and meta["timesteps"] == 4
    assert json.loads(out.with_suffix(".log.json").read_text())["config"]["hidden"] == [8]


def test_resume_refuses_other_settings_and_lists_each(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = _saved_run(tmp_path)
    before = _snapshot(tmp_path)
    assert train_main(["--resume", "--out", str(out), "--epochs", "5", "--hidden", "32", "32", "--lr", "0.1",
                       "--float"]) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    for needle in ("--hidden 32 32 (saved run: 256)", "--lr 0.1 (saved run: 0.005)", "--float", "only --epochs"):
        assert needle in err, err
    assert "--epochs" not in err.split("only --epochs")[0]   # the new end is not a difference
    assert _snapshot(tmp_path) == before
    # the same values again are accepted: the run gets as far as reading its (here damaged) state
    assert train_main(["--resume", "--out", str(out), "--epochs", "5", "--hidden", "256", "--lr", "0.005",
                       "--timesteps", "12", "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert "training state" in err and "saved run" not in err, err


def test_resume_without_a_log_compares_with_the_checkpoint(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = _saved_run(tmp_path)
    out.with_suffix(".log.json").unlink()
    assert train_main(["--resume", "--out", str(out), "--timesteps", "13", "--seed", "0"]) == 2
    err = capsys.readouterr().err
    assert "--timesteps 13 (saved run: 12)" in err and "--seed" not in err.split("Resume with")[0], err


# ------------------------------------------------------------------------------ closed pipes

_PRINTER = """
import sys, time
from snnc.cli import _guard
big = sys.argv[1] == 'big'
time.sleep(0.5)   # the reader is gone by now
sys.exit(_guard('snn-x', lambda: print('y' * (10_000_000 if big else 10)) or 0))
"""


@pytest.mark.parametrize("size", ["big", "small"])
def test_a_closed_pipe_ends_quietly(size: str) -> None:
    """snn-report --json | head: the reader leaves early; no traceback and no 'Exception ignored'
    (small: the error comes at the last flush, big: inside print)."""
    proc = subprocess.Popen([sys.executable, "-c", _PRINTER, size], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 141, err
    assert "Traceback" not in err and "Exception ignored" not in err and "BrokenPipe" not in err, err
