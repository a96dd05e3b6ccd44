"""Progress: plain lines off a terminal (quarters, at most one more per interval), rich bars on one,
the callbacks of training, hwsim and Lava, and snn-run's wall time; --json stays clean."""
from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest

from snnc.cli import compile_main, run_main
from snnc.compiler.artifact import load_artifact
from snnc.hwsim import parallel
from snnc.hwsim.parallel import HwSimPool
from snnc.models.datasets import load_dataset
from snnc.models.train import train
from snnc.progress import Progress, command_started, fmt_duration

from conftest import make_model


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def _recorder() -> tuple[list[tuple[str, int, int]], object]:
    calls: list[tuple[str, int, int]] = []
    return calls, lambda task, done, total: calls.append((task, done, total))


def test_plain_lines_at_quarters_and_at_most_one_per_interval() -> None:
    out, clock = io.StringIO(), Clock()
    p = Progress(stream=out, live=False, every_s=10.0, min_s=0.0, clock=clock)
    for done in range(0, 101):
        clock.t += 0.05        # 100 items in 5 s: no interval line, one per quarter
        p("samples", done, 100)
    lines = out.getvalue().splitlines()
    assert [line.split(":")[1].split("(")[0].strip() for line in lines] == ["25/100", "50/100", "75/100", "100/100"]
    assert "ETA" in lines[0] and "/s" in lines[0] and "ETA" not in lines[-1]
    # slow: a line every 10 s between the quarters too
    out.truncate(0), out.seek(0)
    for done in range(0, 11):
        clock.t += 6.0
        p("slow", done, 100)
    assert len(out.getvalue().splitlines()) == 5     # 60 s, 10 % done: one line per 12 s (every 10 s, 6 s steps)


def test_quick_and_skipped_tasks_print_nothing() -> None:
    out, clock = io.StringIO(), Clock()
    p = Progress(stream=out, live=False, min_s=2.0, plain_skip={"epochs"}, clock=clock)
    for done in range(11):
        clock.t += 0.1
        p("quick", done, 10)
        p("epochs", done, 10)
    assert out.getvalue() == ""
    clock.t += 5.0
    p("quick", 1, 10)          # started again (smaller done): a new task, its own clock
    assert out.getvalue() == ""


def test_rich_bars_go_to_their_stream() -> None:
    out = io.StringIO()
    with Progress(stream=out, live=True) as p:
        p("lava samples", 3, 10)
        p("done soon", 5, 5)    # finished bars are removed
    text = out.getvalue()
    assert "lava samples" in text and "3/10" in text and "done soon" not in text


def test_fmt_duration_and_command_start() -> None:
    assert fmt_duration(3.21) == "3.2 s" and fmt_duration(125) == "2 min 05 s" and fmt_duration(None) == "?"
    import time
    started = command_started()
    assert started <= time.perf_counter() and time.perf_counter() - started < 24 * 3600


def test_training_reports_steps_and_epochs() -> None:
    calls, rec = _recorder()
    train(make_model(gain=1.0), load_dataset("digits", "train"), epochs=2, timesteps=4, max_steps=3, batch_size=16,
          progress=rec)  # type: ignore[arg-type]
    steps = [(t, d, n) for t, d, n in calls if t.startswith("epoch 2")]
    assert steps == [("epoch 2 steps", k, 3) for k in range(4)]
    assert [c for c in calls if c[0] == "epochs"] == [("epochs", 0, 2), ("epochs", 1, 2), ("epochs", 1, 2),
                                                     ("epochs", 2, 2)]


def test_hwsim_pool_progress_gives_the_same_result(model_path: Path, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    assert compile_main([str(model_path), "--out", str(tmp_path / "build")]) == 0
    graph = load_artifact(tmp_path / "build").graph
    x = np.random.default_rng(0).random((300, 6, graph.input.size)) < 0.3
    calls, rec = _recorder()
    with HwSimPool(graph) as pool:
        plain = pool.run(x)
        pool.run(x, progress=rec)  # type: ignore[arg-type]
        assert calls == [("hwsim samples", 300, 300)]       # under PROGRESS_CHUNK: one call, one report
        calls.clear()
        monkeypatch.setattr(parallel, "PROGRESS_CHUNK", 64)  # chunks of 60: the chunked path
        chunked = pool.run(x, progress=rec)  # type: ignore[arg-type]
    for name in plain.spikes:
        assert np.array_equal(plain.spikes[name], chunked.spikes[name])
    done = [d for _, d, _ in calls]
    assert len(done) > 1 and done == sorted(done) and calls[-1] == ("hwsim samples", 300, 300)


def test_snn_run_reports_wall_time_and_keeps_json_clean(model_path: Path, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    build = tmp_path / "build"
    assert compile_main([str(model_path), "--out", str(build)]) == 0
    capsys.readouterr()
    assert run_main([str(build), "--samples", "300", "--json"]) == 0
    out, _ = capsys.readouterr()
    res = json.loads(out)               # stdout is one JSON object, progress or not
    assert {"startup_s", "samples_per_s", "run_s", "wall_s"} <= set(res)
    assert res["wall_s"] >= res["startup_s"] + res["run_s"] - 1e-6 and res["startup_s"] > 0
    assert run_main([str(build), "--samples", "20"]) == 0
    out, _ = capsys.readouterr()
    assert "start-up" in out and "total" in out


@pytest.mark.slow
def test_lava_reports_each_sample(model_path: Path, tmp_path: Path) -> None:
    from snnc.runtime.lava_backend import run_on_lava_full

    assert compile_main([str(model_path), "--out", str(tmp_path / "build")]) == 0
    graph = load_artifact(tmp_path / "build").graph
    x = np.random.default_rng(0).random((3, 5, graph.input.size)) < 0.3
    calls, rec = _recorder()
    run_on_lava_full(graph, x, progress=rec)  # type: ignore[arg-type]
    assert calls == [("lava samples", k, 3) for k in (1, 2, 3)]
