"""The same inputs and seed give byte-identical files and identical spikes, run after run.

Runs that matter happen in separate processes with different ``PYTHONHASHSEED`` (set and dict
orders, temp names and hash-dependent choices would show up), in different directories.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from snnc.compiler.artifact import load_artifact
from snnc.hwsim.sim import HwSim
from snnc.inputs import sample_inputs
from snnc.pipeline import compile_model

BIN = Path(sys.executable).parent


def _cli(name: str, *args: str, cwd: Path, hash_seed: int) -> None:
    env = {**os.environ, "PYTHONHASHSEED": str(hash_seed)}
    res = subprocess.run([str(BIN / name), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr


def _files(d: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(d.iterdir()) if p.is_file()}


def _same_files(a: Path, b: Path) -> None:
    fa, fb = _files(a), _files(b)
    assert sorted(fa) == sorted(fb)
    differ = [name for name in fa if fa[name] != fb[name]]
    assert not differ, f"files differ between runs: {differ}"


@pytest.mark.slow
def test_train_and_compile_are_byte_identical_across_processes(tmp_path: Path) -> None:
    """snn-train with one seed -> the same model.pt; snn-compile of it -> the same artifact, every
    file (graph.h5, graph.nir, graph.onnx, network.net, manifest.json, report.json, report.html)."""
    runs = []
    for k in (1, 2):
        d = tmp_path / f"run{k}"
        d.mkdir()
        _cli("snn-train", "--dataset", "digits", "--arch", "mlp", "--rule", "stbp-rect", "--epochs", "1",
             "--max-steps", "6", "--seed", "3", "--out", "model.pt", cwd=d, hash_seed=k)
        _cli("snn-compile", "model.pt", "--target", "loihi", "--out", "build", cwd=d, hash_seed=10 + k)
        runs.append(d)
    assert (runs[0] / "model.pt").read_bytes() == (runs[1] / "model.pt").read_bytes()
    _same_files(runs[0] / "build", runs[1] / "build")
    assert len(_files(runs[0] / "build")) == 7


@pytest.mark.parametrize("fmt", ["graph.h5", "graph.nir", "graph.onnx", "network.net"])
def test_recompiling_each_format_is_byte_identical(fmt: str, model_path: Path, tmp_path: Path) -> None:
    """Every file an artifact holds compiles again to identical artifacts, twice."""
    first = compile_model(model_path, out=tmp_path / "first", report_samples=4)
    src = tmp_path / f"copy.{fmt.split('.')[-1]}"
    src.write_bytes((first.out / fmt).read_bytes())
    a = compile_model(src, out=tmp_path / "a", report_samples=4)
    b = compile_model(src, out=tmp_path / "b", report_samples=4)
    _same_files(a.out, b.out)


def test_spikes_are_identical_across_runs_and_engines(model_path: Path, tmp_path: Path) -> None:
    """The artifact's recorded input spec rebuilds the same inputs; hwsim (both engines, twice) and
    Lava (twice) give the same spikes on them."""
    from snnc.runtime.lava_backend import run_on_lava

    art = load_artifact(compile_model(model_path, out=tmp_path / "out", report_samples=4).out)
    spec = dict(art.manifest["input"])
    x1, y1 = sample_inputs(spec, art.graph.input, 6)
    x2, y2 = sample_inputs(spec, art.graph.input, 6)
    assert np.array_equal(x1, x2) and np.array_equal(y1, y2)
    sim = HwSim.from_graph(art.graph)
    runs = [sim.run(x1, engine=e).spikes for e in ("numba", "torch", "numba")]
    lava = [run_on_lava(art.graph, x1, timeout_s=120) for _ in range(2)]
    for other in runs[1:] + lava:
        assert set(other) == set(runs[0])
        assert all(np.array_equal(runs[0][k], other[k]) for k in runs[0])
