"""Recurrent networks on Lava: equal to hwsim (torch engine) and to a naive model, spike for spike.

A recurrent Dense (a population back into its own ``a_in``, or a cycle across populations) runs on
stock Lava processes (runtime/lava_backend.py docstring): Lava's Dense sends the previous step's sum
before receiving (SP/lava/proc/dense/models.py:93-96), so the chip's one-step delay is the same on
every synapse and a cycle cannot deadlock. Every test compares every population at every step of
every sample; each also checks that the recurrent connections change the spikes, so agreement
cannot come from a network whose recurrence Lava dropped. Each Lava run forks a worker and compiles
a network (~1-2 s on 2 shared cores): batches and T are small.
"""
from __future__ import annotations

import multiprocessing as mp
import multiprocessing.context
import os
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from snnc.compiler.ir import Graph, Input, Output, QConv, QCubaLIF, QDense
from snnc.errors import LavaRunError
from snnc.hwsim.headroom import observe_state
from snnc.hwsim.sim import HwSim
from snnc.runtime import lava_backend
from snnc.runtime.lava_backend import net_spec, run_on_lava_full
from processes import leftovers, proc_stat
from recurrent_graphs import RECURRENT_GRAPHS, inputs_for, naive_run, self_loop

# Import Lava once here so every forked worker inherits it instead of importing it (~0.7 s each).
lava_backend.lava_api()


def hwsim(graph: Graph, x: np.ndarray):   # noqa: ANN201
    """hwsim's torch engine: ``simulate_block``, the one definition of recurrent blocks (the numba
    engine is checked against it in its own tests)."""
    return HwSim.from_graph(graph).run(x, engine="torch")


def without_recurrence(graph: Graph) -> Graph:
    """The same graph with every recurrent synapse's weights zeroed (edges kept)."""
    rec = set(graph.recurrent_synapses())
    nodes = [replace(n, weight=np.zeros_like(n.weight)) if n.name in rec else n for n in graph.nodes.values()]
    return Graph.build(nodes, list(graph.edges), dict(graph.meta))


def first_difference(ref: dict[str, np.ndarray], got: dict[str, np.ndarray]) -> str | None:
    """Where two runs first differ (earliest step), or None when equal everywhere."""
    assert ref.keys() == got.keys(), (sorted(ref), sorted(got))
    worst = None
    for name in ref:
        assert ref[name].shape == got[name].shape, (name, ref[name].shape, got[name].shape)
        diff = np.argwhere(ref[name] != got[name])
        if len(diff):
            s, t, n = diff[np.argmin(diff[:, 1])]
            here = (int(t), f"'{name}' sample {s} step {t + 1} neuron {n}: {ref[name][s, t, n]} vs {got[name][s, t, n]} "
                            f"({len(diff)} differ)")
            worst = here if worst is None or here[0] < worst[0] else worst
    return None if worst is None else worst[1]


def check_agreement(graph: Graph, x: np.ndarray) -> dict[str, np.ndarray]:
    """Lava == hwsim (torch) == naive_run on every population, step and sample; Lava's final v == hwsim's;
    the recurrent connections matter on these inputs. Returns Lava's spikes."""
    pops = [p.name for p in graph.populations()]
    lava = run_on_lava_full(graph, x, read_v=tuple(pops))
    hw = hwsim(graph, x)
    naive = naive_run(graph, x)
    assert sorted(lava.spikes) == sorted(pops)
    assert (d := first_difference(naive, hw.spikes)) is None, f"hwsim vs naive: {d}"
    assert (d := first_difference(hw.spikes, lava.spikes)) is None, f"hwsim vs Lava: {d}"
    for name in pops:
        assert np.array_equal(lava.final_v[name], hw.final_v[name]), f"v[T] of '{name}'"
        assert lava.spikes[name].any(), f"'{name}' never spikes: the comparison would prove little"
    cut = hwsim(without_recurrence(graph), x).spikes
    assert first_difference(hw.spikes, cut) is not None, "the recurrent synapses change nothing on these inputs"
    return lava.spikes


# ------------------------------------------------------------------------------- spike for spike

@pytest.mark.parametrize("name", sorted(RECURRENT_GRAPHS))
def test_recurrent_graph_on_lava_equals_hwsim_and_naive(name: str) -> None:
    """Self-loop, 2-population cycle (with a self-loop inside), stacked recurrent layers."""
    seed = {"self_loop": 0, "two_cycle": 1, "stacked": 2}[name]
    rng = np.random.default_rng(seed)
    graph = RECURRENT_GRAPHS[name](rng)
    assert graph.is_recurrent
    spec = net_spec(graph)
    recurrent = [s.name for s in spec.synapses if s.recurrent]
    assert sorted(recurrent) == sorted(graph.recurrent_synapses())
    assert all(s.message_bits == 0 for s in spec.synapses)
    x = inputs_for(graph, rng, batch=3, steps=12)
    check_agreement(graph, x)


def test_graded_input_into_a_recurrent_layer() -> None:
    """4-bit input values into the recurrent layer: the input Dense carries 4-bit messages, the
    recurrent one the layer's binary spikes."""
    rng = np.random.default_rng(4)
    graph = self_loop(rng, bits=4)
    bits = {s.name: (s.message_bits, s.recurrent) for s in net_spec(graph).synapses}
    assert bits == {"fc": (4, False), "rec": (0, True), "out_fc": (0, False)}
    x = inputs_for(graph, rng, batch=3, steps=12)
    assert x.max() > 1
    check_agreement(graph, x)


def _wrapping_loop(seed: int) -> Graph:
    """A self-loop whose recurrent weights (weight_exp 6) drive u past its 24 bits."""
    rng = np.random.default_rng(seed)
    n_in, h, n_out = 6, 8, 3
    nodes = [Input("x", (n_in,)), QDense("fc", 2 * rng.integers(10, 60, (h, n_in)), weight_exp=0),
             QCubaLIF("h", h, du=40, dv=300, vth=2000, bias_mant=np.zeros(h, np.int64)),
             QDense("rec", 2 * rng.integers(-127, 128, (h, h)), weight_exp=6),
             QDense("out_fc", 2 * rng.integers(-40, 80, (n_out, h))),
             QCubaLIF("o", n_out, du=1000, dv=1000, vth=50, bias_mant=np.zeros(n_out, np.int64)), Output("out")]
    edges = [("x", "fc"), ("fc", "h"), ("h", "rec"), ("rec", "h"), ("h", "out_fc"), ("out_fc", "o"), ("o", "out")]
    return Graph.build(nodes, edges, {"source": "tests/test_recurrent_lava.py _wrapping_loop"})


def test_u_wraps_on_the_recurrent_path_as_lava_does() -> None:
    """Lava's single 24-bit wrap of u and the clip of v, driven by the recurrent synapse."""
    graph = _wrapping_loop(2)
    x = np.random.default_rng(12).random((2, 12, 6)) < 0.5
    state = observe_state(graph, x)["h"]
    assert state.u_wrapped > 0 and state.v_clipped > 0, state
    assert observe_state(without_recurrence(graph), x)["h"].events == 0, "the wraps must come from the loop"
    check_agreement(graph, x)


def test_recurrent_dense_on_a_conv_shaped_population() -> None:
    """A population fed by a Conv lives in Lava's (W, H, C) layout; its recurrent Dense reads it through
    flatten() and writes it back through reshape(), on a cycle."""
    rng = np.random.default_rng(5)
    conv = QConv("c", 2 * rng.integers(-20, 60, (2, 1, 3, 3)), (1, 5, 4), padding=(1, 1))
    n = conv.out_size
    w = 2 * rng.integers(-60, 80, (n, n))
    w[rng.random(w.shape) < 0.6] = 0
    nodes = [Input("x", (1, 5, 4)), conv,
             QCubaLIF("h", n, du=500, dv=400, vth=120, bias_mant=rng.integers(-10, 30, n), shape=conv.out_shape),
             QDense("rec", w), QDense("out_fc", 2 * rng.integers(-30, 60, (3, n))),
             QCubaLIF("o", 3, du=800, dv=800, vth=60, bias_mant=np.zeros(3, np.int64)), Output("out")]
    edges = [("x", "c"), ("c", "h"), ("h", "rec"), ("rec", "h"), ("h", "out_fc"), ("out_fc", "o"), ("o", "out")]
    graph = Graph.build(nodes, edges)
    x = rng.random((2, 10, 20)) < 0.4
    lava = run_on_lava_full(graph, x, read_v=("h",))
    hw = hwsim(graph, x)
    assert (d := first_difference(hw.spikes, lava.spikes)) is None, f"hwsim vs Lava: {d}"
    assert np.array_equal(lava.final_v["h"], hw.final_v["h"])
    assert lava.spikes["h"].any() and first_difference(hw.spikes, hwsim(without_recurrence(graph), x).spikes)


# ------------------------------------------------------------------------ no processes left behind

@pytest.fixture
def worker_pids(monkeypatch: pytest.MonkeyPatch) -> tuple[list[int], set[str]]:
    """The pid (= process group) of every worker run_on_lava forks, and our children before."""
    pids: list[int] = []
    before = {pid for pid in filter(str.isdigit, os.listdir("/proc"))
              if (proc_stat(pid) or ("", 0, 0))[1] == os.getpid()}
    start = multiprocessing.context.ForkProcess.start

    def spy(self: mp.Process) -> None:
        start(self)
        pids.append(self.pid)

    monkeypatch.setattr(multiprocessing.context.ForkProcess, "start", spy)
    return pids, before


def assert_nothing_left(worker_pids: tuple[list[int], set[str]], within_s: float = 5.0) -> None:
    pids, before = worker_pids
    assert pids, "run_on_lava forked no worker"
    deadline = time.monotonic() + within_s
    while True:
        left = [p for pgid in pids for p in leftovers(pgid, before)] + [str(c) for c in mp.active_children()]
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert not left, f"processes left behind: {left}"


def test_no_processes_left_after_a_recurrent_run(worker_pids: tuple[list[int], set[str]]) -> None:
    rng = np.random.default_rng(6)
    graph = RECURRENT_GRAPHS["two_cycle"](rng)
    spikes = run_on_lava_full(graph, inputs_for(graph, rng, batch=2, steps=8)).spikes
    assert set(spikes) == {"a", "b", "o"}
    assert_nothing_left(worker_pids)


def test_a_recurrent_dense_that_fails_mid_run_is_named_and_cleaned_up(
        worker_pids: tuple[list[int], set[str]], monkeypatch: pytest.MonkeyPatch) -> None:
    """A process on a cycle that raises leaves the rest of the cycle blocked (Lava's deadlock): the
    worker's monitor sees it end, names it, and every process is stopped."""
    from lava.proc.dense.models import PyDenseModelBitAcc
    original = PyDenseModelBitAcc.run_spk

    def failing(self) -> None:  # forked into Lava's processes with the worker
        if self.time_step == 15 and self.proc_params.get("name") == "rec":
            raise ZeroDivisionError("injected")
        original(self)

    monkeypatch.setattr(PyDenseModelBitAcc, "run_spk", failing)
    rng = np.random.default_rng(7)
    graph = self_loop(rng)
    t0 = time.monotonic()
    with pytest.raises(LavaRunError, match=r"sample 1.*Dense process 'rec'.*ZeroDivisionError: injected"):
        run_on_lava_full(graph, inputs_for(graph, rng, batch=3, steps=10), timeout_s=60)
    assert time.monotonic() - t0 < 30, "the failure must be detected, not waited out"
    assert_nothing_left(worker_pids)


# ----------------------------------------------------------------------------- through the pipeline

@pytest.mark.slow
def test_compile_verify_a_recurrent_graph_file(tmp_path: Path) -> None:
    """snn-compile's path on a hand-built recurrent graph.h5 with --verify: hwsim and Lava agree on
    every population and step, and the report says so. (The report and verify run hwsim's default
    engine, numba on the CPU: this needs its recurrent blocks, hwsim/fast.py.)"""
    from snnc.compiler.graph_file import write_graph
    from snnc.pipeline import compile_model

    graph = RECURRENT_GRAPHS["two_cycle"](np.random.default_rng(1))
    write_graph(graph, tmp_path / "g.h5")
    res = compile_model(tmp_path / "g.h5", out=tmp_path / "a", verify=3, report_samples=4, timesteps=12)
    ver = res.report["verification"]
    assert ver["passed"] and ver["engines"] == ["hwsim", "lava", "emulator"] and ver["samples"] == 3
    assert ver["mismatches"] == {pair: {"a": 0, "b": 0, "o": 0} for pair in ("hwsim-lava", "hwsim-emulator", "lava-emulator")}
    assert ver["spikes"]["lava"] == ver["spikes"]["hwsim"] and all(v > 0 for v in ver["spikes"]["lava"].values())


@pytest.mark.slow
def test_compile_verify_a_recurrent_checkpoint_on_torch_hwsim_and_lava(tmp_path: Path) -> None:
    """``--arch rmlp`` (CubaRecurrentDense hidden layer, compiled as the self-loop lif1 -> lif1.rec ->
    lif1): the hardware-exact torch model, hwsim and Lava agree on every population and step."""
    import torch

    from snnc.compiler.graph_file import read_graph
    from snnc.models.checkpoint import save
    from snnc.models.network import rmlp
    from snnc.pipeline import compile_model

    torch.manual_seed(0)
    model = rmlp(64, 10, hidden=(24,), hardware_exact=True)
    with torch.no_grad():            # loud enough that every layer spikes (as conftest.make_model)
        for layer in model.layers:
            layer.weight.mul_(3.0)
            if getattr(layer, "recurrent_weight", None) is not None:
                layer.recurrent_weight.mul_(3.0)
    model.refit_formats()
    save(model, tmp_path / "m.pt", metadata={"dataset": "digits", "timesteps": 10})
    res = compile_model(tmp_path / "m.pt", out=tmp_path / "a", verify=3, report_samples=8)
    ver = res.report["verification"]
    assert ver["passed"] and ver["engines"] == ["torch", "hwsim", "lava", "emulator"]
    assert set(ver["mismatches"]) == {"torch-hwsim", "torch-lava", "hwsim-lava", "torch-emulator", "hwsim-emulator",
                                   "lava-emulator"}
    assert all(n == 0 for per in ver["mismatches"].values() for n in per.values())
    assert set(ver["mismatches"]["hwsim-lava"]) == {"lif1", "lif2"}
    assert all(v > 0 for v in ver["spikes"]["lava"].values())
    graph = read_graph(res.out / "graph.h5")
    assert graph.recurrent_synapses() == ["lif1.rec"]
    x = inputs_for(graph, np.random.default_rng(0), batch=3, steps=10)
    assert first_difference(hwsim(graph, x).spikes, hwsim(without_recurrence(graph), x).spikes), \
        "the recurrent synapses change nothing: the check would not see them dropped"
