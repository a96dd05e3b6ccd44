"""lava-dl netx ``dense_rec`` in and out: recurrent networks in ``network.net`` (compiler/netx_hdf5.py,
docs/netx.md "Recurrent layers: dense_rec").

A ``dense_rec`` layer is a dense layer plus a recurrent matrix ``weight_rec`` from the layer's neurons
back into themselves: slayer's ``cuba.Recurrent`` exports it (SP/lava/lib/dl/slayer/block/base.py:
1496-1557) and netx runs it as a ``RecurrentDense`` block (netx/blocks/process.py:203-306). snnc reads it
into a population with a self-loop ``QDense`` and writes such populations back as ``dense_rec``; other
cycle shapes are refused. The fast tests check the file, the round trip and the refusals; hwsim reads
what slayer's own forward pass computes. The slow ones run netx on Lava's fixed-point models: every
layer at every step equal to hwsim (engine="torch").
"""
from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import h5py
import numpy as np
import pytest

from snnc.compiler.ir import Graph, Input, Output, QConv, QCubaLIF, QDense
from snnc.compiler.netx_hdf5 import (REC_FIRST_ATTR, SUPPORTED, netx_dense_rec_weights, netx_limitation,
                                     read_netx, read_netx_file, write_netx)
from snnc.errors import InputFileError, UnsupportedLayerError
from snnc.hwsim.sim import HwSim
from snnc.compiler.ir import check_round_trip as _check_round_trip
from snnc.runtime.lava_compat import ensure_lava_importable

from netx_helpers import run_netx
from test_netx_interop import _lava_weight_functions


# ------------------------------------------------------------------------ recurrent graphs by hand

def _lif(name: str, n: int, rng: np.random.Generator, shape: tuple[int, ...] | None = None) -> QCubaLIF:
    """A population that a few input spikes make fire (so recurrence has something to feed back)."""
    return QCubaLIF(name, n, int(rng.integers(300, 3000)), int(rng.integers(50, 800)), int(rng.integers(30, 120)),
                    rng.integers(-4, 5, n).astype(np.int64), shape=shape)


def _w(rng: np.random.Generator, out: int, inp: int, lo: int = -60, hi: int = 80) -> np.ndarray:
    """Even integers of both signs, as the quantizer writes them (netx keeps them exactly)."""
    w = rng.integers(lo // 2, hi // 2 + 1, (out, inp)) * 2
    w.flat[0], w.flat[-1] = -2, 2
    return w.astype(np.int64)


def build(inp: Input, layers: list[tuple], name_out: str = "output") -> Graph:
    """``layers``: (synapse, population, recurrent synapse or None[, recurrent listed first]) in chain order."""
    nodes: list = [inp]
    edges: list[tuple[str, str]] = []
    prev = inp.name
    for syn, pop, rec, *first in layers:
        nodes += [syn, pop] + ([rec] if rec is not None else [])
        into = [(syn.name, pop.name)] + ([(rec.name, pop.name)] if rec is not None else [])
        edges += [(prev, syn.name), *(into[::-1] if first and first[0] else into)]
        if rec is not None:
            edges.append((pop.name, rec.name))
        prev = pop.name
    nodes.append(Output(name_out))
    edges.append((prev, name_out))
    return Graph.build(nodes, edges)


def recurrent_dense(rng: np.random.Generator, sizes: tuple[int, ...] = (12, 10, 8, 5),
                    loops: tuple[bool, ...] = (True, False, True), rec_first: bool = False) -> Graph:
    layers = []
    for k, (n_in, n, loop) in enumerate(zip(sizes[:-1], sizes[1:], loops), start=1):
        rec = QDense(f"r{k}", _w(rng, n, n, -70, 50)) if loop else None
        layers.append((QDense(f"d{k}", _w(rng, n, n_in)), _lif(f"p{k}", n, rng), rec, rec_first))
    return build(Input("x", (sizes[0],)), layers)


def recurrent_after_conv(rng: np.random.Generator) -> Graph:
    """(2, 6, 6) -> conv 3x3 p1 -> (3, 6, 6) -> flatten -> dense_rec 108 -> 10 -> dense 10 -> 4."""
    conv = QConv("c1", rng.integers(-20, 30, (3, 2, 3, 3)).astype(np.int64), (2, 6, 6), padding=1)
    return build(Input("x", (2, 6, 6)), [
        (conv, _lif("p1", 108, rng, shape=(3, 6, 6)), None),
        (QDense("d2", _w(rng, 10, 108, -20, 30)), _lif("p2", 10, rng), QDense("r2", _w(rng, 10, 10, -70, 50))),
        (QDense("d3", _w(rng, 4, 10)), _lif("p3", 4, rng), None)])


def two_population_cycle(rng: np.random.Generator) -> Graph:
    """x -> d1 -> p1 -> d2 -> p2 -> output, and p2 -> fb -> p1: a cycle through two populations."""
    p1, p2 = _lif("p1", 6, rng), _lif("p2", 4, rng)
    nodes = [Input("x", (5,)), QDense("d1", _w(rng, 6, 5)), p1, QDense("d2", _w(rng, 4, 6)), p2,
             QDense("fb", _w(rng, 6, 4)), Output("output")]
    return Graph.build(nodes, [("x", "d1"), ("d1", "p1"), ("p1", "d2"), ("d2", "p2"), ("p2", "fb"), ("fb", "p1"),
                               ("p2", "output")])


def _spikes(rng: np.random.Generator, graph: Graph, batch: int, steps: int) -> np.ndarray:
    return rng.random((batch, steps, graph.input.size)) < 0.4


def _without_recurrence(graph: Graph) -> Graph:
    """The same graph with every recurrent weight zero: what hwsim computes if a reader drops the loop."""
    rec = set(graph.recurrent_synapses())
    nodes = [QDense(n.name, np.zeros_like(n.weight)) if n.name in rec else n for n in graph.nodes.values()]
    return Graph.build(nodes, list(graph.edges))


# ------------------------------------------------------------------------ fast: the file and the round trip

@pytest.mark.parametrize("seed", range(6))
def test_self_loops_are_written_as_dense_rec_and_read_back_exactly(seed: int, tmp_path: Path) -> None:
    rng = np.random.default_rng(seed)
    loops = tuple(bool(b) for b in rng.integers(0, 2, 3)) if seed > 1 else (True, False, True)
    graph = recurrent_after_conv(rng) if seed % 3 == 2 else recurrent_dense(rng, loops=loops, rec_first=bool(seed % 2))
    assert graph.is_recurrent or seed > 1
    assert netx_limitation(graph) is None
    path = tmp_path / "rec.net"
    write_netx(graph, path, 20)
    pops = graph.populations()
    with h5py.File(path) as f:       # the keys netx reads for a dense_rec layer (hdf5.py:393-407, 638-650)
        layers = [f[f"layer/{k}"] for k in sorted(f["layer"], key=int)]
        blocks = [g for g in layers if g["type"][0] in (b"dense", b"dense_rec", b"conv")]
        assert len(blocks) == len(pops)
        for g, pop in zip(blocks, pops):
            loop = pop.recurrent_inputs
            assert g["type"][0] == (b"dense_rec" if loop else b"dense" if isinstance(pop.inputs[0][0], QDense)
                                    else b"conv")
            assert ("weight_rec" in g) == bool(loop)
            if loop:
                rec = loop[0][0]
                assert np.array_equal(g["weight_rec"][()], rec.weight) and g["weight_rec"].dtype == np.int32
                assert bool(g.attrs.get(REC_FIRST_ATTR, False)) == (pop.inputs[0][0] is rec)
    back = read_netx(path)
    assert back.recurrent_synapses() == [f"rec{k}" for k, p in enumerate(pops, 1) if p.recurrent]
    _check_round_trip(graph, back, "network.net")     # what snn-compile checks on every artifact
    for p1, p2 in zip(pops, back.populations()):
        assert [type(s) for s, _ in p1.inputs] == [type(s) for s, _ in p2.inputs]
        assert [src == p1.name for s, src in p1.inputs] == [src == p2.name for s, src in p2.inputs]
    x = _spikes(rng, graph, 3, 25)
    want = HwSim.from_graph(graph).run(x, engine="torch").spikes
    got = HwSim.from_graph(back).run(x, engine="torch").spikes
    for p1, p2 in zip(pops, back.populations()):
        assert np.array_equal(want[p1.name], got[p2.name]), p1.name


def test_dense_rec_weights_replay_netx_joint_scaling_and_lava_dense() -> None:
    """netx scales weight and weight_rec together (optimize_weight_bits of their hstack, hdf5.py:401-407);
    each Lava Dense then re-derives its own sign mode. Our replay equals the real code, and the joint
    scaling is what decides: a zero recurrent matrix is fine beside a weight, though alone netx fails."""
    optimize, wu = _lava_weight_functions()
    rng = np.random.default_rng(3)
    compared = 0
    for i in range(1500):
        n, m = int(rng.integers(1, 5)), int(rng.integers(1, 5))
        pick = [lambda s: rng.integers(-128, 128, s) * 2, lambda s: rng.integers(-128, 1, s) * 2,
                lambda s: rng.integers(0, 128, s) * 2, lambda s: np.zeros(s, np.int64),
                lambda s: -(2 ** rng.integers(1, 9, s))]
        w, wr = pick[i % 5]((n, m)).astype(np.int64), pick[(i // 5) % 5]((n, n)).astype(np.int64)
        mine, mine_rec, exp, why = netx_dense_rec_weights(w, wr)
        try:
            with contextlib.redirect_stdout(io.StringIO()), np.errstate(all="ignore"):
                cat, bits, wexp, _ = optimize(np.hstack((w, wr)))
        except (OverflowError, ValueError):
            assert mine is None and "all-zero" in why, (w, wr)
            continue
        real = []
        for part in (cat[:, :m], cat[:, m:]):
            mode = wu.determine_sign_mode(part)
            real.append(wu.truncate_weights(wu.clip_weights(part, mode, num_bits=8), mode, bits))
        assert why is None and exp == wexp, (w, wr)
        assert np.array_equal(mine, real[0]) and np.array_equal(mine_rec, real[1]), (w, wr)
        compared += 1
    assert compared > 1000
    w = _w(rng, 3, 4)
    g = build(Input("x", (4,)), [(QDense("d", w), _lif("p", 3, rng), QDense("r", np.zeros((3, 3), np.int64)))])
    assert netx_limitation(g) is None
    assert "all-zero" in netx_limitation(build(Input("x", (3,)), [(QDense("d", np.zeros((3, 3), np.int64)),
                                                                    _lif("p", 3, rng), None)]))


def test_netx_refuses_other_cycle_shapes_naming_the_population_and_the_fix(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    x, p = Input("x", (4,)), _lif("p", 3, rng)
    two = QDense("r", _w(rng, 3, 3)), QDense("r2", _w(rng, 3, 3))
    double = Graph.build([x, QDense("d", _w(rng, 3, 4)), p, *two, Output("o")],
                         [("x", "d"), ("d", "p"), ("r", "p"), ("r2", "p"), ("p", "r"), ("p", "r2"), ("p", "o")])
    conv = QConv("c", rng.integers(-9, 9, (1, 1, 2, 2)).astype(np.int64), (1, 3, 3))
    conv_loop = build(Input("x", (1, 3, 3)), [(conv, _lif("q", 4, rng, shape=(1, 2, 2)), QDense("r", _w(rng, 4, 4)))])
    cases = {
        "cycle": (two_population_cycle(rng), r"population 'p1' is on a cycle through 'p2' \(synapse 'fb': 'p2' -> "
                  r"'p1'\): netx's only recurrent layer, dense_rec, connects a population to itself.*graph.h5 and "
                  r"graph.onnx hold this network; for a netx file, make each recurrence a population's connection "
                  r"to itself"),
        "two self-loops": (double, r"population 'p' has 2 synapses from itself \(r, r2\).*sum them into one Dense"),
        "conv": (conv_loop, r"population 'q' has a recurrent synapse 'r' and a conv input 'c': netx's dense_rec is "
                 r"a dense layer"),
        "weight_exp": (build(x, [(QDense("d", _w(rng, 3, 4)), p, QDense("r", _w(rng, 3, 3), -1))]),
                       r"netx cannot carry weight_exp -1 of 'r'"),
        "odd": (build(x, [(QDense("d", _w(rng, 3, 4)), p, QDense("r", np.full((3, 3), 3)))]),
                r"dense_rec layer 'd' \+ recurrent 'r' \(scaled together by netx.*weight_rec\[0, 0\] = 3 is not a "
                r"loihi dense weight"),
    }
    for what, (graph, why) in cases.items():
        reason = netx_limitation(graph)
        assert reason is not None and re.search(why, reason), (what, reason)
        with pytest.raises(UnsupportedLayerError, match="cannot write a netx network"):
            write_netx(graph, tmp_path / "no.net", 5)


def _dense_rec_file(path: Path, **over: object) -> Path:
    """A dense_rec layer as slayer's cuba.Recurrent writes it (float32 weights, S10 type, neuron keys)."""
    with h5py.File(path, "w") as f:
        g = f.create_group("layer/0")
        g.create_dataset("type", (1,), "S10", [b"dense_rec"])
        data = {**dict(shape=np.array([3]), inFeatures=4, outFeatures=3, weight=np.full((3, 4), 2.0, np.float32),
                       weight_rec=np.array([[0, -4, 2], [6, 0, -2], [2, 2, 0]], np.float32)), **over}
        for k, v in data.items():
            if v is not None:
                g[k] = v
        for k, v in dict(type=b"CUBA", iDecay=1024, vDecay=123, vThMant=80, refDelay=1, gradedSpike=False).items():
            g[f"neuron/{k}"] = v
    return path


def test_reads_dense_rec_files_and_refuses_what_netx_would_not_run(tmp_path: Path) -> None:
    imp = read_netx_file(_dense_rec_file(tmp_path / "ok.net"))
    assert "dense_rec 4->3 (+ recurrent 3->3)" in imp.notes[0] and imp.writer == "lava-dl (SLAYER export_hdf5)"
    (pop,) = imp.graph.populations()
    assert pop.recurrent == {"rec1"} and [s.name for s, _ in pop.inputs] == ["fc1", "rec1"]
    assert np.array_equal(imp.graph.nodes["rec1"].weight, [[0, -4, 2], [6, 0, -2], [2, 2, 0]])
    flat = read_netx(_dense_rec_file(tmp_path / "flat.net", weight_rec=np.arange(9.0).reshape(-1) * 2))
    assert np.array_equal(flat.nodes["rec1"].weight, np.arange(9).reshape(3, 3) * 2)   # netx: reshape(n, -1)
    bad = {
        "missing": (dict(weight_rec=None), InputFileError, "dense_rec layer without a real 'weight_rec' array"),
        "shape": (dict(weight_rec=np.full((3, 4), 2.0)), InputFileError,
                  r"dense_rec 'weight_rec' of shape \(3, 4\) is not \(3, 3\)"),
        "fraction": (dict(weight_rec=np.full((3, 3), 2.5)), InputFileError, "'weight_rec' is not an array of integers"),
        "delay": (dict(delay=np.zeros(3)), UnsupportedLayerError,
                  r"dense_rec layer with a 'delay' is not supported: netx's RecurrentDense with delays gives its "
                  r"recurrent synapse the feed-forward delay matrix and drops the weight exponent"),
        "odd": (dict(weight_rec=np.full((3, 3), 3.0)), UnsupportedLayerError,
                r"dense_rec layer that netx does not run as written: weight_rec\[0, 0\] = 3 is not a loihi"),
    }
    path = _dense_rec_file(tmp_path / "attr.net")
    with h5py.File(path, "a") as f:
        f["layer/0"].attrs[REC_FIRST_ATTR] = np.array([1, 0])
    with pytest.raises(InputFileError, match=re.escape(f"{path} layer 0: attribute '{REC_FIRST_ATTR}' must be a "
                                                       f"boolean")):
        read_netx(path)
    for what, (over, err, msg) in bad.items():
        path = _dense_rec_file(tmp_path / f"{what}.net", **over)
        with pytest.raises(err, match=re.escape(f"{path} layer 0: ") + msg) as info:
            read_netx(path)
        assert "\n" not in str(info.value), what
        if err is UnsupportedLayerError:
            assert f"(supported: {SUPPORTED}" in str(info.value), what


def _slayer_recurrent(steps: int = 30):
    """slayer cuba.Recurrent 20 -> 12 then cuba.Dense 12 -> 6, their forward on fresh blocks, and the input."""
    import torch

    ensure_lava_importable()
    from lava.lib.dl import slayer

    torch.manual_seed(0)
    p = dict(threshold=1.0, current_decay=0.25, voltage_decay=0.03, requires_grad=False)
    blocks = [slayer.block.cuba.Recurrent(p, 20, 12, weight_scale=4), slayer.block.cuba.Dense(p, 12, 6, weight_scale=4)]
    xt = (torch.rand(3, 20, steps) < 0.4).float()
    outs = []
    with torch.no_grad():          # Recurrent keeps its state across calls (persistent_state): one call
        y = xt
        for b in blocks:
            y = b(y)
            outs.append(y)
    return blocks, xt, outs


def _time_major(s) -> np.ndarray:      # slayer's (N, C, T) -> snnc's (N, T, C)
    return np.moveaxis(s.detach().numpy(), -1, 1) > 0


def _export(blocks: list, path: Path) -> Path:
    with h5py.File(path, "w") as f:
        for i, b in enumerate(blocks):
            b.export_hdf5(f.create_group(f"layer/{i}"))
    return path


def test_slayer_recurrent_export_reads_and_spikes_like_slayer(tmp_path: Path) -> None:
    """lava-dl's own cuba.Recurrent export_hdf5 reads to a self-loop with the block's quantized weights,
    and hwsim on the read graph spikes like slayer's forward pass in both layers, every step: slayer's
    s[t] = f(W x[t] + R s[t-1]) with its delay_shift is snnc's one-step delay on every synapse."""
    blocks, xt, outs = _slayer_recurrent()
    path = _export(blocks, tmp_path / "slayer_rec.net")
    imp = read_netx_file(path)
    g = imp.graph
    assert "dense_rec 20->12 (+ recurrent 12->12) -> dense 12->6" in imp.notes[0]
    assert len(imp.notes) == 1, imp.notes        # every key slayer writes is one snnc reads
    rec = blocks[0]
    for syn, name in ((rec.input_synapse, "fc1"), (rec.recurrent_synapse, "rec1")):
        q = syn.pre_hook_fx(syn.weight, descale=True).detach().numpy().reshape(syn.weight.shape[:2])
        assert np.array_equal(g.nodes[name].weight, q), name
    assert g.recurrent_synapses() == ["rec1"] and g.nodes["rec1"].weight.any()
    x = _time_major(xt)
    run = HwSim.from_graph(g).run(x, engine="torch")
    for pop, out in zip(g.populations(), outs):
        want = _time_major(out)
        assert want.any() and np.array_equal(run.spikes[pop.name], want), pop.name
    # not vacuous: without its recurrent weights the first layer spikes differently
    assert not np.array_equal(HwSim.from_graph(_without_recurrence(g)).run(x, engine="torch").spikes["lif1"],
                              run.spikes["lif1"])


# ------------------------------------------------------------------------ slow: netx on Lava

@pytest.mark.slow
@pytest.mark.parametrize("case", ["dense", "conv"])
def test_dense_rec_network_net_runs_in_netx_like_hwsim(case: str, tmp_path: Path) -> None:
    """snnc writes dense_rec; lava-dl's netx (runtime/netx.load_netx) builds RecurrentDense blocks from it, and
    on Lava's fixed-point models they spike like hwsim in every layer at every step, 3 samples (between
    samples every buffer, the recurrent Dense's too, is zeroed: netx_helpers.run_netx)."""
    rng = np.random.default_rng(11)
    graph = recurrent_dense(rng) if case == "dense" else recurrent_after_conv(rng)
    path = tmp_path / "rec.net"
    write_netx(graph, path, 25)
    x = _spikes(rng, graph, 3, 25)
    want = HwSim.from_graph(graph).run(x, engine="torch").spikes
    flat = HwSim.from_graph(_without_recurrence(graph)).run(x, engine="torch").spikes
    got = run_netx(path, x, graph.input.shape)
    assert len(got) == len(graph.populations())
    for pop, spikes in zip(graph.populations(), got):
        assert want[pop.name].any(), pop.name
        diff = np.argwhere(spikes != want[pop.name])
        assert not len(diff), f"{pop.name}: first mismatch (sample, step, neuron) {diff[0]}"
        if pop.recurrent:         # the recurrence is exercised: without it this layer spikes otherwise
            assert not np.array_equal(flat[pop.name], want[pop.name]), pop.name


@pytest.mark.slow
def test_slayer_recurrent_export_runs_in_netx_like_hwsim_reads_it(tmp_path: Path) -> None:
    blocks, xt, _ = _slayer_recurrent()
    path = _export(blocks, tmp_path / "slayer_rec.net")
    g = read_netx(path)
    x = _time_major(xt)
    want = HwSim.from_graph(g).run(x, engine="torch").spikes
    got = run_netx(path, x, g.input.shape)
    for pop, spikes in zip(g.populations(), got):
        assert want[pop.name].any() and np.array_equal(spikes, want[pop.name]), pop.name


@pytest.mark.slow
def test_load_netx_gives_the_recurrent_link_the_bits_of_the_spikes_it_carries(tmp_path: Path,
                                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """lava-dl #372: netx builds a dense_rec layer's recurrent Dense with the *input* message bits
    (netx/blocks/process.py:256-262). ``load_netx`` gives it the layer's own (binary) bits; the network,
    with 8-bit graded input, still spikes like hwsim, and the compiled Lava model holds 0 bits."""
    from snnc.runtime.lava_backend import lava_api
    from snnc.runtime.netx import load_netx, patch_recurrent_message_bits

    lava_api()
    patch_recurrent_message_bits()
    from lava.lib.dl import netx
    from lava.lib.dl.netx.blocks.process import RecurrentDense
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc.io.sink import RingBuffer as Sink
    from lava.proc.io.source import RingBuffer as Source

    rng = np.random.default_rng(4)
    graph = recurrent_dense(rng, sizes=(8, 6), loops=(True,))
    path = tmp_path / "rec.net"
    write_netx(graph, path, 20)
    with monkeypatch.context() as m:       # lava-dl as shipped
        m.setattr(RecurrentDense, "__init__", RecurrentDense.__init__._snnc_original)
        as_written = netx.hdf5.Network(net_config=str(path))
        shipped = netx.hdf5.Network(net_config=str(path), input_message_bits=8)
    assert int(as_written.layers[0].synapse_rec.num_message_bits.init) == 0        # snnc's binary input: right
    assert int(shipped.layers[0].synapse_rec.num_message_bits.init) == 8           # the bug
    net = load_netx(path, input_message_bits=8)
    assert int(net.layers[0].synapse_rec.num_message_bits.init) == 0
    assert int(net.layers[0].synapse.num_message_bits.init) == 8                   # graded input stays graded
    x = _spikes(rng, graph, 1, 20)[0]
    src = Source(data=x.T.astype(np.int32))
    sink = Sink(shape=net.out.shape, buffer=20)
    src.s_out.connect(net.inp)
    net.out.connect(sink.a_in)
    try:
        net.run(condition=RunSteps(num_steps=20), run_cfg=Loihi2SimCfg(select_tag="fixed_pt"))
        bits = int(np.asarray(net.layers[0].synapse_rec.num_message_bits.get()).reshape(-1)[0])
        got = sink.data.get().T > 0
    finally:
        net.stop()
    assert bits == 0
    want = HwSim.from_graph(graph).run(x[None], engine="torch").spikes["p1"][0]
    assert want.any() and np.array_equal(got, want)
