"""The intermediate graph: typed nodes, explicit edges, and the discrete semantics NIR leaves open.

Two families of nodes share one ``Graph``: float nodes (what the frontend reads from a model)
and fixed-point nodes (what the quantize pass produces and every backend and engine reads).

The discrete-time update of a ``CubaLIF`` population (the one equation every engine implements;
other docstrings point here). Per timestep ``t``, for integer state in the fixed-point graph::

    u[t] = trunc0(u[t-1] * (4096 - du_eff) / 4096) + (a[t] << 6)       wraps at 24 bits
    v[t] = trunc0(v[t-1] * (4096 - dv) / 4096) + u[t] + (bias << 6)    clips to +-(2**23 - 1)
    s[t] = v[t] > (vth << 6);  v[t] = 0 where s[t]                      u is not reset

where ``trunc0`` rounds toward zero, ``du_eff = du + 1`` is the effective current decay, and
``a[t] = W @ s_pre[t-1]``: every Dense connection delays by exactly one step, so layer ``k``
(1-based) first sees input ``x[1]`` at step ``1 + k``. State starts at zero for every sample.
The float graph uses the same equations without rounding, wrapping, clipping or shifts.
"""
from __future__ import annotations

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


@dataclass(frozen=True, eq=False)
class Input:
    """Spike input of ``shape`` (per timestep)."""

    name: str
    shape: tuple[int, ...]

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))


@dataclass(frozen=True, eq=False)
class Output:
    """Marks the node whose spikes are the network's output."""

    name: str


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

    @property
    def lava_du(self) -> int:
        """The register value Lava's LIF takes (it adds ds_offset=1 back)."""
        return self.du - self.fmt.current_decay_offset


Node = Union[Input, Output, Dense, CubaLIF, QDense, QCubaLIF]
SYNAPSES = (Dense, QDense)
NEURONS = (CubaLIF, QCubaLIF)


@dataclass(frozen=True)
class Graph:
    """Named nodes and (source, destination) edges; ``meta`` holds the input spec and provenance."""

    nodes: Mapping[str, Node]
    edges: tuple[tuple[str, str], ...]
    meta: Mapping[str, object] = field(default_factory=dict)

    @staticmethod
    def chain(nodes: list[Node], meta: Mapping[str, object] | None = None) -> "Graph":
        """Build a feed-forward chain, checking names are unique."""
        names = [n.name for n in nodes]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise GraphError(f"duplicate node names: {sorted(dup)}")
        edges = tuple(zip(names[:-1], names[1:]))
        g = Graph({n.name: n for n in nodes}, edges, dict(meta or {}))
        g.check()
        return g

    def ordered(self) -> list[Node]:
        """Nodes from the Input to the Output; this version supports single chains only."""
        inputs = [n for n in self.nodes.values() if isinstance(n, Input)]
        if len(inputs) != 1:
            raise GraphError(f"expected exactly one Input node, found {len(inputs)}")
        succ: dict[str, list[str]] = {}
        for a, b in self.edges:
            succ.setdefault(a, []).append(b)
        order, cur, seen = [inputs[0]], inputs[0].name, {inputs[0].name}
        while cur in succ:
            nxt = succ[cur]
            if len(nxt) != 1:
                raise GraphError(f"node '{cur}' fans out to {nxt}: only chains are supported so far")
            cur = nxt[0]
            if cur in seen:
                raise GraphError(f"cycle through '{cur}': recurrent graphs are not supported yet")
            seen.add(cur)
            order.append(self.nodes[cur])
        if len(order) != len(self.nodes):
            missing = sorted(set(self.nodes) - seen)
            raise GraphError(f"nodes not reachable from the input: {missing}")
        return order

    def layers(self) -> Iterator[tuple[Node, Node]]:
        """(synapse, neuron) pairs in order: one pair is one deployable layer."""
        order = [n for n in self.ordered() if not isinstance(n, (Input, Output))]
        for syn, neu in zip(order[0::2], order[1::2]):
            yield syn, neu

    @property
    def input(self) -> Input:
        return self.ordered()[0]  # type: ignore[return-value]

    def check(self) -> None:
        """Check the chain alternates synapse/neuron and that shapes agree along every edge."""
        order = self.ordered()
        body = [n for n in order if not isinstance(n, (Input, Output))]
        if not body:
            raise GraphError("graph has no layers")
        size = order[0].size  # type: ignore[union-attr]
        prev = order[0].name
        for i, node in enumerate(body):
            want = SYNAPSES if i % 2 == 0 else NEURONS
            if not isinstance(node, want):
                raise GraphError(f"node '{node.name}' ({type(node).__name__}) follows '{prev}': expected "
                                 f"{' or '.join(t.__name__ for t in want)}")
            if isinstance(node, SYNAPSES):
                if node.in_size != size:
                    raise GraphError(f"type mismatch: {prev}.output ({size},) -> {node.name}.input "
                                     f"({node.in_size},)")
                size = node.out_size
            else:
                if node.size != size:
                    raise GraphError(f"type mismatch: {prev}.output ({size},) -> {node.name}.input "
                                     f"({node.size},)")
            prev = node.name
        if not isinstance(body[-1], NEURONS):
            raise GraphError(f"the last node '{body[-1].name}' must be a neuron population")

    @property
    def is_fixed_point(self) -> bool:
        return all(not isinstance(n, (Dense, CubaLIF)) for n in self.nodes.values())
