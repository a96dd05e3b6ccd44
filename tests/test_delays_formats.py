"""Synaptic delays (compiler/ir.py ``Dense.delay`` / ``QDense.delay``) in every file format snnc reads and
writes: graph.h5, NIR, netx (``network.net``) and ONNX.

Round trips (graph -> file -> equal graph, delays included) for delays per connection, per output neuron,
per input line and per synapse; netx files with scalar, 1-D and 2-D ``delay`` datasets read as lava-dl's
own netx loader builds them (its DelayDense's ``delays``), and snnc's delayed ``network.net`` loaded by
netx with binary message bits and run on Lava to hwsim's spikes; NIR ``Delay`` nodes converted from time
to steps with the import's dt and folded into the synapses, and what is refused; the ONNX step function
with its spike history run on onnx's ReferenceEvaluator to hwsim's spikes; a SLAYER network trained with
``delay=True`` compiled and verified (hwsim = Lava) and run by netx to the same spikes.
"""
from __future__ import annotations

import json
from pathlib import Path

import h5py
import nir
import numpy as np
import onnx
import pytest

from snnc.compiler.artifact import load_artifact
from snnc.compiler.graph_file import read_graph, write_graph
from snnc.compiler.ir import MAX_DELAY, Dense, CubaLIF, Graph, Input, Output, QCubaLIF, QDense
from snnc.compiler.netx_hdf5 import netx_limitation, read_netx, read_netx_file, write_netx
from snnc.compiler.nir_io import EXPORT_DT, graph_from_nir, graph_to_nir, read_nir, write_nir
from snnc.compiler.onnx_io import graph_to_onnx, read_onnx, write_onnx
from snnc.errors import InputFileError, UnsupportedLayerError
from snnc.hwsim.sim import HwSim
from snnc.pipeline import compile_model
from snnc.runtime.lava_compat import ensure_lava_importable

from netx_helpers import netx_blocks, run_netx, slayer_forward_and_export
from test_netx_interop import _dense_weight
from test_onnx_io import run_step_function

STEPS = 24


# ------------------------------------------------------------------------ graphs with delays

def _lif(name: str, n: int, vth: int = 150) -> QCubaLIF:
    return QCubaLIF(name, n, 600, 200, vth, np.zeros(n, np.int64))


def _delays(kind: str, rng: np.random.Generator, out: int, inp: int) -> object:
    """Delays of one kind, as the IR takes them: a scalar, (out, 1), (1, in) or (out, in)."""
    if kind == "connection":
        return 3
    if kind == "output":
        return rng.integers(0, 6, (out, 1))
    if kind == "input":
        return rng.integers(0, 6, (1, inp))
    return rng.integers(0, 8, (out, inp))


def delayed_chain(kind: str, seed: int = 0, *, weight_exp: int = 0, zero_weight_delay: bool = False) -> Graph:
    """Input 10 -> fc1 (delays of ``kind``) -> lif1 12 -> fc2 (per-synapse delays) -> lif2 6; weights as the
    quantizer writes them (netx keeps them exactly). ``zero_weight_delay``: a zero weight carries a delay
    of its own (netx runs it, no spike moves)."""
    rng = np.random.default_rng(seed)
    w1, w2 = _dense_weight(rng, 12, 10, -120, 160), _dense_weight(rng, 6, 12, -120, 160)
    d2 = rng.integers(0, 5, (6, 12))
    if zero_weight_delay:
        w2[0, 3], d2[0, 3] = 0, MAX_DELAY
    return Graph.chain([Input("in", (10,)), QDense("fc1", w1, weight_exp, delay=_delays(kind, rng, 12, 10)),
                        _lif("lif1", 12), QDense("fc2", w2, delay=d2), _lif("lif2", 6), Output("out")])


def float_chain(kind: str) -> Graph:
    rng = np.random.default_rng(1)
    return Graph.chain([Input("in", (10,)),
                        Dense("fc1", rng.normal(0, 0.3, (12, 10)), delay=_delays(kind, rng, 12, 10)),
                        CubaLIF("lif1", 12, 0.2, 0.1, 1.0), Dense("fc2", rng.normal(0, 0.3, (6, 12)),
                                                                    delay=rng.integers(0, 4, (6, 12))),
                        CubaLIF("lif2", 6, 0.2, 0.1, 1.0), Output("out")])


def assert_same_synapses(a: Graph, b: Graph, *, names: bool = True) -> None:
    """Same node names and edges (``names``; netx names its own nodes: then the same layers in order), and
    every synapse with the same weights, weight_exp and delays."""
    if names:
        assert list(a.nodes) == list(b.nodes) and sorted(a.edges) == sorted(b.edges)
        pairs = [(n, b.nodes[k]) for k, n in a.nodes.items()]
    else:
        pairs = [pair for la, lb in zip(a.layers(), b.layers()) for pair in zip(la, lb)]
        assert len(list(a.layers())) == len(list(b.layers()))
    for n, m in pairs:
        name = n.name
        assert type(n) is type(m), name
        if isinstance(n, (Dense, QDense)):
            assert np.array_equal(n.weight, m.weight), name
            assert getattr(n, "weight_exp", 0) == getattr(m, "weight_exp", 0), name
            assert (n.delay is None) == (m.delay is None), name
            if n.delay is not None:
                assert m.delay.dtype == np.uint8 and np.array_equal(n.delay, m.delay), name


def spikes_in(seed: int = 5, batch: int = 3, n: int = 10) -> np.ndarray:
    return np.random.default_rng(seed).random((batch, STEPS, n)) < 0.45


KINDS = ["connection", "output", "input", "synapse"]


# ------------------------------------------------------------------------ graph.h5

@pytest.mark.parametrize("kind", KINDS)
def test_graph_h5_round_trips_delays(kind: str, tmp_path: Path) -> None:
    for g in (delayed_chain(kind, zero_weight_delay=True), float_chain(kind)):
        write_graph(g, tmp_path / "graph.h5")
        back = read_graph(tmp_path / "graph.h5")
        assert_same_synapses(g, back)
        assert back.has_delays and back.delayed_synapses() == ["fc1", "fc2"]


def test_graph_h5_without_delay_fields_still_reads(tmp_path: Path) -> None:
    """A graph.h5 written before delays existed has no ``delay`` on its Dense/QDense nodes: read as none."""
    g = delayed_chain("output")
    path = tmp_path / "old.h5"
    write_graph(g, path)
    with h5py.File(path, "a") as f:           # what an older snnc wrote: no delay field at all
        for node in f["nodes"].values():
            if "delay" in node:
                del node["delay"]
            if "delay.none" in node.attrs:
                del node.attrs["delay.none"]
    back = read_graph(path)
    assert not back.has_delays and np.array_equal(back.nodes["fc2"].weight, g.nodes["fc2"].weight)


# ------------------------------------------------------------------------ NIR out and back

@pytest.mark.parametrize("kind", KINDS)
def test_nir_round_trips_delays(kind: str, tmp_path: Path) -> None:
    g = delayed_chain(kind, weight_exp=-1, zero_weight_delay=True)
    write_nir(g, tmp_path / "graph.nir")
    back = read_nir(tmp_path / "graph.nir").graph
    assert_same_synapses(g, back)
    assert list(back.populations()[1].inputs[0][0].delay_groups()[0][1].shape) == [6, 12]


def test_nir_writes_delays_as_linear_delay_neuron(tmp_path: Path) -> None:
    """Per-output delays: Linear -> Delay (d * dt seconds per output) -> neuron. Per-synapse delays: the
    matrix split by delay, one Linear per delay (its Delay after it when d > 0), all into the neuron."""
    g = delayed_chain("output")
    n = graph_to_nir(g)
    d1 = g.nodes["fc1"].delay[:, 0]
    assert type(n.nodes["fc1.delay"]).__name__ == "Delay"
    assert np.allclose(n.nodes["fc1.delay"].delay, d1 * EXPORT_DT)
    assert ("fc1", "fc1.delay") in n.edges and ("fc1.delay", "lif1") in n.edges and ("fc1", "lif1") not in n.edges
    groups = g.nodes["fc2"].delay_groups()
    for d, w_d in groups:
        lin = n.nodes[f"fc2.d{d}"]
        assert np.array_equal(lin.weight, w_d) and ("lif1", f"fc2.d{d}") in n.edges
        last = f"fc2.d{d}" if d == 0 else f"fc2.d{d}.delay"
        assert (last, "lif2") in n.edges
        if d:
            assert np.allclose(n.nodes[last].delay, d * EXPORT_DT)
    assert sum(np.asarray(n.nodes[f"fc2.d{d}"].weight) for d, _ in groups).tolist() == g.nodes["fc2"].weight.tolist()
    # a reader without snnc's metadata sees the same delays: strip it and read as a foreign NIR graph
    for node in n.nodes.values():
        node.metadata = {}
    n.metadata = {}
    foreign = graph_from_nir(n, convention="euler", dt=EXPORT_DT).graph
    assert np.array_equal(foreign.nodes["fc1"].delay, g.nodes["fc1"].delay)
    for d, w_d in groups:
        part = foreign.nodes[f"fc2.d{d}"]
        assert (part.delay is None and d == 0) or (part.delay is not None and (part.delay == d).all())


# ------------------------------------------------------------------------ NIR in: Delay nodes

def _cuba(n: int, dt: float = 1e-3) -> nir.CubaLIF:
    """A CubaLIF in the euler convention with time step ``dt`` (tau / r = dt, as snnTorch writes)."""
    tau = np.full(n, 5 * dt)
    return nir.CubaLIF(tau_syn=tau, tau_mem=tau, r=np.full(n, 5.0), w_in=np.full(n, 5.0),
                       v_threshold=np.ones(n), v_leak=np.zeros(n), v_reset=np.zeros(n))


def _foreign(delay_after_affine: np.ndarray, delay_after_lif: np.ndarray, dt: float = 1e-3) -> nir.NIRGraph:
    """Input 4 -> Affine -> Delay -> CubaLIF 5 -> Delay -> Linear -> CubaLIF 3 -> Output."""
    rng = np.random.default_rng(3)
    nodes = {"in": nir.Input(input_type={"input": np.array([4])}),
             "fc1": nir.Affine(weight=rng.normal(0, 1, (5, 4)), bias=np.zeros(5)),
             "wait1": nir.Delay(delay=delay_after_affine), "lif1": _cuba(5, dt),
             "wait2": nir.Delay(delay=delay_after_lif), "fc2": nir.Linear(weight=rng.normal(0, 1, (3, 5))),
             "lif2": _cuba(3, dt), "out": nir.Output(output_type={"output": np.array([3])})}
    edges = [("in", "fc1"), ("fc1", "wait1"), ("wait1", "lif1"), ("lif1", "wait2"), ("wait2", "fc2"),
             ("fc2", "lif2"), ("lif2", "out")]
    return nir.NIRGraph(nodes=nodes, edges=edges, type_check=False)


def test_nir_delay_nodes_fold_into_synapses_in_steps_of_dt(tmp_path: Path) -> None:
    """After an Affine: one delay per output neuron of that synapse. After a neuron: one per input line of
    the synapse reading it (an axonal delay). Time becomes steps with the import's dt (here 1 ms, from
    tau / r); --nir-dt changes the conversion."""
    steps1, steps2 = np.array([0, 1, 2, 3, 62]), np.array([4, 0, 0, 1, 2])
    g = _foreign(steps1 * 1e-3, steps2 * 1e-3)
    nir.write(str(tmp_path / "d.nir"), g)
    imp = read_nir(tmp_path / "d.nir")
    assert imp.dt == pytest.approx(1e-3)
    fc1, fc2 = imp.graph.nodes["fc1"], imp.graph.nodes["fc2"]
    assert np.array_equal(fc1.delay, np.repeat(steps1[:, None], 4, axis=1))
    assert np.array_equal(fc2.delay, np.repeat(steps2[None, :], 3, axis=0))
    assert "wait1" not in imp.graph.nodes and imp.graph.delayed_synapses() == ["fc1", "fc2"]
    # with dt = 0.5 ms the same times are twice the steps (62 steps would be 124: refused)
    g2 = _foreign(np.array([0, 1, 2, 3, 4]) * 1e-3, steps2 * 1e-3)
    half = graph_from_nir(g2, convention="euler", dt=5e-4).graph
    assert np.array_equal(half.nodes["fc1"].delay[:, 0], [0, 2, 4, 6, 8])
    assert np.array_equal(half.nodes["fc2"].delay[0], steps2 * 2)
    # and it compiles: the quantize pass keeps the delays
    from snnc.compiler.passes import quantize
    from snnc.compiler.targets import LOIHI
    q = quantize(imp.graph, LOIHI)
    assert np.array_equal(q.nodes["fc1"].delay, fc1.delay) and np.array_equal(q.nodes["fc2"].delay, fc2.delay)


def _cycle_with_delay() -> nir.NIRGraph:
    rng = np.random.default_rng(4)
    nodes = {"in": nir.Input(input_type={"input": np.array([4])}),
             "fc": nir.Linear(weight=rng.normal(0, 1, (5, 4))), "lif": _cuba(5),
             "rec": nir.Linear(weight=rng.normal(0, 0.1, (5, 5))), "wait": nir.Delay(delay=np.full(5, 2e-3)),
             "out": nir.Output(output_type={"output": np.array([5])})}
    edges = [("in", "fc"), ("fc", "lif"), ("lif", "rec"), ("rec", "wait"), ("wait", "lif"), ("lif", "out")]
    return nir.NIRGraph(nodes=nodes, edges=edges, type_check=False)


def _delay_after_conv() -> nir.NIRGraph:
    nodes = {"in": nir.Input(input_type={"input": np.array([1, 4, 4])}),
             "conv": nir.Conv2d(input_shape=(4, 4), weight=np.ones((2, 1, 3, 3)), stride=1, padding=1, dilation=1,
                                groups=1, bias=np.zeros(2)),
             "wait": nir.Delay(delay=np.full(32, 1e-3)), "lif": _cuba(32),
             "out": nir.Output(output_type={"output": np.array([32])})}
    return nir.NIRGraph(nodes=nodes, edges=[("in", "conv"), ("conv", "wait"), ("wait", "lif"), ("lif", "out")],
                        type_check=False)


def _delay_before_output() -> nir.NIRGraph:
    g = _foreign(np.zeros(5), np.zeros(5))
    g.nodes["wait3"] = nir.Delay(delay=np.full(3, 1e-3))
    g.edges = [e for e in g.edges if e != ("lif2", "out")] + [("lif2", "wait3"), ("wait3", "out")]
    return g


NIR_REFUSALS = {
    "fraction": (lambda: _foreign(np.array([0, 1.5, 0, 0, 0]) * 1e-3, np.zeros(5)),
                 r"^node 'wait1' \(Delay\): delay 0\.0015 is 1\.5 steps of dt = 0\.001: snnc delays whole steps"),
    "too_long": (lambda: _foreign(np.zeros(5), np.array([0, 63, 0, 0, 0]) * 1e-3),
                 r"^node 'wait2' \(Delay\): delay of 0\.\.63 steps \(dt = 0\.001\) is outside \[0, 62\]"),
    "negative": (lambda: _foreign(np.array([0, -1, 0, 0, 0]) * 1e-3, np.zeros(5)),
                 r"^node 'wait1' \(Delay\): delay of -1\.\.0 steps"),
    "cycle": (_cycle_with_delay, r"^node 'wait' \(Delay\) is on a cycle: snnc folds Delay nodes into feed-forward "
                                 r"synapses only"),
    "after_conv": (_delay_after_conv, r"^node 'wait' \(Delay\) follows Conv2d 'conv': snnc delays dense synapses only"),
    "before_output": (_delay_before_output, r"^node 'wait3' \(Delay\) feeds 'out' \(Output\): snnc folds a Delay into "
                                            r"a synapse"),
    "wrong_size": (lambda: _foreign(np.zeros(4), np.zeros(5)),
                   r"^node 'wait1' \(Delay\): 4 delays after 'fc1', which has 5 outputs"),
}


@pytest.mark.parametrize("case", sorted(NIR_REFUSALS))
def test_nir_delay_refusals_name_the_node(case: str, tmp_path: Path) -> None:
    build, pattern = NIR_REFUSALS[case]
    path = tmp_path / f"{case}.nir"
    nir.write(str(path), build())
    with pytest.raises(UnsupportedLayerError) as e:
        read_nir(path, convention="euler", dt=1e-3)
    msg = str(e.value)
    assert msg.startswith(f"{path}: ") and "\n" not in msg, msg
    import re
    assert re.search(pattern, msg[len(f"{path}: "):]), msg


# ------------------------------------------------------------------------ netx: reading delay datasets

def _netx_file(path: Path, delay: np.ndarray, w: np.ndarray) -> None:
    """A slayer-style file: one dense layer with CUBA neurons and the given ``delay``."""
    def layer(f: h5py.File, i: int, weight: np.ndarray, **extra: object) -> None:
        g = f.create_group(f"layer/{i}")
        g.create_dataset("type", (1,), "S10", [b"dense"])
        g["shape"] = np.array([weight.shape[0]])
        g["weight"] = weight.astype(np.float32)
        for k, v in extra.items():
            g[k] = v
        for k, v in {"type": np.array([b"CUBA"]), "iDecay": 600, "vDecay": 200, "vThMant": 150, "refDelay": 1,
                     "gradedSpike": False}.items():
            g[f"neuron/{k}"] = v
    with h5py.File(path, "w") as f:
        layer(f, 0, w, delay=delay)


NETX_SHAPES = {   # name: (delay dataset, the (5, 4) delays netx runs)
    "scalar": (np.float32(3.7), np.full((5, 4), 3)),
    "per_output": (np.array([0, 1, 2, 3, 4], np.float32), np.repeat(np.arange(5)[:, None], 4, axis=1)),
    "per_input": (np.array([4, 0, 2, 1], np.float32), np.repeat(np.array([[4, 0, 2, 1]]), 5, axis=0)),
    "per_synapse": (np.arange(20, dtype=np.float32).reshape(5, 4) % 7, np.arange(20).reshape(5, 4) % 7),
    "clamped": (np.array([0, 70, 2, 62, 63], np.float32),
                np.repeat(np.array([0, 62, 2, 62, 62])[:, None], 4, axis=1)),
}


@pytest.mark.parametrize("case", sorted(NETX_SHAPES))
def test_netx_delay_datasets_read_as_netx_builds_them(case: str, tmp_path: Path) -> None:
    """snnc's reading of every delay shape netx accepts equals the ``delays`` of the DelayDense that
    lava-dl's own netx loader builds from the same file; values above 62 are clamped as netx does, and
    the notes say so."""
    data, want = NETX_SHAPES[case]
    rng = np.random.default_rng(7)
    path = tmp_path / f"{case}.net"
    _netx_file(path, data, _dense_weight(rng, 5, 4, -100, 120))
    imp = read_netx_file(path)
    got = imp.graph.nodes["fc1"].delay
    assert np.array_equal(got, want)
    (block,) = netx_blocks(path)
    assert block["synapse"] == "DelayDense" and np.array_equal(block["delays"], got)
    notes = "\n".join(imp.notes)
    assert "dense synaptic delays read as netx runs them" in notes
    assert ("clamped to 62 steps, as netx does" in notes) == (case == "clamped")


def test_netx_delay_refusals(tmp_path: Path) -> None:
    rng = np.random.default_rng(8)
    w = _dense_weight(rng, 5, 4, -100, 120)
    path = tmp_path / "neg.net"
    _netx_file(path, np.array([0, -2, 0, 0, 0], np.float32), w)
    with pytest.raises(UnsupportedLayerError, match=r"layer 0: negative synaptic delay -2"):
        read_netx(path)
    _netx_file(path, np.zeros(7, np.float32), w)
    with pytest.raises(InputFileError, match=r"layer 0: 'delay' of shape \(7,\) fits neither"):
        read_netx(path)
    with h5py.File(path, "w") as f:            # a dense_rec layer with delays: netx would not run it as written
        g = f.create_group("layer/0")
        g["type"], g["shape"], g["weight"] = np.array([b"dense_rec"]), np.array([5]), w
        g["weight_rec"], g["delay"] = _dense_weight(rng, 5, 5), np.ones(5)
        g["neuron/type"], g["neuron/iDecay"], g["neuron/vDecay"], g["neuron/vThMant"] = np.array([b"CUBA"]), 0, 0, 9
    with pytest.raises(UnsupportedLayerError, match=r"dense_rec layer with a 'delay' is not supported"):
        read_netx(path)
    # and snnc never writes a dense_rec layer with delays
    g = Graph.build([Input("in", (4,)), QDense("fc1", w, delay=1), _lif("lif1", 5),
                     QDense("rec1", _dense_weight(rng, 5, 5)), Output("out")],
                    [("in", "fc1"), ("fc1", "lif1"), ("lif1", "rec1"), ("rec1", "lif1"), ("lif1", "out")])
    assert "dense_rec layer 'fc1' + recurrent 'rec1' has synaptic delays" in netx_limitation(g)


# ------------------------------------------------------------------------ netx: writing, and netx running it

@pytest.mark.parametrize("kind", KINDS)
def test_netx_round_trips_delays_in_the_smallest_shape(kind: str, tmp_path: Path) -> None:
    g = delayed_chain(kind, zero_weight_delay=True)
    assert netx_limitation(g) is None
    path = tmp_path / "network.net"
    write_netx(g, path, STEPS)
    with h5py.File(path) as f:
        shapes = [f[f"layer/{i}/delay"].shape for i in (1, 2)]
    assert shapes[0] == ((12,) if kind in ("connection", "output") else (12, 10))   # per output, else per synapse
    assert shapes[1] == (6, 12)
    assert_same_synapses(g, read_netx(path), names=False)


def test_netx_without_delays_writes_no_delay_dataset(tmp_path: Path) -> None:
    """A graph without delays writes the same file as before delays existed: no delay dataset."""
    rng = np.random.default_rng(9)
    g = Graph.chain([Input("in", (4,)), QDense("fc1", _dense_weight(rng, 5, 4)), _lif("lif1", 5), Output("out")])
    write_netx(g, tmp_path / "n.net", 8)
    with h5py.File(tmp_path / "n.net") as f:
        assert set(f["layer/1"].keys()) == {"type", "shape", "inFeatures", "outFeatures", "weight", "bias", "neuron"}


@pytest.mark.slow
def test_netx_loads_snnc_delayed_file_with_binary_messages_and_spikes_like_hwsim(tmp_path: Path) -> None:
    """What a Loihi 2 user does with snnc's network.net: ``netx.hdf5.Network(net_config=...,
    input_message_bits=0)``. netx builds DelayDense synapses with snnc's delays, binary message bits
    (0: the input is spikes, and every CUBA block sends spikes) and LIF neurons; on Lava's fixed-point
    CPU models (Loihi2SimCfg fixed_pt) it spikes exactly like hwsim, every layer, every step."""
    g = delayed_chain("output", seed=3)
    path = tmp_path / "network.net"
    write_netx(g, path, STEPS)
    blocks = netx_blocks(path, input_message_bits=0)
    assert [b["synapse"] for b in blocks] == ["DelayDense", "DelayDense"]
    assert all(b["num_message_bits"] == 0 and b["input_message_bits"] == 0 and b["output_message_bits"] == 0
               for b in blocks)
    assert all(b["neuron"] == "LIF" for b in blocks)
    assert np.array_equal(blocks[0]["delays"], g.nodes["fc1"].delay)
    assert np.array_equal(blocks[1]["delays"], g.nodes["fc2"].delay)
    x = spikes_in()
    want = HwSim.from_graph(g).run(x)
    got = run_netx(path, x, (10,))
    for name, spikes in zip(["lif1", "lif2"], got):
        assert want.spikes[name].any(), name
        assert np.array_equal(spikes, want.spikes[name]), \
            f"{name}: first difference at (sample, step, neuron) {np.argwhere(spikes != want.spikes[name])[0]}"


# ------------------------------------------------------------------------ ONNX

@pytest.mark.parametrize("kind", KINDS)
def test_onnx_round_trips_delays_and_runs_to_hwsim_spikes(kind: str, tmp_path: Path) -> None:
    """The step function keeps a spike history per source read by delayed synapses (``<src>/hist_prev``,
    max delay entries); onnx's ReferenceEvaluator looping it gives hwsim's spikes, every step."""
    g = delayed_chain(kind, seed=2, weight_exp=-1, zero_weight_delay=True)
    path = tmp_path / "graph.onnx"
    write_onnx(g, path)
    back = read_onnx(path)
    assert_same_synapses(g, back)
    model = onnx.load(str(path))
    onnx.checker.check_model(model, full_check=True)
    hist = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim[1:]] for v in model.graph.input
            if v.name.endswith("/hist_prev")}
    assert hist == {"in/hist_prev": [g.nodes["fc1"].max_delay, 10], "lif1/hist_prev": [g.nodes["fc2"].max_delay, 12]}
    x = spikes_in(seed=11)
    want = HwSim.from_graph(g).run(x)
    got, _, _ = run_step_function(model, x)
    for name in ("lif1", "lif2"):
        assert want.spikes[name].any(), name
        assert np.array_equal(got[name], want.spikes[name]), name


def test_delays_after_a_conv_population_in_every_format(tmp_path: Path) -> None:
    """A delayed dense synapse reading a conv-fed (C, H, W) population: its history is (N, H, C, H, W) in
    ONNX (gathered, then flattened), a Flatten before the split Linears in NIR, a flatten layer before
    the delayed dense layer in netx; every format reads back the same delays, and ONNX spikes like hwsim."""
    from snnc.compiler.ir import QConv

    rng = np.random.default_rng(12)
    conv = QConv("c", rng.integers(-40, 60, (2, 1, 3, 3)) * 2, (1, 5, 5), padding=1)
    g = Graph.chain([Input("in", (1, 5, 5)), conv,
                     QCubaLIF("l1", 50, 500, 200, 100, np.zeros(50, np.int64), shape=(2, 5, 5)),
                     QDense("d", _dense_weight(rng, 4, 50, -120, 160), delay=rng.integers(0, 6, (4, 50))),
                     _lif("l2", 4), Output("out")])
    write_onnx(g, tmp_path / "g.onnx")
    write_nir(g, tmp_path / "g.nir")
    write_netx(g, tmp_path / "g.net", STEPS)
    assert_same_synapses(g, read_onnx(tmp_path / "g.onnx"))
    assert_same_synapses(g, read_nir(tmp_path / "g.nir").graph)
    assert_same_synapses(g, read_netx(tmp_path / "g.net"), names=False)
    x = spikes_in(seed=13, batch=2, n=25)
    want = HwSim.from_graph(g).run(x)
    got, _, _ = run_step_function(onnx.load(str(tmp_path / "g.onnx")), x)
    assert want.spikes["l2"].any()
    assert all(np.array_equal(got[k], want.spikes[k]) for k in ("l1", "l2"))


def test_onnx_without_delays_is_unchanged() -> None:
    """No history inputs and none of the delay ops for a graph without delays."""
    g = delayed_chain("output")
    plain = Graph.chain([Input("in", (10,)), QDense("fc1", g.nodes["fc1"].weight), _lif("lif1", 12),
                         QDense("fc2", g.nodes["fc2"].weight), _lif("lif2", 6), Output("out")])
    model = graph_to_onnx(plain)
    assert not [v for v in model.graph.input if "hist" in v.name]
    assert not {n.op_type for n in model.graph.node} & {"Gather", "Equal", "Where", "Unsqueeze", "Slice", "Concat"}


# ------------------------------------------------------------------------ the pipeline: every file, delays kept

@pytest.mark.slow
def test_compile_writes_every_format_with_delays(tmp_path: Path) -> None:
    """A delayed fixed-point graph (graph.h5 in) compiles to an artifact with graph.h5, graph.nir, graph.onnx
    and network.net, each read back equal (the pipeline checks delays too), verified hwsim = Lava."""
    g = delayed_chain("synapse", seed=4)
    src = tmp_path / "delayed.h5"
    write_graph(g, src)
    res = compile_model(src, out=tmp_path / "build", timesteps=STEPS, verify=2, emulator=False)
    art = load_artifact(res.out)
    assert {"graph.h5", "graph.nir", "graph.onnx", "network.net"} <= set(art.manifest["files"])
    assert art.manifest["netx"] == "written: network.net"
    for reader, name in ((read_graph, "graph.h5"), (lambda p: read_nir(p).graph, "graph.nir"),
                         (read_onnx, "graph.onnx"), (read_netx, "network.net")):
        back = reader(res.out / name)
        for syn in ("fc1", "fc2"):
            assert np.array_equal(back.nodes[syn].delay, g.nodes[syn].delay), (name, syn)
    ver = art.report()["verification"]
    assert ver["passed"] and ver["mismatches"]["hwsim-lava"] == {"lif1": 0, "lif2": 0}, json.dumps(ver)[:2000]


# ------------------------------------------------------------------------ SLAYER delay=True, end to end

@pytest.mark.slow
def test_slayer_delays_compile_verify_and_run_on_netx_like_hwsim(tmp_path: Path) -> None:
    """SLAYER CUBA Dense blocks with ``delay=True`` and integer delays (0..4 steps, set after the delay's lazy
    init so the export is deterministic). SLAYER delays each block's *output* spikes (an axonal delay per
    neuron); its export writes them as the layer's 1-D ``delay``, which netx applies to the same layer's
    *input* synapses per output neuron. For neurons without bias the two are the same spike trains (a
    time-invariant neuron from zero state), so hwsim on snnc's reading = netx on Lava = SLAYER's forward,
    every layer and step; and the file compiles and verifies with 0 hwsim-Lava mismatches."""
    import torch

    ensure_lava_importable()
    from lava.lib.dl import slayer

    torch.manual_seed(1)
    p = dict(threshold=1.0, current_decay=0.25, voltage_decay=0.03, requires_grad=False)
    blocks = [slayer.block.cuba.Dense(p, 20, 12, weight_scale=4, delay=True),
              slayer.block.cuba.Dense(p, 12, 6, weight_scale=4, delay=True)]
    xt = (torch.rand(3, 20, 30) < 0.4).float()
    with torch.no_grad():          # the delays' shapes come from the first forward (slayer/axon/delay.py)
        y = xt
        for b in blocks:
            y = b(y)
    gen = torch.Generator().manual_seed(3)
    for b in blocks:
        b.delay.delay.data = torch.randint(0, 5, b.delay.delay.shape, generator=gen).float()
    path = tmp_path / "network.net"
    out = slayer_forward_and_export(blocks, xt, path)
    with h5py.File(path) as f:
        delays = [f[f"layer/{i}/delay"][()] for i in range(2)]
    assert [d.shape for d in delays] == [(12,), (6,)] and all(d.any() for d in delays)
    imp = read_netx_file(path)
    assert sum("dense synaptic delays read as netx runs them" in n for n in imp.notes) == 2
    for (syn, _), d in zip(imp.graph.layers(), delays):
        assert np.array_equal(syn.delay, np.repeat(d.astype(np.int64)[:, None], syn.in_size, axis=1))

    x = np.moveaxis(xt.numpy(), -1, 1) > 0
    hw = HwSim.from_graph(imp.graph).run(x)
    got = run_netx(path, x, imp.graph.input.shape)
    with torch.no_grad():
        outs, y = [], xt
        for b in blocks:
            y = b(y)
            outs.append(np.moveaxis(y.numpy(), -1, 1) > 0)
    assert np.array_equal(outs[-1], np.moveaxis(out.numpy(), -1, 1) > 0)
    for (_, neu), netx_spikes, slayer_spikes in zip(imp.graph.layers(), got, outs):
        want = hw.spikes[neu.name]
        assert want.any(), neu.name
        assert np.array_equal(netx_spikes, want), f"{neu.name}: netx differs from hwsim"
        assert np.array_equal(slayer_spikes, want), f"{neu.name}: slayer's forward differs from hwsim"

    res = compile_model(path, out=tmp_path / "build", timesteps=30, verify=4, emulator=False)
    art = load_artifact(res.out)
    assert art.manifest["netx"] == "written: network.net"
    assert art.graph.delayed_synapses() == ["fc1", "fc2"]
    ver = art.report()["verification"]
    assert ver["passed"] is True and ver["mismatches"]["hwsim-lava"] == {"lif1": 0, "lif2": 0}
    assert all(ver["spikes"]["hwsim"][p] > 0 for p in ("lif1", "lif2"))
