"""NIR in and out: the field's interchange format, with the discretisation NIR leaves open made explicit.

NIR (neuromorphs/NIR, the ``nir`` package) describes continuous-time neurons; every exporter picks
its own time step and parameter convention, so reading a NIR graph means naming a discretisation.
Ours is the one equation in ``snnc.compiler.ir`` (forward Euler, current then voltage, strict
threshold, reset to 0, one-step synaptic delay). Per neuron node we derive the current decay ``cd``,
the voltage decay ``vd`` and an input gain ``g`` (folded into the incoming weights):

========================  ==========================  ===================================================
NIR node                  ``euler`` (snnTorch, NIR)   ``norse`` (Norse 1.1 exporter)
========================  ==========================  ===================================================
LIF(tau, r, v_leak)       vd = dt/tau, g = vd r        vd = dt^2/tau, g = vd r
CubaLIF(tau_syn, tau_mem) cd = dt/tau_syn,             cd = dt^2/tau_syn, vd = dt^2/tau_mem,
                          vd = dt/tau_mem,             g = w_in vd r (LIFCell: i += x, v reads the new i)
                          g = cd w_in vd r
IF(r)                     vd = 0, cd = 1, g = r        same
LI / CubaLI               as LIF / CubaLIF, non-spiking (a membrane readout)
========================  ==========================  ===================================================

``euler`` is forward Euler of NIR's ODEs with the input held over the step; snnTorch writes it with
``dt = 1e-4`` (snntorch/export_nir.py: ``tau = dt/(1-beta)``, ``r = tau/dt``, ``w_in = tau_syn/dt``),
so ``dt = tau/r``. Norse 1.1 writes ``tau = dt/tau_inv`` (norse/torch/utils/export_nir.py), i.e. its
per-step decay ``dt*tau_inv`` is ``dt^2/tau`` with Norse's ``dt`` (default 1e-3; Norse issue #411),
and ``r = w_in = 1``. ``auto`` picks ``norse`` when every neuron has ``r = w_in = 1`` (unless all time
constants equal snnTorch's dt, snnTorch's ``beta = 0``), else ``euler`` with ``dt = tau/r``.

Timing: snnTorch and Norse deliver a layer's input in the same step; the chip delays every synapse
one step, so layer ``k`` of the compiled network spikes ``k`` steps after the source library's
layer ``k``, spike for spike otherwise. A bias (NIR ``v_leak`` or an ``Affine`` bias into a neuron
without current decay) acts during those ``k`` steps before the first input arrives: it is accepted
with a warning. What the chip cannot represent is refused by node: an Affine bias into a decaying
current (Loihi adds bias to v, not to u), heterogeneous time constants or thresholds, ``v_reset != 0``,
Delay/Threshold/I/Scale nodes, a cycle without a neuron node, a conv or a non-spiking node on a cycle.

Recurrence: cycles are read as they are written, flat (neuron -> Affine/Linear -> the same or an earlier
neuron) or as nested ``NIRGraph`` nodes (snnTorch's RLeaky/RSynaptic), spliced in by
:func:`flatten_subgraphs`. Every synapse on the chip delays one step, a recurrent one too; snnTorch's and
Norse's recurrent weights act on the previous step's spikes, so a self-loop keeps the layer's lag
(:func:`source_lags`) and the compiled network coincides with the source where the neuron equations do
(docs/nir.md, "Recurrence", with measured figures).

Our own files (``graph.nir`` in every artifact) hold the fixed-point graph exactly: the continuous
parameters are written in the ``euler`` convention with ``dt = 1e-4`` (what snnTorch's and NIR's Lava
importers assume, so they read the same network in float) and every integer, the discrete semantics
and the graph's meta ride in node metadata (``snnc``); :func:`read_nir` rebuilds the identical graph.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from snnc.compiler.ir import (CUBA_SEMANTICS, MAX_DELAY, Conv, CubaLIF, Dense, Graph, Input, Node, Output, QConv,
                              QCubaLIF, QDense, dims)
from snnc.compiler.isolation import isolated
from snnc.compiler.lowering import fuse_pool_into_conv, fuse_pool_into_dense
from snnc.errors import GraphError, InputFileError, SnncError, UnsupportedLayerError
from snnc.models.fixed_point import LOIHI_FIXED_POINT

FORMAT = "snnc.nir"
FORMAT_VERSION = 1
EXPORT_DT = 1e-4          # snnTorch's and nir_to_lava's dt: their readers see the same float network
NORSE_DT = 1e-3           # Norse's to_nir default
NO_LEAK_TAU_STEPS = 2**20  # a non-leaking membrane is written as tau = 2**20 dt (rounds to decay 0 of 4096)
CONVENTIONS = ("auto", "euler", "norse")
_NEURONS = ("LIF", "CubaLIF", "IF", "LI", "CubaLI")
_SYNAPSES = ("Affine", "Linear", "Conv2d")
_IDENTITY = ("Flatten",)
_POOLS = ("SumPool2d", "AvgPool2d")
_SUPPORTED = ("Input", "Output", *_SYNAPSES, *_NEURONS, *_IDENTITY, *_POOLS, "Delay")


def _nir() -> Any:
    try:
        import nir
    except ImportError as e:  # pragma: no cover - nir is a dependency
        raise SnncError(f"the 'nir' package is not installed ({e}); pip install nir") from None
    return nir


# ----------------------------------------------------------------------------------------------- export

def graph_to_nir(graph: Graph) -> Any:
    """The fixed-point graph as a NIR graph: euler convention at ``EXPORT_DT`` plus exact integers."""
    nir = _nir()
    if not graph.is_fixed_point:
        raise GraphError("NIR export writes compiled (fixed-point) graphs: quantize the graph first")
    fp = LOIHI_FIXED_POINT
    nodes: dict[str, Any] = {}
    for node in graph.ordered():
        if isinstance(node, Input):
            nodes[node.name] = nir.Input(input_type={"input": np.array(dims(node))},
                                         metadata={"snnc": json.dumps({"kind": "Input", "bits": node.bits})})
        elif isinstance(node, Output):
            out = graph.output
            nodes[node.name] = nir.Output(output_type={"output": np.array(dims(out))},
                                          metadata={"snnc": json.dumps({"kind": "Output"})})
        elif isinstance(node, QDense) and node.delay is not None:
            nodes.update(_delayed_dense_to_nir(nir, node))
        elif isinstance(node, QDense):
            nodes[node.name] = nir.Linear(
                weight=node.weight.astype(np.float64) * 2.0 ** node.weight_exp,
                metadata={"snnc": json.dumps({"kind": "QDense", "weight_exp": node.weight_exp})})
        elif isinstance(node, QConv):
            nodes[node.name] = nir.Conv2d(
                input_shape=tuple(node.in_shape[1:]), weight=node.weight.astype(np.float64), stride=node.stride,
                padding=node.padding, dilation=node.dilation, groups=node.groups,
                bias=np.zeros(node.weight.shape[0]),
                metadata={"snnc": json.dumps({"kind": "QConv", "output": "wrap to 24 bits (Lava PyConvModelFixed)",
                                              "in_shape": list(node.in_shape)})})
        elif isinstance(node, QCubaLIF):
            nodes[node.name] = _neuron_to_nir(nir, node, fp.decay_unity)
        else:  # pragma: no cover - is_fixed_point excludes the rest
            raise GraphError(f"NIR export: unexpected node {node.name} ({type(node).__name__})")
    edges: list[tuple[str, str]] = []
    for a, b in graph.edges:   # NIR types a (C, H, W) map into a Linear through an explicit Flatten
        src, dst = graph.nodes[a], graph.nodes[b]
        heads = _delay_parts(dst) if isinstance(dst, QDense) else [(b, b)]    # (Linear, what follows it)
        tails = _delay_parts(src) if isinstance(src, QDense) else [(a, a)]
        if isinstance(dst, QDense) and len(dims(src)) > 1:  # type: ignore[arg-type]
            flat = f"{a}.flatten.{b}"
            nodes[flat] = nir.Flatten(input_type={"input": np.array(dims(src))},  # type: ignore[arg-type]
                                      start_dim=0, metadata={"snnc": json.dumps({"kind": "Flatten"})})
            edges += [(a, flat)] + [(flat, lin) for lin, _ in heads]
        elif isinstance(src, QDense):    # Linear -> Delay -> neuron, per delay part
            for lin, last in tails:
                if last != lin:
                    edges.append((lin, last))
                edges.append((last, b))
        else:
            edges += [(a, lin) for lin, _ in heads]
    meta = {"snnc": json.dumps({"format": FORMAT, "format_version": FORMAT_VERSION, "dt": EXPORT_DT,
                                "convention": "euler", "meta": dict(graph.meta),
                                "order": list(graph.nodes)},   # insertion order: HDF5 lists nodes sorted
                               sort_keys=True, default=str)}
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata=meta, type_check=False)


def _delay_parts(node: QDense) -> list[tuple[str, str]]:
    """A QDense's NIR nodes as (Linear, last node before the neuron) pairs: itself without delays; one
    Linear and its Delay when every output neuron's synapses share a delay; else one Linear per distinct
    delay ``d`` (``<name>.d<d>``, the weights of delay d) and, for d > 0, its Delay, all summed at the neuron."""
    if node.delay is None:
        return [(node.name, node.name)]
    if _row_constant(node.delay):
        return [(node.name, f"{node.name}.delay")]
    return [(f"{node.name}.d{d}", f"{node.name}.d{d}" if d == 0 else f"{node.name}.d{d}.delay")
            for d, _ in node.delay_groups()]


def _row_constant(delay: np.ndarray) -> bool:
    return bool(np.array_equal(delay, np.broadcast_to(delay[:, :1], delay.shape)))


def _delayed_dense_to_nir(nir: Any, node: QDense) -> dict[str, Any]:
    """NIR nodes for a QDense with synaptic delays (compiler/ir.py): NIR's ``Delay`` (y(t) = x(t - delay),
    one delay per element, in time units) after the Linear, ``d * EXPORT_DT`` for ``d`` steps on top of the
    one-step synapse every snnc synapse has. Per-output delays: Linear -> Delay -> neuron; delays that vary
    within a row: the matrix split by delay (:func:`_delay_parts`). Every part carries the exact delay
    matrix in its metadata (``delay_hex``: uint8 bytes, row-major) so that zero weights keep their delays."""
    exact = {"weight_exp": node.weight_exp, "delay_shape": list(node.delay.shape),   # type: ignore[union-attr]
             "delay_hex": node.delay.tobytes().hex()}                                  # type: ignore[union-attr]
    scale = 2.0 ** node.weight_exp
    out: dict[str, Any] = {}

    def delay_node(steps: np.ndarray) -> Any:
        return nir.Delay(delay=steps.astype(np.float64) * EXPORT_DT,
                         metadata={"snnc": json.dumps({"kind": "Delay", "of": node.name,
                                                       "steps": steps.astype(int).tolist()})})

    if _row_constant(node.delay):                                                    # type: ignore[arg-type]
        out[node.name] = nir.Linear(weight=node.weight.astype(np.float64) * scale,
                                    metadata={"snnc": json.dumps({"kind": "QDense", **exact})})
        out[f"{node.name}.delay"] = delay_node(node.delay[:, 0])                     # type: ignore[index]
        return out
    for (lin, last), (d, w_d) in zip(_delay_parts(node), node.delay_groups()):
        out[lin] = nir.Linear(weight=w_d.astype(np.float64) * scale,
                              metadata={"snnc": json.dumps({"kind": "QDensePart", "of": node.name, "delay": d,
                                                            **exact})})
        if last != lin:
            out[last] = delay_node(np.full(node.out_size, d))
    return out


def _neuron_to_nir(nir: Any, n: QCubaLIF, unity: int) -> Any:
    """A CubaLIF (or LIF when the current does not carry over) in the euler convention: gain 1."""
    cd, vd = n.du / unity, n.dv / unity
    vd_written = vd if vd > 0 else 1.0 / NO_LEAK_TAU_STEPS
    shape = dims(n)
    full = lambda x: np.full(shape, float(x))  # noqa: E731
    bias = n.bias_mant.astype(np.float64) * 2.0 ** (n.bias_exp - LOIHI_FIXED_POINT.act_shift)
    tau_mem = EXPORT_DT / vd_written
    exact = {"kind": "QCubaLIF", "du": n.du, "dv": n.dv, "vth": n.vth, "bias_exp": n.bias_exp,
             "bias_mant": n.bias_mant.astype(int).tolist(), "fmt": n.fmt.name,
             "shape": list(n.shape) if n.shape is not None else None, "semantics": dict(CUBA_SEMANTICS)}
    common = {"v_threshold": full(n.vth), "v_leak": bias.reshape(shape) / vd_written, "v_reset": full(0.0),
              "metadata": {"snnc": json.dumps(exact)}}
    if n.du == unity:   # u = input every step: a LIF
        return nir.LIF(tau=full(tau_mem), r=full(tau_mem / EXPORT_DT), **common)
    tau_syn = EXPORT_DT / cd if cd > 0 else math.inf
    return nir.CubaLIF(tau_syn=full(tau_syn), tau_mem=full(tau_mem), r=full(tau_mem / EXPORT_DT),
                       w_in=full(tau_syn / EXPORT_DT), **common)


def write_nir(graph: Graph, path: Path) -> None:
    """Write ``graph.nir`` with the ``nir`` package's own serialiser."""
    _nir().write(str(path), graph_to_nir(graph))


# ----------------------------------------------------------------------------------------------- import

def source_lags(graph: Graph) -> dict[str, int | None]:
    """Per population, the steps by which the compiled network trails the source library's simulation.

    snnTorch and Norse deliver a feed-forward synapse's input in the same step and a recurrent one
    (RLeaky/RSynaptic ``V``, Norse's ``recurrent_weights``) from the previous step's spikes; the chip
    delays every synapse one step (compiler/ir.py). So a population trails by one step more than the
    sources of its feed-forward synapses, and a recurrent synapse, delayed one step on both sides, keeps
    the lag: chip step ``t + lag`` equals source step ``t``. ``None`` where no shift exists: a population
    (or a cycle's populations together) reached over paths with different numbers of feed-forward
    synapses (a skip connection, or a cycle entered at two depths)."""
    lags: dict[str, int | None] = {graph.input.name: 0}
    for block in graph.blocks():
        found = {None if lags[src] is None else lags[src] + 1  # type: ignore[operator]
                 for pop in block for _, src in pop.feedforward_inputs}
        lag = found.pop() if len(found) == 1 else None
        for pop in block:
            lags[pop.name] = lag
    del lags[graph.input.name]
    return lags


@dataclass
class NirImport:
    """What reading a NIR file produced: the graph (float, or fixed-point for snnc's own files), the
    discretisation used, and warnings by node (things that change timing but are representable)."""

    graph: Graph
    convention: str
    dt: float | None
    warnings: list[str] = field(default_factory=list)


def read_nir(path: Path, *, convention: str = "auto", dt: float | None = None,
             input_shape: tuple[int, ...] | None = None) -> NirImport:
    """Read a NIR file into an snnc graph; errors name the file, the node and what to do. The read runs
    in a child process with a deadline (libhdf5 can loop forever on a damaged file, snnc.compiler.isolation).
    ``input_shape`` (``--input-shape``) is used when the Input node carries no usable shape."""
    path = Path(path)
    return isolated(path, "HDF5", _read_nir, path, convention, dt, input_shape)


def _read_nir(path: Path, convention: str, dt: float | None, input_shape: tuple[int, ...] | None = None) -> NirImport:
    nir = _nir()
    try:
        g = nir.read(str(path), type_check=False)
    except Exception as e:  # nir/h5py raise anything from KeyError to OSError on a foreign file
        raise InputFileError(f"{path}: not a readable NIR file ({type(e).__name__}: {e}). Write NIR graphs with "
                             f"nir.write(path, graph) (snnTorch export_to_nir, norse.to_nir, ...).") from None
    try:
        return graph_from_nir(g, convention=convention, dt=dt, input_shape=input_shape)
    except SnncError as e:
        raise type(e)(f"{path}: {e}") from None


def _meta(node: Any) -> dict[str, Any]:
    """The node's ``snnc`` metadata (our own files), {} for anything else."""
    md = getattr(node, "metadata", None)
    if isinstance(md, np.ndarray) and md.dtype == object and md.size == 1:   # Norse stores a dict in an array
        md = md.item()
    raw = md.get("snnc") if isinstance(md, dict) else None
    if isinstance(raw, bytes):
        raw = raw.decode()
    if isinstance(raw, np.ndarray):
        raw = raw.item() if raw.size == 1 else None
        raw = raw.decode() if isinstance(raw, bytes) else raw
    if not isinstance(raw, str):
        return {}
    try:
        out = json.loads(raw)
    except json.JSONDecodeError:
        return {}
    return out if isinstance(out, dict) else {}


def graph_from_nir(g: Any, *, convention: str = "auto", dt: float | None = None,
                   input_shape: tuple[int, ...] | None = None) -> NirImport:
    """A NIR graph -> snnc graph. snnc's own files come back exactly; others are discretised. Nested
    subgraphs (snnTorch's RLeaky/RSynaptic) are flattened first (:func:`flatten_subgraphs`)."""
    if convention not in CONVENTIONS:
        raise SnncError(f"unknown NIR convention '{convention}' (supported: {', '.join(CONVENTIONS)})")
    flat = flatten_subgraphs(g)
    unsupported = {k: type(n).__name__ for k, n in flat.nodes.items() if type(n).__name__ not in _SUPPORTED}
    if unsupported:
        raise UnsupportedLayerError(
            "unsupported NIR node(s): " + ", ".join(f"'{k}' ({t})" for k, t in sorted(unsupported.items())) +
            f". snnc reads {', '.join(_SUPPORTED)}. Threshold, I and Scale have no Loihi CUBA equivalent here "
            f"(a recurrent connection needs no Delay node: every synapse on the chip delays one step); fold "
            f"a Scale into the neighbouring weights before export.")
    top = _meta(g)
    if top.get("format") == FORMAT:
        return NirImport(_exact_graph(flat, top), "snnc (exact integers)", top.get("dt"))
    return _Discretiser(flat, convention, dt, input_shape).run()


@dataclass
class FlatGraph:
    """A NIR graph with its nested subgraphs spliced in: nodes by (dotted) name, edges, metadata."""

    nodes: dict[str, Any]
    edges: list[tuple[str, str]]
    metadata: Any = None


def flatten_subgraphs(g: Any) -> FlatGraph:
    """Splice nested ``NIRGraph`` nodes into one flat graph. A subgraph ``s`` holding node ``n`` becomes
    node ``s.n`` (nirtorch's naming); an edge into ``s`` enters its Input node, an edge out of ``s`` leaves
    its Output node (or name the port: ``s.input``), and the subgraph's Input and Output nodes, which only
    pass values on, are removed by joining what feeds them to what they feed. This is the form snnTorch
    writes ``RLeaky``/``RSynaptic`` in (snntorch/export_nir.py: a NIRGraph of input, the neuron, the
    recurrent ``w_rec`` and output, with edges input->lif, lif->w_rec, w_rec->lif, lif->output)."""
    nodes: dict[str, Any] = {}
    edges: list[tuple[str, str]] = []
    ports: list[str] = []                 # the subgraphs' Input/Output nodes, spliced out below
    enter: dict[str, list[str]] = {}      # subgraph name -> its Input nodes (flat names)
    leave: dict[str, list[str]] = {}      # subgraph name -> its Output nodes
    for key, node in g.nodes.items():
        key = str(key)
        if type(node).__name__ != "NIRGraph":
            nodes[key] = node
            continue
        sub = flatten_subgraphs(node)
        enter[key], leave[key] = [], []
        for k, n in sub.nodes.items():
            name = f"{key}.{k}"
            if name in g.nodes:
                raise UnsupportedLayerError(f"subgraph '{key}': its node '{k}' would be named '{name}', which the "
                                            f"enclosing graph already uses; rename one of them.")
            nodes[name] = n
            kind = type(n).__name__
            if kind in ("Input", "Output"):
                ports.append(name)
                (enter if kind == "Input" else leave)[key].append(name)
        edges += [(f"{key}.{a}", f"{key}.{b}") for a, b in sub.edges]

    def port(name: str, which: dict[str, list[str]], what: str) -> str:
        if name not in which:
            return name
        if len(which[name]) != 1:
            raise UnsupportedLayerError(
                f"subgraph '{name}' has {len(which[name])} {what} nodes {which[name]}: an edge naming the subgraph "
                f"must name the port ('{name}.<{what.lower()} node>').")
        return which[name][0]

    edges += [(port(str(a), leave, "Output"), port(str(b), enter, "Input")) for a, b in g.edges]
    for p in ports:   # a port passes values on: join its sources to its destinations
        into = [a for a, b in edges if b == p]
        out = [b for a, b in edges if a == p]
        at = next((i for i, e in enumerate(edges) if p in e), len(edges))   # the joined edges take its place
        edges = edges[:at] + [(a, b) for a in into for b in out] + [e for e in edges[at:] if p not in e]
        del nodes[p]
    seen: set[tuple[str, str]] = set()
    edges = [e for e in edges if not (e in seen or seen.add(e))]   # type: ignore[func-returns-value]
    return FlatGraph(nodes, edges, getattr(g, "metadata", None))


def _exact_graph(g: Any, top: dict[str, Any]) -> Graph:
    """Rebuild snnc's fixed-point graph from the integers in the node metadata."""
    nodes: list[Node] = []
    fmts = {LOIHI_FIXED_POINT.name: LOIHI_FIXED_POINT}
    flatten: dict[str, str] = {}   # our Flatten nodes are free in snnc's layout: rewire around them
    alias: dict[str, str] = {}     # a delayed QDense's Delay nodes and parts -> the QDense's name
    parts: dict[str, list[tuple[str, dict[str, Any], Any]]] = {}
    for name, node in g.nodes.items():
        m = _meta(node)
        kind = m.get("kind")
        try:
            if kind == "Flatten":
                flatten[name] = next(str(a) for a, b in g.edges if str(b) == name)
            elif kind == "Delay":
                alias[name] = str(m["of"])
            elif kind == "QDensePart":
                alias[name] = str(m["of"])
                parts.setdefault(str(m["of"]), []).append((name, m, node))
            elif kind == "QDense" and "delay_hex" in m:
                e = int(m["weight_exp"])
                w = np.asarray(node.weight, dtype=np.float64) * 2.0 ** -e
                nodes.append(QDense(name, _integers(w, name), e, delay=_delay_of(m, name)))
            elif kind == "Input":
                nodes.append(Input(name, tuple(int(x) for x in node.input_type["input"]), int(m.get("bits", 0))))
            elif kind == "Output":
                nodes.append(Output(name))
            elif kind == "QDense":
                e = int(m["weight_exp"])
                w = np.asarray(node.weight, dtype=np.float64) * 2.0 ** -e
                nodes.append(QDense(name, _integers(w, name), e))
            elif kind == "QConv":
                nodes.append(QConv(name, _integers(np.asarray(node.weight, dtype=np.float64), name),
                                   tuple(m["in_shape"]), tuple(np.atleast_1d(node.stride)),
                                   tuple(np.atleast_1d(node.padding)), tuple(np.atleast_1d(node.dilation)),
                                   int(node.groups)))
            elif kind == "QCubaLIF":
                shape = tuple(m["shape"]) if m.get("shape") is not None else None
                bias = np.asarray(m["bias_mant"], dtype=np.int64)
                nodes.append(QCubaLIF(name, int(bias.size), int(m["du"]), int(m["dv"]), int(m["vth"]), bias,
                                      int(m["bias_exp"]), fmts[m["fmt"]], shape=shape))
            else:
                raise GraphError(f"node '{name}' has no snnc metadata although the graph says it is snnc's own file")
        except (KeyError, TypeError, ValueError, OverflowError) as e:   # OverflowError: int() of an inf
            raise InputFileError(f"node '{name}': damaged snnc metadata ({type(e).__name__}: {e})") from None
        except StopIteration:
            raise InputFileError(f"node '{name}': a Flatten without input") from None
    for name, ps in parts.items():    # a QDense split by delay: the parts sum to its weights
        try:
            m0 = ps[0][1]
            e = int(m0["weight_exp"])
            w = sum(_integers(np.asarray(n.weight, dtype=np.float64) * 2.0 ** -e, k) for k, _, n in ps)
            nodes.append(QDense(name, w, e, delay=_delay_of(m0, name)))
        except (KeyError, TypeError, ValueError, OverflowError) as err:
            raise InputFileError(f"node '{name}': damaged snnc metadata ({type(err).__name__}: {err})") from None
    edges = []
    for a, b in g.edges:
        if str(b) in flatten:
            continue
        a2, b2 = alias.get(str(a), flatten.get(str(a), str(a))), alias.get(str(b), str(b))
        if a2 != b2 and (a2, b2) not in edges:
            edges.append((a2, b2))
    meta = top.get("meta") if isinstance(top.get("meta"), dict) else {}
    order = top.get("order")     # the written graph's insertion order (ties in Graph.ordered, a cycle's entry)
    if isinstance(order, list) and sorted(map(str, order)) == sorted(n.name for n in nodes):
        rank = {str(k): i for i, k in enumerate(order)}
        nodes.sort(key=lambda n: rank[n.name])
    return Graph.build(nodes, edges, meta)


def _delay_of(m: dict[str, Any], name: str) -> np.ndarray:
    """The exact (out, in) delay matrix a delayed QDense's metadata carries."""
    raw = bytes.fromhex(str(m["delay_hex"]))
    shape = tuple(int(x) for x in m["delay_shape"])
    if len(shape) != 2 or len(raw) != math.prod(shape):
        raise ValueError(f"delay of {len(raw)} bytes does not fill {shape}")
    return np.frombuffer(raw, dtype=np.uint8).reshape(shape).copy()


def _integers(w: np.ndarray, name: str) -> np.ndarray:
    r = np.round(w)
    if not np.array_equal(r, w):
        raise InputFileError(f"node '{name}': weights are not the integers snnc wrote (file edited?)")
    return r.astype(np.int64)


def _arr(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=np.float64)


def _uniform(name: str, what: str, x: Any) -> float:
    """One value for the whole population: Loihi's LIF process has one du, dv and vth."""
    a = _arr(x).reshape(-1)
    if a.size == 0:
        raise UnsupportedLayerError(f"node '{name}': {what} is empty")
    finite = a[np.isfinite(a)]
    if (np.isinf(a).any() and finite.size) or (finite.size and not np.allclose(finite, finite[0], rtol=1e-6, atol=0)):
        raise UnsupportedLayerError(
            f"node '{name}': heterogeneous {what} (from {a.min():g} to {a.max():g}); a Loihi CUBA population has "
            f"one value per population. Split the layer by value, or train with a shared {what}.")
    return float(a[0])


@dataclass
class _Pending:
    """What flows along an edge while the graph is rebuilt: a population (or the input), possibly
    pooled, or a synapse waiting for its neuron."""

    source: str                              # snnc node name of the population / input
    shape: tuple[int, ...]                   # layout of what reaches the next node (flat or (C, H, W))
    pool: int = 1                            # a non-overlapping k x k sum pool still to fold
    pool_scale: float = 1.0                  # AvgPool2d: 1 / k^2
    pooled_shape: tuple[int, ...] | None = None
    synapse: Dense | Conv | None = None      # an Affine/Linear/Conv2d waiting for its neuron
    bias: np.ndarray | None = None           # its bias (per output)
    axon_delay: np.ndarray | None = None     # steps per flat input line, from Delay nodes before the synapse
    delay_nodes: tuple[str, ...] = ()        # the Delay nodes folded into what flows here


class _Discretiser:
    """Walks a foreign NIR graph in topological order and builds snnc's float graph."""

    def __init__(self, g: Any, convention: str, dt: float | None, input_shape: tuple[int, ...] | None = None):
        self.g = g
        self.input_shape = input_shape
        self.warnings: list[str] = []
        self.convention, self.dt = self._choose(convention, dt)
        self.nodes: list[Node] = []
        self.edges: list[tuple[str, str]] = []
        self.flow: dict[str, _Pending] = {}
        self.readout = "rate"
        self._depths: dict[str, int] = {}
        self._shapes: dict[str, tuple[int, ...]] = {}     # population / input name -> its layout
        self.lags: dict[str, int | None] = {}
        self._populations: set[str] = set()               # neuron nodes declared so far
        self._succ: dict[str, list[str]] = {}             # NIR node -> the nodes it feeds

    # -- convention -----------------------------------------------------------------------------------
    def _neurons(self) -> list[tuple[str, Any]]:
        return [(k, n) for k, n in self.g.nodes.items() if type(n).__name__ in ("LIF", "CubaLIF", "LI", "CubaLI")]

    def _choose(self, convention: str, dt: float | None) -> tuple[str, float | None]:
        neurons = self._neurons()
        if convention == "auto":
            unit = all(np.allclose(_arr(n.r), 1.0) and np.allclose(_arr(getattr(n, "w_in", 1.0)), 1.0)
                       for _, n in neurons)
            taus = [_arr(getattr(n, "tau", getattr(n, "tau_mem", 1.0))) for _, n in neurons]
            snntorch_beta0 = bool(taus) and all(np.allclose(t, EXPORT_DT, rtol=1e-6) for t in taus)
            convention = "norse" if neurons and unit and not snntorch_beta0 else "euler"
            self.warnings.append(f"NIR convention: '{convention}' chosen automatically ("
                                 + ("every neuron has r = w_in = 1, as Norse writes" if convention == "norse" else
                                    "r = tau/dt, as snnTorch and NIR's Lava script write") +
                                 "); pass --nir-convention to override")
        if convention == "norse":
            return convention, float(dt) if dt else NORSE_DT
        if dt:
            return convention, float(dt)
        steps = []   # euler: snnTorch writes r = tau/dt, so each neuron tells dt = tau/r
        for _, n in neurons:
            tau, r = _arr(getattr(n, "tau", getattr(n, "tau_mem", np.nan))), _arr(n.r)
            tau, r = np.broadcast_arrays(tau, r)
            ok = np.isfinite(tau) & np.isfinite(r) & (r > 0)
            steps.extend((tau[ok] / r[ok]).tolist())
        if steps and not np.allclose(steps, steps[0], rtol=1e-5):
            raise UnsupportedLayerError(
                f"the neurons imply different time steps tau/r ({min(steps):g} .. {max(steps):g}); give the "
                f"time step explicitly with --nir-dt.")
        found = steps
        return convention, (float(found[0]) if found else EXPORT_DT)

    # -- walk -----------------------------------------------------------------------------------------
    def run(self) -> NirImport:
        """Kahn's algorithm over the NIR nodes; a node is processed once everything feeding it is known.
        A cycle must pass through a neuron node (only a population holds state from step to step): when
        nothing else is ready, the first neuron with some of its inputs known is *declared* (its size and
        layout come from those inputs), which lets the synapses of its cycle be read; it is completed when
        its recurrent inputs are known too. Feed-forward graphs are read in the same order as without."""
        names, preds, succ = self._structure()
        self._succ = succ
        waiting = {k: len(preds[k]) for k in names}
        ready = [k for k in names if waiting[k] == 0]
        done: set[str] = set()

        def known(name: str) -> None:       # name's flow is set: its successors wait for one input less
            for s in succ[name]:
                waiting[s] -= 1
                if waiting[s] == 0 and s not in done:
                    ready.append(s)

        while True:
            while ready:
                name = ready.pop(0)
                was_declared = name in self.flow
                self._process(name, preds[name])
                done.add(name)
                if not was_declared:
                    known(name)
            entry = next((k for k in names if k not in done and k not in self.flow and waiting[k] < len(preds[k])
                          and type(self.g.nodes[k]).__name__ in _NEURONS), None)
            if entry is None:
                break
            self._declare(entry, [self.flow[p] for p in preds[entry] if p in self.flow])
            known(entry)
        left = [k for k in names if k not in done]
        if left:
            self._stuck(left, succ)
        outs = [n for n in self.nodes if isinstance(n, Output)]
        if len(outs) != 1:
            raise UnsupportedLayerError(f"the graph has {len(outs)} Output nodes; snnc compiles exactly one.")
        meta = {"readout": {"kind": self.readout, "voters": 1},
                "nir": {"convention": self.convention, "dt": self.dt, "warnings": self.warnings}}
        try:
            graph = Graph.build(self.nodes, self.edges, meta)
        except GraphError as e:
            raise UnsupportedLayerError(f"the NIR graph does not form a spiking network snnc compiles: {e}") from None
        self._check_recurrence(graph)
        meta = {**graph.meta, "nir": {**meta["nir"], "warnings": self.warnings, "source_lag": self.lags}}
        return NirImport(Graph.build(list(graph.nodes.values()), list(graph.edges), meta), self.convention, self.dt,
                         self.warnings)

    def _process(self, name: str, ins: list[str]) -> None:
        node = self.g.nodes[name]
        kind = type(node).__name__
        if kind == "Input":
            self._input(name, node)
            return
        if not ins:
            raise GraphError(f"node '{name}' ({kind}) has no input edge")
        if kind in _NEURONS:
            if name not in self.flow:
                self._declare(name, [self.flow[p] for p in ins])
            self._neuron(name, kind, node, [self.flow[p] for p in ins])
            return
        if len(ins) != 1:
            raise UnsupportedLayerError(
                f"node '{name}' ({kind}) has {len(ins)} inputs {ins}: snnc sums inputs only into neurons.")
        src = self.flow[ins[0]]
        if kind == "Delay":
            self.flow[name] = self._delay(name, node, src)
            return
        if src.axon_delay is not None and kind not in _SYNAPSES and kind not in _IDENTITY:
            raise UnsupportedLayerError(
                f"node '{src.delay_nodes[-1]}' (Delay) feeds '{name}' ({kind}): snnc folds a Delay into a synapse "
                f"(Affine/Linear -> Delay -> neuron, per output; or neuron -> Delay -> Affine/Linear, per input "
                f"line), with at most a Flatten between the Delay and the Affine/Linear.")
        if kind == "Output":
            if src.synapse is not None or src.source not in self._populations:
                raise UnsupportedLayerError(f"Output '{name}' must follow a neuron node, follows '{ins[0]}'.")
            self.nodes.append(Output(name))
            self.edges.append((src.source, name))
        elif kind in _IDENTITY:
            self._no_synapse(name, kind, src)
            self.flow[name] = _Pending(src.source, (int(np.prod(src.shape)),), src.pool, src.pool_scale,
                                       src.pooled_shape, axon_delay=src.axon_delay, delay_nodes=src.delay_nodes)
            if src.pool > 1:   # a pooled map flattened: the dense folds it over the pre-pool features
                self.flow[name].shape = (int(np.prod(src.pooled_shape)),)  # type: ignore[arg-type]
        elif kind in _POOLS:
            self.flow[name] = self._pool(name, kind, node, src)
        else:
            self.flow[name] = self._synapse(name, kind, node, src)

    def _structure(self) -> tuple[list[str], dict[str, list[str]], dict[str, list[str]]]:
        names = [str(k) for k in self.g.nodes]
        preds: dict[str, list[str]] = {k: [] for k in names}
        succ: dict[str, list[str]] = {k: [] for k in names}
        for a, b in self.g.edges:
            a, b = str(a), str(b)
            if a not in preds or b not in preds:
                raise GraphError(f"edge ({a}, {b}) names a node that is not in the graph")
            preds[b].append(a)
            succ[a].append(b)
        inputs = [k for k in names if type(self.g.nodes[k]).__name__ == "Input"]
        if len(inputs) != 1:
            raise UnsupportedLayerError(f"the graph has {len(inputs)} Input nodes; snnc compiles exactly one.")
        if preds[inputs[0]]:
            raise UnsupportedLayerError(f"Input '{inputs[0]}' is fed by {preds[inputs[0]]}: nothing may feed the "
                                        f"Input node.")
        return names, preds, succ

    def _stuck(self, left: list[str], succ: dict[str, list[str]]) -> None:
        """Nodes the walk never reached: a cycle without a neuron node, or nodes the Input does not reach."""
        start = next(k for k in succ if type(self.g.nodes[k]).__name__ == "Input")
        seen, todo = {start}, [start]
        while todo:
            for nxt in succ[todo.pop()]:
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        reached = [k for k in left if k in seen]
        if reached:
            kinds = ", ".join(f"'{k}' ({type(self.g.nodes[k]).__name__})" for k in reached[:8])
            raise UnsupportedLayerError(
                f"node(s) {kinds} lie on a cycle that passes through no neuron node: on the chip only a neuron "
                f"population holds a value from one step to the next, so every cycle must go through a LIF, "
                f"CubaLIF or IF node (a synapse feeding back into a neuron: neuron -> Affine/Linear -> neuron).")
        raise UnsupportedLayerError(f"node(s) {left[:8]} are not reachable from the Input node; remove them or "
                                    f"connect them.")

    def _check_recurrence(self, graph: Graph) -> None:
        """Refuse recurrence the chip cannot hold and say what the timing of a cycle is."""
        pops = {p.name: p for p in graph.populations()}
        for pop in pops.values():
            for syn, src in pop.recurrent_inputs:
                if not pops[src].neuron.spiking:
                    raise UnsupportedLayerError(
                        f"node '{src}' is a non-spiking LI/CubaLI node (a membrane readout) on a cycle through "
                        f"'{syn.name}': it sends no spikes, so the recurrent connection would carry nothing. Make "
                        f"it a spiking LIF/CubaLIF, or remove the connection.")
        for block in graph.blocks():
            if len(block) > 1:
                names = [p.name for p in block]
                self.warnings.append(
                    f"populations {names} form a cycle of {len(names)} populations: on the chip every synapse "
                    f"delays one step, so a spike goes round it in {len(names)} steps; a simulator that delays "
                    f"only one connection of the cycle per step takes 1 step, and the spikes differ (docs/nir.md, "
                    f"'Recurrence')")
        lags = source_lags(graph)
        self.lags = lags
        loops = [p.name for p in graph.populations() if p.recurrent]
        if loops:
            shown = {k: lags[k] for k in loops[:6]}
            self.warnings.append(
                f"recurrent population(s) {loops[:6]}: on the chip a recurrent spike of step t acts at t+1, as in "
                f"snnTorch's RLeaky/RSynaptic and Norse's recurrent cells, and each layer trails a simulation that "
                f"delivers feed-forward input in the same step by {shown} step(s); the spikes coincide where the "
                f"source resets v to zero in the spike step. snnTorch's default reset_delay=True zeroes it one "
                f"step later, which NIR does not record: such a source's spikes differ after each layer's first "
                f"spike (docs/nir.md, 'Where they cannot coincide')")
        off = [k for k, v in lags.items() if v is None]
        if off:
            self.warnings.append(
                f"population(s) {off[:6]} are reached over paths with different numbers of feed-forward synapses; "
                f"no time shift makes the chip's spikes line up with a simulation that delivers feed-forward "
                f"input in the same step (docs/nir.md, 'Timing')")

    def _declare(self, name: str, ins: list[_Pending]) -> None:
        """Publish a neuron's output (size, layout, depth) before its recurrent inputs are known."""
        syn = next((s.synapse for s in ins if s.synapse is not None), None)
        if syn is None:
            src = ins[0].source if ins else "?"
            raise UnsupportedLayerError(
                f"node '{name}' is fed by '{src}' without a synapse node in between; snnc needs "
                f"Affine/Linear/Conv2d before every neuron node.")
        shape = syn.out_shape if isinstance(syn, Conv) else (syn.out_size,)
        self.flow[name] = _Pending(name, shape)
        self._shapes[name] = shape
        self._populations.add(name)
        self._depths[name] = self._depth(ins)

    def _input(self, name: str, node: Any) -> None:
        shape = tuple(int(x) for x in np.asarray(next(iter(node.input_type.values()))).reshape(-1))
        if len(shape) in (2, 4) and shape[0] == 1:   # Norse and nirtorch keep the sample's batch dimension
            shape = shape[1:]
            self.warnings.append(f"Input '{name}': leading batch dimension of 1 dropped, shape {shape}")
        if len(shape) not in (1, 3) and self.input_shape is not None:
            self.warnings.append(f"Input '{name}' has shape {shape}; --input-shape {self.input_shape} used")
            shape = tuple(self.input_shape)
        if len(shape) not in (1, 3):
            raise UnsupportedLayerError(f"Input '{name}' has shape {shape}: snnc takes (features,) or (C, H, W); "
                                        f"give the shape with --input-shape C,H,W or F.")
        self.nodes.append(Input(name, shape))
        self.flow[name] = _Pending(name, shape)
        self._shapes[name] = shape

    def _no_synapse(self, name: str, kind: str, src: _Pending) -> None:
        if src.synapse is not None:
            raise UnsupportedLayerError(
                f"node '{name}' ({kind}) follows a synapse node: snnc needs every Affine/Linear/Conv2d to feed "
                f"a neuron node directly.")

    def _delay(self, name: str, node: Any, src: _Pending) -> _Pending:
        """A NIR ``Delay`` (y(t) = x(t - delay), per element, in time units) as whole steps of this import's
        ``dt``, folded into a synapse: after an Affine/Linear, per output neuron (its synapses' delays);
        after a neuron or the Input, per input line of the synapse that reads it next. Integer steps in
        [0, MAX_DELAY] only; a conv synapse takes none (snnc delays dense synapses)."""
        where = f"node '{name}' (Delay)"
        if self._on_cycle(name):
            raise UnsupportedLayerError(
                f"{where} is on a cycle: snnc folds Delay nodes into feed-forward synapses only (a delayed "
                f"synapse on a cycle is refused, compiler/ir.py), and a recurrent connection needs no Delay node: "
                f"every synapse on the chip delays one step. Remove the Delay from the cycle.")
        dt = float(self.dt or EXPORT_DT)
        raw = _arr(node.delay).reshape(-1)
        steps = raw / dt
        if raw.size == 0 or not np.all(np.isfinite(steps)):
            raise UnsupportedLayerError(f"{where}: delay {raw.tolist()[:6]} is not a finite array of times.")
        whole = np.round(steps)
        if not np.allclose(steps, whole, rtol=0, atol=1e-6 * max(1.0, float(np.abs(steps).max()))):
            bad = float(steps[np.argmax(np.abs(steps - whole))])
            raise UnsupportedLayerError(f"{where}: delay {raw[np.argmax(np.abs(steps - whole))]:g} is {bad:g} steps "
                                        f"of dt = {dt:g}: snnc delays whole steps; export delays that are multiples "
                                        f"of dt (or give the time step with --nir-dt).")
        if whole.min() < 0 or whole.max() > MAX_DELAY:
            raise UnsupportedLayerError(f"{where}: delay of {int(whole.min())}..{int(whole.max())} steps (dt = {dt:g}) "
                                        f"is outside [0, {MAX_DELAY}] (on top of the one-step synapse; Loihi 2 and "
                                        f"netx hold 0..{MAX_DELAY}). Use relay neurons for longer delays.")
        steps_i = whole.astype(np.int64)
        nodes = (*src.delay_nodes, name)
        if src.synapse is not None:          # Affine/Linear -> Delay: per output neuron
            syn = src.synapse
            if isinstance(syn, Conv):
                raise UnsupportedLayerError(f"{where} follows Conv2d '{syn.name}': snnc delays dense synapses only "
                                            f"(Affine/Linear -> Delay -> neuron); remove the Delay.")
            if steps_i.size not in (1, syn.out_size):
                raise UnsupportedLayerError(f"{where}: {steps_i.size} delays after '{syn.name}', which has "
                                            f"{syn.out_size} outputs (one delay per output, or one for all).")
            total = (syn.delay.astype(np.int64) if syn.delay is not None else 0) + steps_i.reshape(-1, 1)
            if int(np.max(total)) > MAX_DELAY:
                raise UnsupportedLayerError(f"{where}: with the delays before it, synapse '{syn.name}' delays up to "
                                            f"{int(np.max(total))} steps, more than {MAX_DELAY}.")
            new = Dense(syn.name, syn.weight, delay=np.broadcast_to(total, syn.weight.shape))
            return _Pending(src.source, src.shape, synapse=new, bias=src.bias, delay_nodes=nodes)
        if src.pool > 1:
            raise UnsupportedLayerError(f"{where} follows a pooling node: snnc folds a Delay after a neuron into the "
                                        f"Affine/Linear that reads it; put the Delay before the pool or after the "
                                        f"synapse.")
        n = int(np.prod(src.shape))
        if steps_i.size not in (1, n):
            raise UnsupportedLayerError(f"{where}: {steps_i.size} delays on the {n} outputs of '{src.source}' (one "
                                        f"delay per element, or one for all).")
        total = (src.axon_delay if src.axon_delay is not None else 0) + np.broadcast_to(steps_i, (n,))
        if int(np.max(total)) > MAX_DELAY:
            raise UnsupportedLayerError(f"{where}: with the Delay nodes before it, '{src.source}' is delayed up to "
                                        f"{int(np.max(total))} steps, more than {MAX_DELAY}.")
        return _Pending(src.source, src.shape, axon_delay=np.asarray(total, dtype=np.int64), delay_nodes=nodes)

    def _on_cycle(self, name: str) -> bool:
        """Whether NIR node ``name`` reaches itself."""
        seen, todo = set(), list(self._succ.get(name, []))
        while todo:
            k = todo.pop()
            if k == name:
                return True
            if k not in seen:
                seen.add(k)
                todo.extend(self._succ.get(k, []))
        return False

    def _pool(self, name: str, kind: str, node: Any, src: _Pending) -> _Pending:
        self._no_synapse(name, kind, src)
        k = tuple(int(x) for x in np.atleast_1d(_arr(node.kernel_size)).astype(int).reshape(-1))
        s = tuple(int(x) for x in np.atleast_1d(_arr(node.stride)).astype(int).reshape(-1))
        p = tuple(int(x) for x in np.atleast_1d(_arr(node.padding)).astype(int).reshape(-1))
        k, s = (k * 2)[:2], (s * 2)[:2]
        if len(src.shape) != 3 or src.pool > 1 or k[0] != k[1] or s != k or any(p):
            raise UnsupportedLayerError(
                f"node '{name}' ({kind}): snnc folds one square, non-overlapping, unpadded pool (stride = "
                f"kernel) on a (C, H, W) map into the next synapse; got kernel {k}, stride {s}, padding {p}.")
        c, h, w = src.shape
        pooled = (c, h // k[0], w // k[0])
        scale = 1.0 / (k[0] * k[0]) if kind == "AvgPool2d" else 1.0
        return _Pending(src.source, pooled, k[0], scale, pooled_shape=pooled)

    def _synapse(self, name: str, kind: str, node: Any, src: _Pending) -> _Pending:
        self._no_synapse(name, kind, src)
        w = _arr(node.weight) * src.pool_scale
        bias = _arr(node.bias) if kind in ("Affine", "Conv2d") and getattr(node, "bias", None) is not None else None
        source_shape = self._shape_of(src.source)
        if src.axon_delay is not None and kind == "Conv2d":
            raise UnsupportedLayerError(f"node '{src.delay_nodes[-1]}' (Delay) feeds Conv2d '{name}': snnc delays "
                                        f"dense synapses only (Affine/Linear); remove the Delay.")
        if kind == "Conv2d":
            if len(src.shape) != 3:
                raise UnsupportedLayerError(f"Conv2d '{name}' reads a {src.shape} input; it needs (C, H, W).")
            pad = node.padding
            if isinstance(pad, (str, bytes)):
                pad = pad.decode() if isinstance(pad, bytes) else pad
                if pad == "valid":
                    pad = (0, 0)
                elif pad == "same":
                    kh, kw = w.shape[2:]
                    if kh % 2 == 0 or kw % 2 == 0:
                        raise UnsupportedLayerError(f"Conv2d '{name}': padding 'same' with an even kernel is "
                                                    f"asymmetric; snnc supports symmetric padding.")
                    dil = tuple(np.atleast_1d(node.dilation).astype(int).tolist() * 2)[:2]
                    pad = (dil[0] * (kh - 1) // 2, dil[1] * (kw - 1) // 2)
                else:
                    raise UnsupportedLayerError(f"Conv2d '{name}': padding '{pad}' is not supported")
            geom = {"stride": tuple(np.atleast_1d(node.stride).astype(int)), "padding": tuple(np.atleast_1d(pad).astype(int)),
                    "dilation": tuple(np.atleast_1d(node.dilation).astype(int))}
            geom = {k: (v * 2)[:2] for k, v in geom.items()}
            if src.pool > 1:
                w, geom = fuse_pool_into_conv(w, src.shape, src.pool, geom["stride"], geom["padding"],
                                              geom["dilation"], source_shape, f"node '{name}'")
            try:
                syn: Dense | Conv = Conv(name, w, source_shape, groups=int(node.groups), **geom)
            except GraphError as e:
                raise UnsupportedLayerError(str(e)) from None
            out_shape: tuple[int, ...] = syn.out_shape
            if bias is not None:
                bias = np.repeat(bias.reshape(-1), int(np.prod(out_shape[1:])))
        else:
            if w.ndim != 2 or w.shape[1] != int(np.prod(src.shape)):
                raise UnsupportedLayerError(f"{kind} '{name}': weight {w.shape} does not fit its input of "
                                            f"{int(np.prod(src.shape))} features")
            if src.pool > 1:
                w = fuse_pool_into_dense(w, src.pooled_shape, src.pool, source_shape)  # type: ignore[arg-type]
            axon = None if src.axon_delay is None else np.broadcast_to(src.axon_delay.reshape(1, -1), w.shape)
            syn = Dense(name, w, delay=axon)
            out_shape = (w.shape[0],)
        if bias is not None and not np.any(bias):
            bias = None
        return _Pending(src.source, out_shape, synapse=syn, bias=bias)

    def _shape_of(self, name: str) -> tuple[int, ...]:
        return self._shapes[name]

    def _decays(self, name: str, kind: str, node: Any) -> tuple[float, float, np.ndarray]:
        """(cd, vd, per-neuron input gain) of one neuron node under the chosen convention."""
        dt = float(self.dt or EXPORT_DT)
        step = dt * dt if self.convention == "norse" else dt
        r = _arr(node.r) if hasattr(node, "r") else np.array(1.0)
        if kind == "IF":
            return 1.0, 0.0, r
        tau_mem = _arr(node.tau if kind in ("LIF", "LI") else node.tau_mem)
        vd = _uniform(name, "membrane time constant", step / tau_mem)
        no_leak = bool(np.isinf(tau_mem).all() and np.isinf(r).all())  # snnTorch beta = 1: tau = r = inf
        with np.errstate(invalid="ignore"):
            if kind in ("LIF", "LI"):
                cd, gain = 1.0, (np.array(1.0) if no_leak else vd * r)   # the limit r/tau = 1/dt
            else:
                cd = _uniform(name, "synaptic time constant", step / _arr(node.tau_syn))
                w_in = _arr(node.w_in)
                if no_leak:
                    gain = cd * w_in if self.convention == "euler" else w_in
                else:
                    gain = (w_in * vd * r) if self.convention == "norse" else (cd * w_in * vd * r)
        for what, d in (("current", cd), ("voltage", vd)):
            if not 0.0 <= d <= 1.0 + 1e-9:
                raise UnsupportedLayerError(
                    f"node '{name}' ({kind}): the per-step {what} decay is {d:g} under the '{self.convention}' "
                    f"convention with dt = {dt:g}: a time constant shorter than the step. Check --nir-dt and "
                    f"--nir-convention.")
        return min(cd, 1.0), min(vd, 1.0), gain

    def _neuron(self, name: str, kind: str, node: Any, ins: list[_Pending]) -> None:
        cd, vd, gain = self._decays(name, kind, node)
        spiking = kind in ("LIF", "CubaLIF", "IF")
        if spiking:
            thr = _uniform(name, "threshold", node.v_threshold)
            if thr <= 0:
                raise UnsupportedLayerError(f"node '{name}': threshold {thr:g} <= 0; Loihi thresholds are positive.")
            reset = getattr(node, "v_reset", None)
            if reset is not None and np.any(_arr(reset) != 0):
                raise UnsupportedLayerError(f"node '{name}': v_reset = {_arr(reset).reshape(-1)[0]:g}; Loihi resets "
                                            f"v to 0. Shift v_leak, v_reset and v_threshold so that v_reset = 0.")
        else:
            thr = 1.0
            self.readout = "membrane"
        size = None
        synapses = []
        for src in ins:
            if src.synapse is None:
                raise UnsupportedLayerError(
                    f"node '{name}' ({kind}) is fed by '{src.source}' without a synapse node in between; snnc needs "
                    f"Affine/Linear/Conv2d before every neuron node.")
            synapses.append(src)
            size = src.synapse.out_size
        assert size is not None
        g = np.broadcast_to(gain.reshape(-1) if gain.size > 1 else gain, (size,)).astype(np.float64)
        bias = np.zeros(size)
        step_lag = self._depths[name]     # set when the neuron was declared, from its feed-forward inputs
        for src in synapses:
            syn = src.synapse
            assert syn is not None
            per_channel = g if isinstance(syn, Dense) else g.reshape(syn.out_shape[0], -1)[:, 0]
            if isinstance(syn, Conv) and not np.allclose(g.reshape(syn.out_shape[0], -1), per_channel[:, None]):
                raise UnsupportedLayerError(f"node '{name}': input gain r varies within a conv channel")
            w = syn.weight * per_channel.reshape(-1, *([1] * (syn.weight.ndim - 1)))
            new = Dense(syn.name, w, delay=syn.delay) if isinstance(syn, Dense) else Conv(
                syn.name, w, syn.in_shape, syn.stride, syn.padding, syn.dilation, syn.groups)
            self.nodes.append(new)
            self.edges.append((src.source, syn.name))
            self.edges.append((syn.name, name))
            if src.bias is not None:
                if cd < 1.0:
                    raise UnsupportedLayerError(
                        f"node '{name}' ({kind}): its input node '{syn.name}' has a bias, which enters the decaying "
                        f"synaptic current; Loihi adds bias to the membrane, not to the current, so this cannot be "
                        f"represented. Export with bias=False (or use a neuron without synaptic current; snnTorch's "
                        f"RSynaptic gives its recurrent nn.Linear a bias: zero it and freeze it before training, "
                        f"layer.recurrent.bias.data.zero_(); layer.recurrent.bias.requires_grad_(False)).")
                bias += g * src.bias
        v_leak = getattr(node, "v_leak", None)
        if v_leak is not None and np.any(_arr(v_leak) != 0):
            if vd == 0:
                raise UnsupportedLayerError(f"node '{name}': v_leak != 0 without leak (infinite tau) has no effect "
                                            f"in NIR's ODE but no finite Loihi bias either; set v_leak = 0.")
            bias += vd * np.broadcast_to(_arr(v_leak).reshape(-1) if _arr(v_leak).size > 1 else _arr(v_leak), (size,))
            if self.convention == "norse":
                self.warnings.append(f"node '{name}': Norse starts v at v_leak, snnc (and Loihi) at 0: the first "
                                     f"steps differ")
        if np.any(bias):
            self.warnings.append(f"node '{name}': a bias (Affine bias or v_leak) acts from step 0, {step_lag} step(s) "
                                 f"before the first input reaches this layer on the chip (one-step synaptic delay "
                                 f"per layer): early steps can differ from the source simulation")
        shape = ins[0].synapse.out_shape if isinstance(ins[0].synapse, Conv) else None  # type: ignore[union-attr]
        self.nodes.append(CubaLIF(name, size, cd, vd, thr, bias if np.any(bias) else None, None, spiking, shape))
        if self.flow[name].shape != (shape if shape is not None else (size,)):
            raise UnsupportedLayerError(f"node '{name}': its input synapses disagree on its size or layout "
                                        f"({self.flow[name].shape} and {shape if shape is not None else (size,)}).")

    def _depth(self, ins: list[_Pending]) -> int:
        """Synaptic delays between the input and this layer on the chip."""
        return 1 + max((self._depths.get(s.source, 0) for s in ins), default=0)
