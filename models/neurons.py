"""CUBA-LIF layers in discrete time: a pure step function per mode, and a thin module shell.

The equations are written once, in ``snnc.compiler.ir``'s module docstring. Two modes:

* float: the equations in real arithmetic (no rounding, wrapping, clipping);
* hardware-exact: weights, bias, decays and threshold fake-quantized to exactly the integers the
  chip holds, and state updated with Loihi's integer arithmetic (round toward zero, 24-bit wrap of
  u, clip of v, ``<< 6``), in float64, which is exact for these magnitudes (< 2**53). Gradients pass
  straight through rounding; spikes use the rule's surrogate.
"""
from __future__ import annotations

from functools import partial

import math
from typing import Any

import numpy as np
import torch
from torch import nn

from snnc.models.quant import (LOIHI_FIXED_POINT, FixedPointFormat, bias_to_int, choose_weight_scale,
                               decay_to_int, threshold_to_int, trunc_ste, weight_to_int)
from snnc.models.recurrence import (CubaConstants, cuba_recurrence, cuba_recurrent_dense, delayed_synapses,
                                    float_synapses, integer_synapses)
from snnc.models.rules import Rule


#: the longest synaptic delay, in steps on top of every synapse's one: lava-dl's netx and Lava's DelayDense
#: hold 0..62 (snnc.compiler.ir.MAX_DELAY, the graph's own check; tests keep the two equal)
MAX_DELAY = 62


def as_delay(delay: Any, shape: tuple[int, int]) -> torch.Tensor:
    """Synaptic delays as a uint8 tensor broadcastable to the weight's ``shape`` (out, in): an int (every
    synapse), per output neuron (out, 1), per input (in,) or (1, in), or per synapse (out, in); integer
    steps in [0, MAX_DELAY] (floats only if whole). ValueError otherwise."""
    d = delay.detach().cpu() if isinstance(delay, torch.Tensor) else torch.as_tensor(np.asarray(delay))
    if d.dtype == torch.bool or d.is_complex() or not (d.is_floating_point() or d.dtype in _INT_DTYPES):
        raise ValueError(f"delay must be integer steps, got {d.dtype}")
    if d.is_floating_point() and d.numel() and not bool(torch.isfinite(d).all() and (d == d.round()).all()):
        raise ValueError("delay must be whole steps (integers)")
    if d.dim() > 2:
        raise ValueError(f"delay of shape {tuple(d.shape)} does not fit the weight {shape}")
    d = d.reshape((1,) * (2 - d.dim()) + tuple(d.shape))
    if any(n not in (1, m) for n, m in zip(d.shape, shape)):
        raise ValueError(f"delay of shape {tuple(d.shape)} does not fit the weight {shape} (give one delay, one "
                         f"per output neuron (out, 1), one per input (1, in) or one per synapse (out, in))")
    if d.numel() and (float(d.min()) < 0 or float(d.max()) > MAX_DELAY):
        raise ValueError(f"delays must be in [0, {MAX_DELAY}] steps (on top of the synapse's one step), got "
                         f"[{float(d.min()):g}, {float(d.max()):g}]")
    return d.to(torch.uint8).contiguous()


_INT_DTYPES = (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64)


def delay_one_step(spikes: torch.Tensor) -> torch.Tensor:
    """Shift (batch, T, n) spikes one step later: every Dense connection delivers at t + 1."""
    return torch.nn.functional.pad(spikes, (0, 0, 1, 0))[:, :-1]


def wrap_int32(x: torch.Tensor) -> torch.Tensor:
    """Two's-complement int32 wrap (Lava sums u and v in int32); identity gradient."""
    return x - (torch.floor((x + 2.0**31) / 2.0**32) * 2.0**32).detach()


def _decay(x: torch.Tensor, keep: float, round_to_zero: bool, leak_gradient: bool = True) -> torch.Tensor:
    """``x * keep`` (rounded toward zero on the chip); the gradient is ``keep``, or the identity when
    the leak is kept out of the gradient (Lee et al. 2020 do so for the membrane only: the synaptic
    current's decay always keeps its true gradient)."""
    y = x * keep
    if round_to_zero:
        y = trunc_ste(y)
    return y if leak_gradient else x + (y - x).detach()


def _reset_and_carry(v: torch.Tensor, s: torch.Tensor, rule: Rule, unit: float) -> torch.Tensor:
    """v := 0 where s, with or without gradient through the mask, plus the rule's forward-zero term."""
    v = v * (1.0 - (s if rule.reset_gradient else s.detach()))
    term = rule.temporal_term(s)
    return v if term is None else v + term * unit


def cuba_float_step(a: torch.Tensor, u: torch.Tensor, v: torch.Tensor, bias: torch.Tensor | float,
                    du: float, dv: float, threshold: float, rule: Rule
                    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One float CUBA-LIF step -> (spikes, u, v)."""
    u = _decay(u, 1.0 - du, False) + a
    v = _decay(v, 1.0 - dv, False, rule.leak_gradient) + u + bias
    s = rule.spike(v / threshold - 1.0)
    return s, u, _reset_and_carry(v, s, rule, threshold)


def cuba_hw_step(a: torch.Tensor, u: torch.Tensor, v: torch.Tensor, bias: torch.Tensor | float,
                 du: int, dv: int, vth: int, unit: float, rule: Rule,
                 fmt: FixedPointFormat = LOIHI_FIXED_POINT
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One integer-exact CUBA-LIF step on integer-valued float64 tensors -> (spikes, u, v).

    ``a`` is the integer synaptic input, ``bias`` the integer bias mantissa, ``du`` the effective
    current decay; ``unit`` = the float threshold in state units, so the surrogate sees
    ``v / threshold - 1`` exactly as float mode does.
    """
    one = float(fmt.decay_unity)
    top = float(fmt.state_max)
    u = wrap_int32(_decay(u, (one - du) / one, True) + wrap_int32(a * float(2 ** fmt.act_shift)))
    u = u - 2 * top * (u > top).to(u.dtype).detach()        # wrap once: '>' then '<=' as Lava does
    u = u + 2 * top * (u <= -top).to(u.dtype).detach()
    v = wrap_int32(_decay(v, (one - dv) / one, True, rule.leak_gradient) + u + bias * float(2 ** fmt.bias_exp))
    v = torch.clamp(v, -(top - 1), top - 1)
    vth_eff = float(vth * 2 ** fmt.vth_shift)
    s = rule.spike((v - vth_eff) / unit)
    return s, u, _reset_and_carry(v, s, rule, unit)


#: the one format every hardware-exact layer had before per-layer formats (slayer's convention): the
#: threshold mantissa 64, weights in steps of 1/32 threshold up to 4 thresholds
FIXED_WEIGHT_SCALE = 64.0


class CubaNeurons(nn.Module):
    """The neuron half of every deployable layer: CUBA-LIF parameters, their chip integers, and the
    recurrence over time. Subclasses own the synapses and set ``out_features``."""

    out_features: int
    current_decay: float
    voltage_decay: float
    threshold: float
    weight_scale: float
    auto_scale: bool
    spiking: bool

    def _init_neurons(self, current_decay: float, voltage_decay: float, threshold: float,
                      weight_scale: float | None, spiking: bool, auto_scale: bool | None) -> None:
        """``weight_scale`` None: the layer's format is chosen from its weights (``auto_scale``, the
        default), starting from the value the constructor's :meth:`refit_format` call picks; a number
        with ``auto_scale`` unset: that format, fixed (e.g. 64, the format of checkpoints before
        per-layer formats); a number with ``auto_scale=True``: a checkpoint's current format."""
        if not threshold > 0:
            raise ValueError(f"threshold must be > 0, got {threshold}")
        if weight_scale is not None and not float(weight_scale) > 0:
            raise ValueError(f"weight_scale must be > 0, got {weight_scale}")
        self.current_decay, self.voltage_decay = float(current_decay), float(voltage_decay)
        self.auto_scale = weight_scale is None if auto_scale is None else bool(auto_scale)
        self.threshold, self.weight_scale = float(threshold), float(weight_scale or FIXED_WEIGHT_SCALE)
        self.spiking = bool(spiking)

    def _neuron_spec(self) -> dict[str, Any]:
        return {"current_decay": self.current_decay, "voltage_decay": self.voltage_decay,
                "threshold": self.threshold, "weight_scale": self.weight_scale, "auto_scale": self.auto_scale}

    def synapse_weights(self) -> list[torch.Tensor]:
        """Float weights (threshold units) of every synapse into these neurons, as deployed."""
        raise NotImplementedError

    def deployed_bias(self) -> torch.Tensor | None:
        """The per-neuron (or per-channel) bias in threshold units, as deployed; None for none."""
        raise NotImplementedError

    def refit_format(self, extra: list[torch.Tensor] = ()) -> None:  # type: ignore[assignment]
        """Re-choose ``weight_scale`` from the current weights (plus ``extra`` synapses into the same
        neurons) when the format is automatic (:func:`snnc.models.quant.choose_weight_scale`)."""
        if self.auto_scale:
            with torch.no_grad():
                self.weight_scale = choose_weight_scale([*self.synapse_weights(), *extra], self.deployed_bias(),
                                                        self.threshold, self.spiking, self.fmt)

    @property
    def fan_in(self) -> int:
        """Inputs per neuron of this population's own synapses (what its weight initialisation uses)."""
        raise NotImplementedError

    @property
    def fmt(self) -> FixedPointFormat:
        return LOIHI_FIXED_POINT

    def chip_threshold(self) -> int:
        """The ``vth`` mantissa on the chip: the largest one for a readout integrator."""
        return threshold_to_int(self.threshold, self.weight_scale) if self.spiking else self.fmt.vth_max

    @property
    def state_unit(self) -> float:
        """One threshold unit in chip state units (v / state_unit is what float mode computes)."""
        return self.threshold * self.weight_scale * 2 ** self.fmt.vth_shift

    def _neuron_traces(self, a: torch.Tensor, bias: torch.Tensor | float, rule: Rule,
                       hardware_exact: bool) -> torch.Tensor:
        """Run the neurons on synaptic input ``a`` (batch, T, out) with per-step ``bias`` (threshold
        units, or the integer mantissa in hardware-exact mode) -> spikes, or a readout's v.

        The recurrence is :func:`snnc.models.recurrence.cuba_recurrence`: ``cuba_hw_step`` /
        ``cuba_float_step`` over every step, value for value, as one autograd node."""
        if hardware_exact:
            c = CubaConstants.hardware_mode(decay_to_int(self.current_decay), decay_to_int(self.voltage_decay),
                                            self.chip_threshold(), self.state_unit, rule, self.spiking, self.fmt)
        else:
            threshold = self.threshold if self.spiking else math.inf
            c = CubaConstants.float_mode(self.current_decay, self.voltage_decay, threshold, rule, self.spiking)
        out = cuba_recurrence(a, bias, c, rule, self.fmt)
        if not self.spiking:
            return out / (self.state_unit if hardware_exact else self.threshold)
        scale = rule.spike_gradient_scale(out, 1.0 - self.voltage_decay)
        if scale is not None:  # forward unchanged, gradient of each neuron's spike train scaled
            out = out.detach() + (out - out.detach()) * scale[:, None, :]
        return out


class CubaDense(CubaNeurons):
    """Dense synapses into a population of CUBA-LIF neurons: one deployable layer.

    Parameters are in *threshold units* (the float model); ``weight_scale`` is the number of chip
    integer units per float unit that hardware-exact mode uses: the layer's fixed-point format. By
    default it is chosen per layer from the weights and re-chosen after every training step
    (:func:`snnc.models.quant.choose_weight_scale`); pass a number to fix it (64 is slayer's
    convention: with threshold 1.0 the chip threshold is 64 and weights step by 2/64).

    Architecture elements that rules bring with them, all deployed as real chip resources:

    * ``spiking=False``: a readout integrator (Lee et al. 2020's output layer). It returns its
      membrane potential ``v`` (threshold units) instead of spikes; on the chip it is the same
      CUBA-LIF with the largest threshold the format holds (it spikes only if ``v`` saturates, and
      hardware-exact mode mirrors that too).
    * ``input_bits > 0``: an encoding layer (Wu et al. 2019) that takes the analog input in [0, 1]
      at every step as graded spikes ``x_q = round(x (2**bits - 1))``; the chip's Dense computes
      ``floor(W x_q / 2**bits)`` (``weight_exp = -bits``, SP/lava/proc/dense/models.py:96-107).
    * ``signed_input``: inputs in {-1, 0, 1} (Lee et al.'s signed Poisson code); deployed as two
      binary channels with weights ``[W, -W]``, so weights stay in the symmetric range [-254, 254].
    * ``delay``: fixed synaptic delays (steps on top of the one-step synapse, integers in [0, 62]; an
      int, per output neuron (out, 1), per input (1, in) or per synapse (out, in)): the input at step t
      is ``sum_d W_d x[t-1-d]``, ``W_d`` the weights of delay ``d``; deployed as Lava's DelayDense
      (``Dense.delay`` in the graph). A buffer ``delay`` (uint8, saved in the state dict), None
      without delays; set or change it with :meth:`set_delay`. Not trained: the weights learn around
      them. In hardware-exact mode the encoding layer's floor of ``/ 2**bits`` is taken per delay
      group, as the chip does (docs/models.md, "Synaptic delays").
    * ``neunorm_decay``: NeuNorm (Wu et al. 2019). An auxiliary CUBA-LIF neuron integrates all the
      input spikes (weight 1/F each, F = in_features, leak ``neunorm_decay`` = 1 - k_tau2, threshold
      1) and inhibits this layer through the weights ``-(W @ alpha)``, ``alpha`` trained per input:
      the paper's ``W (o - alpha x)`` with the auxiliary trace ``x`` carried by the auxiliary
      neuron's spikes. Like every Dense connection it arrives one step later.
    """

    def __init__(self, in_features: int, out_features: int, *, bias: bool = True,
                 current_decay: float = 0.5, voltage_decay: float = 0.2, threshold: float = 1.0,
                 weight_scale: float | None = None, auto_scale: bool | None = None, spiking: bool = True,
                 input_bits: int = 0, signed_input: bool = False, neunorm_decay: float | None = None,
                 delay: Any = None, delay_shape: "tuple[int, ...] | list[int] | None" = None):
        """``delay_shape`` (what a checkpoint's spec holds): a zero ``delay`` buffer of that shape, which
        the state dict then fills; give ``delay`` or ``delay_shape``, not both."""
        super().__init__()
        self._init_neurons(current_decay, voltage_decay, threshold, weight_scale, spiking, auto_scale)
        if not 0 <= int(input_bits) <= 8:
            raise ValueError(f"input_bits must be in [0, 8], got {input_bits}")
        if input_bits and signed_input:
            raise ValueError("an encoding layer (input_bits > 0) takes analog, not signed, input")
        self.in_features, self.out_features = int(in_features), int(out_features)
        self.input_bits, self.signed_input = int(input_bits), bool(signed_input)
        self.neunorm_decay = None if neunorm_decay is None else float(neunorm_decay)
        self.weight = nn.Parameter(torch.empty(self.out_features, self.in_features))
        nn.init.uniform_(self.weight, -1.0 / in_features**0.5, 1.0 / in_features**0.5)
        self.bias = nn.Parameter(torch.zeros(self.out_features)) if bias else None
        self.register_buffer("delay", None)
        if delay is not None and delay_shape is not None:
            raise ValueError("give delay or delay_shape, not both")
        if delay_shape is not None:
            shape = tuple(int(n) for n in delay_shape)
            if len(shape) != 2 or any(n not in (1, m) for n, m in zip(shape, self.weight.shape)):
                raise ValueError(f"delay_shape {shape} does not fit the weight {tuple(self.weight.shape)}")
            self.delay = torch.zeros(shape, dtype=torch.uint8)
        elif delay is not None:
            self.set_delay(delay)
        self.aux: CubaDense | None = None
        self.alpha: nn.Parameter | None = None
        if self.neunorm_decay is not None:
            f = self.in_features
            self.aux = CubaDense(f, 1, bias=False, current_decay=1.0, voltage_decay=self.neunorm_decay,
                                 threshold=1.0, weight_scale=2.0 * f)
            self.aux.weight.requires_grad_(False)
            with torch.no_grad():
                self.aux.weight.fill_(1.0 / f)       # the integer 2 at weight_scale 2F
            self.alpha = nn.Parameter(torch.empty(f))
            nn.init.uniform_(self.alpha, -1.0 / f**0.5, 1.0 / f**0.5)
        if weight_scale is None:
            self.refit_format()

    @property
    def fan_in(self) -> int:
        return self.in_features

    def set_delay(self, delay: Any) -> None:
        """Give the synapses fixed delays (see the class docstring; None removes them)."""
        if delay is None:
            self.delay = None
            return
        self.delay = as_delay(delay, (self.out_features, self.in_features)).to(self.weight.device)

    @property
    def max_delay(self) -> int:
        """The longest synaptic delay in steps on top of the one-step synapse (0 without delays)."""
        return 0 if self.delay is None or not self.delay.numel() else int(self.delay.max())

    def spec(self) -> dict[str, Any]:
        """Plain-data description (goes into checkpoints; see :func:`layer_from_spec`)."""
        spec: dict[str, Any] = {
            "kind": "cuba_dense", "in_features": self.in_features, "out_features": self.out_features,
            "bias": self.bias is not None, **self._neuron_spec()}
        extras = {"spiking": (self.spiking, True), "input_bits": (self.input_bits, 0),
                  "signed_input": (self.signed_input, False), "neunorm_decay": (self.neunorm_decay, None)}
        spec.update({k: v for k, (v, default) in extras.items() if v != default})
        if self.delay is not None:     # the values travel in the state dict
            spec["delay_shape"] = [int(n) for n in self.delay.shape]
        return spec

    def elements(self) -> list[str]:
        """The architecture elements this layer has, in words (empty for a plain spiking layer)."""
        found = {"a readout integrator": not self.spiking, "an encoding layer": bool(self.input_bits),
                 "signed input": self.signed_input, "NeuNorm": self.aux is not None,
                 "synaptic delays": self.delay is not None}
        return [name for name, present in found.items() if present]

    def synapse_weights(self) -> list[torch.Tensor]:
        """W, deployed as [W, -W] for signed input; NeuNorm's inhibition -(W alpha) too."""
        weights = [self.weight, -self.weight] if self.signed_input else [self.weight]
        return weights + ([self.inhibition()] if self.aux is not None else [])

    def deployed_bias(self) -> torch.Tensor | None:
        return self.bias

    def integer_params(self) -> dict[str, Any]:
        """The exact integers hardware-exact mode uses (what the compiler must write)."""
        s = self.weight_scale
        with torch.no_grad():
            w = self._quantized(self.weight).to(torch.int64)
            b = (bias_to_int(self.bias.double(), s).to(torch.int64) if self.bias is not None
                 else torch.zeros(self.out_features, dtype=torch.int64))
        ints = {"weight": w, "bias": b, "du": decay_to_int(self.current_decay),
                "dv": decay_to_int(self.voltage_decay), "vth": self.chip_threshold()}
        if self.delay is not None:
            ints["delay"] = self.delay.expand(self.out_features, self.in_features).to(torch.int64)
        return ints

    def inhibition(self) -> torch.Tensor:
        """NeuNorm's auxiliary-to-layer weights (out, 1) in threshold units: -(W @ alpha)."""
        assert self.alpha is not None
        return -(self.weight @ self.alpha)[:, None]

    def _quantized(self, w: torch.Tensor) -> torch.Tensor:
        q = weight_to_int(w.double(), self.weight_scale)
        if self.signed_input:  # [W, -W] must both be representable
            q = q - (q - q.clamp(min=-self.fmt.weight_max)).detach()
        return q

    def _encode(self, s_in: torch.Tensor, hardware_exact: bool) -> torch.Tensor:
        """The encoding layer's graded input: exactly the chip's integers in hardware-exact mode."""
        if not (hardware_exact and self.input_bits):
            return s_in
        levels = float(2 ** self.input_bits - 1)
        x = s_in.double().clamp(0.0, 1.0) * levels
        return x + (torch.round(x) - x).detach()

    def _synaptic_input(self, x: torch.Tensor, w: torch.Tensor, hardware_exact: bool) -> torch.Tensor:
        """W @ x[t-1] for every t: the chip's integers in hardware-exact mode (graded: floor(./2**bits));
        with delays ``sum_d W_d @ x[t-1-d]``, the floor taken per delay group as the chip does."""
        # the weight gradient in the parameters' precision (float32 unless the model was made float64)
        synapses = partial(integer_synapses, grad_dtype=self.weight.dtype) if hardware_exact else float_synapses
        post = self._graded_shift if hardware_exact and self.input_bits else None
        if self.delay is not None:
            return delayed_synapses(x, w, self.delay, synapses, post)
        a = synapses(x, w)
        return post(a) if post is not None else a

    def _graded_shift(self, a: torch.Tensor) -> torch.Tensor:
        """The encoding layer's ``weight_exp = -bits``: floor(a / 2**bits), straight-through gradient."""
        a = a / 2 ** self.input_bits
        return a + (torch.floor(a) - a).detach()

    def traces(self, s_in: torch.Tensor, rule: Rule, hardware_exact: bool) -> list[torch.Tensor]:
        """[auxiliary spikes (NeuNorm only), output]: output = spikes (batch, T, out), or for a readout
        integrator its membrane potential in threshold units after every step."""
        x = self._encode(s_in, hardware_exact)
        extra: list[torch.Tensor] = []
        if hardware_exact:
            w = self._quantized(self.weight)
            a = self._synaptic_input(x, w, True)            # exact from any float input dtype
            if self.aux is not None:
                aux = self.aux.traces(s_in, rule, True)[-1]
                a = a + delay_one_step(aux) @ weight_to_int(self.inhibition().double(), self.weight_scale).t()
                extra.append(aux)
            bias: torch.Tensor | float = (bias_to_int(self.bias.double(), self.weight_scale)
                                          if self.bias is not None else 0.0)
        else:
            a = self._synaptic_input(x.to(self.weight.dtype), self.weight, False)
            if self.aux is not None:
                aux = self.aux.traces(s_in, rule, False)[-1]
                a = a + delay_one_step(aux.to(a.dtype)) @ self.inhibition().t()
                extra.append(aux)
            bias = self.bias if self.bias is not None else 0.0
        if rule.custom_layer_backward and not self.elements():
            with torch.no_grad():  # e.g. HM2-BP: forward without autograd, the rule's own backward
                spikes = self._neuron_traces(a.detach(), bias, rule, hardware_exact)
            return [*extra, rule.layer_backward(self, s_in, spikes)]
        return [*extra, self._neuron_traces(a, bias, rule, hardware_exact)]

    def forward(self, s_in: torch.Tensor, rule: Rule, hardware_exact: bool) -> torch.Tensor:
        """Input (batch, T, in) -> output (batch, T, out), with the one-step synaptic delay."""
        return self.traces(s_in, rule, hardware_exact)[-1]


class CubaRecurrentDense(CubaDense):
    """A :class:`CubaDense` layer whose neurons also receive their own spikes through recurrent Dense
    synapses ``recurrent_weight`` (out, out): step t's synaptic input is

        a[t] = W s_in[t-1] + W_rec s[t-1]

    the chip's timing, every synapse delaying one step (compiler/ir.py): Lava's Dense sends the sum of
    the previous step's spikes (SP/lava/proc/dense/models.py:93-107, "prevents deadlocking in networks
    with recurrent connectivity"), and the LIF's input port adds its two Dense inputs
    (SP/lava/magma/core/model/py/ports.py:333-350) before the ``<< 6`` (SP/lava/proc/lif/models.py:154-157).

    Both weights are in threshold units and share the population's one fixed-point format
    (``weight_scale``, chosen from all of its synapses by :meth:`refit_format`); hardware-exact mode
    uses the integers the chip holds for both. The feed-forward synapses are one GEMM over all
    timesteps; the recurrent ones run inside the fused step loop
    (:func:`snnc.models.recurrence.cuba_recurrent_dense`, hand-written backward through time).
    Everything else is CubaDense's (encoding layer, signed input, NeuNorm); the neurons must spike.
    The compiler deploys the recurrent synapses as a Dense self-loop ``lif{k}.rec``.
    """

    def __init__(self, in_features: int, out_features: int, **kwargs: Any):
        if kwargs.get("spiking", True) is not True:
            raise ValueError("a recurrent layer must spike (spiking=False, a readout integrator, has no spikes "
                             "to feed back): make the output layer a CubaDense")
        self._building = True                        # CubaDense's refit_format runs before W_rec exists
        super().__init__(in_features, out_features, **kwargs)
        n = self.out_features
        self.recurrent_weight = nn.Parameter(torch.empty(n, n))
        nn.init.uniform_(self.recurrent_weight, -1.0 / n**0.5, 1.0 / n**0.5)
        self._building = False
        if kwargs.get("weight_scale") is None:
            self.refit_format()

    @property
    def fan_in(self) -> int:
        """Feed-forward and recurrent inputs per neuron (learning-rate scaling sees both)."""
        return self.in_features + self.out_features

    def spec(self) -> dict[str, Any]:
        return {**super().spec(), "kind": "cuba_recurrent_dense"}

    def elements(self) -> list[str]:
        return [*super().elements(), "recurrent synapses"]

    def synapse_weights(self) -> list[torch.Tensor]:
        """CubaDense's, and the recurrent weight (the population's format covers both)."""
        return [*super().synapse_weights(), *(() if self._building else (self.recurrent_weight,))]

    def integer_params(self) -> dict[str, Any]:
        with torch.no_grad():
            w = weight_to_int(self.recurrent_weight.double(), self.weight_scale, self.fmt).to(torch.int64)
        return {**super().integer_params(), "recurrent_weight": w}

    def _neuron_traces(self, a: torch.Tensor, bias: torch.Tensor | float, rule: Rule,
                       hardware_exact: bool) -> torch.Tensor:
        """CubaNeurons' recurrence with the recurrent synapses inside the step loop."""
        keep = 1.0 - self.voltage_decay

        def grad_scale(spikes: torch.Tensor) -> torch.Tensor | None:
            return rule.spike_gradient_scale(spikes, keep)

        if hardware_exact:
            c = CubaConstants.hardware_mode(decay_to_int(self.current_decay), decay_to_int(self.voltage_decay),
                                            self.chip_threshold(), self.state_unit, rule, True, self.fmt)
            w = weight_to_int(self.recurrent_weight.double(), self.weight_scale, self.fmt)
        else:
            c = CubaConstants.float_mode(self.current_decay, self.voltage_decay, self.threshold, rule, True)
            w = self.recurrent_weight.to(a.dtype)
        return cuba_recurrent_dense(a, bias, w, c, rule, self.fmt, grad_scale)
