"""graph.onnx: the fixed-point graph as an ONNX step function (compiler/onnx_io.py, docs/onnx.md).

Round trips are exact (every node field, name, edge and the meta) over random graphs; the exported
step function, executed by onnx's ReferenceEvaluator with the CubaLIF op implemented below from its
attributes, spikes like hwsim in every population at every step; damaged or foreign files are
refused with one InputFileError line.
"""
from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import numpy as np
import onnx
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator
from onnx.reference.op_run import OpRun

from snnc.compiler.frontend import graph_from_module
from snnc.compiler.ir import CubaLIF as FloatLIF
from snnc.compiler.ir import Dense, Graph, Input, Output, QConv, QCubaLIF, QDense
from snnc.compiler.onnx_io import (DOMAIN, escape_name, graph_from_onnx, graph_to_onnx, read_onnx,
                                   unescape_name, write_onnx)
from snnc.compiler.passes import quantize
from snnc.compiler.targets import LOIHI
from snnc.errors import GraphError, InputFileError
from snnc.hwsim.sim import HwSim

from conftest import make_model
from test_mapping import residual_graph
from test_netx_interop import _dense_weight, _lif, random_conv_chain

STANDARD_OPS = {"Gemm", "Conv", "Mul", "Floor", "Cast", "Clip", "Div", "Add", "Sub", "Mod", "Flatten", "Reshape",
                "Identity"}


# ------------------------------------------------------------------------------ the CubaLIF op, from its attributes

class CubaLIF(OpRun):
    """ai.snnc CubaLIF v1 as docs/onnx.md specifies it (ir.py's equations), written independently of hwsim:
    integer division toward zero instead of shifts, int32 sums wrapped by modular arithmetic."""

    op_domain = DOMAIN

    def _run(self, a, u_prev, v_prev, bias_mant, **attrs):  # type: ignore[no-untyped-def]
        f = {k[4:]: int(v) for k, v in attrs.items() if k.startswith("fmt_")}
        unity, top = f["decay_unity"], 2 ** (f["state_bits"] - 1)
        shape = a.shape
        n = int(attrs["size"])
        a, u, v = (x.astype(np.int64).reshape(len(x), n) for x in (a, u_prev, v_prev))

        def decay(x: np.ndarray, d: int) -> np.ndarray:
            y = x * (unity - d)
            return np.sign(y) * (np.abs(y) // unity)

        def int32(x: np.ndarray) -> np.ndarray:
            return (x + 2**31) % 2**32 - 2**31

        bexp = int(attrs["bias_exp"])
        b = bias_mant.astype(np.int64).reshape(-1)
        bias = b * 2**bexp if bexp >= 0 else np.floor_divide(b, 2**-bexp)
        u = int32(decay(u, int(attrs["du"])) + int32(a * 2 ** f["act_shift"]))
        u = np.where(u > top, u - 2 * top, u)
        u = np.where(u <= -top, u + 2 * top, u)
        v = np.clip(int32(decay(v, int(attrs["dv"])) + u + bias), -(top - 1), top - 1)
        s = v > int(attrs["vth"]) * 2 ** f["vth_shift"]
        v = np.where(s, 0, v)
        return s.astype(np.float32).reshape(shape), u.astype(np.int32).reshape(shape), v.astype(np.int32).reshape(shape)


def run_step_function(model: onnx.ModelProto, x: np.ndarray
                      ) -> tuple[dict[str, np.ndarray], np.ndarray, dict[str, tuple[np.ndarray, np.ndarray]]]:
    """Loop the ONNX step function over x (batch, T, n_in) from zero state. Returns the spikes per
    population (original names, (batch, T, size) bool), the graph's network output, and (u, v) per
    population after every step (batch, T, size)."""
    sess = ReferenceEvaluator(model, new_ops=[CubaLIF])
    ins = {v.name: v for v in model.graph.input}
    outs = [v.name for v in model.graph.output]
    (data,) = [k for k in ins if "/" not in k]
    batch, steps = x.shape[:2]

    def zeros(v: onnx.ValueInfoProto) -> np.ndarray:
        shape = [batch, *(d.dim_value for d in v.type.tensor_type.shape.dim[1:])]
        return np.zeros(shape, helper.tensor_dtype_to_np_dtype(v.type.tensor_type.elem_type))

    state = {k: zeros(v) for k, v in ins.items() if k != data}
    in_shape = [batch, *(d.dim_value for d in ins[data].type.tensor_type.shape.dim[1:])]
    pops = [k[:-2] for k in outs if k.endswith("/s") and f"{k[:-2]}/u" in outs]
    size = {p: int(np.prod(state[f"{p}/s_prev"].shape[1:])) for p in pops}
    spikes = {p: np.zeros((batch, steps, size[p]), bool) for p in pops}
    trace = {p: (np.zeros((batch, steps, size[p]), np.int64), np.zeros((batch, steps, size[p]), np.int64)) for p in pops}
    network = []
    for t in range(steps):
        got = dict(zip(outs, sess.run(None, {data: x[:, t].reshape(in_shape).astype(np.float32), **state})))
        assert set(state) == {f"{k}_prev" for k in got if f"{k}_prev" in state}   # every state input is fed back
        state = {f"{k}_prev": v for k, v in got.items() if f"{k}_prev" in state}
        for p in pops:
            s = got[f"{p}/s"]
            assert set(np.unique(s)) <= {0.0, 1.0}
            spikes[p][:, t] = s.reshape(batch, -1) == 1
            trace[p][0][:, t], trace[p][1][:, t] = got[f"{p}/u"].reshape(batch, -1), got[f"{p}/v"].reshape(batch, -1)
        network.append(got[outs[0]].reshape(batch, -1) == 1)
    return ({unescape_name(p): s for p, s in spikes.items()}, np.stack(network, axis=1),
            {unescape_name(p): t for p, t in trace.items()})


# ------------------------------------------------------------------------------ random fixed-point graphs

def _spiky(lif: QCubaLIF, rng: np.random.Generator, vth_max: int) -> QCubaLIF:
    """The netx tests' random population with a threshold that a few input spikes cross, any bias_exp."""
    return dataclasses.replace(lif, vth=int(rng.integers(0, vth_max + 1)), bias_exp=int(rng.integers(0, 8)))


def dense_chain(rng: np.random.Generator, bits: int = 0) -> Graph:
    """Input (binary, or graded ``bits``-bit with weight_exp -bits) -> 1..3 dense layers; weight_exp in
    [-3, 3]; some layers with weights outside Lava's format (odd, beyond [-256, 254]) or built to wrap u."""
    n = int(rng.integers(1, 10))
    nodes: list = [Input("input", (n,), bits=bits)]
    for k in range(1, int(rng.integers(1, 4)) + 1):
        m = int(rng.integers(1, 9))
        kind = rng.choice(["lava", "raw", "stress"])
        if kind == "lava":
            w = _dense_weight(rng, m, n)
        elif kind == "raw":
            w = rng.integers(-400, 401, (m, n)).astype(rng.choice([np.int64, np.int32, np.int16]))
        else:
            w = rng.integers(100, 128, (m, n)) * 2 * rng.choice([-1, 1])
        exp = -bits if (k == 1 and bits) else int(rng.integers(-3, 4))
        lif = _spiky(_lif(f"lif{k}", (m,), rng), rng, 2 ** int(rng.integers(1, 12)))
        if kind == "stress":
            lif = dataclasses.replace(lif, du=int(rng.choice([0, 1])), bias_mant=np.full(m, rng.choice([-4096, 4095])))
        nodes += [QDense(f"fc{k}", w, exp), lif]
        n = m
    return Graph.chain([*nodes, Output("output")])


def conv_graph(rng: np.random.Generator) -> Graph:
    """The netx tests' random conv chain (stride, padding, dilation, groups; then flatten + dense or not),
    thresholds lowered so that layers spike; sometimes weights x 2**12 (up to ~2**20: the 24-bit conv wrap
    acts, and the sums need float64)."""
    g = random_conv_chain(rng)
    big = bool(rng.integers(0, 4) == 0)
    nodes = []
    for node in g.ordered():
        if isinstance(node, QCubaLIF):
            node = _spiky(node, rng, 2 ** int(rng.integers(1, 12)))
        elif isinstance(node, QConv) and big:
            node = dataclasses.replace(node, weight=node.weight * 2**12)
        nodes.append(node)
    return Graph.build(nodes, list(g.edges), g.meta)


def residual_dag(rng: np.random.Generator) -> Graph:
    """in -> c1 -> a; a -> c2 (3x3, pad 1) and a -> sc (1x1) both drive b (conv + conv);
    b -> fc and a -> skip (flattened) both drive o (dense + dense); o -> out."""
    c_in, c_mid, h, w = (int(rng.integers(1, 4)), int(rng.integers(1, 4)), int(rng.integers(3, 7)),
                         int(rng.integers(3, 7)))
    s = int(rng.integers(1, 3))
    c1 = QConv("c1", rng.integers(-30, 31, (c_mid, c_in, 3, 3)), (c_in, h, w), padding=1)
    c2 = QConv("c2", rng.integers(-30, 31, (c_mid, c_mid, 3, 3)), c1.out_shape, stride=s, padding=1)
    sc = QConv("sc", rng.integers(-30, 31, (c_mid, c_mid, 1, 1)), c1.out_shape, stride=s)
    n_out = int(rng.integers(1, 6))
    lif = lambda name, shape: _spiky(_lif(name, shape, rng), rng, 40)  # noqa: E731
    a, b = lif("a", c1.out_shape), lif("b", c2.out_shape)
    nodes = [Input("in", (c_in, h, w)), c1, a, c2, sc, b, QDense("fc", _dense_weight(rng, n_out, b.size, -60, 60)),
             QDense("skip", _dense_weight(rng, n_out, a.size, -60, 60)), lif("o", (n_out,)), Output("out")]
    edges = [("in", "c1"), ("c1", "a"), ("a", "c2"), ("a", "sc"), ("c2", "b"), ("sc", "b"), ("b", "fc"),
             ("a", "skip"), ("fc", "o"), ("skip", "o"), ("o", "out")]
    order = rng.permutation(len(edges))     # the stored edge order is kept, whatever it is
    return Graph.build(nodes, [edges[i] for i in order])


def renamed(graph: Graph, texts: list[str]) -> Graph:
    """The same graph with every node renamed (arbitrary text: '/', '%', '.', '', non-ASCII ...);
    a text already used gets primes appended."""
    names: list[str] = []
    for t in texts:
        while t in names:
            t += "'"
        names.append(t)
    new = dict(zip(graph.nodes, names))
    nodes = [dataclasses.replace(n, name=new[n.name]) for n in graph.nodes.values()]
    return Graph.build(nodes, [(new[a], new[b]) for a, b in graph.edges], graph.meta)


KINDS = ["dense", "graded", "conv", "residual"]
json_values = st.recursive(st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=False)
                           | st.text(max_size=6), lambda c: st.lists(c, max_size=3) | st.dictionaries(
                               st.text(max_size=5), c, max_size=3), max_leaves=8)


@st.composite
def fixed_point_graphs(draw: st.DrawFn) -> Graph:
    """One of KINDS, built from a drawn seed, maybe renamed with arbitrary text, with a random JSON meta."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    kind = draw(st.sampled_from(KINDS))
    g = {"dense": lambda: dense_chain(rng), "graded": lambda: dense_chain(rng, bits=int(rng.integers(1, 9))),
         "conv": lambda: conv_graph(rng), "residual": lambda: residual_dag(rng)}[kind]()
    event(kind)
    if draw(st.booleans()):
        g = renamed(g, draw(st.lists(st.text(max_size=6), min_size=len(g.nodes), max_size=len(g.nodes))))
    return Graph(g.nodes, g.edges, draw(st.dictionaries(st.text(max_size=8), json_values, max_size=4)))


def assert_same_graph_exactly(a: Graph, b: Graph) -> None:
    """Same node names in the same order, every dataclass field equal (arrays: values, dtype, shape),
    same edges in the same order, same meta."""
    assert list(a.nodes) == list(b.nodes)
    assert a.edges == b.edges
    assert a.meta == b.meta
    for name, x in a.nodes.items():
        y = b.nodes[name]
        assert type(x) is type(y), name
        for f in dataclasses.fields(x):
            u, v = getattr(x, f.name), getattr(y, f.name)
            if isinstance(u, np.ndarray):
                assert isinstance(v, np.ndarray) and u.dtype == v.dtype and u.shape == v.shape, (name, f.name)
                assert np.array_equal(u, v), (name, f.name)
            elif f.name == "semantics":
                assert dict(u) == dict(v), name
            elif f.name == "fmt":
                assert u == v and u.name == v.name and u.sources == v.sources, name
            else:
                assert u == v and type(u) is type(v), (name, f.name, u, v)


def spikes_of(graph: Graph, rng: np.random.Generator, batch: int, steps: int) -> np.ndarray:
    inp = graph.input
    if inp.bits:
        return rng.integers(0, 2**inp.bits, (batch, steps, inp.size))
    return rng.random((batch, steps, inp.size)) < rng.uniform(0.2, 0.8)


# ------------------------------------------------------------------------------ round trips

@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(fixed_point_graphs())
def test_round_trip_is_exact_and_the_file_is_valid_onnx(tmp_path: Path, graph: Graph) -> None:
    path = tmp_path / "graph.onnx"
    write_onnx(graph, path)
    model = onnx.load(str(path))
    onnx.checker.check_model(model, full_check=True)
    assert_same_graph_exactly(graph, read_onnx(path))
    assert_same_graph_exactly(graph, graph_from_onnx(graph_to_onnx(graph)))


@given(st.text())
def test_name_escaping_is_reversible_and_onnx_safe(name: str) -> None:
    token = escape_name(name)
    assert token and "/" not in token and token.isascii() and all(c.isalnum() or c in "_.-%" for c in token)
    assert unescape_name(token) == name
    if name and all(c.isascii() and (c.isalnum() or c in "_.-") for c in name):
        assert token == name        # ordinary names are kept as they are


@pytest.mark.parametrize("token", ["a/b", "%4", "%41", "%zz", "%c3%a9", "%C3", "é"])
def test_unescape_refuses_what_escape_never_writes(token: str) -> None:
    with pytest.raises(ValueError):   # a '/', a short or non-canonical escape, lower-case hex, bad UTF-8, non-ASCII
        unescape_name(token)


def test_compiled_model_round_trips_with_its_meta_and_runs_like_hwsim(tmp_path: Path) -> None:
    """A real compile: the conftest MLP (hardware-exact), quantized for Loihi, with the meta the compiler
    writes (readout, weight scales, ...)."""
    graph = quantize(graph_from_module(make_model((16, 12, 5), seed=3), meta={"dataset": "digits", "timesteps": 9}),
                     LOIHI)
    write_onnx(graph, tmp_path / "graph.onnx")
    back = read_onnx(tmp_path / "graph.onnx")
    assert_same_graph_exactly(graph, back)
    assert back.meta["readout"] == graph.meta["readout"] and back.meta["timesteps"] == 9
    x = np.random.default_rng(0).random((3, 12, 16)) < 0.5
    ref = HwSim.from_graph(graph).run(x)
    got, out, _ = run_step_function(onnx.load(str(tmp_path / "graph.onnx")), x)
    assert all(ref.spikes[k].any() for k in ref.spikes)     # not vacuous: every layer spikes
    assert list(got) == list(ref.spikes)
    for k in ref.spikes:
        assert np.array_equal(got[k], ref.spikes[k]), k
    assert np.array_equal(out, ref.output)


# ------------------------------------------------------------------------------ the representation

def _ops(model: onnx.ModelProto) -> dict[str, onnx.NodeProto]:
    return {n.name: n for n in model.graph.node}


def _attrs(node: onnx.NodeProto) -> dict:
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def test_file_uses_standard_ops_and_one_custom_op_with_the_semantics_as_attributes() -> None:
    rng = np.random.default_rng(5)
    graph = residual_dag(rng)
    model = graph_to_onnx(graph)
    assert {(o.domain, o.version) for o in model.opset_import} == {("", 17), (DOMAIN, 1)}
    ops = _ops(model)
    assert {n.op_type for n in ops.values() if n.domain in ("", "ai.onnx")} <= STANDARD_OPS
    assert {n.op_type for n in ops.values() if n.domain not in ("", "ai.onnx")} == {"CubaLIF"}
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    for name, node in graph.nodes.items():
        if isinstance(node, QConv):
            a = _attrs(ops[name])
            assert ops[name].op_type == "Conv"
            assert (a["strides"], a["pads"], a["dilations"], a["group"], a["kernel_shape"]) == (
                list(node.stride), [*node.padding, *node.padding], list(node.dilation), node.groups, list(node.kernel))
            assert ops[f"{name}/wrap_mod"].op_type == "Mod" and _attrs(ops[f"{name}/wrap_mod"])["fmod"] == 0
            assert int(inits[f"{name}/wrap_modulus"]) == 2**24 and int(inits[f"{name}/wrap_half"]) == 2**23
        elif isinstance(node, QDense):
            assert ops[name].op_type == "Gemm" and _attrs(ops[name])["transB"] == 1
            assert float(inits[f"{name}/scale"]) == 2.0 ** node.weight_exp
        elif isinstance(node, QCubaLIF):
            a = _attrs(ops[name])
            assert (a["du"], a["dv"], a["vth"], a["bias_exp"], a["size"]) == (
                node.du, node.dv, node.vth, node.bias_exp, node.size)
            assert a["fmt"].decode() == node.fmt.name and a["fmt_state_bits"] == 24 and a["fmt_act_shift"] == 6
            assert tuple(a["shape"]) == node.shape if node.shape else "shape" not in a
            assert np.array_equal(inits[f"{name}/bias_mant"], node.bias_mant)
        if isinstance(node, (QConv, QDense)):
            w = inits[f"{name}/weight"]
            assert w.dtype == node.weight.dtype and np.array_equal(w, node.weight)   # integers, stored as they are
    # a population with two synapses: one Add; o's dense synapse from the (C, H, W) population a is flattened
    assert ops["b/add1"].op_type == "Add" and ops["o/add1"].op_type == "Add"
    assert ops["skip/flatten_in"].op_type == "Flatten"
    props = {p.key: p.value for p in model.metadata_props}
    assert props["snnc.format"] == "snnc.onnx" and json.loads(props["snnc.edges"]) == [list(e) for e in graph.edges]
    # the state: every X_prev input is an output X, with the same type
    ins = {v.name: v.type for v in model.graph.input}
    outs = {v.name: v.type for v in model.graph.output}
    assert {k for k in ins if "/" in k} == {f"{k}_prev" for k in outs if "/" in k}
    assert all(ins[f"{k}_prev"] == t for k, t in outs.items() if "/" in k)
    assert list(outs)[0] == "out" and list(ins)[0] == "in"


def test_exponents_graded_input_lava_weight_format_and_float64_sums_are_written_as_ops() -> None:
    w = np.array([[3, -300, 10, 254]], np.int64)           # odd and out of Lava's range: Clip/Div/Floor/Mul
    lif = QCubaLIF("l", 1, 0, 0, 10, np.zeros(1, np.int64))
    g = Graph.chain([Input("i", (4,), bits=8), QDense("d", w, -8), lif, Output("o")])
    ops = _ops(graph_to_onnx(g))
    assert [ops[f"d/{k}"].op_type for k in ("clip_weight", "div_weight", "floor_weight", "mul_weight", "floor")] == [
        "Clip", "Div", "Floor", "Mul", "Floor"]
    # 255 x 784 x 256 > 2**24: that synapse sums in float64 (a Cast of its input to double)
    wide = Graph.chain([Input("i", (784,), bits=8), QDense("d", np.full((2, 784), 254), -8),
                        QCubaLIF("l", 2, 0, 0, 10, np.zeros(2, np.int64)), Output("o")])
    model = graph_to_onnx(wide)
    assert _attrs(_ops(model)["d/cast_in"])["to"] == TensorProto.DOUBLE
    x = np.random.default_rng(1).integers(200, 256, (1, 5, 784))
    got, _, _ = run_step_function(model, x)
    ref = HwSim.from_graph(wide).run(x).spikes
    assert ref["l"].any() and np.array_equal(got["l"], ref["l"])
    assert "d/cast_in" not in _ops(graph_to_onnx(g))   # float32 where that is exact


# ------------------------------------------------------------------------------ executing the step function

@settings(max_examples=50, deadline=None)
@given(fixed_point_graphs(), st.integers(0, 2**32 - 1))
def test_onnx_step_function_spikes_like_hwsim_every_population_every_step(graph: Graph, seed: int) -> None:
    rng = np.random.default_rng(seed)
    x = spikes_of(graph, rng, batch=2, steps=int(rng.integers(4, 10)))
    ref = HwSim.from_graph(graph).run(x)
    got, out, _ = run_step_function(graph_to_onnx(graph), x)
    assert list(got) == list(ref.spikes)
    for name, want in ref.spikes.items():
        diff = np.argwhere(got[name] != want)
        assert not len(diff), f"population {name!r}: first mismatch (sample, step, neuron) {diff[0]}"
    assert np.array_equal(out, ref.output)


def _wrap_graphs() -> tuple[Graph, Graph]:
    """Two graphs at the edges of the integer formats. ``state``: neuron 0's u grows by 254*8 << 3 << 6 per
    step without decay and wraps at 24 bits; neuron 1's bias, -4096 << 7 per step, drives v to its clip
    -(2**23 - 1) within 20 steps.
    ``conv``: a 1x1 conv weight 2**23 + 5 wraps to a negative input, so nothing spikes (unwrapped, all would)."""
    state = Graph.chain([Input("i", (8,)), QDense("d", np.stack([np.full(8, 254), np.zeros(8, np.int64)]), 3),
                         QCubaLIF("l", 2, 0, 0, 131071, np.array([0, -4096]), 7), Output("o")])
    conv = Graph.chain([Input("i", (1, 2, 2)), QConv("c", np.full((1, 1, 1, 1), 2**23 + 5), (1, 2, 2)),
                        QCubaLIF("l", 4, 4096, 4096, 0, np.zeros(4, np.int64), shape=(1, 2, 2)), Output("o")])
    return state, conv


def test_step_function_covers_wraps_clips_and_every_kind_of_synapse() -> None:
    """Deterministic companion of the property test, showing it is not vacuous: residual DAGs, conv chains
    and graded dense chains in which populations spike, u wrapping, v clipping, a conv output wrapping."""
    rng = np.random.default_rng(3)
    state, conv = _wrap_graphs()
    cases = [(state, np.ones((2, 20, 8), bool)), (conv, np.ones((2, 20, 4), bool))]
    for make in [residual_dag] * 3 + [conv_graph] * 3 + [dense_chain, lambda r: dense_chain(r, bits=8)] * 2:
        for _ in range(50):   # the first draw in which every population spikes
            g = make(rng)
            x = spikes_of(g, rng, batch=2, steps=12)
            if all(s.any() for s in HwSim.from_graph(g).run(x).spikes.values()):
                cases.append((g, x))
                break
    assert len(cases) == 12
    cases.append((residual_graph(), np.ones((2, 12, 128), bool)))   # the mapping tests' residual block, int8 weights
    start = time.perf_counter()
    for g, x in cases:
        ref = HwSim.from_graph(g).run(x).spikes
        got, _, trace = run_step_function(graph_to_onnx(g), x)
        for name, want in ref.items():
            assert np.array_equal(got[name], want), name
        if g is state:
            u, v = trace["l"]
            assert (np.diff(u[0, :, 0]) < 0).any() and u[0, :, 0].max() > 2**22    # u wrapped while growing
            assert v[0, -1, 1] == -(2**23 - 1) and not got["l"][:, :, 1].any()     # v clipped
        if g is conv:
            assert not got["l"].any()
    assert time.perf_counter() - start < 10


def _bypass(model: onnx.ModelProto, value: str, by: str) -> onnx.ModelProto:
    """A copy of ``model`` in which every reader of ``value`` reads ``by`` instead (a node left out)."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    for n in m.graph.node:
        n.input[:] = [by if i == value else i for i in n.input]
    return m


def test_the_comparison_catches_a_wrong_step_function() -> None:
    """Each op of the representation matters: leave one out (the conv wrap, the floor of a negative weight
    exponent) or change one CubaLIF attribute, and the executed file no longer spikes like hwsim."""
    _, conv = _wrap_graphs()
    # -704 >> 8 = -3 (Lava's floor shift); without the Floor, Cast truncates to -2 and v = 4 << 6 - 2 << 6 > 1 << 6
    graded = Graph.chain([Input("i", (4,), bits=8), QDense("d", np.array([[-254, -202, -150, -98]]), -8),
                          QCubaLIF("l", 1, 4096, 4096, 1, np.array([4])), Output("o")])
    rng = np.random.default_rng(9)
    res = residual_dag(rng)
    x_res = spikes_of(res, rng, 2, 12)
    mutated = {
        "no conv wrap": (conv, _bypass(graph_to_onnx(conv), "c/a", "c/acc_int"), np.ones((1, 6, 4), bool)),
        "no floor": (graded, _bypass(graph_to_onnx(graded), "d/shifted", "d/scaled"), np.ones((1, 6, 4), np.int64)),
    }
    m = graph_to_onnx(res)
    lif = next(n for n in m.graph.node if n.name == "a")
    for att in lif.attribute:
        if att.name == "vth":
            att.i += 1
    mutated["vth + 1"] = (res, m, x_res)
    for what, (g, model, x) in mutated.items():
        ref = HwSim.from_graph(g).run(x).spikes
        good, _, _ = run_step_function(graph_to_onnx(g), x)
        bad, _, _ = run_step_function(model, x)
        assert all(np.array_equal(good[k], ref[k]) for k in ref), what
        assert not all(np.array_equal(bad[k], ref[k]) for k in ref), what


# ------------------------------------------------------------------------------ refusals

def _small_graph() -> Graph:
    return Graph.chain([Input("i", (3,)), QDense("d", np.array([[2, -4, 6], [8, 0, -2]]), -1),
                        QCubaLIF("l", 2, 100, 200, 5, np.array([1, -1])), Output("o")])


def test_reading_what_is_not_an_snnc_onnx_file_names_the_file_and_the_problem(tmp_path: Path) -> None:
    cases: dict[str, tuple[bytes, str]] = {
        "text.onnx": (b"this is not a model\n", "not an ONNX"),
        "empty.onnx": (b"", "not an ONNX model"),
        "binary.onnx": (np.random.default_rng(0).bytes(300), "not an ONNX"),
    }
    # a plain ONNX MLP, as any tool writes it
    mlp = helper.make_graph(
        [helper.make_node("Gemm", ["x", "w1"], ["h"], transB=1), helper.make_node("Relu", ["h"], ["r"]),
         helper.make_node("Gemm", ["r", "w2"], ["y"], transB=1)], "mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 2])],
        initializer=[numpy_helper.from_array(np.ones((3, 4), np.float32), "w1"),
                     numpy_helper.from_array(np.ones((2, 3), np.float32), "w2")])
    plain = helper.make_model(mlp, producer_name="someone")
    onnx.checker.check_model(plain)
    cases["mlp.onnx"] = (plain.SerializeToString(), "not one snnc wrote")
    ours = graph_to_onnx(_small_graph())
    edited = onnx.ModelProto()
    edited.CopyFrom(ours)                   # the Floor of weight_exp -1 removed: no longer the graph's semantics
    floor = next(n for n in edited.graph.node if n.name == "d/floor")
    for n in edited.graph.node:
        n.input[:] = [floor.input[0] if i == floor.output[0] else i for i in n.input]
    edited.graph.node.remove(floor)
    onnx.checker.check_model(edited)
    cases["edited.onnx"] = (edited.SerializeToString(), "does not match the graph it describes")
    foreign_op = onnx.ModelProto()
    foreign_op.CopyFrom(ours)
    next(n for n in foreign_op.graph.node if n.domain == DOMAIN).op_type = "AdaptiveLIF"
    cases["foreign_op.onnx"] = (foreign_op.SerializeToString(), "unknown op ai.snnc.AdaptiveLIF")
    for name, (data, why) in cases.items():
        path = tmp_path / name
        path.write_bytes(data)
        with pytest.raises(InputFileError, match=why) as err:
            read_onnx(path)
        assert str(path) in str(err.value) and "\n" not in str(err.value), name
        assert err.value.__cause__ is None, name   # no protobuf or onnx exception chained to it
        assert err.value.__context__ is None or err.value.__suppress_context__, name
    with pytest.raises(InputFileError, match="cannot read"):
        read_onnx(tmp_path / "missing.onnx")


def test_every_truncation_of_a_file_is_refused(tmp_path: Path) -> None:
    data = graph_to_onnx(_small_graph()).SerializeToString()
    path = tmp_path / "cut.onnx"
    for n in range(len(data)):
        path.write_bytes(data[:n])
        with pytest.raises(InputFileError, match=str(path)):
            read_onnx(path)
    path.write_bytes(data)
    assert_same_graph_exactly(_small_graph(), read_onnx(path))


def test_float_graphs_are_not_exported() -> None:
    g = Graph.chain([Input("i", (2,)), Dense("d", np.ones((2, 2))), FloatLIF("l", 2, 0.5, 0.5, 1.0), Output("o")])
    with pytest.raises(GraphError, match="quantize"):
        graph_to_onnx(g)
