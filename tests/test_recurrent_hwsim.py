"""Recurrent networks on every hwsim path: the numba engine (recurrent synapses event by event inside
its per-sample time loop, the populations of a cycle stepping together) equals the torch engine
(``simulate_block``, the definition) spike for spike, in final v and in every activity count, and
both equal the independent naive reference of tests/recurrent_graphs.py; batch chunks, the event and
GEMM paths of the feed-forward input, graded input and worker processes change nothing. The mapper
counts a recurrent synapse on its cores (input axons, synaptic words, output axons: a population
that feeds itself receives its own spikes) as brute force over explicit connectivity does, also
when the output-axon limit makes it split; the per-core counts, traffic and energy add up to the
engines' totals.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from snnc.compiler.ir import Graph, Input, Output, QConv, QCubaLIF, QDense
from snnc.compiler.mapping import map_cores
from snnc.compiler.placement import place
from snnc.compiler.targets import LOIHI
from snnc.errors import TargetLimitError
from snnc.hwsim.counts import count
from snnc.hwsim.energy import estimate, load_cost_model
from snnc.hwsim.fast import FastEngine
from snnc.hwsim.parallel import HwSimPool
from snnc.hwsim.sim import HwSim
from snnc.models.readout import Readout

from recurrent_graphs import RECURRENT_GRAPHS, inputs_for, naive_run, self_loop
from test_energy import expected_traffic
from test_hwsim_engines import assert_same_result
from test_mapping import brute_core_use, connectivity


def _lif(name: str, n: int, rng: np.random.Generator, *, vth_top: int = 200, shape=None) -> QCubaLIF:
    return QCubaLIF(name, n, du=int(rng.integers(0, 4097)), dv=int(rng.integers(0, 4097)),
                    vth=int(rng.integers(0, vth_top)), bias_mant=rng.integers(-30, 60, n).astype(np.int64),
                    bias_exp=int(rng.integers(0, 7)), shape=shape)


def random_block_graph(seed: int, *, lava_format: bool = True) -> Graph:
    """A random cycle of 1-3 populations (a ring, self-loops and chords at random), fed from the
    input into a random subset of them (binary or graded), read by a feed-forward population.
    Weight exponents -3..5 and loud weights wrap u and clip v; without ``lava_format`` the weights
    leave Lava's format (odd, beyond +-256), which both engines floor and clip alike."""
    rng = np.random.default_rng(seed)
    bits = int(rng.choice([0, 0, 3, 8]))
    n_in = int(rng.integers(1, 30))
    k = int(rng.integers(1, 4))
    sizes = [int(rng.integers(1, 20)) for _ in range(k)]
    loud = rng.random() < 0.3

    def dense(name: str, out: int, inp: int) -> QDense:
        if lava_format:
            w = 2 * rng.integers(-128, 128, (out, inp))
        else:
            w = rng.integers(-400, 400, (out, inp))
        w[rng.random(w.shape) < rng.random()] = 0        # from dense to very sparse
        return QDense(name, w.astype(np.int64), weight_exp=int(rng.integers(-3, 6 if loud else 2)))

    pops = [f"p{i}" for i in range(k)]
    nodes: list = [Input("x", (n_in,), bits)]
    nodes += [_lif(p, n, rng, vth_top=2**17 if loud else 300) for p, n in zip(pops, sizes)]
    edges: list[tuple[str, str]] = []
    links = {(i, (i + 1) % k) for i in range(k)} if k > 1 else {(0, 0)}
    links |= {(i, j) for i in range(k) for j in range(k) if rng.random() < 0.3}
    for i, j in sorted(links):
        nodes.append(dense(f"r{i}{j}", sizes[j], sizes[i]))
        edges += [(pops[i], f"r{i}{j}"), (f"r{i}{j}", pops[j])]
    fed = [j for j in range(k) if rng.random() < 0.6] or [int(rng.integers(0, k))]
    for j in fed:
        for m in range(int(rng.integers(1, 3))):           # one or two feed-forward synapses
            nodes.append(dense(f"f{j}{m}", sizes[j], n_in))
            edges += [("x", f"f{j}{m}"), (f"f{j}{m}", pops[j])]
    n_out = int(rng.integers(1, 6))
    nodes.append(_lif("o", n_out, rng))
    for i in {int(rng.integers(0, k)), k - 1}:
        nodes.append(dense(f"o{i}", n_out, sizes[i]))
        edges += [(pops[i], f"o{i}"), (f"o{i}", "o")]
    nodes.append(Output("out"))
    edges.append(("o", "out"))
    return Graph.build(nodes, edges, {"source": f"random_block_graph({seed})"})


def conv_fed_recurrent(seed: int) -> Graph:
    """A convolution into a population that also feeds itself (Dense), graded input."""
    rng = np.random.default_rng(seed)
    c = QConv("c", rng.integers(-60, 60, (3, 2, 3, 3)).astype(np.int64), (2, 6, 6), padding=1)
    h = _lif("h", c.out_size, rng, shape=c.out_shape)
    nodes = [Input("x", (2, 6, 6), 4), c, h, QDense("hh", 2 * rng.integers(-40, 60, (h.size, h.size))),
             QDense("ho", 2 * rng.integers(-50, 80, (4, h.size))), _lif("o", 4, rng), Output("out")]
    edges = [("x", "c"), ("c", "h"), ("h", "hh"), ("hh", "h"), ("h", "ho"), ("ho", "o"), ("o", "out")]
    return Graph.build(nodes, edges)


def named_graphs() -> dict[str, Graph]:
    out = {f"{name}/{seed}": make(np.random.default_rng(seed)) for name, make in RECURRENT_GRAPHS.items()
           for seed in range(3)}
    out.update({f"self_loop_graded{b}/{seed}": self_loop(np.random.default_rng(seed), bits=b)
                for b in (1, 4, 8) for seed in range(2)})
    return out


GRAPHS = named_graphs()


def _inputs(graph: Graph, seed: int, batch: int, steps: int, density: float = 0.4) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if graph.input.bits:
        x = rng.integers(0, 2**graph.input.bits, (batch, steps, graph.input.size))
        return np.where(rng.random(x.shape) < density, x, 0)
    return rng.random((batch, steps, graph.input.size)) < density


def test_the_graphs_are_recurrent() -> None:
    for name, g in GRAPHS.items():
        assert g.is_recurrent, name
    assert [len(b) for b in GRAPHS["two_cycle/0"].blocks()] == [2, 1]


@pytest.mark.parametrize("name", list(GRAPHS))
@pytest.mark.parametrize("batch, steps", [(1, 1), (3, 12), (5, 20)])
def test_numba_equals_torch_equals_naive(name: str, batch: int, steps: int) -> None:
    graph = GRAPHS[name]
    sim = HwSim.from_graph(graph)
    for seed in range(2):
        x = _inputs(graph, seed, batch, steps) if seed else inputs_for(graph, np.random.default_rng(7), batch, steps)
        numba = sim.run(x, engine="numba")
        assert_same_result(numba, sim.run(x, engine="torch"))
        ref = naive_run(graph, x)
        for pop, want in ref.items():
            np.testing.assert_array_equal(numba.spikes[pop], want, err_msg=pop)
        if steps > 10:   # not all silent: the recurrent synapses carry spikes
            assert all(numba.spikes[p.name].any() for p in graph.populations() if p.recurrent), name
        # chunks of 2 samples, and every feed-forward synapse by events / by GEMM
        assert_same_result(sim.run(x, engine="numba", chunk=2), numba)
        assert_same_result(FastEngine(graph, event_density=1.1, conv_event_density=1.1).run(x), numba)
        assert_same_result(FastEngine(graph, event_density=0.0, conv_event_density=0.0).run(x), numba)


@pytest.mark.parametrize("seed", range(40))
def test_random_recurrent_blocks(seed: int) -> None:
    """Random cycles, exponents, loud and sparse weights; also weights outside Lava's format (floored
    and clipped by both engines, so the naive reference, which uses them raw, is left out)."""
    for lava_format in (True, False):
        graph = random_block_graph(seed, lava_format=lava_format)
        sim = HwSim.from_graph(graph)
        rng = np.random.default_rng(seed)
        for batch, steps, density in ((4, 16, 0.5), (3, 9, 0.03)):
            x = _inputs(graph, int(rng.integers(2**31)), batch, steps, density)
            numba = sim.run(x, engine="numba")
            assert_same_result(numba, sim.run(x, engine="torch", chunk=3))
            assert_same_result(FastEngine(graph, event_density=1.1, chunk=2).run(x), numba)
            assert_same_result(FastEngine(graph, event_density=0.0).run(x), numba)
            if lava_format:
                for pop, want in naive_run(graph, x).items():
                    np.testing.assert_array_equal(numba.spikes[pop], want, err_msg=pop)


def test_random_graphs_reach_the_hard_paths() -> None:
    """The random graphs do cover cycles of 2 and 3, graded input, u wrapping and several
    feed-forward synapses into one population (else the test above would prove less)."""
    seen = {"k2": False, "k3": False, "graded": False, "two_ff": False}
    for seed in range(40):
        g = random_block_graph(seed)
        blocks = g.blocks()
        seen["k2"] |= len(blocks[0]) == 2
        seen["k3"] |= len(blocks[0]) == 3
        seen["graded"] |= g.input.bits > 0
        seen["two_ff"] |= any(len(p.feedforward_inputs) > 1 for p in blocks[0])
    assert all(seen.values()), seen


def test_conv_fed_recurrent_population() -> None:
    graph = conv_fed_recurrent(3)
    sim = HwSim.from_graph(graph)
    for density in (0.01, 0.5):
        x = _inputs(graph, 5, 3, 10, density)
        numba = sim.run(x, engine="numba")
        assert numba.spikes["h"].any()
        assert_same_result(numba, sim.run(x, engine="torch"))
        assert_same_result(FastEngine(graph, conv_event_density=1.1).run(x), numba)


def test_feedforward_events_into_a_later_population_of_the_block(monkeypatch: pytest.MonkeyPatch) -> None:
    """The kernel's one feed-forward event synapse can feed any population of a block: here p0 is
    fed by a busy population (GEMM) and p1 by the sparse input (events)."""
    from snnc.hwsim import kernels

    rng = np.random.default_rng(11)
    d = _lif("d", 10, rng)
    d = replace(d, bias_mant=np.full(10, 40, np.int64), vth=30)          # fires often: its synapse is dense
    nodes = [Input("x", (24,)), QDense("fd", 2 * rng.integers(-20, 60, (10, 24))), d,
             QDense("f0", 2 * rng.integers(-60, 80, (7, 10))), _lif("p0", 7, rng),
             QDense("f1", 2 * rng.integers(-60, 120, (9, 24))), _lif("p1", 9, rng),
             QDense("r01", 2 * rng.integers(-60, 90, (9, 7))), QDense("r10", 2 * rng.integers(-60, 90, (7, 9))),
             QDense("fo", 2 * rng.integers(-60, 90, (3, 9))), _lif("o", 3, rng), Output("out")]
    edges = [("x", "fd"), ("fd", "d"), ("d", "f0"), ("f0", "p0"), ("x", "f1"), ("f1", "p1"), ("p0", "r01"),
             ("r01", "p1"), ("p1", "r10"), ("r10", "p0"), ("p1", "fo"), ("fo", "o"), ("o", "out")]
    graph = Graph.build(nodes, edges)
    assert [p.name for p in graph.blocks()[1]] == ["p0", "p1"]
    x = _inputs(graph, 2, 4, 30, 0.05)
    seen: list[int] = []
    real = kernels.lif_block
    monkeypatch.setattr(kernels, "lif_block", lambda *a: (seen.append(a[11] if a[7].size else -1), real(*a))[1])
    numba = FastEngine(graph, event_density=0.2).run(x)
    assert numba.spikes["d"].mean() > 0.2, numba.spikes["d"].mean()
    assert seen == [7]                       # the events' first neuron: p1's, after p0's 7
    assert numba.spikes["p0"].any() and numba.spikes["p1"].any()
    assert_same_result(numba, HwSim.from_graph(graph).run(x, engine="torch"))
    for pop, want in naive_run(graph, x).items():
        np.testing.assert_array_equal(numba.spikes[pop], want, err_msg=pop)


def test_hundreds_of_recurrent_spikes_per_step_at_the_weight_extremes() -> None:
    """The kernel sums int8 recurrent weights 256 rows at a time in int16: with 600 neurons almost
    all firing and weights at Lava's extremes (-256 = 2 x -128, 254 = 2 x 127) every partial sum
    reaches the int16 bounds; the result must still be exact."""
    rng = np.random.default_rng(5)
    n = 600
    w = np.where(rng.random((n, n)) < 0.85, -256, 254).astype(np.int64)
    w[:300] = np.where(rng.random((300, n)) < 0.85, 254, -256)      # half the neurons sum up, half down
    h = QCubaLIF("h", n, du=4096, dv=4096, vth=10, bias_mant=np.full(n, 2000, np.int64), bias_exp=6)
    nodes = [Input("x", (8,)), QDense("fx", 2 * rng.integers(-50, 50, (n, 8))), h, QDense("hh", w, weight_exp=-4),
             QDense("ho", 2 * rng.integers(-5, 5, (3, n))), _lif("o", 3, rng), Output("out")]
    edges = [("x", "fx"), ("fx", "h"), ("h", "hh"), ("hh", "h"), ("h", "ho"), ("ho", "o"), ("o", "out")]
    graph = Graph.build(nodes, edges)
    x = _inputs(graph, 0, 2, 12, 0.5)
    numba = HwSim.from_graph(graph).run(x, engine="numba")
    assert numba.spikes["h"].sum(axis=2).max() > 512        # more than two 256-row blocks in one step
    assert_same_result(numba, HwSim.from_graph(graph).run(x, engine="torch"))


def test_keep_only_the_output() -> None:
    graph = GRAPHS["two_cycle/1"]
    x = _inputs(graph, 1, 5, 15)
    full = HwSim.from_graph(graph).run(x, engine="numba")
    part = HwSim.from_graph(graph).run(x, engine="numba", keep={"o"}, chunk=2)
    assert list(part.spikes) == ["o"]
    np.testing.assert_array_equal(part.spikes["o"], full.spikes["o"])
    for a, b in zip(part.activity, full.activity, strict=True):
        np.testing.assert_array_equal(a.synops, b.synops)


def test_a_recurrent_synapse_changes_the_result() -> None:
    """The recurrent term really acts: zeroing the self-loop's weights changes the spikes."""
    graph = self_loop(np.random.default_rng(0))
    nodes = [replace(n, weight=np.zeros_like(n.weight)) if n.name == "rec" else n for n in graph.nodes.values()]
    cut = Graph.build(nodes, list(graph.edges))
    x = _inputs(graph, 0, 4, 20)
    a, b = HwSim.from_graph(graph).run(x, engine="numba"), HwSim.from_graph(cut).run(x, engine="numba")
    assert not np.array_equal(a.spikes["h"], b.spikes["h"])
    assert (a.activity[0].synops > b.activity[0].synops).any()


def test_worker_processes_give_the_single_process_result() -> None:
    graph = GRAPHS["two_cycle/2"]
    x = _inputs(graph, 3, 9, 14)
    single = HwSim.from_graph(graph).run(x, engine="numba")
    with HwSimPool(graph, workers=2) as pool:
        assert_same_result(pool.run(x), single)
        assert_same_result(pool.run(x, progress=lambda *a: None), single)


# --- mapping, per-core counts, traffic, energy ---------------------------------------------------------

SMALL = replace(LOIHI, neurons_per_core=4, input_axons_per_core=80, output_axons_per_core=60,
                synapse_words_per_core=400, cores_per_chip=4, cores_per_tile=2, mesh_tiles=(2, 1),
                max_chips=10**6)


def _matrix(syn: object) -> np.ndarray:
    return connectivity(syn) if isinstance(syn, QConv) else np.ones(syn.weight.shape, np.int64)  # type: ignore[attr-defined]


def _dest_cores(graph: Graph, core_of: dict[str, np.ndarray]) -> dict[str, list[list[int]]]:
    """Each source neuron's destination cores, one entry per synapse node that reaches a core
    (a population feeding itself reaches its own cores)."""
    dest: dict[str, list[list[int]]] = {graph.input.name: [[] for _ in range(graph.input.size)]}
    for p in graph.populations():
        dest[p.name] = [[] for _ in range(p.neuron.size)]
    for p in graph.populations():
        for syn, src in p.inputs:
            m = _matrix(syn) > 0
            for i in range(m.shape[1]):
                dest[src][i] += sorted(set(core_of[p.name][m[:, i]].tolist()))
    return dest


@pytest.mark.parametrize("name", ["self_loop/0", "two_cycle/0", "stacked/1", "self_loop_graded4/0"])
def test_mapping_counts_recurrent_synapses_like_brute_force(name: str) -> None:
    graph = GRAPHS[name]
    m = map_cores(graph, SMALL)
    pops = {p.name: p for p in graph.populations()}
    core_of = {n: m.per_core[n].core_of for n in pops}
    dest = _dest_cores(graph, core_of)
    for lm in m.layers:
        use, pop = m.per_core[lm.name], pops[lm.name]
        assert lm.cores > 1 or lm.name == "o"
        axons, words = brute_core_use([_matrix(s) for s, _ in pop.inputs], use.core_of, SMALL)
        assert use.input_axons.tolist() == axons.tolist() and use.synapse_words.tolist() == words.tolist()
        slots = np.array([len(c) for c in dest[lm.name]])
        assert use.output_axons.tolist() == np.bincount(use.core_of, weights=slots,
                                                        minlength=lm.cores).astype(int).tolist()
        assert lm.synapses == sum(int(_matrix(s).sum()) for s, _ in pop.inputs)
        for r in ("neurons", "input_axons", "output_axons", "synapse_words"):
            assert getattr(use, r).max() <= getattr(SMALL, {"neurons": "neurons_per_core"}.get(r, r + "_per_core"))
    if name.startswith("self_loop"):   # h's own spikes arrive on each of its cores through 'rec'
        h = m.per_core["h"]
        assert (h.input_axons == graph.nodes["fc"].in_size + graph.nodes["rec"].in_size).all()
        assert (np.array([len(c) for c in dest["h"]]) == h.neurons.size + 1).all()


def _self_loop_feeding_wide(n_out: int) -> Graph:
    lif = lambda name, n: QCubaLIF(name, n, 1024, 128, 100, np.zeros(n, np.int64))  # noqa: E731
    nodes = [Input("in", (8,)), QDense("fa", np.ones((16, 8), np.int64)), lif("a", 16),
             QDense("aa", np.ones((16, 16), np.int64)), QDense("fb", np.ones((n_out, 16), np.int64)),
             lif("b", n_out), Output("out")]
    edges = [("in", "fa"), ("fa", "a"), ("a", "aa"), ("aa", "a"), ("a", "fb"), ("fb", "b"), ("b", "out")]
    return Graph.build(nodes, edges)


def test_output_axon_limit_counts_a_population_reaching_its_own_cores() -> None:
    """'a' reaches b's 3 cores and, through 'aa', each of its own: on 2 cores that is 8 neurons x 5
    slots = 40 > 36 (counting only b's cores would say 8 x 4 = 32 and accept it); 3 cores fit."""
    m = map_cores(_self_loop_feeding_wide(3000), replace(LOIHI, output_axons_per_core=36))
    a = m.per_core["a"]
    assert a.neurons.size == 3 and a.output_axons.tolist() == [36, 30, 30]
    assert m.layers[0].fanout_cores == 6.0


def test_a_recurrent_layer_that_fits_no_partition_is_one_clear_error() -> None:
    # every neuron reaches b's core and each of a's own cores: k cores of 16 / k neurons need
    # ceil(16 / k) x (k + 1) >= 17 slots, over a limit of 12 at any k
    with pytest.raises(TargetLimitError, match="recurrent synapse each neuron also reaches every core of its own"):
        map_cores(_self_loop_feeding_wide(10), replace(LOIHI, output_axons_per_core=12))


@pytest.mark.parametrize("name", ["self_loop/1", "two_cycle/0", "stacked/2"])
def test_per_core_counts_traffic_and_energy_add_up(name: str) -> None:
    graph = GRAPHS[name]
    mapping = map_cores(graph, SMALL)
    placement = place(mapping, SMALL)
    x = _inputs(graph, 4, 3, 16)
    counts = count(graph, mapping, placement, x)
    engine = HwSim.from_graph(graph).run(x, engine="numba")
    routes = placement.routes()
    core_of = {p.name: placement.offset[p.name] + mapping.per_core[p.name].core_of for p in graph.populations()}
    dest = _dest_cores(graph, core_of)
    for lc, act in zip(counts.layers, engine.activity, strict=True):
        assert lc.name == act.name
        assert lc.synops.sum(axis=(0, 2)).tolist() == act.synops.tolist()
        assert lc.active.sum(axis=(0, 2)).tolist() == act.active_updates.tolist()
        assert lc.spikes.sum(axis=(0, 2)).tolist() == act.spikes.tolist()
        np.testing.assert_array_equal(counts.spikes[lc.name], engine.spikes[lc.name])
        spk = engine.spikes[lc.name].sum(axis=1)
        want = expected_traffic(spk, dest[lc.name], core_of[lc.name], routes)
        for k, v in want.items():
            assert lc.traffic[k].tolist() == v.tolist(), (lc.name, k)
        is_out = lc.name == graph.output.name
        fan = np.array([len(c) + int(is_out) for c in dest[lc.name]])
        assert lc.messages.sum() == int((spk * fan).sum())
    cm = load_cost_model()
    est = estimate(counts, mapping, placement, cm, Readout(), graph.output.name, SMALL.cores_per_tile)
    synops = sum(int(a.synops.sum()) for a in engine.activity)
    by_layer = sum(layer["energy_j"]["synaptic_ops"] for layer in est["energy"]["layers"])
    assert by_layer == pytest.approx(synops / len(x) * cm.e("synaptic_op"))
