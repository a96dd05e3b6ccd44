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

Synaptic delays: a Dense may carry ``delay`` (per synapse, integers ``d`` in [0, MAX_DELAY]) on top of
that one step, so ``a[t] = sum_d (W_d @ s_pre[t-1-d]) << weight_exp`` where ``W_d`` keeps the weights of
delay ``d``; the shift is applied to each delay's sum separately, as Lava's ``PyDelayDenseModelBitAcc``
shifts each slot of its buffer (SP/lava/proc/dense/models.py:340-360: delay 0 arrives next step, like
Dense). Spikes whose arrival falls after the last step are never delivered.
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
import math
from collections import Counter
from dataclasses import dataclass, field
from numbers import Integral, Real
from types import MappingProxyType
from typing import Any, Iterator, Mapping, Union

import numpy as np

from snnc.errors import GraphError, TargetLimitError
from snnc.models.fixed_point import LOIHI_FIXED_POINT, FixedPointFormat

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
    "synaptic_delay": "Dense delay d in [0, 62] adds d steps: a[t] += (W_d @ s[t-1-d]) << weight_exp, "
                      "shifted per delay (Lava PyDelayDenseModelBitAcc)",
    "initial_state": "zero at the start of every sample",
    "reference": "lava.proc.lif.models.PyLifModelBitAcc, lava.proc.dense.models.PyDenseModelBitAcc",
})
# Graphs travel to worker processes (snnc.hwsim.parallel) by pickle, and a mappingproxy does not
# pickle by itself: rebuild it from a plain dict.
def _mappingproxy(d: dict) -> Mapping[str, object]:
    return MappingProxyType(d)


copyreg.pickle(MappingProxyType, lambda m: (_mappingproxy, (dict(m),)))

# ----------------------------------------------------------------------------- node validation
# Every reader (checkpoint, NIR, ONNX, netx, graph.h5) builds these nodes, so their constructors are the
# one place that refuses what no file may describe: non-finite weights, thresholds or decays, empty or
# negative sizes, and sizes so large that the engines would allocate absurd arrays from a tiny file.

#: The most neurons (or input lines) one node may have, and all populations together: a Loihi 2 chip
#: has 1M neurons. Sizes are bounded because some files describe them without data (a conv's input shape,
#: a per-channel bias), and the engines allocate (samples, T, size) arrays for every node.
MAX_NODE_SIZE = 2**20
MAX_GRAPH_NEURONS = 2**22
#: Integer weights, biases and thresholds fit in int32 (Lava holds them in 8 to 24 bits).
INT_LIMIT = 2**31
#: |weight_exp| and |bias_exp|: shifts beyond this leave int64.
MAX_EXP = 31
#: Graded input carries at most 24 bits (Lava's num_message_bits).
MAX_INPUT_BITS = 24
#: Synaptic delay on top of the one-step synapse: lava-dl's netx clamps delays to 62
#: (lava/lib/dl/netx/hdf5.py:425-430) and Lava's DelayDense holds 6 bits (0..63, dense/models.py:330-334).
MAX_DELAY = 62


class LayerSizeError(TargetLimitError, GraphError):
    """A node or graph larger than snnc compiles: a design-rule error (a TargetLimitError) that readers
    catching GraphError still see, so their messages name the file."""


def _integer(name: str, what: str, value: Any, lo: int, hi: int) -> int:
    """``value`` as an int in [lo, hi] (numpy integers too, never bool), else GraphError."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, Integral) or not lo <= int(value) <= hi:
        raise GraphError(f"{name}: {what} must be an integer in [{lo}, {hi}], got {str(value)[:40]}")
    return int(value)


def _real(name: str, what: str, value: Any, lo: float, hi: float, *, open_lo: bool = False) -> float:
    """``value`` as a finite float in [lo, hi] (or (lo, hi] with ``open_lo``), else GraphError."""
    ok = not isinstance(value, (bool, np.bool_)) and isinstance(value, Real) and math.isfinite(float(value))
    if not ok or not (lo < float(value) if open_lo else lo <= float(value)) or not float(value) <= hi:
        interval = f"{'(' if open_lo else '['}{lo:g}, {hi:g}]"
        raise GraphError(f"{name}: {what} must be a finite number in {interval}, got {str(value)[:40]}")
    return float(value)


def _dims(name: str, what: str, shape: Any, limit: int | None = MAX_NODE_SIZE) -> tuple[int, ...]:
    """A shape as a tuple of positive ints whose product is at most ``limit`` (None: any)."""
    try:
        dims_ = tuple(np.asarray(shape).reshape(-1).tolist())
    except (TypeError, ValueError):
        dims_ = (str(shape),)
    if not dims_ or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 1 for d in dims_):
        raise GraphError(f"{name}: {what} must be a tuple of positive integers, got {str(shape)[:60]}")
    if limit is not None and math.prod(dims_) > limit:
        raise LayerSizeError(f"{name}: {what} {dims_} holds {math.prod(dims_):,} values, more than the {limit:,} "
                             f"snnc maps in one node (1,024 Loihi cores). Make it smaller: fewer channels, a "
                             f"stride, or pooling (downsample an input).")
    return dims_


def _array(name: str, what: str, a: Any, *, integer: bool, ndim: int | None = None,
           shape: tuple[int, ...] | None = None) -> None:
    """A real, finite array (integer and within INT_LIMIT when ``integer``) of ``ndim`` or ``shape``."""
    if not isinstance(a, np.ndarray):
        raise GraphError(f"{name}: {what} must be an array, got {type(a).__name__}")
    if integer and not np.issubdtype(a.dtype, np.integer):
        raise GraphError(f"{name}: {what} must be an integer array, got {a.dtype}")
    if not integer and a.dtype.kind not in "fiu":
        raise GraphError(f"{name}: {what} must be a real array, got {a.dtype}")
    if ndim is not None and a.ndim != ndim:
        raise GraphError(f"{name}: {what} must be {ndim}-D, got shape {a.shape}")
    if shape is not None and a.shape != shape:
        raise GraphError(f"{name}: {what} must have shape {shape}, got {a.shape}")
    if a.size == 0:
        raise GraphError(f"{name}: {what} is empty (shape {a.shape})")
    if integer:
        if a.size and (int(a.max()) >= INT_LIMIT or int(a.min()) <= -INT_LIMIT):
            raise GraphError(f"{name}: {what} holds integers beyond 32 bits (up to {int(np.abs(a).max())})")
    elif a.size and not np.all(np.isfinite(a)):
        raise GraphError(f"{name}: {what} holds NaN or infinite values")


def _delay(name: str, delay: Any, shape: tuple[int, ...]) -> np.ndarray | None:
    """A synapse's delays as uint8 (out, in): None (no delay) stays None, a scalar (per connection) or an
    array broadcastable to the weight's ``shape`` (per output neuron (out, 1), per input (1, in), per
    synapse) is expanded; all-zero delays are None, so a graph without delays has one spelling."""
    if delay is None:
        return None
    d = np.asarray(delay)
    if d.dtype == bool or not np.issubdtype(d.dtype, np.integer):
        if d.dtype.kind == "f" and d.size and np.all(np.isfinite(d)) and np.all(d == np.round(d)):
            d = d.astype(np.int64)
        else:
            raise GraphError(f"{name}: delay must be integer steps, got {d.dtype} {str(delay)[:40]}")
    try:
        d = np.broadcast_to(d, shape)
    except ValueError:
        raise GraphError(f"{name}: delay of shape {d.shape} does not fit the weight {shape} (give one delay, "
                         f"one per output neuron (out, 1), one per input (1, in) or one per synapse)") from None
    if d.size and (int(d.min()) < 0 or int(d.max()) > MAX_DELAY):
        raise GraphError(f"{name}: delays must be in [0, {MAX_DELAY}] steps (on top of the synapse's one step; "
                         f"netx and Loihi 2 hold 0..{MAX_DELAY}), got [{int(d.min())}, {int(d.max())}]. "
                         f"Use relay neurons for longer delays.")
    if not d.any():
        return None
    return np.ascontiguousarray(d, dtype=np.uint8)


class _Delayed:
    """Delay helpers shared by Dense and QDense (``delay`` is None or uint8 (out, in))."""

    delay: np.ndarray | None
    weight: np.ndarray

    @property
    def max_delay(self) -> int:
        """The longest delay in steps on top of the one-step synapse (0 without delays)."""
        return 0 if self.delay is None else int(self.delay.max())

    def delay_groups(self) -> list[tuple[int, np.ndarray]]:
        """[(d, W_d)]: the weight split by delay (W_d keeps the synapses of delay ``d``, zero elsewhere),
        only the delays that occur; [(0, weight)] without delays. Engines compute ``W_d @ s[t-1-d]``."""
        if self.delay is None:
            return [(0, self.weight)]
        return [(int(d), np.where(self.delay == d, self.weight, 0).astype(self.weight.dtype))
                for d in np.unique(self.delay)]


def _node_name(node: Any) -> None:
    if not isinstance(node.name, str):
        raise GraphError(f"node name {str(node.name)[:40]!r} is not a string")


@dataclass(frozen=True, eq=False)
class Input:
    """Input of ``shape`` per timestep: binary spikes (``bits`` = 0), or graded spikes, unsigned
    integers of ``bits`` bits (an analog image for an encoding layer; Lava Dense ``num_message_bits``)."""

    name: str
    shape: tuple[int, ...]
    bits: int = 0

    def __post_init__(self) -> None:
        _node_name(self)
        object.__setattr__(self, "shape", _dims(self.name, "input shape", self.shape))
        object.__setattr__(self, "bits", _integer(self.name, "input bits", self.bits, 0, MAX_INPUT_BITS))

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

    def __post_init__(self) -> None:
        _node_name(self)


def _pair(value: object, what: str, name: str) -> tuple[int, int]:
    """(h, w) from an int or a pair, as torch's Conv2d takes them."""
    raw = np.asarray(value).reshape(-1)
    if raw.dtype.kind not in "iu" and not (raw.dtype == object and all(isinstance(x, Integral) for x in raw)):
        raise GraphError(f"{name}: {what} must be integers, got {str(value)[:40]}")
    v = tuple(int(x) for x in raw)
    if any(abs(x) > MAX_NODE_SIZE for x in v):
        raise GraphError(f"{name}: {what} {v} is absurdly large")
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
class Dense(_Delayed, _WeightShape):
    """Float all-to-all synapses, ``weight`` of shape (out, in) in threshold units; ``delay``: per-synapse
    delays in steps on top of the one-step synapse (module docstring), None for none."""

    name: str
    weight: np.ndarray
    delay: np.ndarray | None = None

    def __post_init__(self) -> None:
        _node_name(self)
        _array(self.name, "weight (out, in)", self.weight, integer=False, ndim=2)
        object.__setattr__(self, "delay", _delay(self.name, self.delay, self.weight.shape))


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
        _node_name(self)
        _array(self.name, "conv weight (out, in/groups, kh, kw)", self.weight,
               integer=np.issubdtype(np.asarray(self.weight).dtype, np.integer), ndim=4)
        object.__setattr__(self, "in_shape", _dims(self.name, "conv input shape", self.in_shape))
        for what in ("stride", "padding", "dilation"):
            object.__setattr__(self, what, _pair(getattr(self, what), what, self.name))
        object.__setattr__(self, "groups", _integer(self.name, "groups", self.groups, 1, MAX_NODE_SIZE))
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
    _node_name(neuron)
    object.__setattr__(neuron, "size", _integer(neuron.name, "size", neuron.size, 1, 2**62))
    if neuron.shape is not None:
        shape = _dims(neuron.name, "shape", neuron.shape, limit=None)
        object.__setattr__(neuron, "shape", shape)
    if neuron.size > MAX_NODE_SIZE:   # a design rule, named with the numbers, not a damaged-file error
        from snnc.compiler.targets import population_size_problem

        raise LayerSizeError(population_size_problem(neuron.name, neuron.size, neuron.shape, MAX_NODE_SIZE))
    if neuron.shape is not None and math.prod(neuron.shape) != neuron.size:
        raise GraphError(f"{neuron.name}: shape {neuron.shape} does not hold {neuron.size} neurons")


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
        n = self.name
        # finite here; the range [0, 1] is the target's to check (quantize names the target's limits)
        object.__setattr__(self, "current_decay", _real(n, "current decay", self.current_decay, -math.inf, math.inf))
        object.__setattr__(self, "voltage_decay", _real(n, "voltage decay", self.voltage_decay, -math.inf, math.inf))
        object.__setattr__(self, "threshold", _real(n, "threshold", self.threshold, 0.0, math.inf, open_lo=True))
        if self.bias is not None:
            _array(n, "bias", self.bias, integer=False, shape=(self.size,))
        if self.int_scale is not None:
            object.__setattr__(self, "int_scale", _real(n, "int_scale", self.int_scale, 0.0, math.inf, open_lo=True))


@dataclass(frozen=True, eq=False)
class QDense(_Delayed, _WeightShape):
    """Fixed-point Dense: integer ``weight`` (out, in); delivered ``(W @ s) << weight_exp`` next step, or
    ``d`` steps later still for synapses with ``delay`` ``d`` (Lava's DelayDense; module docstring)."""

    name: str
    weight: np.ndarray
    weight_exp: int = 0
    delay: np.ndarray | None = None

    def __post_init__(self) -> None:
        _node_name(self)
        if not isinstance(self.weight, np.ndarray) or self.weight.ndim != 2 \
                or not np.issubdtype(self.weight.dtype, np.integer):
            raise GraphError(f"{self.name}: fixed-point weight must be a 2-D integer array, got "
                             f"{getattr(self.weight, 'dtype', type(self.weight).__name__)} "
                             f"{getattr(self.weight, 'shape', '')}")
        _array(self.name, "fixed-point weight", self.weight, integer=True, ndim=2)
        object.__setattr__(self, "weight_exp", _integer(self.name, "weight_exp", self.weight_exp, -MAX_EXP, MAX_EXP))
        object.__setattr__(self, "delay", _delay(self.name, self.delay, self.weight.shape))


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
        n, fmt = self.name, self.fmt
        if not isinstance(fmt, FixedPointFormat):
            raise GraphError(f"{n}: fmt must be a FixedPointFormat, got {type(fmt).__name__}")
        _check_format(n, fmt)
        object.__setattr__(self, "du", _integer(n, "du (effective current decay)", self.du, 0, fmt.decay_unity))
        object.__setattr__(self, "dv", _integer(n, "dv (voltage decay)", self.dv, 0, fmt.decay_unity))
        object.__setattr__(self, "vth", _integer(n, "vth", self.vth, 0, INT_LIMIT - 1))
        object.__setattr__(self, "bias_exp", _integer(n, "bias_exp", self.bias_exp, -MAX_EXP, MAX_EXP))
        _array(n, "bias_mant", self.bias_mant, integer=True, shape=(self.size,))

    @property
    def lava_du(self) -> int:
        """The register value Lava's LIF takes (it adds ds_offset=1 back)."""
        return self.du - self.fmt.current_decay_offset


def _check_format(name: str, fmt: FixedPointFormat) -> None:
    """A fixed-point format the engines can compute with (a file may describe its own, e.g. ONNX's fmt_*)."""
    for f in ("decay_unity", "weight_step"):
        _integer(name, f"format {f}", getattr(fmt, f), 1, INT_LIMIT)
    for f in ("act_shift", "vth_shift", "bias_exp"):
        _integer(name, f"format {f}", getattr(fmt, f), 0, MAX_EXP)
    _integer(name, "format state_bits", fmt.state_bits, 2, 32)
    _integer(name, "format current_decay_offset", fmt.current_decay_offset, 0, fmt.decay_unity)
    _integer(name, "format vth_max", fmt.vth_max, 0, INT_LIMIT - 1)
    lo = _integer(name, "format weight_min", fmt.weight_min, -INT_LIMIT, INT_LIMIT)
    hi = _integer(name, "format weight_max", fmt.weight_max, lo, INT_LIMIT)
    blo = _integer(name, "format bias_mant_min", fmt.bias_mant_min, -INT_LIMIT, INT_LIMIT)
    _integer(name, "format bias_mant_max", fmt.bias_mant_max, blo, INT_LIMIT)
    del hi


Node = Union[Input, Output, Dense, Conv, CubaLIF, QDense, QConv, QCubaLIF]
SYNAPSES = (Dense, QDense, Conv, QConv)
CONVS = (Conv, QConv)
NEURONS = (CubaLIF, QCubaLIF)
Synapse = Union[Dense, QDense, Conv, QConv]
Neuron = Union[CubaLIF, QCubaLIF]


@dataclass(frozen=True)
class Population:
    """One neuron population and every synapse node that drives it, with each synapse's source
    (the Input's or a population's name). Its input per step is the sum over those synapses.

    ``recurrent`` names the synapses among ``inputs`` whose source lies on a cycle with this
    population (the same strongly connected component, a self-loop included): their input at step
    ``t`` is ``W s_src[t-1]`` with ``s_src`` computed in the same step loop, so an engine evaluates
    them inside its loop over time. Every other synapse's source is complete before the population
    runs (one GEMM over all timesteps). ``block`` is the index of the component in ``Graph.blocks()``.
    """

    neuron: Neuron
    inputs: tuple[tuple[Synapse, str], ...]
    recurrent: frozenset[str] = frozenset()
    block: int = 0

    @property
    def name(self) -> str:
        return self.neuron.name

    @property
    def feedforward_inputs(self) -> tuple[tuple[Synapse, str], ...]:
        """The synapses whose sources run before this population's block."""
        return tuple((s, src) for s, src in self.inputs if s.name not in self.recurrent)

    @property
    def recurrent_inputs(self) -> tuple[tuple[Synapse, str], ...]:
        """The synapses evaluated inside the step loop (sources in the same block)."""
        return tuple((s, src) for s, src in self.inputs if s.name in self.recurrent)


def _components(nodes: list[str], succ: Mapping[str, list[str]]) -> list[list[str]]:
    """Strongly connected components (Tarjan, iterative), each listed in ``nodes`` order."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    comps: list[list[str]] = []
    rank = {n: i for i, n in enumerate(nodes)}
    for root in nodes:
        if root in index:
            continue
        work = [(root, iter(succ[root]))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, it = work[-1]
            nxt = next(it, None)
            if nxt is not None:
                if nxt not in index:
                    index[nxt] = low[nxt] = len(index)
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(succ[nxt])))
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                comp = []
                while True:
                    m = stack.pop()
                    on_stack.discard(m)
                    comp.append(m)
                    if m == node:
                        break
                comps.append(sorted(comp, key=rank.__getitem__))
    return comps


@dataclass(frozen=True)
class Graph:
    """Named nodes and (source, destination) edges; ``meta`` holds the input spec and provenance.

    Input -> synapse -> population -> synapse -> ... -> population -> Output. Every synapse has one
    source (the Input or a population) and one destination population; a population may be driven
    by several synapses (their inputs add) and feed several synapses (e.g. NeuNorm's auxiliary
    population, see ``snnc.models.neurons``). One population feeds Output.

    Recurrent networks: a synapse may lead back to its own population or to an earlier one. Timing
    is the chip's and needs no special case: every synapse delays one step (``a[t] = W s[t-1]``),
    so a recurrent spike emitted at ``t`` acts at ``t + 1``, as in Lava's Dense, which sends the
    previous step's sum before receiving (SP/lava/proc/dense/models.py ``run_spk``: "a buffered
    value ... prevents deadlocking in networks with recurrent connectivity"). The one-way contract
    holds between strongly connected components: ``ordered()`` lists the components in
    topological order (inside one, in depth-first order from the Input without the edges that
    close a cycle), ``blocks()`` groups the populations of each, and ``Population.recurrent`` names
    the synapses inside a component. Synapses on a cycle must be Dense.
    """

    nodes: Mapping[str, Node]
    edges: tuple[tuple[str, str], ...]
    meta: Mapping[str, object] = field(default_factory=dict)

    @staticmethod
    def build(nodes: list[Node], edges: list[tuple[str, str]], meta: Mapping[str, object] | None = None) -> "Graph":
        """Build and check a graph, checking names are unique."""
        names = [n.name for n in nodes]
        dup = [n for n, k in Counter(names).items() if k > 1]
        if dup:
            raise GraphError(f"duplicate node names: {sorted(dup)[:10]}")
        if not all(isinstance(e, (tuple, list)) and len(e) == 2 and all(isinstance(x, str) for x in e) for e in edges):
            raise GraphError("edges must be (source, destination) pairs of node names")
        edges = [tuple(e) for e in edges]  # type: ignore[misc]
        meta = dict(meta or {})
        if meta.get("readout") is not None:
            from snnc.models.readout import Readout

            r = meta["readout"]
            try:
                if not isinstance(r, dict) or not all(isinstance(k, str) for k in r):
                    raise TypeError("not a mapping")
                Readout.from_json(r)
            except (TypeError, ValueError) as e:
                raise GraphError(f"meta readout {str(r)[:80]} is not a readout ({e})") from None
        scales = meta.get("weight_scales")
        if scales is not None and (not isinstance(scales, dict) or not all(
                isinstance(k, str) and isinstance(v, Real) and not isinstance(v, bool) and math.isfinite(v)
                for k, v in scales.items())):
            raise GraphError(f"meta weight_scales {str(scales)[:80]} is not a mapping of population -> number")
        g = Graph({n.name: n for n in nodes}, tuple(edges), meta)
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
        """Every node, strongly connected components in topological order from the Input (ties by
        insertion); inside a component, topological once the edges that close its cycles (the back
        edges of a depth-first search in insertion order) are set aside."""
        return [self.nodes[n] for n in self._order()[0]]

    def _order(self) -> tuple[list[str], dict[str, int]]:
        """Node names in order and each node's component index (cached: the graph is frozen)."""
        cached = self.__dict__.get("_order_cache")
        if cached is not None:
            return cached
        inputs = [n for n in self.nodes.values() if isinstance(n, Input)]
        if len(inputs) != 1:
            raise GraphError(f"expected exactly one Input node, found {len(inputs)}")
        succ, pred = self._adjacency()
        if pred[inputs[0].name]:
            raise GraphError(f"the Input '{inputs[0].name}' is fed by {pred[inputs[0].name]}: nothing may feed it")
        seen, todo = {inputs[0].name}, [inputs[0].name]
        while todo:
            for nxt in succ[todo.pop()]:
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        unreachable = [n for n in self.nodes if n not in seen]
        if unreachable:
            raise GraphError(f"nodes not reachable from the input: {sorted(unreachable)}")
        names = list(self.nodes)
        comps = _components(names, succ)
        comp_of = {n: i for i, c in enumerate(comps) for n in c}
        # Kahn's algorithm over the components (ties by the insertion rank of their first member)
        rank = {n: i for i, n in enumerate(names)}
        waiting = [0] * len(comps)
        for a, b in self.edges:
            if comp_of[a] != comp_of[b]:
                waiting[comp_of[b]] += 1
        ready = sorted((i for i, w in enumerate(waiting) if w == 0), key=lambda i: rank[comps[i][0]])
        order: list[str] = []
        block_of: dict[str, int] = {}
        while ready:
            ci = ready.pop(0)
            for n in self._inside(comps[ci], succ, pred):
                order.append(n)
                block_of[n] = ci
            for n in comps[ci]:
                for nxt in succ[n]:
                    cj = comp_of[nxt]
                    if cj != ci:
                        waiting[cj] -= 1
                        if waiting[cj] == 0:
                            ready.append(cj)
                            ready.sort(key=lambda i: rank[comps[i][0]])
        # renumber components in order of appearance
        renum: dict[int, int] = {}
        for n in order:
            renum.setdefault(block_of[n], len(renum))
        result = (order, {n: renum[block_of[n]] for n in order})
        self.__dict__["_order_cache"] = result     # frozen dataclass: the order is computed once
        return result

    @staticmethod
    def _inside(comp: list[str], succ: Mapping[str, list[str]], pred: Mapping[str, list[str]]) -> list[str]:
        """One component's nodes in order: depth-first from its entry (the member with a predecessor
        outside, else the first), edges back to a node on the search's stack set aside."""
        if len(comp) == 1:
            return comp
        members = set(comp)
        entry = next((n for n in comp if any(p not in members for p in pred[n])), comp[0])
        back: set[tuple[str, str]] = set()
        state: dict[str, int] = {}
        for root in [entry] + comp:
            if root in state:
                continue
            state[root] = 1
            work = [(root, iter([m for m in succ[root] if m in members]))]
            while work:
                node, it = work[-1]
                nxt = next(it, None)
                if nxt is None:
                    state[node] = 2
                    work.pop()
                elif state.get(nxt) == 1:
                    back.add((node, nxt))
                elif nxt not in state:
                    state[nxt] = 1
                    work.append((nxt, iter([m for m in succ[nxt] if m in members])))
        waiting = {n: sum(1 for p in pred[n] if p in members and (p, n) not in back) for n in comp}
        ready = [n for n in comp if waiting[n] == 0]
        ready.sort(key=lambda n: (n != entry, comp.index(n)))
        order = []
        while ready:
            cur = ready.pop(0)
            order.append(cur)
            for nxt in succ[cur]:
                if nxt in members and (cur, nxt) not in back:
                    waiting[nxt] -= 1
                    if waiting[nxt] == 0:
                        ready.append(nxt)
        return order

    def populations(self) -> list[Population]:
        """Neuron populations in order, each with its driving synapses, their sources, and which of
        those synapses are recurrent (source in the population's own block)."""
        _, pred = self._adjacency()
        order, block_of = self._order()
        pops, blocks = [], {}
        for name in order:
            node = self.nodes[name]
            if isinstance(node, NEURONS):
                blocks.setdefault(block_of[name], len(blocks))
                syns = [self.nodes[p] for p in pred[node.name]]
                inputs = tuple((s, pred[s.name][0]) for s in syns)
                rec = frozenset(s.name for s, src in inputs if block_of[src] == block_of[name])
                pops.append(Population(node, inputs, rec, blocks[block_of[name]]))  # type: ignore[arg-type]
        return pops

    def blocks(self) -> list[tuple[Population, ...]]:
        """The populations grouped by strongly connected component, in order: a feed-forward
        population is a block of its own; the populations of a cycle step together."""
        out: list[list[Population]] = []
        for pop in self.populations():
            if pop.block == len(out):
                out.append([])
            out[pop.block].append(pop)
        return [tuple(b) for b in out]

    @property
    def is_recurrent(self) -> bool:
        """Whether any synapse closes a cycle."""
        return any(p.recurrent for p in self.populations())

    def recurrent_synapses(self) -> list[str]:
        """Names of the synapses inside a cycle, in order."""
        return [s.name for p in self.populations() for s, _ in p.recurrent_inputs]

    def require_feedforward(self, what: str) -> None:
        """GraphError naming ``what`` when the graph has cycles (for code paths without recurrence)."""
        if self.is_recurrent:
            raise GraphError(f"{what} does not support recurrent networks yet (recurrent synapses: "
                             f"{', '.join(self.recurrent_synapses()[:6])})")

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
        total = sum(int(n.size) for n in order if isinstance(n, NEURONS))
        if total > MAX_GRAPH_NEURONS:
            from snnc.compiler.targets import network_size_problem

            largest = sorted(((n.name, int(n.size)) for n in order if isinstance(n, NEURONS)), key=lambda x: -x[1])
            raise LayerSizeError(network_size_problem(total, largest, MAX_GRAPH_NEURONS))
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
        for pop in self.populations():
            for syn, src in pop.recurrent_inputs:
                if isinstance(syn, CONVS):
                    raise GraphError(f"synapse '{syn.name}' ({src} -> {pop.name}) is a convolution on a cycle: "
                                     f"recurrent synapses must be Dense (all-to-all); snnc has no convolutional "
                                     f"recurrence. Make the recurrent connection a Dense layer.")
                if getattr(syn, "delay", None) is not None:
                    raise GraphError(f"synapse '{syn.name}' ({src} -> {pop.name}) is on a cycle and has delays "
                                     f"(up to {syn.max_delay} steps): snnc delays feed-forward synapses only. "
                                     f"Remove the recurrent synapse's delays, or delay a feed-forward synapse.")

    @property
    def has_delays(self) -> bool:
        """Whether any synapse delays beyond its one step."""
        return any(getattr(n, "delay", None) is not None for n in self.nodes.values())

    def delayed_synapses(self) -> list[str]:
        """Names of the synapses with delays, in order."""
        return [n.name for n in self.ordered() if getattr(n, "delay", None) is not None]

    @property
    def is_fixed_point(self) -> bool:
        return all(not isinstance(n, (Dense, Conv, CubaLIF)) for n in self.nodes.values())


# --- written files read back (snn-compile checks every format it writes) ---------------------------

def check_round_trip(written: Graph, read: Graph, what: str) -> None:
    """The file we wrote must read back to the same integers (guards the writer and reader)."""
    for p1, p2 in zip(written.populations(), read.populations()):
        n1, n2 = p1.neuron, p2.neuron
        same = (len(p1.inputs) == len(p2.inputs) and np.array_equal(n1.bias_mant, n2.bias_mant)  # type: ignore[union-attr]
                and (n1.du, n1.dv, n1.vth) == (n2.du, n2.dv, n2.vth)  # type: ignore[union-attr]
                and all(same_synapse(a, b) for (a, _), (b, _) in zip(p1.inputs, p2.inputs)))
        if not same:
            raise GraphError(f"internal error: layer '{n1.name}' did not survive the {what} round trip")


def same_synapse(a: Any, b: Any) -> bool:
    """Same kind, integers and geometry (Dense: weight_exp and delays; Conv: stride, padding, dilation, groups)."""
    if type(a) is not type(b) or not np.array_equal(a.weight, b.weight):
        return False
    if isinstance(a, QConv):
        return a.geometry() == b.geometry()
    same_delay = (a.delay is None) == (b.delay is None) and (a.delay is None or np.array_equal(a.delay, b.delay))
    return bool(a.weight_exp == b.weight_exp) and same_delay
