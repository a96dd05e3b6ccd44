"""hwsim's engines agree exactly: numba (CPU default) = torch (the readable mirror, any device), every
spike, final state and activity count, over random graphs that exercise every arithmetic path (dense
binary / graded input, weights outside Lava's format, u wrap, v clip, conv with the 24-bit wrap and
float64 sums, residual DAGs); the event-driven and GEMM paths, batch chunks and worker processes do
not change a bit. The numba engine is the one the Lava tests (test_hwsim_vs_lava.py, test_conv.py)
compare with Lava spike for spike.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from snnc.cli import run_main
from snnc.compiler.ir import Graph
from snnc.hwsim.fast import FastEngine
from snnc.hwsim.parallel import HwSimPool, shard_range
from snnc.hwsim.sim import HwSim, HwSimResult
from snnc.models.checkpoint import save
from snnc.pipeline import compile_model

from conftest import make_model
from test_onnx_io import fixed_point_graphs, spikes_of


def assert_same_result(a: HwSimResult, b: HwSimResult) -> None:
    assert (a.batch, a.timesteps, a.output_name) == (b.batch, b.timesteps, b.output_name)
    assert list(a.spikes) == list(b.spikes)
    for name in a.spikes:
        assert a.spikes[name].dtype == b.spikes[name].dtype == bool
        np.testing.assert_array_equal(a.spikes[name], b.spikes[name], err_msg=name)
        np.testing.assert_array_equal(a.final_v[name], b.final_v[name], err_msg=name)
    for x, y in zip(a.activity, b.activity, strict=True):
        assert (x.name, x.neurons, x.synapses) == (y.name, y.neurons, y.synapses)
        for field in ("synops", "spikes", "updates", "active_updates"):
            np.testing.assert_array_equal(getattr(x, field), getattr(y, field), err_msg=f"{x.name}.{field}")


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(fixed_point_graphs(), st.integers(0, 2**32 - 1), st.integers(1, 6), st.integers(1, 12))
def test_numba_engine_equals_torch_engine(graph: Graph, seed: int, batch: int, steps: int) -> None:
    x = spikes_of(graph, np.random.default_rng(seed), batch, steps)
    sim = HwSim.from_graph(graph)
    full = sim.run(x, engine="numba")
    assert_same_result(full, sim.run(x, engine="torch"))
    out = graph.output.name
    for engine in ("numba", "torch"):   # keep: only the output's spikes and v travel; counts unchanged
        part = sim.run(x, engine=engine, keep={out}, chunk=2)
        assert list(part.spikes) == list(part.final_v) == [out]
        np.testing.assert_array_equal(part.spikes[out], full.spikes[out])
        np.testing.assert_array_equal(part.final_v[out], full.final_v[out])
        for a, b in zip(part.activity, full.activity, strict=True):
            np.testing.assert_array_equal(a.synops, b.synops)
            np.testing.assert_array_equal(a.active_updates, b.active_updates)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(fixed_point_graphs(), st.integers(0, 2**32 - 1), st.floats(0.0, 1.0))
def test_event_paths_gemm_paths_and_chunks_agree(graph: Graph, seed: int, density: float) -> None:
    rng = np.random.default_rng(seed)
    x = spikes_of(graph, rng, 5, 9)
    if x.dtype == bool:   # from all-silent to dense activity
        x = rng.random(x.shape) < density
    events = FastEngine(graph, event_density=1.1, conv_event_density=1.1).run(x)   # every synapse it can, by events
    gemm = FastEngine(graph, event_density=0.0, conv_event_density=0.0).run(x)     # every one as a GEMM / conv
    chunked = FastEngine(graph, chunk=2).run(x)             # 3 chunks, merged
    assert_same_result(events, gemm)
    assert_same_result(events, chunked)
    assert_same_result(events, HwSim.from_graph(graph).run(x, engine="torch", chunk=3))


def test_events_are_taken_where_activity_is_sparse() -> None:
    """The dispatch really uses the event path below the density threshold (the count it returns is
    the synaptic events it added), and the totals are those of the GEMM path."""
    from snnc.compiler.ir import Input, Output, QCubaLIF, QDense
    from snnc.hwsim import kernels

    rng = np.random.default_rng(0)
    w = rng.integers(-100, 100, (7, 64)) * 2
    g = Graph.chain([Input("in", (64,)), QDense("fc", w), QCubaLIF("lif", 7, 4096, 0, 1, np.zeros(7, np.int64)),
                     Output("out")])
    x = rng.random((3, 20, 64)) < 0.01
    out, _, _, _, nev = kernels.lif_layer(np.zeros((0, 0, 0), np.int64), 1, 0, x.view(np.uint8),
                                          np.ascontiguousarray(w.T.astype(np.int32)), 0, np.zeros(7, np.int64),
                                          4096 - 4096, 4096, 12, 6, 2**23, 2**23 - 1, 1 << 6, np.zeros(0, np.int64))
    np.testing.assert_array_equal(nev[:, 1:], x[:, :-1].sum(axis=2))
    np.testing.assert_array_equal(out, HwSim.from_graph(g).run(x, engine="torch").spikes["lif"])


@pytest.fixture(scope="module")
def digits_artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("engines")
    save(make_model(), tmp / "model.pt", metadata={"dataset": "digits", "timesteps": 12})
    return compile_model(tmp / "model.pt", out=tmp / "build").out


@pytest.mark.slow
def test_worker_processes_give_the_single_process_result(digits_artifact: Path) -> None:
    from snnc.compiler.artifact import load_artifact

    graph = load_artifact(digits_artifact).graph
    x = np.random.default_rng(1).random((37, 12, 64)) < 0.3
    single = HwSim.from_graph(graph).run(x)
    with HwSimPool(graph, workers=2) as pool:
        assert_same_result(pool.run(x), single)
        assert_same_result(pool.run(x[:1]), HwSim.from_graph(graph).run(x[:1]))


def _run_json(capsys: pytest.CaptureFixture[str], *args: str) -> dict:
    assert run_main([*args, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_snn_run_json_and_shards_add_up(digits_artifact: Path, capsys: pytest.CaptureFixture[str]) -> None:
    art = str(digits_artifact)
    full = _run_json(capsys, art, "--samples", "50")
    assert {"samples", "accuracy", "samples_per_s", "startup_s", "correct", "engine"} <= set(full)
    assert full["samples"] == 50 and full["engine"] == "numba" and full["samples_per_s"] > 0
    assert full["accuracy"] == full["correct"] / 50
    parts = [_run_json(capsys, art, "--samples", "50", "--shard", f"{k}/3") for k in range(3)]
    assert [p["samples"] for p in parts] == [len(shard_range(50, k, 3)) for k in range(3)] == [16, 17, 17]
    assert sum(p["correct"] for p in parts) == full["correct"]


@pytest.mark.parametrize("args, expect", [
    (["--shard", "3/3"], "expected K/N with 0 <= K < N"),
    (["--shard", "a/b"], "expected K/N"),
    (["--device", "no-such-device"], "--device no-such-device: not usable here"),
    (["--backend", "lava", "--workers", "2"], "--workers and --device apply to --backend hwsim"),
])
def test_snn_run_refuses_bad_options_clearly(digits_artifact: Path, capsys: pytest.CaptureFixture[str],
                                            args: list[str], expect: str) -> None:
    assert run_main([str(digits_artifact), *args]) != 0
    err = capsys.readouterr().err
    assert expect in err and "Traceback" not in err


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 2**32 - 1), st.sampled_from([1, 2, 3]), st.integers(1, 3), st.integers(0, 5),
       st.sampled_from([1, 2]), st.sampled_from([0, 3]), st.sampled_from([60, 2000]))
def test_dense_conv_path_pool_factored_and_channels_last(seed: int, f: int, k: int, pad: int, groups: int,
                                                         bits: int, wmax: int) -> None:
    """The numba engine's dense convolutions (fast._Conv): a sum pool folded into a conv (blocks of
    f x f equal weights, stride f) taken apart again, sums read channels last by the kernel or
    transposed where a population adds a second input, graded input, and sums too large for float32
    (then sim.conv_input) -- equal to the torch engine, spike for spike and count for count."""
    from snnc.compiler.ir import Input, Output, QConv, QCubaLIF, QDense
    from snnc.hwsim.fast import pool_factor

    rng = np.random.default_rng(seed)
    c_in, c_out = 2 * groups, 3 * groups
    h, w = int(rng.integers(k * f, 13)), int(rng.integers(k * f, 13))
    small = rng.integers(-wmax, wmax + 1, (c_out, c_in // groups, k, k))
    weight = np.repeat(np.repeat(small, f, axis=2), f, axis=3)
    c1 = QConv("c1", weight, (c_in, h, w), (f, f), (pad, pad), groups=groups)
    assert pool_factor(c1) == (f if f > 1 else 1)
    if f > 1:   # one weight off the block pattern: an ordinary strided conv
        odd = weight.copy()
        odd[0, 0, 0, 0] += 2
        assert pool_factor(QConv("odd", odd, (c_in, h, w), (f, f), (pad, pad), groups=groups)) == 1
    l1 = QCubaLIF("lif1", c1.out_size, 2000, 300, 40, rng.integers(-3, 4, c1.out_size), shape=c1.out_shape)
    k2 = min(2, *c1.out_shape[1:])
    c2 = QConv("c2", rng.integers(-60, 61, (4, c_out, k2, k2)), c1.out_shape)
    d2 = QDense("d2", rng.integers(-60, 61, (c2.out_size, c1.out_size)) * 2)
    l2 = QCubaLIF("lif2", c2.out_size, 1000, 100, 30, np.zeros(c2.out_size, np.int64), shape=c2.out_shape)
    src = Input("input", (c_in, h, w), bits=bits)
    nodes = [src, c1, l1, c2, d2, l2, Output("output")]
    graph = Graph.build(nodes, [("input", "c1"), ("c1", "lif1"), ("lif1", "c2"), ("c2", "lif2"), ("lif1", "d2"),
                                ("d2", "lif2"), ("lif2", "output")])
    x = spikes_of(graph, rng, 3, 7)
    torch_run = HwSim.from_graph(graph).run(x, engine="torch")
    for density in (0.0, 1.1):     # every conv dense (this path), and by events
        assert_same_result(FastEngine(graph, conv_event_density=density).run(x), torch_run)
    assert_same_result(FastEngine(graph, chunk=2).run(x), torch_run)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(fixed_point_graphs(), st.integers(0, 2**32 - 1))
def test_numpy_gemm_path_equals_torch_gemm_path(graph: Graph, seed: int) -> None:
    """Without torch imported and for small runs, dense synapses are numpy float GEMMs (snn-run's
    start-up, fast.TORCH_GEMM_MACS): the same integers as torch's int8 / float GEMMs."""
    from snnc.hwsim import fast

    x = spikes_of(graph, np.random.default_rng(seed), 4, 7)
    with_torch = FastEngine(graph, event_density=0.0, conv_event_density=0.0)
    expected = with_torch.run(x)
    assert with_torch.use_torch
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(fast, "imported", lambda name: False)
        engine = FastEngine(graph, event_density=0.0, conv_event_density=0.0)
        result = engine.run(x)
        assert engine.use_torch == bool(engine.convs)      # convolutions always need torch
    assert_same_result(result, expected)


def test_snn_run_of_a_small_dense_network_never_imports_torch(digits_artifact: Path) -> None:
    """snn-run's start-up (issue 22): reading the artifact, coding the samples, numba's engine and the
    decisions import no torch (~1.7 s) for a small dense network."""
    import subprocess
    import sys

    code = ("import sys; from snnc.cli import run_main; "
            f"rc = run_main([{str(digits_artifact)!r}, '--samples', '50', '--json']); "
            "print('RESULT', rc, 'torch' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "RESULT 0 False", done.stdout + done.stderr
