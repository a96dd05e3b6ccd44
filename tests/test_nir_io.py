"""NIR in and out: snnc's own graphs round-trip exactly; graphs exported by snnTorch and Norse with
their own exporters compile, and spike for spike equal the source library's simulation where the
discretisations coincide (docs/nir.md says where they do not)."""
from __future__ import annotations

import warnings
from pathlib import Path

import nir
import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from snnc.compiler.artifact import load_artifact
from snnc.compiler.ir import Graph, Input, Output, QConv, QCubaLIF, QDense
from snnc.compiler.nir_io import read_nir, write_nir
from snnc.errors import InputFileError, UnsupportedLayerError
from snnc.hwsim.reference import run_float
from snnc.hwsim.sim import HwSim
from snnc.compiler.ir import same_synapse as _same_synapse
from snnc.pipeline import compile_model

warnings.filterwarnings("ignore", category=UserWarning)
GRID = 2 / 254          # weights on the chip's grid once the scale is 254 (max |w| = 1)
THRESHOLD = 255 / 254   # never equal to a sum of grid weights: float and integer agree at the threshold


# ---------------------------------------------------------------------------------------------- helpers

def grid_weight(rng: np.random.Generator, out: int, inp: int) -> np.ndarray:
    w = rng.integers(-127, 128, (out, inp)) * GRID
    w[0, 0] = 1.0   # fixes the quantization scale at 254: every weight becomes an exact even integer
    return w


def step_layers(synapses: list, neurons: list, x: torch.Tensor, call) -> list[np.ndarray]:
    """Run a layered net step by step: the source library's own simulation. Spikes (batch, T, n) per layer."""
    batch, steps = x.shape[:2]
    out: list[list[torch.Tensor]] = [[] for _ in neurons]
    states: list = [None] * len(neurons)
    for t in range(steps):
        h = x[:, t]
        for k, (syn, neu) in enumerate(zip(synapses, neurons)):
            h, states[k] = call(neu, syn(h), states[k])
            out[k].append(h.detach().clone())
    return [torch.stack(o, 1).numpy() > 0 for o in out]


def snntorch_spikes(synapses: list, neurons: list, x: torch.Tensor) -> list[np.ndarray]:
    """snnTorch layers with hidden state (init_hidden=True), one sample at a time from reset state."""
    runs = []
    for b in range(len(x)):
        for neu in neurons:
            neu.reset_mem()
        runs.append(step_layers(synapses, neurons, x[b:b + 1].float(), lambda neu, h, s: (neu(h), None)))
    return [np.concatenate([r[k] for r in runs]) for k in range(len(neurons))]


def norse_call(neu, x, state):  # type: ignore[no-untyped-def]
    return neu(x, state)


def assert_shifted_equal(ours: dict[str, np.ndarray], names: list[str], source: list[np.ndarray]) -> None:
    """Layer k (1-based) of the chip spikes k steps after the source library's layer k (one synaptic
    delay per layer); otherwise every spike must be equal."""
    assert sum(int(s.sum()) for s in source) > 0, "the source network must spike for the test to mean anything"
    for k, (name, src) in enumerate(zip(names, source), start=1):
        steps = src.shape[1]
        np.testing.assert_array_equal(ours[name][:, k:k + steps], src, err_msg=f"layer {k} ({name})")


def padded(x: np.ndarray, extra: int) -> np.ndarray:
    return np.concatenate([x, np.zeros((x.shape[0], extra, x.shape[2]), dtype=x.dtype)], axis=1)


def random_fixed_graph(data: st.DataObject) -> Graph:
    """A compiled-looking graph: dense or conv first layer, graded or binary input, optional second
    synapse into the last population (a residual-style DAG)."""
    rng = np.random.default_rng(data.draw(st.integers(0, 2**16)))
    conv = data.draw(st.booleans())
    bits = 0 if conv else data.draw(st.sampled_from([0, 8]))
    nodes: list = []
    edges: list = []
    if conv:
        c, h = data.draw(st.integers(1, 3)), data.draw(st.integers(4, 7))
        groups = data.draw(st.sampled_from([1, c]))
        inp = Input("in", (c, h, h))
        co = c * data.draw(st.integers(1, 2))
        syn1 = QConv("conv1", rng.integers(-256, 256, (co, c // groups, 3, 3)), (c, h, h),
                     stride=data.draw(st.sampled_from([1, 2])), padding=data.draw(st.sampled_from([0, 1])),
                     dilation=1, groups=groups)
        shape1: tuple | None = syn1.out_shape
        n1 = syn1.out_size
    else:
        n0 = data.draw(st.integers(2, 12))
        inp = Input("in", (n0,), bits)
        n1 = data.draw(st.integers(2, 10))
        syn1 = QDense("fc1", rng.integers(-127, 128, (n1, n0)) * 2, -bits)
        shape1 = None
    du = data.draw(st.integers(0, 4096))
    lif1 = QCubaLIF("lif1", n1, du, data.draw(st.integers(0, 4096)), data.draw(st.integers(1, 2**17 - 1)),
                    rng.integers(-4096, 4096, n1), shape=shape1)
    n2 = data.draw(st.integers(1, 6))
    fc2 = QDense("fc2", rng.integers(-127, 128, (n2, n1)) * 2, 0)
    lif2 = QCubaLIF("lif2", n2, 4096, data.draw(st.integers(0, 4096)), 2**17 - 1, np.zeros(n2, dtype=np.int64))
    nodes += [inp, syn1, lif1, fc2, lif2, Output("out")]
    edges += [("in", syn1.name), (syn1.name, "lif1"), ("lif1", "fc2"), ("fc2", "lif2"), ("lif2", "out")]
    if not conv and data.draw(st.booleans()):
        skip = QDense("skip", rng.integers(-127, 128, (n2, inp.size)) * 2, -bits)
        nodes.insert(4, skip)
        edges += [("in", "skip"), ("skip", "lif2")]
    meta = {"readout": {"kind": data.draw(st.sampled_from(["rate", "membrane"])), "voters": 1},
            "weight_scales": {"lif1": 12.5, "lif2": 3.0}, "target": "loihi"}
    return Graph.build(nodes, edges, meta)


def assert_same_graph(a: Graph, b: Graph) -> None:
    assert [n.name for n in a.ordered()] == [n.name for n in b.ordered()]
    assert sorted(a.edges) == sorted(b.edges)
    assert dict(a.meta) == dict(b.meta)
    for x in a.ordered():
        y = b.nodes[x.name]
        assert type(x) is type(y), x.name
        if isinstance(x, (QDense, QConv)):
            assert _same_synapse(x, y), x.name
        elif isinstance(x, QCubaLIF):
            assert (x.size, x.du, x.dv, x.vth, x.bias_exp, x.shape) == (y.size, y.du, y.dv, y.vth, y.bias_exp, y.shape)
            np.testing.assert_array_equal(x.bias_mant, y.bias_mant)
        elif isinstance(x, Input):
            assert (x.shape, x.bits) == (y.shape, y.bits)


# ---------------------------------------------------------------------------------------------- snnc's own files

@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_snnc_graph_round_trips_through_nir_exactly(tmp_path_factory: pytest.TempPathFactory, data: st.DataObject) -> None:
    graph = random_fixed_graph(data)
    path = tmp_path_factory.mktemp("nir") / "graph.nir"
    write_nir(graph, path)
    if all(getattr(n, "groups", 1) == 1 for n in graph.nodes.values()):
        # NIR's own shape inference accepts the file (nir 1.0.8 infers a conv's input channels as
        # weight.shape[1], ignoring groups, so it rejects correct grouped convs: docs/nir.md)
        nir.read(str(path), type_check=True)
    assert_same_graph(graph, read_nir(path).graph)


def test_exported_nir_passes_nir_type_check_and_means_the_same_network(tmp_path: Path) -> None:
    """Without our metadata, the file read as plain NIR (euler convention) is the same network: for
    integer dynamics (no decay rounding) the float simulation of the re-read graph equals hwsim."""
    rng = np.random.default_rng(3)
    w1 = rng.integers(-60, 61, (16, 20)) * 2
    graph = Graph.chain([Input("in", (20,)), QDense("fc1", w1, 0), QCubaLIF("lif1", 16, 4096, 0, 151, np.zeros(16, int)),
                         QDense("fc2", rng.integers(-127, 128, (4, 16)) * 2, 0),
                         QCubaLIF("lif2", 4, 4096, 0, 81, np.zeros(4, int)), Output("out")])
    path = tmp_path / "graph.nir"
    write_nir(graph, path)
    foreign = nir.read(str(path), type_check=True)     # NIR's own reader and shape inference accept it
    foreign.metadata = {}
    for node in foreign.nodes.values():
        node.metadata = {}
    nir.write(str(tmp_path / "plain.nir"), foreign)
    plain = read_nir(tmp_path / "plain.nir", convention="euler")
    x = np.random.default_rng(0).random((6, 30, 20)) < 0.3
    ref = run_float(plain.graph, x.astype(float))
    hw = HwSim.from_graph(graph).run(x)
    assert hw.spikes["lif2"].sum() > 0
    for name in ("lif1", "lif2"):
        np.testing.assert_array_equal(ref.spikes[name], hw.spikes[name])


def test_snntorch_reads_our_nir_and_simulates_the_same_spikes(tmp_path: Path) -> None:
    """graph.nir opened by snnTorch's own importer (snntorch.import_nir) spikes like hwsim, every layer
    (non-leaking layers, so float and integer arithmetic agree exactly)."""
    from snntorch import import_nir

    rng = np.random.default_rng(5)
    graph = Graph.chain([Input("in", (10,)), QDense("fc1", rng.integers(-60, 61, (8, 10)) * 2, 0),
                         QCubaLIF("lif1", 8, 4096, 0, 121, np.zeros(8, int)),
                         QDense("fc2", rng.integers(-127, 128, (3, 8)) * 2, 0),
                         QCubaLIF("lif2", 3, 4096, 0, 61, np.zeros(3, int)), Output("out")])
    write_nir(graph, tmp_path / "graph.nir")
    net = import_nir.import_from_nir(nir.read(str(tmp_path / "graph.nir")))
    x = np.random.default_rng(1).random((4, 24, 10)) < 0.4
    hw = HwSim.from_graph(graph).run(padded(x, 2))
    source = snntorch_spikes([net.fc1, net.fc2], [net.lif1, net.lif2], torch.from_numpy(x))
    assert_shifted_equal(hw.spikes, ["lif1", "lif2"], source)


# ---------------------------------------------------------------------------------------------- external graphs

def test_snntorch_export_compiles_and_equals_snntorch_spike_for_spike(tmp_path: Path) -> None:
    """snnTorch Leaky layers (IF: beta = 1, memoryless: beta = 0; reset to zero), exported with
    snnTorch's own exporter, compiled by snn-compile with Lava verification; hwsim's fixed-point spikes
    equal snnTorch's float simulation in every layer and step (shifted by the chip's synaptic delays)."""
    import snntorch as snn
    from snntorch.export_nir import export_to_nir

    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    sizes, betas = (12, 10, 6), (1.0, 0.0)
    lins = [torch.nn.Linear(a, b, bias=False) for a, b in zip(sizes[:-1], sizes[1:])]
    for lin in lins:
        with torch.no_grad():
            lin.weight.copy_(torch.from_numpy(grid_weight(rng, lin.out_features, lin.in_features)))
    lifs = [snn.Leaky(beta=torch.full((n,), b), threshold=torch.full((n,), THRESHOLD), reset_mechanism="zero",
                      init_hidden=True) for n, b in zip(sizes[1:], betas)]
    net = torch.nn.Sequential(lins[0], lifs[0], lins[1], lifs[1])
    path = tmp_path / "snntorch.nir"
    nir.write(str(path), export_to_nir(net, torch.zeros(sizes[0])))

    x = (torch.rand(5, 25, sizes[0]) < 0.5).float()
    source = snntorch_spikes(lins, lifs, x)

    res = compile_model(path, out=tmp_path / "build", verify=2)
    art = load_artifact(res.out)
    assert res.report["verification"]["passed"] is True
    assert art.manifest["source"]["kind"] == "nir"
    hw = HwSim.from_graph(art.graph).run(padded(x.numpy() > 0, 2))
    assert_shifted_equal(hw.spikes, [p.name for p in art.graph.populations()], source)


def _norse_net(cells: list, sizes: tuple[int, ...], rng: np.random.Generator):  # type: ignore[no-untyped-def]
    import norse.torch as norse

    lins = [torch.nn.Linear(a, b, bias=False).double() for a, b in zip(sizes[:-1], sizes[1:])]
    for lin in lins:
        with torch.no_grad():
            lin.weight.copy_(torch.from_numpy(grid_weight(rng, lin.out_features, lin.in_features)))
    model = norse.SequentialState(*[m for pair in zip(lins, cells) for m in pair]).double()
    return model, lins


def test_norse_iaf_export_compiles_and_equals_norse_spike_for_spike(tmp_path: Path) -> None:
    """Norse IAFCell layers exported by norse.to_nir: compiled, Lava-verified, and hwsim equals Norse."""
    import norse.torch as norse

    rng = np.random.default_rng(1)
    sizes = (14, 12, 5)
    cells = [norse.IAFCell(norse.IAFParameters(v_th=torch.tensor(THRESHOLD))) for _ in sizes[1:]]
    model, lins = _norse_net(cells, sizes, rng)
    graph = norse.to_nir(model, torch.zeros(1, sizes[0], dtype=torch.float64))
    path = tmp_path / "norse.nir"
    nir.write(str(path), graph, compression=None)   # Norse writes 0-d parameters, which gzip cannot hold
    x = (torch.rand(6, 30, sizes[0], dtype=torch.float64) < 0.5).double()
    source = step_layers(lins, cells, x, norse_call)

    res = compile_model(path, out=tmp_path / "build", verify=2)
    art = load_artifact(res.out)
    assert res.report["verification"]["passed"] is True
    hw = HwSim.from_graph(art.graph).run(padded(x.numpy() > 0, 2))
    assert_shifted_equal(hw.spikes, [p.name for p in art.graph.populations()], source)


def test_norse_leaky_cells_read_with_norse_discretisation(tmp_path: Path) -> None:
    """Norse LIFCell (current + membrane) and LIFBoxCell, discretised with the 'norse' convention
    (Norse writes tau = dt / tau_inv): the float graph snnc builds spikes exactly like Norse."""
    import norse.torch as norse

    rng = np.random.default_rng(2)
    sizes = (16, 12, 6)
    cells = [norse.LIFCell(norse.LIFParameters(tau_syn_inv=torch.tensor(250.0, dtype=torch.float64),
                                               tau_mem_inv=torch.tensor(125.0, dtype=torch.float64),
                                               v_th=torch.tensor(0.3, dtype=torch.float64))),
             norse.LIFBoxCell(norse.LIFBoxParameters(tau_mem_inv=torch.tensor(500.0, dtype=torch.float64),
                                                     v_th=torch.tensor(0.2, dtype=torch.float64)))]
    model, lins = _norse_net(cells, sizes, rng)
    path = tmp_path / "norse.nir"
    nir.write(str(path), norse.to_nir(model, torch.zeros(1, sizes[0], dtype=torch.float64)), compression=None)
    imp = read_nir(path)
    assert imp.convention == "norse" and imp.dt == pytest.approx(1e-3)
    x = (torch.rand(6, 40, sizes[0], dtype=torch.float64) < 0.4).double()
    source = step_layers(lins, cells, x, norse_call)
    ref = run_float(imp.graph, padded(x.numpy(), 2))
    assert_shifted_equal(ref.spikes, [p.name for p in imp.graph.populations()], source)
    lif = [p.neuron for p in imp.graph.populations()]
    assert (lif[0].current_decay, lif[0].voltage_decay) == pytest.approx((0.25, 0.125))
    assert (lif[1].current_decay, lif[1].voltage_decay) == pytest.approx((1.0, 0.5))


def test_snntorch_leaky_read_with_euler_discretisation(tmp_path: Path) -> None:
    """snnTorch Leaky(beta) with reset to zero: the euler convention at snnTorch's dt gives beta back."""
    import snntorch as snn
    from snntorch.export_nir import export_to_nir

    rng = np.random.default_rng(4)
    sizes = (10, 8, 4)
    lins = [torch.nn.Linear(a, b, bias=False) for a, b in zip(sizes[:-1], sizes[1:])]
    for lin in lins:
        with torch.no_grad():
            lin.weight.copy_(torch.from_numpy(grid_weight(rng, lin.out_features, lin.in_features)))
    lifs = [snn.Leaky(beta=torch.full((n,), b), threshold=torch.full((n,), t), reset_mechanism="zero", init_hidden=True)
            for n, b, t in zip(sizes[1:], (0.875, 0.75), (1.3, 0.7))]
    net = torch.nn.Sequential(lins[0], lifs[0], lins[1], lifs[1])
    path = tmp_path / "leaky.nir"
    nir.write(str(path), export_to_nir(net, torch.zeros(sizes[0])))
    imp = read_nir(path)
    assert imp.convention == "euler" and imp.dt == pytest.approx(1e-4)
    x = (torch.rand(4, 30, sizes[0]) < 0.5).float()
    source = snntorch_spikes(lins, lifs, x)
    ref = run_float(imp.graph, padded(x.numpy().astype(np.float64), 2))
    assert_shifted_equal(ref.spikes, [p.name for p in imp.graph.populations()], source)


# ---------------------------------------------------------------------------------------------- refusals

def _lif(n: int, **kw):  # type: ignore[no-untyped-def]
    args = {"tau": np.full(n, 1e-3), "r": np.full(n, 10.0), "v_leak": np.zeros(n), "v_threshold": np.ones(n),
            "v_reset": np.zeros(n)}
    args.update(kw)
    return nir.LIF(**args)


def _write(tmp_path: Path, nodes: dict, edges: list) -> Path:
    path = tmp_path / "g.nir"
    nir.write(str(path), nir.NIRGraph(nodes=nodes, edges=edges, type_check=False))
    return path


@pytest.mark.parametrize("case, expect", [
    ("delay", r"'d' \(Delay\)"),
    ("heterogeneous", "heterogeneous membrane time constant"),
    ("reset", "v_reset"),
    ("bias_into_current", "bias, which enters the decaying synaptic current"),
])
def test_unrepresentable_nodes_are_refused_by_name(tmp_path: Path, case: str, expect: str) -> None:
    w = np.ones((3, 4))
    nodes = {"in": nir.Input(input_type={"input": np.array([4])}), "fc": nir.Linear(weight=w), "lif": _lif(3),
             "out": nir.Output(output_type={"output": np.array([3])})}
    edges = [("in", "fc"), ("fc", "lif"), ("lif", "out")]
    if case == "delay":
        nodes["d"] = nir.Delay(delay=np.ones(3))
        edges = [("in", "fc"), ("fc", "lif"), ("lif", "d"), ("d", "out")]
    elif case == "heterogeneous":
        nodes["lif"] = _lif(3, tau=np.array([1e-3, 2e-3, 1e-3]), r=np.array([10.0, 20.0, 10.0]))
    elif case == "reset":
        nodes["lif"] = _lif(3, v_reset=np.full(3, 0.5))
    elif case == "bias_into_current":
        nodes["fc"] = nir.Affine(weight=w, bias=np.full(3, 0.1))
        nodes["lif"] = nir.CubaLIF(tau_syn=np.full(3, 2e-3), tau_mem=np.full(3, 1e-3), r=np.full(3, 10.0),
                                   v_leak=np.zeros(3), v_threshold=np.ones(3), w_in=np.full(3, 20.0))
    with pytest.raises(UnsupportedLayerError, match=expect) as err:
        read_nir(_write(tmp_path, nodes, edges))
    assert "g.nir" in str(err.value)


def test_not_a_nir_file_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.nir"
    bad.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 100)
    with pytest.raises(InputFileError, match="bad.nir"):
        read_nir(bad)


def test_pooled_conv_graph_from_nir_folds_the_pool(tmp_path: Path) -> None:
    """Conv2d -> IF -> SumPool2d -> Flatten -> Affine -> IF, as NIR writes it: the pool is folded into
    the dense synapse exactly (the float graph equals a direct torch evaluation of the same network)."""
    rng = np.random.default_rng(7)
    wc = rng.normal(0, 0.6, (4, 2, 3, 3))
    wd = rng.normal(0, 0.4, (3, 4 * 3 * 3))
    nodes = {"in": nir.Input(input_type={"input": np.array([2, 8, 8])}),
             "conv": nir.Conv2d(input_shape=(8, 8), weight=wc, stride=1, padding=1, dilation=1, groups=1,
                                bias=np.zeros(4)),
             "if1": nir.IF(r=np.ones((4, 8, 8)), v_threshold=np.ones((4, 8, 8))),
             "pool": nir.SumPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]), padding=np.array([0, 0])),
             "flat": nir.Flatten(input_type={"input": np.array([4, 4, 4])}),
             "fc": nir.Affine(weight=np.pad(wd, ((0, 0), (0, 4 * 16 - wd.shape[1])))[:, :64], bias=np.zeros(3)),
             "if2": nir.IF(r=np.ones(3), v_threshold=np.ones(3)),
             "out": nir.Output(output_type={"output": np.array([3])})}
    edges = [("in", "conv"), ("conv", "if1"), ("if1", "pool"), ("pool", "flat"), ("flat", "fc"), ("fc", "if2"),
             ("if2", "out")]
    imp = read_nir(_write(tmp_path, nodes, edges))
    x = (np.random.default_rng(0).random((3, 12, 2 * 64)) < 0.4).astype(float)
    ref = run_float(imp.graph, x)
    # direct evaluation: conv, IF, 2x2 sum pool, dense, IF (with the chip's one-step delay per layer)
    xt = torch.from_numpy(x).reshape(3, 12, 2, 8, 8)
    v1, v2 = torch.zeros(3, 4, 8, 8, dtype=torch.float64), torch.zeros(3, 3, dtype=torch.float64)
    s1_prev, s2 = torch.zeros_like(v1), []
    fc = torch.from_numpy(nodes["fc"].weight)
    for t in range(12):
        a1 = torch.nn.functional.conv2d(xt[:, t - 1], torch.from_numpy(wc), padding=1) if t else torch.zeros_like(v1)
        a2 = (torch.nn.functional.avg_pool2d(s1_prev, 2) * 4).reshape(3, -1) @ fc.T
        v1 = v1 + a1
        s1 = v1 > 1
        v1[s1] = 0
        v2 = v2 + a2
        s = v2 > 1
        v2[s] = 0
        s2.append(s)
        s1_prev = s1.double()
    np.testing.assert_array_equal(ref.spikes["if2"], torch.stack(s2, 1).numpy())
    assert ref.spikes["if2"].sum() > 0


def test_input_without_shape_takes_input_shape(tmp_path: Path) -> None:
    """An Input node without a usable shape is refused with the flag that fixes it; --input-shape (the
    load_source / compile_model argument) supplies it, and must agree with a file that has one."""
    from snnc.compiler.sources import load_source
    from snnc.errors import SnncError

    w = np.ones((3, 4))
    nodes = {"in": nir.Input(input_type={"input": np.array([])}), "fc": nir.Linear(weight=w), "lif": _lif(3),
             "out": nir.Output(output_type={"output": np.array([3])})}
    path = _write(tmp_path, nodes, [("in", "fc"), ("fc", "lif"), ("lif", "out")])
    with pytest.raises(UnsupportedLayerError, match="--input-shape"):
        read_nir(path)
    src = load_source(path, input_shape=(4,))
    assert src.graph.input.shape == (4,) and any("--input-shape" in n for n in src.notes)
    nodes["in"] = nir.Input(input_type={"input": np.array([4])})
    path = _write(tmp_path, nodes, [("in", "fc"), ("fc", "lif"), ("lif", "out")])
    with pytest.raises(SnncError, match="carries its input shape"):
        load_source(path, input_shape=(1, 2, 2))
