"""``graph.onnx``: the fixed-point graph as an executable ONNX step function, and back.

Why ONNX: it is the format tools already open (Netron, onnx.checker, onnx.reference, runtimes), so
a compiled network can be inspected and re-executed outside snnc. Why a *step function*: the
discrete semantics (``snnc.compiler.ir``'s docstring) are a recurrence, and every synapse delays by
exactly one step (``a[t] = W s_pre[t-1]``), so one timestep is a pure function of this step's input
and the previous step's state. A caller loops it; the file is a program, not just a picture.
docs/onnx.md is the full specification; this docstring is the summary.

Signature of the ONNX graph (``b`` = the symbolic batch dimension ``N``, ``dims`` = a node's
``shape`` or ``(size,)``; names are escaped node names, see below)::

    inputs   <input>          float32 (N, *input.shape)  this step's input (0/1, or graded integers)
             <input>/s_prev   float32                     the input of the previous step
             <pop>/u_prev     int32   (N, *dims)          per population, in Graph.populations() order
             <pop>/v_prev     int32
             <pop>/s_prev     float32                     its spikes of the previous step
    outputs  <output>         float32                     the network output (the Output node's spikes)
             <input>/s, <pop>/u, <pop>/v, <pop>/s         the new state: output X feeds input X_prev next step

Zero state starts every sample. Each synapse reads its source's ``s_prev`` (that is the delay). A
recurrent synapse (compiler/ir.py: a cycle through one or more populations) is no different: it reads
``<pop>/s_prev`` of a population in its own cycle, a graph input fed back from ``<pop>/s``, so the ONNX
graph stays acyclic and the step function holds any cycle of Dense synapses with nothing added:

* ``QDense``: [``Flatten``] [``Cast`` to double] -> ``Gemm(transB=1)`` with ``Cast(<syn>/weight)`` ->
  ``Mul(<syn>/scale = 2**weight_exp)`` -> [``Floor`` when weight_exp < 0: Lava's arithmetic shift]
  -> ``Cast`` int64 -> [``Reshape`` to the population's dims]. Weights that Lava's mixed-sign format
  would change (never for compiled graphs) pass ``Clip -> Div -> Floor -> Mul`` (clip to
  [weight_min, weight_max + step - 1], floor to the step) before the ``Gemm``, as hwsim's
  ``lava_weights``.
* ``QConv``: [``Cast`` to double] -> ``Conv`` (PyTorch geometry: ``pads`` = [ph, pw, ph, pw],
  ``strides``, ``dilations``, ``group``; ONNX Conv is cross-correlation in NCHW like PyTorch) ->
  ``Cast`` int64 -> the 24-bit wrap as standard integer ops ``Add(2**23) -> Mod(2**24, fmod=0) ->
  Sub(2**23)`` (Lava's PyConvModelFixed) -> [``Flatten``].
* several synapses into one population: ``Add`` (int64, exact).
* each population: one ``CubaLIF`` node of the custom domain ``ai.snnc`` (version 1), inputs
  ``(a int64, u_prev int32, v_prev int32, bias_mant)``, outputs ``(s float32, u int32, v int32)``;
  attributes ``du`` (effective current decay), ``dv``, ``vth``, ``bias_exp``, ``size``, ``shape``
  (only when the node has one), ``fmt`` (format name) and ``fmt_<field>`` for every integer field of
  ``FixedPointFormat``, ``semantics`` (the node's semantics mapping as JSON). It is the only
  non-standard op; its equations are ir.py's, written out in docs/onnx.md.

Exactness: weights are stored as integer initializers in their own dtype (exact) and ``Cast`` to
float for ``Gemm``/``Conv``. Each synapse computes in float32 when every partial sum is provably
below 2**24 (max over outputs of sum |w| x the largest source value: 1 for spikes, 2**bits - 1 for
graded input; |w| <= 256 after Lava's format), else in float64 (exact below 2**53; larger graphs are
refused). Compiled Loihi graphs are float32 except very wide graded encoding layers. Runtimes must
compute float32 as float32 (no TF32 or fp16 shortcuts).

Names: node names are escaped into ``[A-Za-z0-9_.-]`` plus ``%XX`` (UTF-8 bytes, upper-case hex;
``%`` alone is the empty name), so ``/`` separates a node's name from the part of it a value or
helper node is; escaping is reversible and canonical. Graph ``meta`` is JSON in the model's
``metadata_props`` (``snnc.meta``; exact for JSON values, numpy scalars become numbers, tuples
lists), beside ``snnc.format``, ``snnc.format_version``, ``snnc.input_bits``, and ``snnc.nodes`` /
``snnc.edges`` (the original node and edge order; the edges themselves are read from the dataflow).

Reading: every field is read from the ONNX graph (main nodes are the ones whose names have no
``/``), then the graph is exported again and must equal the file node for node, so a file whose
executable part disagrees with the graph it describes is refused (``InputFileError``), never
silently half-read. ``onnx.checker.check_model(full_check=True)`` passes: shape inference skips the
unregistered ``ai.snnc`` op, whose outputs are only graph outputs with declared types.
"""
from __future__ import annotations

import io
import json
import math
import re
from dataclasses import fields
from pathlib import Path
from types import MappingProxyType
from typing import Any, Iterator, Mapping
from urllib.parse import unquote

import numpy as np
import onnx
from google.protobuf.message import DecodeError
from onnx import TensorProto, helper, numpy_helper

from snnc.compiler.graph_file import FORMATS
from snnc.compiler.ir import CUBA_SEMANTICS, Graph, Input, Node, Output, QConv, QCubaLIF, QDense, dims
from snnc.errors import GraphError, InputFileError
from snnc.models.fixed_point import FixedPointFormat

FORMAT = "snnc.onnx"
FORMAT_VERSION = 1
DOMAIN = "ai.snnc"          # custom op domain; CubaLIF is its only op
DOMAIN_VERSION = 1
OPSET = 17                  # standard ops used: Gemm Conv Mul Floor Cast Clip Div Add Sub Mod Flatten Reshape Identity
                            # (and, for synaptic delays only: Gather Equal Where Unsqueeze Slice Concat)
IR_VERSION = 8              # what opset 17 needs; widely loadable
BATCH = "N"
_SAFE = re.compile(r"[A-Za-z0-9_.\-]")
_ESCAPED = re.compile(r"(?:[A-Za-z0-9_.\-]|%[0-9A-F]{2})+")
_FMT_FIELDS = [f.name for f in fields(FixedPointFormat) if f.name not in ("name", "sources")]
_F32_EXACT = 2**24
_F64_EXACT = 2**53
_CONV_WRAP_BITS = 24        # Lava's Conv output wrap (hwsim.sim.wrap24; SP/lava/proc/conv/utils.py:67-84)
_MAX_EXP = 62               # |weight_exp| beyond this has no int64 meaning (and 2**exp must be a normal float)


# ------------------------------------------------------------------------------------ names

def escape_name(name: str) -> str:
    """A node name as an ONNX-safe token without ``/`` (reversible: :func:`unescape_name`)."""
    if name == "":
        return "%"
    return "".join(c if _SAFE.fullmatch(c) else "".join(f"%{b:02X}" for b in c.encode()) for c in name)


def unescape_name(token: str) -> str:
    """Inverse of :func:`escape_name`; ValueError for a token it could not have written."""
    if token == "%":
        return ""
    if not _ESCAPED.fullmatch(token):
        raise ValueError(f"'{token}' is not an escaped snnc node name")
    name = unquote(token, errors="strict")
    if escape_name(name) != token:
        raise ValueError(f"'{token}' is not the canonical escape of '{name}'")
    return name


# ------------------------------------------------------------------------------------ writing

def _lava_weights(w: np.ndarray, fmt: FixedPointFormat) -> np.ndarray:
    """The weights Lava's mixed-sign Dense uses (same rule as hwsim.sim.lava_weights)."""
    c = np.clip(w.astype(np.int64), fmt.weight_min, fmt.weight_max + fmt.weight_step - 1)
    return (c // fmt.weight_step) * fmt.weight_step


def _top(source: Node) -> int:
    """The largest value a source emits: 1 for spikes, 2**bits - 1 for graded input."""
    return 2 ** source.bits - 1 if isinstance(source, Input) and source.bits else 1


def _meta_json(meta: Mapping[str, object]) -> str:
    """``meta`` as JSON: exact for JSON values; numpy values become numbers/lists, anything else its str
    (as graph.h5 does), so an odd meta value never stops an export."""
    def plain(x: Any) -> Any:
        if isinstance(x, np.generic):
            return x.item()
        if isinstance(x, np.ndarray):
            return x.tolist()
        return str(x)
    return json.dumps(dict(meta), default=plain)


class _Writer:
    """Accumulates ONNX nodes and initializers for one graph."""

    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []

    def init(self, name: str, value: np.ndarray) -> str:
        self.inits.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def op(self, op_type: str, inputs: list[str], output: str | list[str], name: str, domain: str = "",
           **attrs: Any) -> str:
        outs = [output] if isinstance(output, str) else output
        self.nodes.append(helper.make_node(op_type, inputs, outs, name=name, domain=domain or None, **attrs))
        return outs[0]

    def precision(self, weight: np.ndarray, effective: np.ndarray, reduce_axes: tuple[int, ...], top: int,
                  what: str) -> tuple[int, type, float]:
        """(onnx elem type, numpy dtype) in which every partial sum of this synapse is exact, and the
        bound on those sums: max over outputs of sum |w| x the largest source value."""
        bound = float(np.abs(effective.astype(np.float64)).sum(axis=reduce_axes).max(initial=0)) * top
        biggest = float(np.abs(weight.astype(np.float64)).max(initial=0))
        if bound < _F32_EXACT and biggest < _F32_EXACT:
            return TensorProto.FLOAT, np.float32, bound
        if bound < _F64_EXACT and biggest < _F64_EXACT:
            return TensorProto.DOUBLE, np.float64, bound
        raise GraphError(f"{what}: its sums can reach {bound:.3g} >= 2**53, beyond what ONNX float ops hold "
                         f"exactly; it cannot be exported to ONNX")

    def source(self, syn_e: str, source: Node, flat: bool, elem: int, delay: int | None = None) -> str:
        """The source's previous-step spikes, flattened and cast as the synapse needs; with ``delay`` d > 0,
        its spikes of d steps before that, ``Gather(<src>/hist_prev, d - 1, axis=1)`` (the spike history)."""
        x = f"{escape_name(source.name)}/s_prev"
        tag = "" if delay is None else f"_d{delay}"
        if delay:
            index = self.init(f"{syn_e}/hist_index_d{delay}", np.array(delay - 1, np.int64))
            x = self.op("Gather", [f"{escape_name(source.name)}/hist_prev", index], f"{syn_e}/x_d{delay}",
                        f"{syn_e}/gather_d{delay}", axis=1)
        if flat and len(dims(source)) != 1:
            x = self.op("Flatten", [x], f"{syn_e}/x_flat{tag}", f"{syn_e}/flatten_in{tag}", axis=1)
        if elem != TensorProto.FLOAT:
            x = self.op("Cast", [x], f"{syn_e}/x_cast{tag}", f"{syn_e}/cast_in{tag}", to=elem)
        return x

    def to_population(self, value: str, syn_e: str, have: tuple[int, ...], pop: QCubaLIF) -> str:
        """Reshape a synapse's int64 output to the population's dims if they differ."""
        want = dims(pop)
        if tuple(have) == tuple(want):
            return value
        if len(want) == 1:
            return self.op("Flatten", [value], f"{syn_e}/a_flat", f"{syn_e}/flatten_out", axis=1)
        shape = self.init(f"{syn_e}/out_shape", np.array([-1, *want], np.int64))
        return self.op("Reshape", [value, shape], f"{syn_e}/a_shaped", f"{syn_e}/reshape_out")

    def dense(self, syn: QDense, source: Node, pop: QCubaLIF) -> str:
        e = escape_name(syn.name)
        w_eff = _lava_weights(syn.weight, pop.fmt)
        elem, dt, bound = self.precision(syn.weight, w_eff, (1,), _top(source), f"synapse '{syn.name}'")
        if abs(syn.weight_exp) > _MAX_EXP or bound * 2.0 ** syn.weight_exp >= 2**62:
            raise GraphError(f"synapse '{syn.name}': weight_exp {syn.weight_exp} takes its input beyond int64")
        x = self.source(e, source, True, elem) if syn.delay is None else ""
        w = self.op("Cast", [self.init(f"{e}/weight", syn.weight)], f"{e}/weight_cast", f"{e}/cast_weight", to=elem)
        if not np.array_equal(w_eff, syn.weight):   # Lava's mixed-sign weight format changes these weights
            f = pop.fmt
            lo = self.init(f"{e}/weight_min", np.array(f.weight_min, dt))
            hi = self.init(f"{e}/weight_max", np.array(f.weight_max + f.weight_step - 1, dt))
            step = self.init(f"{e}/weight_step", np.array(f.weight_step, dt))
            w = self.op("Clip", [w, lo, hi], f"{e}/weight_clip", f"{e}/clip_weight")
            w = self.op("Div", [w, step], f"{e}/weight_div", f"{e}/div_weight")
            w = self.op("Floor", [w], f"{e}/weight_floor", f"{e}/floor_weight")
            w = self.op("Mul", [w, step], f"{e}/weight_lava", f"{e}/mul_weight")
        if syn.delay is not None:
            return self.delayed_dense(syn, source, pop, w, elem, dt)
        acc = self.op("Gemm", [x, w], f"{e}/acc", e, transB=1)
        scale = self.init(f"{e}/scale", np.array(2.0 ** syn.weight_exp, dt))
        acc = self.op("Mul", [acc, scale], f"{e}/scaled", f"{e}/weight_exp")
        if syn.weight_exp < 0:
            acc = self.op("Floor", [acc], f"{e}/shifted", f"{e}/floor")
        a = self.op("Cast", [acc], f"{e}/a", f"{e}/cast_out", to=TensorProto.INT64)
        return self.to_population(a, e, (syn.out_size,), pop)

    def delayed_dense(self, syn: QDense, source: Node, pop: QCubaLIF, w: str, elem: int, dt: type) -> str:
        """A QDense with synaptic delays: per delay ``d`` that occurs (ascending), the weights of delay d,
        ``Where(Equal(<syn>/delay, d), w, 0)``, times the source's spikes of step t-1-d (``s_prev`` for
        d = 0, else the spike history), shifted and floored on its own (Lava's DelayDense shifts each
        delay's sum, compiler/ir.py), the int64 parts added. The Gemm of the smallest delay is the
        synapse's main node (its name); ``<syn>/delay`` (uint8, (out, in)) holds the delays."""
        e = escape_name(syn.name)
        delay = self.init(f"{e}/delay", syn.delay)                       # type: ignore[arg-type]
        zero = self.init(f"{e}/zero", np.array(0, dt))
        scale = self.init(f"{e}/scale", np.array(2.0 ** syn.weight_exp, dt))
        a = ""
        for k, (d, _) in enumerate(syn.delay_groups()):
            x = self.source(e, source, True, elem, delay=d)
            mask = self.op("Equal", [delay, self.init(f"{e}/d{d}", np.array(d, np.uint8))], f"{e}/mask_d{d}",
                           f"{e}/equal_d{d}")
            w_d = self.op("Where", [mask, w, zero], f"{e}/weight_d{d}", f"{e}/where_d{d}")
            acc = self.op("Gemm", [x, w_d], f"{e}/acc_d{d}", e if k == 0 else f"{e}/gemm_d{d}", transB=1)
            acc = self.op("Mul", [acc, scale], f"{e}/scaled_d{d}", f"{e}/weight_exp_d{d}")
            if syn.weight_exp < 0:
                acc = self.op("Floor", [acc], f"{e}/shifted_d{d}", f"{e}/floor_d{d}")
            part = self.op("Cast", [acc], f"{e}/a_d{d}", f"{e}/cast_out_d{d}", to=TensorProto.INT64)
            a = part if k == 0 else self.op("Add", [a, part], f"{e}/a_sum_d{d}", f"{e}/add_d{d}")
        return self.to_population(a, e, (syn.out_size,), pop)

    def history(self, source: Node, depth: int) -> str:
        """The spike history of a source read by delayed synapses: ``<src>/hist`` = the previous step's
        spikes, then the first ``depth - 1`` entries of ``<src>/hist_prev`` (entry k of hist_prev holds
        the spikes of step t-2-k)."""
        se = escape_name(source.name)
        axis = self.init(f"{se}/hist_axis", np.array([1], np.int64))
        newest = self.op("Unsqueeze", [f"{se}/s_prev", axis], f"{se}/hist_newest", f"{se}/hist_unsqueeze")
        if depth == 1:
            return self.op("Identity", [newest], f"{se}/hist", f"{se}/hist_identity")
        starts = self.init(f"{se}/hist_starts", np.array([0], np.int64))
        ends = self.init(f"{se}/hist_ends", np.array([depth - 1], np.int64))
        kept = self.op("Slice", [f"{se}/hist_prev", starts, ends, axis], f"{se}/hist_kept", f"{se}/hist_slice")
        return self.op("Concat", [newest, kept], f"{se}/hist", f"{se}/hist_concat", axis=1)

    def conv(self, syn: QConv, source: Node, pop: QCubaLIF) -> str:
        e = escape_name(syn.name)
        elem, _, _ = self.precision(syn.weight, syn.weight, (1, 2, 3), _top(source), f"synapse '{syn.name}'")
        if tuple(dims(source)) != tuple(syn.in_shape):
            raise GraphError(f"synapse '{syn.name}': source '{source.name}' has dims {dims(source)}, "
                             f"the conv reads {syn.in_shape}")
        x = self.source(e, source, False, elem)
        w = self.op("Cast", [self.init(f"{e}/weight", syn.weight)], f"{e}/weight_cast", f"{e}/cast_weight", to=elem)
        (ph, pw), (sh, sw), (dh, dw) = syn.padding, syn.stride, syn.dilation
        acc = self.op("Conv", [x, w], f"{e}/acc", e, kernel_shape=list(syn.kernel), pads=[ph, pw, ph, pw],
                      strides=[sh, sw], dilations=[dh, dw], group=syn.groups)
        a = self.op("Cast", [acc], f"{e}/acc_int", f"{e}/cast_out", to=TensorProto.INT64)
        half = self.init(f"{e}/wrap_half", np.array(2 ** (_CONV_WRAP_BITS - 1), np.int64))
        modulus = self.init(f"{e}/wrap_modulus", np.array(2**_CONV_WRAP_BITS, np.int64))
        a = self.op("Add", [a, half], f"{e}/wrap_biased", f"{e}/wrap_add")
        a = self.op("Mod", [a, modulus], f"{e}/wrap_mod", f"{e}/wrap_mod", fmod=0)
        a = self.op("Sub", [a, half], f"{e}/a", f"{e}/wrap_sub")
        return self.to_population(a, e, syn.out_shape, pop)

    def population(self, pop: QCubaLIF, a: str) -> None:
        e = escape_name(pop.name)
        attrs: dict[str, Any] = {"du": int(pop.du), "dv": int(pop.dv), "vth": int(pop.vth),
                                 "bias_exp": int(pop.bias_exp), "size": int(pop.size), "fmt": pop.fmt.name,
                                 "semantics": json.dumps(dict(pop.semantics))}
        if pop.shape is not None:
            attrs["shape"] = [int(d) for d in pop.shape]
        attrs.update({f"fmt_{k}": int(getattr(pop.fmt, k)) for k in _FMT_FIELDS})
        bias = self.init(f"{e}/bias_mant", pop.bias_mant)
        self.op("CubaLIF", [a, f"{e}/u_prev", f"{e}/v_prev", bias], [f"{e}/s", f"{e}/u", f"{e}/v"], e,
                domain=DOMAIN, **attrs)


def graph_to_onnx(graph: Graph) -> onnx.ModelProto:
    """The fixed-point ``graph`` as an ONNX model: one timestep as a pure function (module docstring)."""
    if not graph.is_fixed_point:
        raise GraphError("only fixed-point graphs are exported to ONNX: quantize the graph first")
    w = _Writer()
    T = TensorProto
    inp = graph.input
    ie = escape_name(inp.name)
    vi = helper.make_tensor_value_info
    inputs = [vi(ie, T.FLOAT, [BATCH, *dims(inp)],
                 doc_string=f"input of this step: {'graded %d-bit integers' % inp.bits if inp.bits else '0/1 spikes'}"),
              vi(f"{ie}/s_prev", T.FLOAT, [BATCH, *dims(inp)], doc_string="input of the previous step")]
    outputs: list[onnx.ValueInfoProto] = []
    for pop in graph.populations():
        neu = pop.neuron
        assert isinstance(neu, QCubaLIF)
        e, d = escape_name(neu.name), [BATCH, *dims(neu)]
        inputs += [vi(f"{e}/u_prev", T.INT32, d), vi(f"{e}/v_prev", T.INT32, d), vi(f"{e}/s_prev", T.FLOAT, d)]
        outputs += [vi(f"{e}/u", T.INT32, d), vi(f"{e}/v", T.INT32, d), vi(f"{e}/s", T.FLOAT, d)]
        parts = [w.conv(syn, graph.nodes[src], neu) if isinstance(syn, QConv)
                 else w.dense(syn, graph.nodes[src], neu)  # type: ignore[arg-type]
                 for syn, src in pop.inputs]
        a = parts[0]
        for k, part in enumerate(parts[1:], start=1):
            a = w.op("Add", [a, part], f"{e}/a{k}", f"{e}/add{k}")
        w.population(neu, a)
    out = next(n for n in graph.nodes.values() if isinstance(n, Output))
    oe, last = escape_name(out.name), graph.output
    w.op("Identity", [f"{escape_name(last.name)}/s"], oe, oe)
    w.op("Identity", [ie], f"{ie}/s", f"{ie}/delay")
    outputs = [vi(oe, T.FLOAT, [BATCH, *dims(last)], doc_string="network output: spikes of " + last.name),
               vi(f"{ie}/s", T.FLOAT, [BATCH, *dims(inp)]), *outputs]
    depth: dict[str, int] = {}     # sources read by delayed synapses -> the history they need
    for pop in graph.populations():
        for syn, src in pop.inputs:
            if isinstance(syn, QDense) and syn.delay is not None:
                depth[src] = max(depth.get(src, 0), syn.max_delay)
    for src, h in depth.items():
        node, se = graph.nodes[src], escape_name(src)
        d = [BATCH, h, *dims(node)]
        inputs.append(vi(f"{se}/hist_prev", T.FLOAT, d,
                         doc_string=f"spikes of steps t-2 .. t-{h + 1} (entry k: step t-2-k), for delayed synapses"))
        w.history(node, h)
        outputs.append(vi(f"{se}/hist", T.FLOAT, d))
    g = helper.make_graph(w.nodes, "snnc_step", inputs, outputs, initializer=w.inits,
                          doc_string="one timestep; feed each output X back as input X_prev (see docs/onnx.md)")
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", OPSET),
                                                helper.make_opsetid(DOMAIN, DOMAIN_VERSION)],
                              ir_version=IR_VERSION, producer_name="snnc", producer_version=_version(),
                              doc_string="snnc fixed-point spiking network, one timestep as a pure function")
    helper.set_model_props(model, {
        "snnc.format": FORMAT, "snnc.format_version": str(FORMAT_VERSION), "snnc.meta": _meta_json(graph.meta),
        "snnc.input_bits": str(int(inp.bits)), "snnc.nodes": json.dumps(list(graph.nodes)),
        "snnc.edges": json.dumps([list(e) for e in graph.edges])})
    return model


def _version() -> str:
    from snnc import __version__
    return __version__


def write_onnx(graph: Graph, path: Path) -> None:
    """Write ``graph`` as ``graph.onnx`` (see the module docstring for what is in it)."""
    model = graph_to_onnx(graph)
    try:
        data = model.SerializeToString()
    except ValueError as e:     # protobuf's 2 GiB limit
        raise GraphError(f"{path}: the ONNX model is too large for one protobuf file ({e}).") from None
    Path(path).write_bytes(data)


# ------------------------------------------------------------------------------------ reading

class _Reader:
    """Reads snnc nodes out of one of our ONNX graphs (any inconsistency raises ValueError/KeyError)."""

    def __init__(self, g: onnx.GraphProto) -> None:
        self.g = g
        self.inits = {t.name: t for t in g.initializer}
        self.producer: dict[str, onnx.NodeProto] = {o: n for n in g.node for o in n.output}
        self.consumers: dict[str, list[onnx.NodeProto]] = {}
        for n in g.node:
            for i in n.input:
                self.consumers.setdefault(i, []).append(n)

    def array(self, name: str) -> np.ndarray:
        if name not in self.inits:
            raise KeyError(f"initializer '{name}' is missing")
        return numpy_helper.to_array(self.inits[name])

    @staticmethod
    def attrs(node: onnx.NodeProto) -> dict[str, Any]:
        return {a.name: helper.get_attribute_value(a) for a in node.attribute}

    def source_of(self, node: onnx.NodeProto) -> str:
        """Walk a synapse's data input back through Flatten/Cast to a graph input ``<src>/s_prev``."""
        x = node.input[0]
        for _ in range(4):
            if x not in self.producer:
                break
            p = self.producer[x]
            if p.op_type not in ("Flatten", "Cast", "Gather"):
                raise ValueError(f"node '{node.name}' reads '{x}', made by {p.op_type}, not a source's spikes")
            x = p.input[0]
        token, _, part = x.partition("/")
        if part not in ("s_prev", "hist_prev"):
            raise ValueError(f"node '{node.name}' reads '{x}', not a source's previous spikes '<name>/s_prev'")
        return unescape_name(token)

    def destination_of(self, node: onnx.NodeProto) -> str:
        """Follow a synapse's output forward (each value has one consumer) to its CubaLIF node."""
        x = node.output[0]
        for _ in range(16 + 6 * 64):      # a delayed synapse adds its delay groups' parts one by one
            users = self.consumers.get(x, [])
            if len(users) != 1:
                raise ValueError(f"value '{x}' of synapse '{node.name}' has {len(users)} consumers, expected 1")
            if users[0].domain == DOMAIN:
                return unescape_name(users[0].name)
            x = users[0].output[0]
        raise ValueError(f"synapse '{node.name}' does not reach a population")

    def population(self, node: onnx.NodeProto) -> QCubaLIF:
        a = self.attrs(node)
        fmt_name = a["fmt"].decode()
        fmt = FixedPointFormat(name=fmt_name, **{k: int(a[f"fmt_{k}"]) for k in _FMT_FIELDS})
        if fmt_name in FORMATS and FORMATS[fmt_name] == fmt:
            fmt = FORMATS[fmt_name]    # the registered object, with its sources
        semantics = json.loads(a["semantics"].decode())
        sem: Mapping[str, object] = (CUBA_SEMANTICS if semantics == dict(CUBA_SEMANTICS)
                                     else MappingProxyType(semantics))
        shape = tuple(int(d) for d in a["shape"]) if "shape" in a else None
        return QCubaLIF(unescape_name(node.name), int(a["size"]), int(a["du"]), int(a["dv"]), int(a["vth"]),
                        self.array(node.input[3]), int(a["bias_exp"]), fmt, sem, shape)

    def dense(self, node: onnx.NodeProto) -> QDense:
        e = node.name
        scale = float(self.array(f"{e}/scale"))
        exp = round(math.log2(scale)) if scale > 0 else 0
        if scale <= 0 or 2.0 ** exp != scale:
            raise ValueError(f"'{e}/scale' is {scale}, not a power of two 2**weight_exp")
        delay = self.array(f"{e}/delay") if f"{e}/delay" in self.inits else None
        return QDense(unescape_name(e), self.array(f"{e}/weight"), exp, delay)

    def conv(self, node: onnx.NodeProto, source: Node) -> QConv:
        a = self.attrs(node)
        pads = [int(p) for p in a.get("pads", [0, 0, 0, 0])]
        if pads[:2] != pads[2:]:
            raise ValueError(f"Conv '{node.name}' has asymmetric pads {pads}; PyTorch padding is symmetric")
        return QConv(unescape_name(node.name), self.array(f"{node.name}/weight"), dims(source),  # type: ignore[arg-type]
                     tuple(a.get("strides", [1, 1])), tuple(pads[:2]), tuple(a.get("dilations", [1, 1])),
                     int(a.get("group", 1)))


def _parse(model: onnx.ModelProto) -> Graph:
    props = {p.key: p.value for p in model.metadata_props}
    g = model.graph
    r = _Reader(g)
    data = [v for v in g.input if "/" not in v.name]
    if len(data) != 1:
        raise ValueError(f"expected one graph input for this step's spikes, found {[v.name for v in data]}")
    shape = tuple(int(d.dim_value) for d in data[0].type.tensor_type.shape.dim[1:])
    inp = Input(unescape_name(data[0].name), shape, int(props["snnc.input_bits"]))
    nodes: dict[str, Node] = {inp.name: inp}
    edges: list[tuple[str, str]] = []
    mains = [n for n in g.node if "/" not in n.name]
    for n in mains:     # populations first: a conv needs its source's dims
        if n.domain == DOMAIN:
            if n.op_type != "CubaLIF":
                raise ValueError(f"unknown op {DOMAIN}.{n.op_type} (node '{n.name}')")
            pop = r.population(n)
            nodes[pop.name] = pop
    order: list[str] = [inp.name]
    for n in mains:
        if n.domain == DOMAIN:
            order.append(unescape_name(n.name))
            continue
        if n.domain not in ("", "ai.onnx") or n.op_type not in ("Gemm", "Conv", "Identity"):
            raise ValueError(f"node '{n.name}' ({n.domain or 'ai.onnx'}.{n.op_type}) is not a synapse, "
                             f"population or output of an snnc step function")
        if n.op_type == "Identity":
            out = Output(unescape_name(n.name))
            token, _, part = n.input[0].partition("/")
            if part != "s":
                raise ValueError(f"output '{n.name}' reads '{n.input[0]}', not a population's spikes")
            nodes[out.name] = out
            edges.append((unescape_name(token), out.name))
        else:
            src = r.source_of(n)
            if src not in nodes:
                raise ValueError(f"synapse '{n.name}' reads '{src}', which is not a population or the input")
            syn = r.dense(n) if n.op_type == "Gemm" else r.conv(n, nodes[src])
            nodes[syn.name] = syn
            edges += [(src, syn.name), (syn.name, r.destination_of(n))]
        order.append(unescape_name(n.name))
    stored_nodes = json.loads(props["snnc.nodes"])
    stored_edges = [tuple(e) for e in json.loads(props["snnc.edges"])]
    if sorted(stored_nodes) != sorted(order) or sorted(stored_edges) != sorted(edges):
        raise ValueError("the node and edge lists in metadata_props do not match the ONNX graph's nodes and dataflow")
    meta = json.loads(props["snnc.meta"])
    if not isinstance(meta, dict):
        raise ValueError("snnc.meta is not a JSON object")
    return Graph.build([nodes[k] for k in stored_nodes], stored_edges, meta)  # type: ignore[arg-type]


def _differences(got: onnx.GraphProto, want: onnx.GraphProto) -> str | None:
    """The first difference between two GraphProtos (doc strings ignored), or None."""

    def plain(items: Any) -> list[Any]:
        out = []
        for x in items:
            y = type(x)()
            y.CopyFrom(x)
            y.ClearField("doc_string")
            out.append(y)
        return out

    for what in ("input", "output", "node"):
        a, b = plain(getattr(got, what)), plain(getattr(want, what))
        for k, (x, y) in enumerate(zip(a, b)):
            if x != y:
                label = getattr(y, "name", "") or str(k)
                return f"{what} {k} ('{label}') differs from what snnc writes for this graph"
        if len(a) != len(b):
            return f"{len(a)} graph {what}s, snnc writes {len(b)} for this graph"
    ta = {t.name: t for t in got.initializer}
    for t in want.initializer:
        if t.name not in ta:
            return f"initializer '{t.name}' is missing"
        x, y = numpy_helper.to_array(ta[t.name]), numpy_helper.to_array(t)
        if x.dtype != y.dtype or x.shape != y.shape or not np.array_equal(x, y):
            return f"initializer '{t.name}' differs from what snnc writes for this graph"
    extra = set(ta) - {t.name for t in want.initializer}
    return f"unexpected initializers {sorted(extra)}" if extra else None


def graph_from_onnx(model: onnx.ModelProto, source: str = "ONNX model") -> Graph:
    """The ``Graph`` an snnc ONNX model holds; ``InputFileError`` naming ``source`` and what is wrong."""
    props = {p.key: p.value for p in model.metadata_props}
    if props.get("snnc.format") != FORMAT:
        producer = f"producer '{model.producer_name}'" if model.producer_name else "no producer name"
        raise InputFileError(f"{source}: an ONNX model, but not one snnc wrote ({producer}, no "
                             f"snnc.format = {FORMAT} in metadata_props): snnc reads back only the fixed-point "
                             f"step functions it exports (docs/onnx.md).")
    if props.get("snnc.format_version") != str(FORMAT_VERSION):
        raise InputFileError(f"{source}: snnc ONNX format version {props.get('snnc.format_version')}, this snnc "
                             f"reads version {FORMAT_VERSION}; recompile with this snnc.")
    opsets = {o.domain or "ai.onnx": o.version for o in model.opset_import}
    if opsets.get(DOMAIN) != DOMAIN_VERSION or opsets.get("ai.onnx") != OPSET:
        raise InputFileError(f"{source}: opsets {opsets}; snnc writes ai.onnx {OPSET} and {DOMAIN} {DOMAIN_VERSION}.")
    _refuse_external_data(model, source)
    try:
        graph = _parse(model)
    except GraphError as e:
        raise InputFileError(f"{source}: the stored graph is invalid: {e}") from None
    except (KeyError, ValueError, IndexError, TypeError, AttributeError, UnicodeError, OverflowError) as e:
        raise InputFileError(f"{source}: damaged snnc ONNX file ({type(e).__name__}: {e}).") from None
    try:
        want = graph_to_onnx(graph)
    except GraphError as e:
        raise InputFileError(f"{source}: the stored graph cannot be exported again: {e}") from None
    try:
        diff = _differences(model.graph, want.graph)
    except (ValueError, TypeError, KeyError) as e:   # numpy_helper.to_array: data that fits not its dims/dtype
        raise InputFileError(f"{source}: damaged snnc ONNX file ({type(e).__name__}: {e}).") from None
    if diff:
        raise InputFileError(f"{source}: the ONNX step function does not match the graph it describes: {diff} "
                             f"(edited by hand or by another tool?).")
    return graph


def write_checked(graph: Graph, path: Path) -> None:
    """``write_onnx`` then read the file back and check it holds the same integers (what snn-compile
    does for every format it writes; snn-compile's helper process runs it, snnc.background)."""
    from snnc.compiler.ir import check_round_trip

    write_onnx(graph, path)
    check_round_trip(graph, read_onnx(path), path.name)


def read_onnx(path: Path) -> Graph:
    """Read a ``graph.onnx`` written by :func:`write_onnx` back into an equal, checked graph."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise InputFileError(f"{path}: cannot read the file ({e.strerror or e}).") from None
    try:   # never follow external-data references: they name other files (e.g. '../../etc/passwd')
        model = onnx.load_model(io.BytesIO(data), load_external_data=False)
    except (DecodeError, ValueError, RuntimeError) as e:
        raise InputFileError(f"{path}: not an ONNX file, or truncated (protobuf: {e}).") from None
    if not model.HasField("graph") and not model.metadata_props:
        raise InputFileError(f"{path}: not an ONNX model (no graph in it); empty, truncated or another kind of file.")
    return graph_from_onnx(model, source=str(path))


def _tensors(g: onnx.GraphProto) -> Iterator[onnx.TensorProto]:
    """Every tensor a graph holds: initializers, sparse initializers, tensor attributes, subgraphs."""
    yield from g.initializer
    for sp in g.sparse_initializer:
        yield sp.values
        yield sp.indices
    for node in g.node:
        for a in node.attribute:
            if a.HasField("t"):
                yield a.t
            yield from a.tensors
            if a.HasField("g"):
                yield from _tensors(a.g)
            for sub in a.graphs:
                yield from _tensors(sub)


def _refuse_external_data(model: onnx.ModelProto, source: str) -> None:
    """snnc writes every tensor inside the file; one whose data lives in another file is refused before
    any tensor is decoded (numpy_helper.to_array would open that file, wherever it points)."""
    for t in _tensors(model.graph):
        if t.data_location == TensorProto.EXTERNAL or len(t.external_data):
            where = next((e.value for e in t.external_data if e.key == "location"), "?")
            raise InputFileError(f"{source}: tensor '{t.name}' keeps its data in another file ('{where[:200]}'); "
                                 f"snnc writes every tensor inside graph.onnx and never reads external data. "
                                 f"Re-export the graph with snnc (or save the model without external data).")
