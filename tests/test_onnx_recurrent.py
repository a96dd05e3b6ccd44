"""graph.onnx for recurrent networks (compiler/onnx_io.py, docs/onnx.md "Recurrent networks").

The ONNX file is one timestep as a pure function of this step's input and the previous step's state,
and every synapse reads its source's previous-step spikes ``<src>/s_prev`` (the one-step delay). A
recurrent synapse is no different: it reads ``<pop>/s_prev`` of a population in its own cycle (itself,
or one later in the order), which is a graph input, so the ONNX graph stays acyclic and the step function
holds any cycle. These tests build recurrent graphs by hand (self-loops, a cycle through two and three
populations, graded input, weight exponents, weights outside Lava's format, a conv before the cycle),
check the exact round trip through read_onnx, and run the file on onnx's ReferenceEvaluator to hwsim's
spikes (engine="torch") in every population at every step.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest

from snnc.compiler.ir import Graph, Input, Output, QConv, QCubaLIF, QDense
from snnc.compiler.onnx_io import escape_name, graph_from_onnx, graph_to_onnx, read_onnx, write_onnx
from snnc.hwsim.sim import HwSim
from snnc.compiler.ir import check_round_trip as _check_round_trip

from test_onnx_io import _bypass, assert_same_graph_exactly, run_step_function


def _lif(name: str, n: int, rng: np.random.Generator, shape: tuple[int, ...] | None = None) -> QCubaLIF:
    return QCubaLIF(name, n, int(rng.integers(200, 3000)), int(rng.integers(50, 900)), int(rng.integers(20, 120)),
                    rng.integers(-6, 7, n).astype(np.int64), bias_exp=int(rng.integers(4, 8)), shape=shape)


def _w(rng: np.random.Generator, out: int, inp: int, kind: str = "lava") -> np.ndarray:
    if kind == "raw":        # odd and beyond [-256, 254]: the file carries Lava's weight format as ops
        return rng.integers(-300, 301, (out, inp)).astype(np.int64)
    return (rng.integers(-35, 45, (out, inp)) * 2).astype(np.int64)


def random_recurrent(rng: np.random.Generator) -> Graph:
    """Input (binary or graded) -> a chain of 1-4 dense populations (the first maybe behind a conv), then
    1-3 recurrent synapses from a population back to itself or to an earlier one (any weight_exp, any
    weights), inserted anywhere among the population's inputs; sometimes a feed-forward skip too."""
    bits = int(rng.choice([0, 0, 3]))
    conv = bits == 0 and rng.random() < 0.3
    nodes: list = []
    edges: list[tuple[str, str]] = []
    if conv:
        inp = Input("in", (2, 5, 5))
        c = QConv("c0", rng.integers(-12, 16, (2, 2, 3, 3)).astype(np.int64), (2, 5, 5), padding=1)
        nodes += [inp, c, _lif("q0", 50, rng, shape=(2, 5, 5))]
        edges += [("in", "c0"), ("c0", "q0")]
        prev, n_prev = "q0", 50
    else:
        inp = Input("in", (int(rng.integers(3, 9)),), bits=bits)
        nodes.append(inp)
        prev, n_prev = "in", inp.size
    pops: list[tuple[str, int]] = []
    for k in range(1, int(rng.integers(1, 5)) + 1):
        n = int(rng.integers(2, 9))
        exp = -bits if (k == 1 and bits) else int(rng.integers(-1, 2))
        nodes += [QDense(f"d{k}", _w(rng, n, n_prev, str(rng.choice(["lava", "raw"]))), exp), _lif(f"p{k}", n, rng)]
        edges += [(prev, f"d{k}"), (f"d{k}", f"p{k}")]
        pops.append((f"p{k}", n))
        prev, n_prev = f"p{k}", n
    if len(pops) > 2 and rng.random() < 0.5:     # a feed-forward skip into the last population
        (a, na), (b, nb) = pops[0], pops[-1]
        nodes.append(QDense("skip", _w(rng, nb, na)))
        edges += [(a, "skip"), ("skip", b)]
    for r in range(int(rng.integers(1, 4))):
        j = int(rng.integers(0, len(pops)))
        i = int(rng.integers(0, j + 1))
        (src, ns), (dst, nd) = pops[j], pops[i]
        name = f"r{r}"
        nodes.append(QDense(name, _w(rng, nd, ns, str(rng.choice(["lava", "raw"]))), int(rng.integers(-2, 2))))
        into = [k for k, e in enumerate(edges) if e[1] == dst]
        edges.insert(int(rng.choice(into)) + int(rng.integers(0, 2)), (name, dst))   # before or after one input
        edges.append((src, name))
    nodes.append(Output("out"))
    edges.append((prev, "out"))
    return Graph.build(nodes, edges)


def self_loop() -> Graph:
    rng = np.random.default_rng(0)
    p = _lif("p", 4, rng)
    return Graph.build([Input("x", (5,)), QDense("d", _w(rng, 4, 5)), p, QDense("r", _w(rng, 4, 4)), Output("o")],
                       [("x", "d"), ("d", "p"), ("p", "r"), ("r", "p"), ("p", "o")])


def two_population_cycle() -> Graph:
    """x -> d1 -> p1 -> d2 -> p2 -> out, and p2 -> fb -> p1."""
    rng = np.random.default_rng(1)
    nodes = [Input("x", (5,)), QDense("d1", _w(rng, 6, 5)), _lif("p1", 6, rng), QDense("d2", _w(rng, 4, 6)),
             _lif("p2", 4, rng), QDense("fb", _w(rng, 6, 4)), Output("out")]
    return Graph.build(nodes, [("x", "d1"), ("d1", "p1"), ("p1", "d2"), ("d2", "p2"), ("p2", "fb"), ("fb", "p1"),
                               ("p2", "out")])


def _spikes(graph: Graph, rng: np.random.Generator, batch: int, steps: int) -> np.ndarray:
    inp = graph.input
    if inp.bits:
        return rng.integers(0, 2 ** inp.bits, (batch, steps, inp.size))
    return rng.random((batch, steps, inp.size)) < 0.45


def _assert_spikes_like_hwsim(graph: Graph, model: onnx.ModelProto, x: np.ndarray) -> dict[str, np.ndarray]:
    ref = HwSim.from_graph(graph).run(x, engine="torch")
    got, out, _ = run_step_function(model, x)
    assert list(got) == list(ref.spikes)
    for name, want in ref.spikes.items():
        diff = np.argwhere(got[name] != want)
        assert not len(diff), f"population {name!r}: first mismatch (sample, step, neuron) {diff[0]}"
    assert np.array_equal(out, ref.output)
    return ref.spikes


@pytest.mark.parametrize("seed", range(24))
def test_recurrent_graphs_round_trip_exactly_and_step_like_hwsim(seed: int, tmp_path: Path) -> None:
    rng = np.random.default_rng(seed)
    graph = random_recurrent(rng)
    assert graph.is_recurrent
    path = tmp_path / "graph.onnx"
    write_onnx(graph, path)
    model = onnx.load(str(path))
    onnx.checker.check_model(model, full_check=True)     # also: the ONNX nodes are in topological order
    back = read_onnx(path)
    assert_same_graph_exactly(graph, back)
    assert back.recurrent_synapses() == graph.recurrent_synapses()
    _check_round_trip(graph, back, "graph.onnx")         # what snn-compile checks on every artifact
    _assert_spikes_like_hwsim(graph, model, _spikes(graph, rng, 2, int(rng.integers(6, 14))))


@pytest.mark.parametrize("build", [self_loop, two_population_cycle])
def test_a_recurrent_synapse_reads_the_previous_step_of_its_own_cycle(build) -> None:  # type: ignore[no-untyped-def]
    """The representation: each recurrent synapse's Gemm reads ``<src>/s_prev`` of a population in its own
    cycle, fed back from that population's ``<src>/s`` output by the state rule; nothing else is new. Leave
    the recurrent synapse out of the population's sum and the file no longer spikes like hwsim."""
    graph = build()
    model = graph_to_onnx(graph)
    nodes = {n.name: n for n in model.graph.node}
    inputs = {v.name for v in model.graph.input}
    outputs = {v.name for v in model.graph.output}
    for pop in graph.populations():
        for syn, src in pop.recurrent_inputs:
            gemm = nodes[escape_name(syn.name)]
            assert gemm.op_type == "Gemm" and gemm.input[0] == f"{escape_name(src)}/s_prev", syn.name
            assert f"{escape_name(src)}/s_prev" in inputs and f"{escape_name(src)}/s" in outputs
    assert_same_graph_exactly(graph, graph_from_onnx(model))
    rng = np.random.default_rng(2)
    x = _spikes(graph, rng, 3, 20)
    ref = _assert_spikes_like_hwsim(graph, model, x)
    assert all(s.any() for s in ref.values())
    # the recurrent population sums its feed-forward and recurrent parts with one Add: bypass it
    pop = next(p for p in graph.populations() if p.recurrent)
    ff = next(s for s, _ in pop.feedforward_inputs)
    bad, _, _ = run_step_function(_bypass(model, f"{escape_name(pop.name)}/a1", f"{escape_name(ff.name)}/a"), x)
    assert not np.array_equal(bad[pop.name], ref[pop.name])
