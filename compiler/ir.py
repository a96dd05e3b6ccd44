"""The intermediate graph: typed nodes, explicit edges, and the discrete semantics NIR leaves open.

Two families of nodes share one ``Graph``: float nodes (what the frontend reads from a model)
and fixed-point nodes (what the quantize pass produces and every backend and engine reads).

The discrete-time update of a ``CubaLIF`` population (the one equation every engine implements;
other docstrings point here). Per timestep ``t``, for integer state in the fixed-point graph::

    u[t] = trunc0(u[t-1] * (4096 - du_eff) / 4096) + (a[t] << 6)       wraps at 24 bits
    v[t] = trunc0(v[t-1] * (4096 - dv) / 4096) + u[t] + (bias << 6)    clips to +-(2**23 - 1)
    s[t] = v[t] > (vth << 6);  v[t] = 0 where s[t]                      u is not reset

where ``trunc0`` rounds toward zero, ``du_eff = du + 1`` is the effective current decay, and
``a[t] = W @ s_pre[t-1]``: every Dense or Conv connection delays by exactly one step, so layer ``k``
(1-based) first sees input ``x[1]`` at step ``1 + k``. State starts at zero for every sample.
The float graph uses the same equations without rounding, wrapping, clipping or shifts.

Layout: every spike vector is flat in PyTorch's (C, H, W) order (``Flatten`` is therefore free); a
population or input that a convolution reads has a ``shape`` (C, H, W). Convolutions are
cross-correlations with PyTorch's weight layout (out, in / groups, kh, kw); the Lava runtime flips
them into Lava's true convolution and (W, H, C) layout (SP/lava/proc/conv/utils.py:186-218).
A fixed-point Conv delivers ``wrap24(conv(W, s))``: Lava's Conv uses its integer weights as they
are (no clip, truncation or ``weight_exp``) and wraps its output to 24 bits
(SP/lava/proc/conv/models.py:34-51, 68-79; conv/utils.py:67-84).
"""
from __future__ import annotations

import copyreg
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Iterator, Mapping, Union

import numpy as np

from snnc.errors import GraphError
from snnc.models.quant import LOIHI_FIXED_POINT, FixedPointFormat

#: The discrete semantics every CubaLIF node carries into every file format we write.
CUBA_SEMANTICS: Mapping[str, object] = MappingProxyType({
    "dt": 1,
    "update_order": "u, then v (using the new u), then spike, then reset",
    "reset": "v := 0 on spike; u kept",
    "spike_condition": "v > vth << 6 (strict)",
    "current_decay_encoding": "effective du_eff in [0, 4096]; Lava register du = du_eff - 1",
    "voltage_decay_encoding": "dv in [0, 4096]; factor (4096 - dv) / 4096",
    "decay_rounding": "toward zero",
    "u_overflow": "wrap at 24 bits (Lava PyLifModelBitAcc)",
    "v_overflow": "clip to +-(2**23 - 1)",
    "synapse_delay_steps": 1,
    "initial_state": "zero at the start of every sample",
    "reference": "lava.proc.lif.models.PyLifModelBitAcc, lava.proc.dense.models.PyDenseModelBitAcc",
})
# Graphs travel to worker processes (snnc.hwsim.parallel) by pickle, and a mappingproxy does not
# pickle by itself: rebuild it from a plain dict.
def _mappingproxy(d: dict) -> Mapping[str, object]:
    return MappingProxyType(d)


copyreg.pickle(MappingProxyType, lambda m: (_mappingproxy, (dict(m),)))


@dataclass(frozen=True, eq=False)
class Input:
    """Input of ``shape`` per timestep: binary spikes (``bits`` = 0), or graded spikes, unsigned
    integers of ``bits`` bits (an analog image for an encoding layer; Lava Dense ``num_message_bits``)."""

    name: str
    shape: tuple[int, ...]
    bits: int = 0

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))

    def check_values(self, inputs: np.ndarray) -> np.ndarray:
        """(batch, T, size) binary spikes -> bool, or graded ``bits``-bit values -> int64; every engine
        calls this, so they all refuse the same inputs with the same message."""
        x = np.asarray(inputs)
        if x.ndim != 3 or x.shape[2] != self.size:
            raise ValueError(f"inputs must have shape (batch, T, {self.size}), got {x.shape}")
        top = 2 ** self.bits - 1 if self.bits else 1
        if x.dtype != bool and (not np.all(x == np.round(x)) or x.min(initial=0) < 0 or x.max(initial=0) > top):
            what = f"graded {self.bits}-bit integers in [0, {top}]" if self.bits else "binary spikes (0/1)"
            raise ValueError(f"inputs must be {what}")
        return x.astype(np.int64) if self.bits else x.astype(bool)


@dataclass(frozen=True, eq=False)
class Output:
    """Marks the node whose spikes are the network's output."""

    name: str


def _pair(value: object, what: str, name: str) -> tuple[int, int]:
    """(h, w) from an int or a pair, as torch's Conv2d takes them."""
    v = tuple(int(x) for x in np.asarray(value).reshape(-1))
    if len(v) == 1:
        v = (v[0], v[0])
    if len(v) != 2:
        raise GraphError(f"{name}: {what} must be an int or an (h, w) pair, got {value}")
    return v  # type: ignore[return-value]


class _WeightShape:
    """Sizes of a synapse node from its (out, in) weight matrix."""

    weight: np.ndarray

    @property
    def in_size(self) -> int:
        return int(self.weight.shape[1])

    @property
    def out_size(self) -> int:
        return int(self.weight.shape[0])


@dataclass(frozen=True, eq=False)
class Dense(_WeightShape):
    """Float all-to-all synapses, ``weight`` of shape (out, in) in threshold units."""

    name: str
    weight: np.ndarray

    def __post_init__(self) -> None:
        if self.weight.ndim != 2:
            raise GraphError(f"{self.name}: weight must be 2-D (out, in), got shape {self.weight.shape}")


class _ConvShape:
    """Geometry of a convolution node (PyTorch conventions; ``in_shape`` is (C, H, W))."""

    name: str
    weight: np.ndarray
    in_shape: tuple[int, int, int]
    stride: tuple[int, int]
    padding: tuple[int, int]
    dilation: tuple[int, int]
    groups: int

    def _check_geometry(self) -> None:
        object.__setattr__(self, "in_shape", tuple(int(x) for x in np.asarray(self.in_shape).reshape(-1)))
        for what in ("stride", "padding", "dilation"):
            object.__setattr__(self, what, _pair(getattr(self, what), what, self.name))
        object.__setattr__(self, "groups", int(self.groups))
        if self.weight.ndim != 4:
            raise GraphError(f"{self.name}: conv weight must be 4-D (out, in/groups, kh, kw), got {self.weight.shape}")
        if len(self.in_shape) != 3:
            raise GraphError(f"{self.name}: conv input shape must be (C, H, W), got {self.in_shape}")
        c_in, g = self.in_shape[0], self.groups
        if g < 1 or c_in % g or self.weight.shape[0] % g or self.weight.shape[1] * g != c_in:
            raise GraphError(f"{self.name}: weight {self.weight.shape} with groups={g} does not fit {c_in} input "
                             f"channels (need in/groups = weight.shape[1] and both channel counts divisible)")
        if min(self.stride) < 1 or min(self.dilation) < 1 or min(self.padding) < 0:
            raise GraphError(f"{self.name}: stride and dilation must be >= 1 and padding >= 0")
        if min(self.out_shape) < 1:
            raise GraphError(f"{self.name}: kernel {self.kernel} (dilation {self.dilation}) does not fit the "
                             f"input {self.in_shape} with padding {self.padding}")

    @property
    def kernel(self) -> tuple[int, int]:
        return int(self.weight.shape[2]), int(self.weight.shape[3])

    @property
    def out_shape(self) -> tuple[int, int, int]:
        hw = [(self.in_shape[1 + i] + 2 * self.padding[i] - self.dilation[i] * (self.kernel[i] - 1) - 1)
              // self.stride[i] + 1 for i in range(2)]
        return int(self.weight.shape[0]), hw[0], hw[1]

    @property
    def in_size(self) -> int:
        return int(np.prod(self.in_shape))

    @property
    def out_size(self) -> int:
        return int(np.prod(self.out_shape))

    def geometry(self) -> dict[str, object]:
        """Plain-data geometry (for reports and file formats)."""
        return {"in_shape": list(self.in_shape), "out_shape": list(self.out_shape), "kernel": list(self.kernel),
                "stride": list(self.stride), "padding": list(self.padding), "dilation": list(self.dilation),
                "groups": self.groups}


@dataclass(frozen=True, eq=False)
class _ConvNode(_ConvShape):
    """The fields of both conv nodes (PyTorch cross-correlation layout and geometry)."""

    name: str
    weight: np.ndarray
    in_shape: tuple[int, int, int]
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)
    dilation: tuple[int, int] = (1, 1)
    groups: int = 1


@dataclass(frozen=True, eq=False)
class Conv(_ConvNode):
    """Float 2-D convolution synapses (cross-correlation, PyTorch layout), weights in threshold units."""

    def __post_init__(self) -> None:
        self._check_geometry()


@dataclass(frozen=True, eq=False)
class QConv(_ConvNode):
    """Fixed-point Conv: integer weights used as they are, output wrapped to 24 bits, one-step delay."""

    def __post_init__(self) -> None:
        if not np.issubdtype(self.weight.dtype, np.integer):
            raise GraphError(f"{self.name}: fixed-point conv weight must be integer, got {self.weight.dtype}")
        self._check_geometry()


def _check_shape(neuron: "CubaLIF | QCubaLIF") -> None:
    if neuron.shape is not None:
        shape = tuple(int(x) for x in np.asarray(neuron.shape).reshape(-1))
        object.__setattr__(neuron, "shape", shape)
        if int(np.prod(shape)) != neuron.size:
            raise GraphError(f"{neuron.name}: shape {shape} does not hold {neuron.size} neurons")


def dims(node: "Node") -> tuple[int, ...]:
    """The layout of what a node emits: an Input's or population's shape, flat (size,) if it has none."""
    shape = getattr(node, "shape", None)
    return tuple(shape) if shape is not None else (int(node.size),)  # type: ignore[union-attr]


@dataclass(frozen=True, eq=False)
class CubaLIF:
    """Float CUBA-LIF population (equations in this module's docstring).

    ``int_scale`` is set when the model was trained hardware-exact: the integer units per float
    unit that training already used, so the compiler must use exactly it.
    """

    name: str
    size: int
    current_decay: float
    voltage_decay: float
    threshold: float
    bias: np.ndarray | None = None
    int_scale: float | None = None
    spiking: bool = True     # False: a readout integrator; the chip gets the largest threshold
    shape: tuple[int, ...] | None = None   # (C, H, W) when a convolution feeds or reads it

    def __post_init__(self) -> None:
        _check_shape(self)


@dataclass(frozen=True, eq=False)
class QDense(_WeightShape):
    """Fixed-point Dense: integer ``weight`` (out, in); delivered ``(W @ s) << weight_exp`` next step."""

    name: str
    weight: np.ndarray
    weight_exp: int = 0

    def __post_init__(self) -> None:
        if self.weight.ndim != 2 or not np.issubdtype(self.weight.dtype, np.integer):
            raise GraphError(f"{self.name}: fixed-point weight must be a 2-D integer array, "
                             f"got {self.weight.dtype} {self.weight.shape}")


@dataclass(frozen=True, eq=False)
class QCubaLIF:
    """Fixed-point CUBA-LIF population; ``du`` is the *effective* current decay (Lava's ``du + 1``)."""

    name: str
    size: int
    du: int
    dv: int
    vth: int
    bias_mant: np.ndarray
    bias_exp: int = 6
    fmt: FixedPointFormat = LOIHI_FIXED_POINT
    semantics: Mapping[str, object] = field(default_factory=lambda: CUBA_SEMANTICS)
    shape: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        _check_shape(self)

    @property
    def lava_du(self) -> int:
        """The register value Lava's LIF takes (it adds ds_offset=1 back)."""
        return self.du - self.fmt.current_decay_offset


Node = Union[Input, Output, Dense, Conv, CubaLIF, QDense, QConv, QCubaLIF]
SYNAPSES = (Dense, QDense, Conv, QConv)
CONVS = (Conv, QConv)
NEURONS = (CubaLIF, QCubaLIF)
Synapse = Union[Dense, QDense, Conv, QConv]
Neuron = Union[CubaLIF, QCubaLIF]


@dataclass(frozen=True)
class Population:
    """One neuron population and every synapse node that drives it, with each synapse's source
    (the Input's or a population's name). Its input per step is the sum over those synapses."""

    neuron: Neuron
    inputs: tuple[tuple[Synapse, str], ...]

    @property
    def name(self) -> str:
        return self.neuron.name


@dataclass(frozen=True)
class Graph:
    """Named nodes and (source, destination) edges; ``meta`` holds the input spec and provenance.

    A feed-forward DAG: Input -> synapse -> population -> synapse -> ... -> population -> Output.
    Every synapse has one source (the Input or a population) and one destination population; a
    population may be driven by several synapses (their inputs add) and feed several synapses
    (e.g. NeuNorm's auxiliary population, see ``snnc.models.neurons``). One population feeds Output.
    """

    nodes: Mapping[str, Node]
    edges: tuple[tuple[str, str], ...]
    meta: Mapping[str, object] = field(default_factory=dict)

    @staticmethod
    def build(nodes: list[Node], edges: list[tuple[str, str]], meta: Mapping[str, object] | None = None) -> "Graph":
        """Build and check a graph, checking names are unique."""
        names = [n.name for n in nodes]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise GraphError(f"duplicate node names: {sorted(dup)}")
        g = Graph({n.name: n for n in nodes}, tuple(edges), dict(meta or {}))
        g.check()
        return g

    @staticmethod
    def chain(nodes: list[Node], meta: Mapping[str, object] | None = None) -> "Graph":
        """Build a feed-forward chain (each node feeds the next)."""
        return Graph.build(nodes, [(a.name, b.name) for a, b in zip(nodes[:-1], nodes[1:])], meta)

    def _adjacency(self) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
        succ: dict[str, list[str]] = {n: [] for n in self.nodes}
        pred: dict[str, list[str]] = {n: [] for n in self.nodes}
        for a, b in self.edges:
            if a not in self.nodes or b not in self.nodes:
                raise GraphError(f"edge ({a}, {b}) names a node that is not in the graph")
            succ[a].append(b)
            pred[b].append(a)
        return succ, pred

    def ordered(self) -> list[Node]:
        """Every node in a topological order from the Input (Kahn's algorithm, ties by insertion)."""
        inputs = [n for n in self.nodes.values() if isinstance(n, Input)]
        if len(inputs) != 1:
            raise GraphError(f"expected exactly one Input node, found {len(inputs)}")
        succ, pred = self._adjacency()
        waiting = {n: len(p) for n, p in pred.items()}
        ready = [n for n in self.nodes if waiting[n] == 0]
        unreachable = [n for n in ready if not isinstance(self.nodes[n], Input)]
        if unreachable:
            raise GraphError(f"nodes not reachable from the input: {sorted(unreachable)}")
        order: list[Node] = []
        while ready:
            cur = ready.pop(0)
            order.append(self.nodes[cur])
            for nxt in succ[cur]:
                waiting[nxt] -= 1
                if waiting[nxt] == 0:
                    ready.append(nxt)
        if len(order) != len(self.nodes):
            stuck = sorted(n for n, w in waiting.items() if w > 0)
            raise GraphError(f"cycle through {stuck}: recurrent graphs are not supported yet")
        return order

    def populations(self) -> list[Population]:
        """Neuron populations in topological order, each with its driving synapses and their sources."""
        _, pred = self._adjacency()
        pops = []
        for node in self.ordered():
            if isinstance(node, NEURONS):
                syns = [self.nodes[p] for p in pred[node.name]]
                pops.append(Population(node, tuple((s, pred[s.name][0]) for s in syns)))  # type: ignore[misc]
        return pops

    def layers(self) -> Iterator[tuple[Node, Node]]:
        """(synapse, neuron) pairs of a chain in order; GraphError if the graph is not a chain."""
        for pop in self.populations():
            if len(pop.inputs) != 1:
                raise GraphError(f"population '{pop.name}' has {len(pop.inputs)} input synapses: "
                                 f"the graph is not a chain of layers")
            yield pop.inputs[0][0], pop.neuron

    @property
    def is_chain(self) -> bool:
        succ, _ = self._adjacency()
        return all(len(v) <= 1 for v in succ.values())

    @property
    def input(self) -> Input:
        return self.ordered()[0]  # type: ignore[return-value]

    @property
    def output(self) -> Neuron:
        """The population whose activity is the network's output."""
        _, pred = self._adjacency()
        out = [n for n in self.nodes.values() if isinstance(n, Output)]
        return self.nodes[pred[out[0].name][0]]  # type: ignore[return-value]

    def check(self) -> None:
        """Node kinds alternate synapse/neuron along every edge and sizes agree on every edge."""
        order = self.ordered()
        succ, pred = self._adjacency()
        outputs = [n for n in order if isinstance(n, Output)]
        if len(outputs) != 1:
            raise GraphError(f"expected exactly one Output node, found {len(outputs)}")
        if not any(isinstance(n, NEURONS) for n in order):
            raise GraphError("graph has no layers")
        for node in order:
            name, ins, outs = node.name, pred[node.name], succ[node.name]
            kinds = [type(self.nodes[p]).__name__ for p in ins]
            if isinstance(node, SYNAPSES):
                if len(ins) != 1 or not isinstance(self.nodes[ins[0]], (Input, *NEURONS)):
                    raise GraphError(f"synapse '{name}' must have exactly one source (the input or a neuron "
                                     f"population), has {list(zip(ins, kinds))}")
                src = self.nodes[ins[0]]
                size = src.size  # type: ignore[union-attr]
                if node.in_size != size:
                    raise GraphError(f"type mismatch: {src.name}.output ({size},) -> {name}.input ({node.in_size},)")
                if isinstance(node, CONVS) and dims(src) != tuple(node.in_shape):
                    raise GraphError(f"type mismatch: {src.name}.output {dims(src)} -> {name}.input "
                                     f"{tuple(node.in_shape)} (a convolution needs its source's (C, H, W) shape)")
                if len(outs) != 1 or not isinstance(self.nodes[outs[0]], NEURONS):
                    raise GraphError(f"synapse '{name}' must feed exactly one neuron population, feeds {outs}")
            elif isinstance(node, NEURONS):
                if not ins or not all(isinstance(self.nodes[p], SYNAPSES) for p in ins):
                    what = f"'{ins[0]}' ({kinds[0]})" if ins else "nothing"
                    raise GraphError(f"node '{name}' ({type(node).__name__}) follows {what}: expected "
                                     f"{' or '.join(t.__name__ for t in SYNAPSES)}")
                for p in ins:
                    syn = self.nodes[p]
                    if syn.out_size != node.size:  # type: ignore[union-attr]
                        raise GraphError(f"type mismatch: {p}.output ({syn.out_size},) -> "  # type: ignore[union-attr]
                                         f"{name}.input ({node.size},)")
                    if isinstance(syn, CONVS) and node.shape is not None and tuple(node.shape) != syn.out_shape:
                        raise GraphError(f"type mismatch: {p}.output {syn.out_shape} -> {name}.input {node.shape}")
            elif isinstance(node, Output):
                if len(ins) != 1 or not isinstance(self.nodes[ins[0]], NEURONS):
                    last = self.nodes[ins[0]] if ins else None
                    raise GraphError(f"the last node '{ins[0] if ins else None}' must be a neuron population"
                                     if last is not None else "the Output node has no source")
            elif isinstance(node, Input) and not outs:
                raise GraphError("the Input feeds nothing")

    @property
    def is_fixed_point(self) -> bool:
        return all(not isinstance(n, (Dense, Conv, CubaLIF)) for n in self.nodes.values())
