"""Synaptic delays (compiler/ir.py: a Dense's ``delay``) in every engine: hwsim's torch and numba
engines and Lava's DelayDense against a naive step-by-step model written here from the IR's equations.

    a[t] = sum_d shift_e(W_d @ s_src[t-1-d])     (shift_e: << weight_exp, or a floor >> for a negative one,
                                                 applied to each delay group's sum on its own)

then Lava's CUBA-LIF (SP/lava/proc/lif/models.py:138-216). Nothing here calls hwsim's code to build
the expected spikes.
"""
from __future__ import annotations

import dataclasses
import pickle

import numpy as np
import pytest
import torch

from snnc.compiler.ir import MAX_DELAY, Graph, Input, Output, QConv, QCubaLIF, QDense
from snnc.compiler.mapping import map_cores
from snnc.compiler.placement import place
from snnc.compiler.targets import LOIHI
from snnc.hwsim.counts import count
from snnc.hwsim.fast import FastEngine
from snnc.hwsim.sim import HwSim

STATE_MAX = 2**23


# ------------------------------------------------------------------------------ the naive model
def _shift(x: np.ndarray, e: int) -> np.ndarray:
    return x << e if e >= 0 else x >> -e        # numpy's >> on int64 is the floor shift


def _rtz(x: np.ndarray, keep: int) -> np.ndarray:
    p = x * keep
    return np.sign(p) * (np.abs(p) >> 12)


def _naive_conv(s: np.ndarray, syn: QConv) -> np.ndarray:
    """Cross-correlation of one step's (batch, C*H*W) input, loop by loop, wrapped to 24 bits."""
    c, h, w = syn.in_shape
    co, ho, wo = syn.out_shape
    kh, kw = syn.kernel
    (sy, sx), (py, px), (dy, dx) = syn.stride, syn.padding, syn.dilation
    g = syn.groups
    x = np.zeros((s.shape[0], c, h + 2 * py, w + 2 * px), np.int64)
    x[:, :, py:py + h, px:px + w] = s.reshape(-1, c, h, w)
    wt = syn.weight.astype(np.int64)
    out = np.zeros((s.shape[0], co, ho, wo), np.int64)
    cin_g, cout_g = c // g, co // g
    for o in range(co):
        grp = o // cout_g
        for i in range(ho):
            for j in range(wo):
                for ky in range(kh):
                    for kx in range(kw):
                        patch = x[:, grp * cin_g:(grp + 1) * cin_g, i * sy + ky * dy, j * sx + kx * dx]
                        out[:, o, i, j] += patch @ wt[o, :, ky, kx]
    out = out.reshape(s.shape[0], -1)
    return ((out + 2**23) % 2**24) - 2**23


def naive_run(graph: Graph, x: np.ndarray, *, shift_total: bool = False) -> dict[str, np.ndarray]:
    """Spikes (batch, T, n) per population, one step at a time from the IR's equations. ``shift_total``:
    the wrong reading (shift the sum of all delay groups once), to show a test tells the two apart."""
    x = np.asarray(x).astype(np.int64)
    batch, steps, _ = x.shape
    pops = graph.populations()
    trains = {graph.input.name: x}
    trains.update({p.name: np.zeros((batch, steps, p.neuron.size), np.int64) for p in pops})
    u = {p.name: np.zeros((batch, p.neuron.size), np.int64) for p in pops}
    v = {p.name: np.zeros((batch, p.neuron.size), np.int64) for p in pops}
    for t in range(steps):
        for p in pops:                              # feed-forward graphs: sources step first
            neu = p.neuron
            a = np.zeros((batch, neu.size), np.int64)
            for syn, src in p.inputs:
                if isinstance(syn, QConv):
                    if t >= 1:
                        a += _naive_conv(trains[src][:, t - 1], syn)
                    continue
                delay = np.zeros(syn.weight.shape, np.int64) if syn.delay is None else syn.delay.astype(np.int64)
                total = np.zeros_like(a)
                for d in range(MAX_DELAY + 1):
                    if t - 1 - d < 0 or not (delay == d).any():
                        continue
                    w_d = np.where(delay == d, syn.weight.astype(np.int64), 0)
                    part = trains[src][:, t - 1 - d] @ w_d.T
                    if shift_total:
                        total += part
                    else:
                        a += _shift(part, syn.weight_exp)
                if shift_total:
                    a += _shift(total, syn.weight_exp)
            bias = neu.bias_mant.astype(np.int64) << neu.bias_exp
            uu = _rtz(u[p.name], 4096 - neu.du) + (a << 6)
            uu = np.where(uu > STATE_MAX, uu - 2**24, np.where(uu <= -STATE_MAX, uu + 2**24, uu))
            vv = np.clip(_rtz(v[p.name], 4096 - neu.dv) + uu + bias, -(STATE_MAX - 1), STATE_MAX - 1)
            s = vv > (neu.vth << 6)
            trains[p.name][:, t] = s
            u[p.name], v[p.name] = uu, np.where(s, 0, vv)
    return {p.name: trains[p.name].astype(bool) for p in pops}


# ------------------------------------------------------------------------------ graphs
def _pop(name: str, n: int, rng: np.random.Generator, *, shape: tuple[int, ...] | None = None,
         vth: tuple[int, int] = (40, 160), bias: bool = True) -> QCubaLIF:
    b = rng.integers(-10, 40, n) if bias else np.zeros(n, np.int64)
    return QCubaLIF(name, n, du=int(rng.integers(200, 2000)), dv=int(rng.integers(200, 2000)),
                    vth=int(rng.integers(*vth)), bias_mant=b.astype(np.int64), bias_exp=6, shape=shape)


def _w(out: int, inp: int, rng: np.random.Generator, lo: int = -100, hi: int = 200) -> np.ndarray:
    w = 2 * rng.integers(lo // 2, hi // 2, (out, inp)).astype(np.int64)   # Lava's mixed-sign format: even
    w[rng.random(w.shape) < 0.2] = 0
    return w


def chain(rng: np.random.Generator, sizes: list[int], delays: list, *, bits: int = 0, exps: list[int] | None = None,
          bias: bool = True) -> Graph:
    """Input -> (QDense with delay -> QCubaLIF)* -> Output."""
    nodes: list = [Input("x", (sizes[0],), bits)]
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        exp = (exps or [0] * len(delays))[i]
        d = delays[i](n_out, n_in) if callable(delays[i]) else delays[i]
        nodes += [QDense(f"fc{i}", _w(n_out, n_in, rng), exp, delay=d), _pop(f"h{i}", n_out, rng, bias=bias)]
    return Graph.chain(nodes + [Output("out")])


def mixed_sources(rng: np.random.Generator) -> Graph:
    """x -> fa -> a; a -> ac (delayed) -> c and x -> xc (no delay) -> c: two sources into one population."""
    nodes = [Input("x", (10,)), QDense("fa", _w(8, 10, rng), 0), _pop("a", 8, rng),
             QDense("ac", _w(6, 8, rng), 0, delay=rng.integers(0, 9, (6, 8))),
             QDense("xc", _w(6, 10, rng, -60, 120), 0), _pop("c", 6, rng), Output("out")]
    edges = [("x", "fa"), ("fa", "a"), ("a", "ac"), ("ac", "c"), ("x", "xc"), ("xc", "c"), ("c", "out")]
    return Graph.build(nodes, edges, {"source": "tests/test_delays_engines.py mixed_sources"})


def conv_then_delayed(rng: np.random.Generator) -> Graph:
    """x (1, 6, 6) -> 3x3 conv -> c (2, 4, 4) -> delayed dense -> o."""
    conv = QConv("conv", rng.integers(-40, 120, (2, 1, 3, 3)).astype(np.int64), (1, 6, 6))
    nodes = [Input("x", (1, 6, 6)), conv, _pop("c", 32, rng, shape=(2, 4, 4)),
             QDense("fc", _w(5, 32, rng), 0, delay=rng.integers(0, 7, (5, 32))), _pop("o", 5, rng), Output("out")]
    return Graph.build(nodes, [("x", "conv"), ("conv", "c"), ("c", "fc"), ("fc", "o"), ("o", "out")],
                       {"source": "tests/test_delays_engines.py conv_then_delayed"})


def delayed_then_conv(rng: np.random.Generator) -> Graph:
    """x -> delayed dense -> p (1, 5, 5) -> 3x3 conv -> o (2, 3, 3): the delays' rows in Lava's (W, H, C) order."""
    conv = QConv("conv", rng.integers(-40, 140, (2, 1, 3, 3)).astype(np.int64), (1, 5, 5))
    nodes = [Input("x", (12,)), QDense("fc", _w(25, 12, rng), 0, delay=rng.integers(0, 9, (25, 12))),
             _pop("p", 25, rng, shape=(1, 5, 5)), conv, _pop("o", 18, rng, shape=(2, 3, 3)), Output("out")]
    return Graph.build(nodes, [("x", "fc"), ("fc", "p"), ("p", "conv"), ("conv", "o"), ("o", "out")],
                       {"source": "tests/test_delays_engines.py delayed_then_conv"})


def _inputs(graph: Graph, rng: np.random.Generator, batch: int, steps: int, p: float = 0.3) -> np.ndarray:
    if graph.input.bits:
        return rng.integers(0, 2**graph.input.bits, (batch, steps, graph.input.size))
    return rng.random((batch, steps, graph.input.size)) < p


def _up_to_max(rng: np.random.Generator, out: int, inp: int) -> np.ndarray:
    """Random per-synapse delays 0..62, the longest one present, and that synapse excitatory."""
    d = rng.integers(0, MAX_DELAY + 1, (out, inp))
    d[0, :] = MAX_DELAY
    return d


def _graded(rng: np.random.Generator) -> Graph:
    """4-bit graded input, weight_exp -4, random delays: the per-group floor shift matters."""
    return chain(rng, [9, 7, 4], [lambda o, i: rng.integers(0, 6, (o, i)), None], bits=4, exps=[-4, 0])


CASES = {
    "per_connection": (lambda r: chain(r, [12, 10, 4], [3, None]), 30),
    "per_output_neuron": (lambda r: chain(r, [12, 8, 4], [lambda o, i: r.integers(0, 10, (o, 1)), None]), 30),
    "per_synapse_0_62": (lambda r: chain(r, [10, 8], [lambda o, i: _up_to_max(r, o, i)], bias=False), 80),
    "graded": (_graded, 30),
    "three_layers": (lambda r: chain(r, [12, 9, 7, 4], [lambda o, i: r.integers(0, 5, (o, i)), None,
                                                        lambda o, i: r.integers(0, 4, (o, 1))]), 30),
    "mixed_sources": (mixed_sources, 30),
    "conv_then_delayed": (conv_then_delayed, 25),
    "delayed_then_conv": (delayed_then_conv, 25),
}


def _case(name: str, seed: int = 0) -> tuple[Graph, np.ndarray]:
    rng = np.random.default_rng([seed, len(name)])
    build, steps = CASES[name]
    graph = build(rng)
    assert graph.has_delays
    return graph, _inputs(graph, rng, 4, steps)


def _strip(graph: Graph) -> Graph:
    """The same graph without any delay."""
    nodes = [dataclasses.replace(n, delay=None) if getattr(n, "delay", None) is not None else n
             for n in graph.nodes.values()]
    return Graph.build(nodes, list(graph.edges), dict(graph.meta))


def _assert_equal(ref: dict[str, np.ndarray], got: dict[str, np.ndarray], what: str) -> None:
    for name, a in ref.items():
        b = np.asarray(got[name])
        bad = np.argwhere(a != b)
        assert not len(bad), f"{what}: population {name} differs first at (sample, step, neuron) {tuple(bad[0])}"


# ------------------------------------------------------------------------------ hwsim
@pytest.mark.parametrize("name", list(CASES))
@pytest.mark.parametrize("seed", [0, 1])
def test_hwsim_engines_equal_the_naive_model(name: str, seed: int) -> None:
    graph, x = _case(name, seed)
    ref = naive_run(graph, x)
    assert sum(int(s.sum()) for s in ref.values()) > 0, "the case should spike"
    torch_res = HwSim.from_graph(graph).run(x, engine="torch")
    fast_res = HwSim.from_graph(graph).run(x, engine="numba")
    _assert_equal(ref, torch_res.spikes, "torch engine")
    _assert_equal(ref, fast_res.spikes, "numba engine")
    for a, b in zip(torch_res.activity, fast_res.activity):       # count for count
        for field in ("synops", "spikes", "active_updates", "updates"):
            assert np.array_equal(getattr(a, field), getattr(b, field)), (a.name, field)
        assert a.synapses == b.synapses
    for k in torch_res.final_v:
        assert np.array_equal(torch_res.final_v[k], fast_res.final_v[k])


def test_graded_case_needs_the_per_group_shift() -> None:
    """The graded case is exact only with the shift applied per delay group: shifting the total differs."""
    differs = 0
    for seed in range(4):
        graph, x = _case("graded", seed)
        ref = naive_run(graph, x)
        differs += any((ref[k] != v).any() for k, v in naive_run(graph, x, shift_total=True).items())
        _assert_equal(ref, HwSim.from_graph(graph).run(x, engine="torch").spikes, "torch engine")
        _assert_equal(ref, HwSim.from_graph(graph).run(x, engine="numba").spikes, "numba engine")
    assert differs, "no seed told the per-group shift from a shift of the total"


def test_fast_engine_never_takes_the_event_path_for_delays() -> None:
    """Very sparse input (the numba engine's event path for plain Dense) must still honour delays."""
    graph, _ = _case("per_synapse_0_62")
    x = np.random.default_rng(5).random((3, 80, graph.input.size)) < 0.01
    ref = naive_run(graph, x)
    _assert_equal(ref, FastEngine(graph, event_density=1.0).run(x).spikes, "numba engine (events forced)")
    _assert_equal(ref, HwSim.from_graph(graph).run(x, engine="torch").spikes, "torch engine")


def test_zero_delays_are_the_undelayed_graph() -> None:
    rng = np.random.default_rng(3)
    w = _w(6, 9, rng)
    assert QDense("d", w, 0, delay=np.zeros((6, 9), np.int64)).delay is None
    graph = chain(np.random.default_rng(4), [9, 6, 3], [np.zeros((6, 9), np.int64), None])
    plain = chain(np.random.default_rng(4), [9, 6, 3], [None, None])
    assert not graph.has_delays
    x = _inputs(graph, rng, 3, 20)
    for engine in ("torch", "numba"):
        a, b = HwSim.from_graph(graph).run(x, engine=engine), HwSim.from_graph(plain).run(x, engine=engine)
        _assert_equal(a.spikes, b.spikes, engine)


def test_delays_beyond_the_run_deliver_nothing() -> None:
    rng = np.random.default_rng(6)
    graph = chain(rng, [8, 5], [25], bias=False)       # T = 20: every spike would arrive at step >= 26
    x = np.ones((2, 20, 8), bool)
    for engine in ("torch", "numba"):
        res = HwSim.from_graph(graph).run(x, engine=engine)
        assert not res.spikes["h0"].any() and not res.final_v["h0"].any(), engine
        assert res.activity[0].synops.sum() == 2 * 19 * 8 * 5     # counted at receipt, arrival or not
    # one step longer than the delay: the first spikes arrive at step 1 + 25 (0-based: 26)
    x = np.ones((2, 40, 8), bool)
    ref = naive_run(graph, x)
    _assert_equal(ref, HwSim.from_graph(graph).run(x, engine="torch").spikes, "torch")
    _assert_equal(ref, HwSim.from_graph(graph).run(x, engine="numba").spikes, "numba")


def test_synops_of_a_delayed_graph_equal_the_undelayed_ones() -> None:
    """Synaptic ops are counted at receipt: a delay moves when the input arrives, not the work done."""
    rng = np.random.default_rng(8)
    delayed = chain(np.random.default_rng(9), [10, 6], [lambda o, i: rng.integers(0, 8, (o, i))])
    plain = chain(np.random.default_rng(9), [10, 6], [None])
    x = _inputs(plain, rng, 5, 40)
    for engine in ("torch", "numba"):
        a, b = HwSim.from_graph(delayed).run(x, engine=engine), HwSim.from_graph(plain).run(x, engine=engine)
        assert np.array_equal(a.activity[0].synops, b.activity[0].synops), engine
        assert a.activity[0].synapses == b.activity[0].synapses
    # the report's per-core counts (snnc.hwsim.counts) agree with the engines' layer counts
    graph, x = _case("three_layers")
    mapping = map_cores(graph, LOIHI)
    detailed = count(graph, mapping, place(mapping, LOIHI), x)
    res = HwSim.from_graph(graph).run(x, engine="numba")
    for lc, act in zip(detailed.layers, res.activity):
        assert lc.name == act.name
        assert np.array_equal(lc.synops.sum(axis=(0, 2)), act.synops)
        assert np.array_equal(lc.active.sum(axis=(0, 2)), act.active_updates)
        assert np.array_equal(lc.spikes.sum(axis=(0, 2)), act.spikes)


def test_delays_survive_pickle_and_the_worker_pool() -> None:
    from snnc.hwsim.parallel import run_sharded

    graph, x = _case("per_output_neuron")
    back = pickle.loads(pickle.dumps(graph))
    assert back.has_delays and np.array_equal(back.nodes["fc0"].delay, graph.nodes["fc0"].delay)
    ref = naive_run(graph, x)
    _assert_equal(ref, run_sharded(graph, x, workers=2).spikes, "HwSimPool")


def test_headroom_observes_delayed_inputs() -> None:
    from snnc.hwsim.headroom import observe_state

    graph, x = _case("per_connection")
    state = observe_state(graph, x)
    assert state["h0"].peak_input > 0
    undelayed = chain(np.random.default_rng([0, len("per_connection")]), [12, 10, 4], [None, None])
    assert observe_state(undelayed, x)["h0"].peak_input == state["h0"].peak_input   # same sums, later


def test_float_reference_honours_delays() -> None:
    from snnc.compiler.ir import CubaLIF, Dense
    from snnc.hwsim.reference import run_float

    rng = np.random.default_rng(11)
    w = rng.normal(0, 0.6, (5, 7))
    d = rng.integers(0, 6, (5, 7))
    lif = CubaLIF("h", 5, current_decay=0.2, voltage_decay=0.1, threshold=1.0)
    g = Graph.chain([Input("x", (7,)), Dense("fc", w, delay=d), lif, Output("out")])
    x = (rng.random((3, 25, 7)) < 0.4).astype(np.float64)
    got = run_float(g, x)
    # naive float model
    u = np.zeros((3, 5))
    v = np.zeros((3, 5))
    spikes = np.zeros((3, 25, 5), bool)
    for t in range(25):
        a = np.zeros((3, 5))
        for k in range(5):
            for i in range(7):
                if t - 1 - d[k, i] >= 0:
                    a[:, k] += w[k, i] * x[:, t - 1 - d[k, i], i]
        u = 0.8 * u + a
        v = 0.9 * v + u
        spikes[:, t] = v > 1.0
        v[spikes[:, t]] = 0.0
    assert np.array_equal(got.spikes["h"], spikes)
    assert np.allclose(got.final_v["h"], v)


def test_neurobench_equivalent_honours_delays() -> None:
    from snnc.hwsim.neurobench import neurobench_metrics, torch_equivalent

    for name in ("graded", "mixed_sources", "conv_then_delayed"):
        graph, x = _case(name)
        res = HwSim.from_graph(graph).run(x, engine="torch")
        eq = torch_equivalent(graph).simulate(torch.from_numpy(np.asarray(x)))
        _assert_equal(res.spikes, {k: v.numpy() for k, v in eq.items()}, f"torch_equivalent {name}")
        nb = neurobench_metrics(graph, res, x)
        footprint = sum(t.numel() * t.element_size() for t in torch_equivalent(graph).state_dict().values())
        assert nb["metrics"]["Footprint"] == footprint


@pytest.mark.parametrize("name", ["graded", "mixed_sources"])
def test_neurobench_harness_measures_the_delayed_equivalent_as_snnc_does(name: str) -> None:
    from neurobench.benchmarks import Benchmark
    from neurobench.metrics.static import ConnectionSparsity, Footprint, ParameterCount
    from neurobench.metrics.workload import ActivationSparsity, SynapticOperations
    from torch.utils.data import DataLoader, TensorDataset

    from snnc.hwsim.neurobench import neurobench_metrics, neurobench_model

    graph, x = _case(name)
    ours = neurobench_metrics(graph, HwSim.from_graph(graph).run(x), x, batch_size=2)["metrics"]
    data = TensorDataset(torch.as_tensor(np.asarray(x), dtype=torch.float32), torch.zeros(len(x)))
    theirs = Benchmark(neurobench_model(graph), DataLoader(data, batch_size=2), [], [],
                       [[Footprint, ConnectionSparsity, ParameterCount], [ActivationSparsity, SynapticOperations]]
                       ).run(quiet=True)
    for key in ("Footprint", "ParameterCount", "ConnectionSparsity", "SynapticOperations"):
        assert theirs[key] == ours[key], key
    assert theirs["ActivationSparsity"] == pytest.approx(ours["ActivationSparsity"], rel=1e-12, abs=0)


# ------------------------------------------------------------------------------ Lava
@pytest.fixture(scope="module")
def lava():
    from snnc.runtime import lava_backend

    lava_backend.lava_api()
    return lava_backend


def test_lava_graded_input_needs_the_per_group_shift(lava) -> None:
    for seed in range(2, 8):
        graph, x = _case("graded", seed)
        ref = naive_run(graph, x)
        if any((ref[k] != v).any() for k, v in naive_run(graph, x, shift_total=True).items()):
            break
    else:
        pytest.fail("no seed told the per-group shift from a shift of the total")
    _assert_equal(ref, lava.run_on_lava(graph, x, timeout_s=120), "Lava graded")


@pytest.mark.parametrize("name", list(CASES))
def test_lava_equals_the_naive_model(lava, name: str) -> None:
    graph, x = _case(name)
    ref = naive_run(graph, x)
    plain = naive_run(_strip(graph), x)
    assert any((ref[k] != plain[k]).any() for k in ref), "the delays should change the spikes"
    got = lava.run_on_lava(graph, x, timeout_s=120)
    _assert_equal(ref, got, f"Lava {name}")
