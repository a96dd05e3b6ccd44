"""snn-compile's helper process (snnc.background): same artifact, errors raised as they were, and no
process or half-written artifact left behind, whatever happens."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from snnc.background import Helper
from snnc.compiler.artifact import staged_directory
from snnc.errors import SnncError
from snnc.models.checkpoint import save
from snnc.pipeline import compile_model

from conftest import make_model
from processes import alive, descendants


class _Proc:
    def __init__(self, pid: int):
        self.pid = pid


def _children() -> list[_Proc]:
    """This process's live descendants (/proc), but multiprocessing's resource tracker (one per program,
    started by an earlier test's "spawn" pool, it ends with the program)."""
    def tracker(pid: int) -> bool:
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                return b"resource_tracker" in f.read()
        except OSError:
            return False

    return [_Proc(int(p.split()[1])) for p in alive(descendants(os.getpid()))
            if not tracker(int(p.split()[1]))]


def test_compile_with_the_helper_writes_the_same_bytes(tmp_path: Path) -> None:
    """graph.onnx and report.html written by the helper are the bytes this process writes, and so is
    every other file of the artifact; the helper has ended when the compile returns."""
    save(make_model(), tmp_path / "m.pt", metadata={"dataset": "digits", "timesteps": 12})
    before = {p.pid for p in _children()}
    a = compile_model(tmp_path / "m.pt", out=tmp_path / "a", background=True).out
    b = compile_model(tmp_path / "m.pt", out=tmp_path / "b", background=False).out
    names = sorted(p.name for p in a.iterdir())
    assert "graph.onnx" in names and "report.html" in names and names == sorted(p.name for p in b.iterdir())
    for name in names:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    assert {p.pid for p in _children()} <= before


@pytest.mark.parametrize("enabled", [True, False])
def test_a_jobs_error_is_raised_as_it_was_and_the_helper_ends(enabled: bool) -> None:
    before = {p.pid for p in _children()}
    with pytest.raises(SnncError, match="unknown target 'loihi3'"):
        with Helper(enabled=enabled) as helper:
            assert helper.enabled == enabled
            assert helper.call("math:hypot", 3.0, 4.0).result() == 5.0
            helper.call("snnc.compiler.targets:get_target", "loihi3").result()
    assert {p.pid for p in _children()} <= before


def test_a_dead_helpers_jobs_run_here() -> None:
    """A helper that died (killed, or never able to start) costs its speed, not the compile: its
    unanswered jobs run in this process, in order."""
    with Helper(enabled=True) as helper:
        assert helper._proc is not None
        helper._proc.kill()
        helper._proc.wait()
        first, second = helper.call("math:hypot", 3.0, 4.0), helper.call("math:sqrt", 16.0)
        assert (first.result(), second.result()) == (5.0, 4.0)
        assert helper._proc is None


def test_a_helper_that_cannot_start_costs_nothing_but_time(monkeypatch: pytest.MonkeyPatch,
                                                          capfd: pytest.CaptureFixture[str]) -> None:
    """A helper that exits at once (here: not Python at all) answers nothing: its jobs run here."""
    monkeypatch.setattr("sys.executable", "/bin/false")
    with Helper(enabled=True) as helper:
        assert helper.call("math:hypot", 3.0, 4.0).result() == 5.0
    assert "Traceback" not in capfd.readouterr().err


def test_a_script_that_compiles_at_top_level_compiles_once(tmp_path: Path) -> None:
    """The helper is a fresh `python -m snnc.background`, not a multiprocessing "spawn" child, which
    re-runs the caller's __main__ script: a script without a __main__ guard (or one read from stdin)
    compiles once, with the helper."""
    import subprocess
    import sys

    save(make_model(), tmp_path / "m.pt", metadata={"dataset": "digits", "timesteps": 12})
    script = (f"from snnc.pipeline import compile_model\n"
              f"print('COMPILING')\n"
              f"compile_model({str(tmp_path / 'm.pt')!r}, out={str(tmp_path / 'out')!r}, background=True)\n")
    done = subprocess.run([sys.executable, "-"], input=script, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("COMPILING") == 1
    assert (tmp_path / "out" / "graph.onnx").exists() and (tmp_path / "out" / "report.html").exists()


def test_an_error_in_the_compile_kills_the_helper_before_the_staged_directory_goes(tmp_path: Path) -> None:
    """An error while the helper works (here: a long job still running) ends it at once, then the staged
    directory vanishes: nothing is left in the output's folder and no process remains."""
    import time

    before = {p.pid for p in _children()}
    started = time.perf_counter()
    with pytest.raises(RuntimeError, match="boom"):
        with Helper(enabled=True) as helper:
            with staged_directory(tmp_path / "out", on_error=helper.abort) as tmp:
                helper.call("time:sleep", 60)
                (tmp / "x").write_text("partial")
                raise RuntimeError("boom")
    assert time.perf_counter() - started < 30                 # not waiting for the job
    assert list(tmp_path.iterdir()) == []
    assert {p.pid for p in _children()} <= before
