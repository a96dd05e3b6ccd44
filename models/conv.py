"""Convolutional deployable layers: conv + CUBA-LIF, sum pooling, flatten, dropout, residual blocks.

Spike tensors stay flat, (batch, T, C*H*W) in PyTorch's (C, H, W) order, so ``Flatten`` is free and a
Dense layer after a conv reads the same vector the chip holds. The equations are the ones in
``snnc.compiler.ir``'s docstring; what each layer becomes on the chip:

* :class:`CubaConv`: a Lava ``Conv`` process into a (C, H, W) LIF population. In hardware-exact mode
  its synaptic input is ``wrap24(conv(W_int, s[t-1]))``, exactly what Lava's fixed-point Conv sends
  (SP/lava/proc/conv/models.py:68-79). Optional BatchNorm is folded: its scale into the weights, its
  shift into the neurons' bias, so the compiler writes exactly what this layer computes.
* :class:`SumPool`: no neurons of its own. Pooling binary spikes and feeding the sum to the next
  synapses is linear, so the compiler folds it into the next Conv (a strided conv with the kernel
  repeated over the pool window) or Dense. Average pooling is sum pooling with ``1/k^2`` in the next
  layer's weights; snnc models pool by sums so that the trained integers are the chip's.
* :class:`Flatten` and :class:`SpikeDropout`: nothing on the chip (dropout only acts in training).
* :class:`ResidualBlock`: two conv populations; the second also receives the block's input through
  a shortcut synapse (identity, or a trained 1x1 conv when the shape changes). On the chip every
  synapse delays by one step, so the shortcut delivers ``s_in[t-1]`` while the main path delivers
  spikes caused by ``s_in[t-2]``: the model trains with exactly that timing.
"""
from __future__ import annotations

import math

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from snnc.models.neurons import CubaNeurons, delay_one_step
from snnc.models.quant import bias_to_int, weight_to_int
from snnc.models.recurrence import integer_bound
from snnc.models.rules import Rule


def _pair(v: int | tuple[int, int] | list[int]) -> tuple[int, int]:
    return (int(v), int(v)) if isinstance(v, int) else (int(v[0]), int(v[1]))


def conv_out_shape(in_shape: tuple[int, int, int], channels: int, kernel: tuple[int, int],
                   stride: tuple[int, int], padding: tuple[int, int], dilation: tuple[int, int]) -> tuple[int, int, int]:
    """(C, H, W) after a convolution, as torch.nn.Conv2d computes it."""
    hw = [(in_shape[1 + i] + 2 * padding[i] - dilation[i] * (kernel[i] - 1) - 1) // stride[i] + 1 for i in range(2)]
    return int(channels), int(hw[0]), int(hw[1])


def wrap24_ste(x: torch.Tensor) -> torch.Tensor:
    """Lava Conv's 24-bit output wrap (SP/lava/proc/conv/utils.py:67-84); identity gradient."""
    return x - (torch.floor((x + 2.0**23) / 2.0**24) * 2.0**24).detach()


class ConvSynapses:
    """The geometry of one convolution over flat (batch, T, C*H*W) spike trains."""

    def __init__(self, in_shape: tuple[int, ...], out_channels: int, kernel_size: Any, stride: Any = 1,
                 padding: Any = 0, dilation: Any = 1, groups: int = 1):
        self.in_shape = tuple(int(x) for x in in_shape)
        if len(self.in_shape) != 3:
            raise ValueError(f"a convolution takes (C, H, W) input, got shape {self.in_shape}")
        self.kernel, self.stride = _pair(kernel_size), _pair(stride)
        self.padding, self.dilation, self.groups = _pair(padding), _pair(dilation), int(groups)
        if self.in_shape[0] % self.groups or out_channels % self.groups:
            raise ValueError(f"groups={groups} must divide the {self.in_shape[0]} input and {out_channels} "
                             f"output channels")
        self.out_shape = conv_out_shape(self.in_shape, out_channels, self.kernel, self.stride, self.padding,
                                        self.dilation)
        if min(self.out_shape) < 1:
            raise ValueError(f"kernel {self.kernel} does not fit input {self.in_shape} with padding {self.padding}")

    def spec(self) -> dict[str, Any]:
        return {"in_shape": list(self.in_shape), "kernel_size": list(self.kernel), "stride": list(self.stride),
                "padding": list(self.padding), "dilation": list(self.dilation), "groups": self.groups}

    def __call__(self, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        """conv(W, x) for x (batch, T, C*H*W) -> (batch, T, C'*H'*W'), no delay."""
        b, t = x.shape[:2]
        y = F.conv2d(x.reshape(b * t, *self.in_shape), weight, stride=self.stride, padding=self.padding,
                     dilation=self.dilation, groups=self.groups)
        return y.reshape(b, t, -1)


def _exact_in_float32(x: torch.Tensor, w_int: torch.Tensor, geom: ConvSynapses) -> bool:
    """Whether float32 computes ``conv(W_int, x)`` exactly and Lava's 24-bit wrap cannot trigger:
    integer-valued inputs and every partial sum of magnitude below 2**23 (bounded by max |x| max |W|
    times the fan-in). Integers below 2**24 are exact in float32 in any summation order."""
    if x.numel() == 0 or w_int.numel() == 0:
        return False
    fan_in = w_int.shape[1] * w_int.shape[2] * w_int.shape[3]
    x_max, integers = integer_bound(x.detach())
    return x_max * float(w_int.detach().abs().max()) * fan_in < 2.0**23 and integers


class _ExactConv(torch.autograd.Function):
    """Hardware-exact conv synapses ``delay(conv(W_int, x))`` (float64 out) for integer inputs whose sums
    provably stay below 2**23 (:func:`_exact_in_float32`): the forward as one float32 convolution (exact,
    so bit-identical to the float64 one, and no 24-bit wrap to apply), the backward as autograd computes
    it for the convolution (``torch.nn.grad``) in the trained parameters' precision ``grad_dtype``: float32
    for snn-train's float32 weights, as snnTorch's and SpikingJelly's convolutions are trained (the float64
    backward was ~45% of a LeNet step, docs/performance.md); float64 for float64 weights."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, w: torch.Tensor, geom: ConvSynapses,  # type: ignore[override]
                grad_dtype: torch.dtype = torch.float64) -> torch.Tensor:
        b, t = x.shape[:2]
        x32 = x[:, :-1].to(torch.float32)
        # the backward's float32 weight gradient reads the same float32 inputs: kept, not converted again
        ctx.save_for_backward(x32 if grad_dtype == torch.float32 else x, w)
        ctx.geom, ctx.grad_dtype, ctx.x_dtype = geom, grad_dtype, x.dtype
        y = geom(x32, w.to(torch.float32))
        out = torch.empty(b, t, y.shape[-1], dtype=torch.float64, device=x.device)
        out[:, 0].zero_()
        out[:, 1:].copy_(y)
        return out

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[Any, ...]:  # type: ignore[override]
        x, w = ctx.saved_tensors            # x: the float32 inputs x[:, :-1], or all of x (float64 sums)
        geom = ctx.geom
        b = x.shape[0]
        t = grad.shape[1]
        dt = torch.float32 if ctx.grad_dtype == torch.float32 else torch.float64
        g = grad[:, 1:].to(dt).reshape(b * (t - 1), *geom.out_shape)
        kw = dict(stride=geom.stride, padding=geom.padding, dilation=geom.dilation, groups=geom.groups)
        grad_x = grad_w = None
        if ctx.needs_input_grad[0]:
            gx = torch.nn.grad.conv2d_input((b * (t - 1), *geom.in_shape), w.detach().to(dt), g, **kw)
            grad_x = gx.new_empty(b, t, gx[0].numel(), dtype=ctx.x_dtype)
            grad_x[:, -1].zero_()                  # the last step's input feeds nothing
            grad_x[:, :-1].copy_(gx.reshape(b, t - 1, -1))
        if ctx.needs_input_grad[1]:
            xs = x.detach() if dt == torch.float32 else x.detach()[:, :-1].to(dt)
            grad_w = torch.nn.grad.conv2d_weight(xs.reshape(b * (t - 1), *geom.in_shape), w.shape, g, **kw).to(w.dtype)
        return grad_x, grad_w, None, None


class CubaConv(CubaNeurons):
    """2-D convolution synapses into a (C, H, W) population of CUBA-LIF neurons: one deployable layer.

    Parameters are in threshold units, as for :class:`~snnc.models.neurons.CubaDense`; ``bias`` is per
    output channel (a per-step current into ``v``). ``batch_norm``: per-channel normalisation of the
    synaptic input, folded for deployment (scale -> weights, shift -> bias); in training it uses the
    batch's statistics (not differentiated through), at inference its running statistics.
    """

    def __init__(self, in_shape: tuple[int, ...], out_channels: int, kernel_size: Any = 3, *, stride: Any = 1,
                 padding: Any = 0, dilation: Any = 1, groups: int = 1, bias: bool = True,
                 batch_norm: bool = False, current_decay: float = 0.5, voltage_decay: float = 0.2,
                 threshold: float = 1.0, weight_scale: float | None = None, auto_scale: bool | None = None,
                 spiking: bool = True):
        super().__init__()
        self._init_neurons(current_decay, voltage_decay, threshold, weight_scale, spiking, auto_scale)
        self.geom = ConvSynapses(in_shape, int(out_channels), kernel_size, stride, padding, dilation, groups)
        self.out_channels = int(out_channels)
        self.in_features = math.prod(self.geom.in_shape)
        self.out_features = math.prod(self.geom.out_shape)
        fan_in = self.fan_in
        self.weight = nn.Parameter(torch.empty(self.out_channels, self.geom.in_shape[0] // self.geom.groups,
                                               *self.geom.kernel))
        nn.init.uniform_(self.weight, -1.0 / fan_in**0.5, 1.0 / fan_in**0.5)
        self.bias = nn.Parameter(torch.zeros(self.out_channels)) if bias else None
        self.bn = nn.BatchNorm2d(self.out_channels) if batch_norm else None
        if weight_scale is None:
            self.refit_format()

    @property
    def in_shape(self) -> tuple[int, ...]:
        return self.geom.in_shape

    @property
    def fan_in(self) -> int:
        return self.geom.in_shape[0] // self.geom.groups * self.geom.kernel[0] * self.geom.kernel[1]

    @property
    def out_shape(self) -> tuple[int, int, int]:
        return self.geom.out_shape

    def spec(self) -> dict[str, Any]:
        spec = {"kind": "cuba_conv", **self.geom.spec(), "out_channels": self.out_channels,
                "bias": self.bias is not None, **self._neuron_spec()}
        if self.bn is not None:
            spec["batch_norm"] = True
        if not self.spiking:
            spec["spiking"] = False
        return spec

    def elements(self) -> list[str]:
        """Architecture elements (for rules that cannot train them)."""
        return ["a convolution"] + (["batch norm"] if self.bn is not None else [])

    def effective(self, x: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(weight, per-channel bias) in threshold units with BatchNorm folded in.

        In training ``x`` (this layer's input) gives the batch statistics, which also update the
        running ones; at inference (and for the compiler) the running statistics are used.
        """
        b = self.bias if self.bias is not None else torch.zeros(self.out_channels, dtype=self.weight.dtype,
                                                                device=self.weight.device)
        if self.bn is None:
            return self.weight, b
        bn = self.bn
        if self.training and x is not None:
            with torch.no_grad():
                a = self.geom(x.to(self.weight.dtype), self.weight)
                a = a.reshape(-1, self.out_channels, self.out_shape[1] * self.out_shape[2])
                mean = a.mean(dim=(0, 2))
                var = a.var(dim=(0, 2), unbiased=False)
                n = a.shape[0] * a.shape[2]
                m = bn.momentum if bn.momentum is not None else 0.1
                bn.running_mean.mul_(1 - m).add_(m * mean)
                bn.running_var.mul_(1 - m).add_(m * var * n / max(n - 1, 1))
                bn.num_batches_tracked += 1
        else:
            mean, var = bn.running_mean, bn.running_var
        scale = bn.weight / torch.sqrt(var + bn.eps)
        return self.weight * scale[:, None, None, None], b + bn.bias - scale * mean

    def synapse_weights(self) -> list[torch.Tensor]:
        return [self.effective()[0]]

    def deployed_bias(self) -> torch.Tensor | None:
        return self.effective()[1]

    def integer_params(self) -> dict[str, Any]:
        """The exact integers hardware-exact mode uses (what the compiler must write)."""
        with torch.no_grad():
            w, b = self.effective()
            return {"weight": weight_to_int(w.double(), self.weight_scale).to(torch.int64),
                    "bias": bias_to_int(b.double(), self.weight_scale).to(torch.int64)}

    def synaptic_input(self, x: torch.Tensor, geom: ConvSynapses, weight: torch.Tensor,
                       hardware_exact: bool) -> torch.Tensor:
        """One conv synapse's input to these neurons for every step (one-step delay included):
        ``wrap24(conv(W_int, s[t-1]))`` in hardware-exact mode, where W_int uses this population's scale."""
        if hardware_exact:
            w_int = weight_to_int(weight.double(), self.weight_scale)
            if x.device.type == "cpu" and _exact_in_float32(x, w_int, geom):
                return _ExactConv.apply(x, w_int, geom, weight.dtype)    # wrap24 provably the identity
            return wrap24_ste(delay_one_step(geom(x.double(), w_int)))
        return delay_one_step(geom(x.to(weight.dtype), weight))

    def traces(self, s_in: torch.Tensor, rule: Rule, hardware_exact: bool,
               extra: list[tuple[torch.Tensor, ConvSynapses, torch.Tensor]] = ()) -> list[torch.Tensor]:  # type: ignore[assignment]
        """[output] (batch, T, C*H*W); ``extra``: further synapses (input, geometry, float weight)
        into the same neurons, e.g. a residual shortcut."""
        w, b = self.effective(s_in)
        a = self.synaptic_input(s_in, self.geom, w, hardware_exact)
        for x, geom, weight in extra:
            a = a + self.synaptic_input(x, geom, weight, hardware_exact)
        hw = self.out_shape[1] * self.out_shape[2]
        bias = (bias_to_int(b.double(), self.weight_scale) if hardware_exact else b).repeat_interleave(hw)
        return [self._neuron_traces(a, bias, rule, hardware_exact)]

    def forward(self, s_in: torch.Tensor, rule: Rule, hardware_exact: bool) -> torch.Tensor:
        return self.traces(s_in, rule, hardware_exact)[-1]


class SumPool(nn.Module):
    """Non-overlapping k x k sum pooling of spikes (stride = kernel); folded into the next synapses."""

    def __init__(self, in_shape: tuple[int, ...], kernel_size: int = 2, stride: int | None = None):
        super().__init__()
        self.in_shape = tuple(int(x) for x in in_shape)
        self.kernel = int(kernel_size)
        if stride is not None and int(stride) != self.kernel:
            raise ValueError(f"pooling with stride {stride} != kernel {kernel_size} overlaps windows; snnc folds "
                             f"pooling into the next layer's weights, which is exact only for non-overlapping "
                             f"windows. Use stride = kernel.")
        if len(self.in_shape) != 3:
            raise ValueError(f"pooling takes (C, H, W) input, got {self.in_shape}")
        c, h, w = self.in_shape
        if h < self.kernel or w < self.kernel:
            raise ValueError(f"a {self.kernel}x{self.kernel} pool does not fit a {h}x{w} map")
        self.out_shape = (c, h // self.kernel, w // self.kernel)
        self.in_features = c * h * w
        self.out_features = c * self.out_shape[1] * self.out_shape[2]

    def spec(self) -> dict[str, Any]:
        return {"kind": "sum_pool", "in_shape": list(self.in_shape), "kernel_size": self.kernel}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t = x.shape[:2]
        y = F.avg_pool2d(x.reshape(b * t, *self.in_shape), self.kernel, divisor_override=1)
        return y.reshape(b, t, -1)


class Flatten(nn.Module):
    """Marks the end of the (C, H, W) part; spikes are already flat in that order (nothing to do)."""

    def __init__(self, in_shape: tuple[int, ...]):
        super().__init__()
        self.in_shape = tuple(int(x) for x in in_shape)
        self.out_features = self.in_features = math.prod(self.in_shape)
        self.out_shape = (self.out_features,)

    def spec(self) -> dict[str, Any]:
        return {"kind": "flatten", "in_shape": list(self.in_shape)}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


class SpikeDropout(nn.Module):
    """Dropout on spike trains in training (independent per element and step); removed for deployment."""

    def __init__(self, in_shape: tuple[int, ...], p: float = 0.2):
        super().__init__()
        if not 0 <= float(p) < 1:
            raise ValueError(f"dropout probability must be in [0, 1), got {p}")
        self.in_shape, self.p = tuple(int(x) for x in in_shape), float(p)
        self.out_features = self.in_features = math.prod(self.in_shape)
        self.out_shape = self.in_shape

    def spec(self) -> dict[str, Any]:
        return {"kind": "dropout", "in_shape": list(self.in_shape), "p": self.p}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.dropout(x, self.p, self.training)


class ResidualBlock(nn.Module):
    """conv3x3 -> LIF -> conv3x3/stride (+ shortcut from the block's input) -> LIF: two populations.

    As in Lee et al. 2020's ResNet11 the stride sits on the second conv; the shortcut is the identity
    (weight 1 per channel, subsampled by the stride) when the channel count is kept, else a trained
    1x1 conv with the same stride.
    """

    def __init__(self, in_shape: tuple[int, ...], out_channels: int, *, stride: int = 1, batch_norm: bool = False,
                 weight_scales: list[float] | None = None, **neuron: Any):
        super().__init__()
        self.in_shape = tuple(int(x) for x in in_shape)
        self.conv_a = CubaConv(self.in_shape, out_channels, 3, padding=1, batch_norm=batch_norm, **neuron)
        self.conv_b = CubaConv(self.conv_a.out_shape, out_channels, 3, stride=stride, padding=1,
                               batch_norm=batch_norm, **neuron)
        c_in = self.in_shape[0]
        self.identity = c_in == out_channels
        if self.identity:   # weight 1 (threshold units): each input spike adds to its own channel's neuron
            self.shortcut = ConvSynapses(self.in_shape, out_channels, 1, stride=stride, groups=c_in)
            self.register_buffer("shortcut_weight", torch.ones(out_channels, 1, 1, 1))
        else:
            self.shortcut = ConvSynapses(self.in_shape, out_channels, 1, stride=stride)
            self.shortcut_weight = nn.Parameter(torch.empty(out_channels, c_in, 1, 1))
            nn.init.uniform_(self.shortcut_weight, -1.0 / c_in**0.5, 1.0 / c_in**0.5)
        if self.shortcut.out_shape != self.conv_b.out_shape:
            raise ValueError(f"residual block: shortcut {self.shortcut.out_shape} != main path {self.conv_b.out_shape}")
        self.out_shape = self.conv_b.out_shape
        self.in_features, self.out_features = self.conv_a.in_features, self.conv_b.out_features
        self.spiking = True
        if weight_scales is not None:   # a checkpoint's per-population formats
            if len(weight_scales) != 2:
                raise ValueError(f"a residual block has two populations; got weight_scales {weight_scales}")
            self.conv_a.weight_scale, self.conv_b.weight_scale = (float(s) for s in weight_scales)
        elif neuron.get("weight_scale") is None:
            self.refit_format()

    def refit_format(self) -> None:
        """Each population's format; the shortcut's weights arrive at the second one."""
        self.conv_a.refit_format()
        self.conv_b.refit_format(extra=[self.shortcut_weight])

    def spec(self) -> dict[str, Any]:
        neuron = self.conv_a._neuron_spec()
        return {"kind": "residual", "in_shape": list(self.in_shape), "out_channels": self.conv_b.out_channels,
                "stride": self.conv_b.geom.stride[0], "batch_norm": self.conv_a.bn is not None, **neuron,
                "weight_scales": [self.conv_a.weight_scale, self.conv_b.weight_scale]}

    def elements(self) -> list[str]:
        return ["a residual block"]

    def populations(self) -> list[CubaConv]:
        return [self.conv_a, self.conv_b]

    def traces(self, s_in: torch.Tensor, rule: Rule, hardware_exact: bool) -> list[torch.Tensor]:
        """[first population's spikes, second population's spikes]."""
        s_a = self.conv_a.traces(s_in, rule, hardware_exact)[-1]
        s_b = self.conv_b.traces(s_a, rule, hardware_exact, extra=[(s_in, self.shortcut, self.shortcut_weight)])[-1]
        return [s_a, s_b]


class SpikingPool(CubaConv):
    """k x k pooling with its own neurons: a depthwise stride-k conv with fixed weights into CUBA-LIF
    neurons (lava-dl's slayer Pool block has the same shape). Where folding a :class:`SumPool` into the
    next layer would give that layer more inputs than a core can take, the zoo uses this instead.
    The fixed weight (``POOL_WEIGHT`` thresholds) makes one input spike enough to fire."""

    POOL_WEIGHT = 1.25

    def __init__(self, in_shape: tuple[int, ...], kernel_size: int = 2, **neuron: Any):
        c = int(in_shape[0])
        super().__init__(in_shape, c, int(kernel_size), stride=int(kernel_size), groups=c, bias=False, **neuron)
        self.weight.requires_grad_(False)
        with torch.no_grad():
            self.weight.fill_(self.POOL_WEIGHT)
        if neuron.get("weight_scale") is None:
            self.refit_format()

    def spec(self) -> dict[str, Any]:
        return {"kind": "spiking_pool", "in_shape": list(self.in_shape), "kernel_size": self.geom.kernel[0],
                **self._neuron_spec()}

    def elements(self) -> list[str]:
        return ["a spiking pool"]
