"""Recurrent graphs in the IR and the engines that define their meaning (hwsim's torch engine and
the float reference): order, blocks, refusals, and spikes equal to an independent naive model."""
from __future__ import annotations

import numpy as np
import pytest

from snnc.compiler.ir import Conv, CubaLIF, Dense, Graph, Input, Output, QCubaLIF, QDense
from snnc.errors import GraphError
from snnc.hwsim.headroom import observe_state
from snnc.hwsim.reference import run_float
from snnc.hwsim.sim import HwSim

from recurrent_graphs import RECURRENT_GRAPHS, inputs_for, naive_run, self_loop


def _float_self_loop(rng: np.random.Generator, n_in: int = 6, n: int = 5) -> Graph:
    nodes = [Input("x", (n_in,)), Dense("fc", rng.normal(0, 1, (n, n_in))),
             CubaLIF("h", n, 0.2, 0.1, 1.0, bias=rng.normal(0, 0.1, n)),
             Dense("rec", rng.normal(0, 0.7, (n, n))), Dense("ro", rng.normal(0, 1, (2, n))),
             CubaLIF("o", 2, 0.3, 0.2, 1.0), Output("out")]
    edges = [("x", "fc"), ("fc", "h"), ("h", "rec"), ("rec", "h"), ("h", "ro"), ("ro", "o"), ("o", "out")]
    return Graph.build(nodes, edges)


def test_order_blocks_and_recurrent_synapses() -> None:
    g = RECURRENT_GRAPHS["two_cycle"](np.random.default_rng(0))
    assert [n.name for n in g.ordered()] == ["x", "fa", "a", "ab", "b", "ba", "bb", "bo", "o", "out"]
    pops = g.populations()
    assert [(p.name, sorted(p.recurrent), p.block) for p in pops] == [("a", ["ba"], 0), ("b", ["ab", "bb"], 0),
                                                                       ("o", [], 1)]
    assert [[p.name for p in b] for b in g.blocks()] == [["a", "b"], ["o"]]
    assert g.is_recurrent and g.recurrent_synapses() == ["ba", "ab", "bb"]
    assert [s.name for s, _ in pops[1].feedforward_inputs] == []
    with pytest.raises(GraphError, match="does not support recurrent networks yet"):
        g.require_feedforward("this writer")
    chain = Graph.chain([Input("x", (3,)), QDense("d", np.ones((2, 3), np.int64)),
                         QCubaLIF("p", 2, 0, 0, 10, np.zeros(2, np.int64)), Output("out")])
    assert not chain.is_recurrent and [len(b) for b in chain.blocks()] == [1]
    chain.require_feedforward("anything")


def test_cycles_that_cannot_be_built_are_refused() -> None:
    x, p = Input("x", (1, 4, 4)), CubaLIF("p", 16, 0.1, 0.1, 1.0, shape=(1, 4, 4))
    conv = Conv("c", np.ones((1, 1, 3, 3)), (1, 4, 4), padding=(1, 1))
    rec = Conv("rc", np.ones((1, 1, 3, 3)), (1, 4, 4), padding=(1, 1))
    with pytest.raises(GraphError, match="convolution on a cycle: recurrent synapses must be Dense"):
        Graph.build([x, conv, p, rec, Output("out")], [("x", "c"), ("c", "p"), ("p", "rc"), ("rc", "p"), ("p", "out")])
    d = Dense("d", np.ones((2, 16)))
    with pytest.raises(GraphError, match="nothing may feed it"):
        Graph.build([Input("x", (2,)), Dense("d0", np.ones((2, 2))), CubaLIF("q", 2, .1, .1, 1.), d,
                     Output("out")], [("x", "d0"), ("d0", "q"), ("q", "x"), ("q", "out")])
    del d


@pytest.mark.parametrize("kind", sorted(RECURRENT_GRAPHS))
@pytest.mark.parametrize("seed", [0, 1])
def test_torch_engine_equals_the_naive_model(kind: str, seed: int) -> None:
    rng = np.random.default_rng(seed)
    g = RECURRENT_GRAPHS[kind](rng)
    x = inputs_for(g, rng, batch=2, steps=10)
    got = HwSim.from_graph(g).run(x, engine="torch", chunk=1)   # chunks of one sample: chunking is exact too
    want = naive_run(g, x)
    assert set(want) == set(got.spikes)
    for name, s in want.items():
        assert np.array_equal(got.spikes[name], s), name
    assert sum(int(s.sum()) for s in want.values()) > 0
    # the recurrent synapses carry real traffic, counted like any Dense: spikes at t-1 x fan-out
    act = {a.name: a for a in got.activity}
    for p in g.populations():
        want_ops = sum((np.concatenate([np.zeros_like(got.spikes[src][:, :1]), got.spikes[src][:, :-1]], 1)
                        if src != g.input.name else np.concatenate([np.zeros_like(x[:, :1]), x[:, :-1]], 1)
                        ).astype(bool).sum(axis=(0, 2)) * syn.out_size for syn, src in p.inputs)
        assert np.array_equal(act[p.name].synops, want_ops), p.name


def test_graded_input_into_a_recurrent_layer() -> None:
    rng = np.random.default_rng(3)
    g = self_loop(rng, bits=4)
    x = inputs_for(g, rng, batch=2, steps=9)
    got = HwSim.from_graph(g).run(x, engine="torch")
    for name, s in naive_run(g, x).items():
        assert np.array_equal(got.spikes[name], s), name


def test_recurrence_changes_the_answer() -> None:
    """The recurrent synapse is not silently dropped: zeroing it changes the spikes."""
    rng = np.random.default_rng(0)
    g = self_loop(rng)
    x = inputs_for(g, rng, batch=2, steps=12)
    nodes = [QDense("rec", np.zeros_like(n.weight)) if n.name == "rec" else n for n in g.nodes.values()]
    cut = Graph.build(nodes, list(g.edges))
    assert not np.array_equal(HwSim.from_graph(g).run(x, engine="torch").spikes["h"],
                              HwSim.from_graph(cut).run(x, engine="torch").spikes["h"])


def test_float_reference_runs_recurrence_step_by_step() -> None:
    rng = np.random.default_rng(5)
    g = _float_self_loop(rng)
    x = (rng.random((3, 15, 6)) < 0.5).astype(float)
    got = run_float(g, x)
    fc, rec, ro = (g.nodes[k].weight for k in ("fc", "rec", "ro"))
    h = g.nodes["h"]
    s_h = np.zeros((3, 15, 5), bool)
    s_o = np.zeros((3, 15, 2), bool)
    u, v, uo, vo = np.zeros((3, 5)), np.zeros((3, 5)), np.zeros((3, 2)), np.zeros((3, 2))
    for t in range(15):
        prev_x = x[:, t - 1] if t else np.zeros((3, 6))
        prev_h = s_h[:, t - 1].astype(float) if t else np.zeros((3, 5))
        u = 0.8 * u + prev_x @ fc.T + prev_h @ rec.T
        v = 0.9 * v + u + h.bias
        s_h[:, t] = v > 1.0
        v[s_h[:, t]] = 0
        uo = 0.7 * uo + prev_h @ ro.T
        vo = 0.8 * vo + uo
        s_o[:, t] = vo > 1.0
        vo[s_o[:, t]] = 0
    assert np.array_equal(got.spikes["h"], s_h) and np.array_equal(got.spikes["o"], s_o)
    assert s_h.sum() > 0


def test_state_watch_covers_recurrent_layers() -> None:
    rng = np.random.default_rng(1)
    g = RECURRENT_GRAPHS["stacked"](rng)
    ranges = observe_state(g, inputs_for(g, rng))
    assert set(ranges) == {"h1", "h2", "o"} and ranges["h1"].peak_input > 0
