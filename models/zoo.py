"""The papers' convolutional architectures as ``--arch`` names, sized from the dataset's input shape.

A layout is a string of tokens (the papers' notation): ``20C5p2`` (conv, 20 channels, 5x5 kernel,
padding 2; ``s2`` stride 2), ``P2`` (2x2 pooling), ``R128`` / ``R256s2`` (a residual block, stride
on its second conv), ``FC200`` (a dense hidden layer), ``D0.2`` (dropout in training). The output
layer comes from the readout.

Pooling costs fan-in: a :class:`SumPool` folded into the next layer makes each of its neurons read
every spike of the pooled window (a 3x3 conv after a 2x2 pool reads a 6x6 window). So ``P2`` is a
folded SumPool where the next layer's fan-in stays within a Loihi 1 core's 4096 input axons, and a
:class:`SpikingPool` (its own neurons) where it would not. Widths are the papers' wherever Loihi 1
can hold them; where it cannot, the layer is narrowed and the layout's comment says so. A ``P2`` on
a map smaller than 2x2 is dropped, and before the first dense layer the map is pooled with spiking
pools until the flattened features fit 4096 input axons.
"""
from __future__ import annotations

import re
from typing import Any

from torch import nn

from snnc.errors import UnsupportedLayerError
from snnc.models.conv import CubaConv, Flatten, ResidualBlock, SpikeDropout, SpikingPool, SumPool
from snnc.models.neurons import CubaDense

#: a Loihi 1 neuron's inputs must all arrive at its core: 4096 input axons (nengo-loihi MAX_IN_AXONS)
MAX_FAN_IN = 4096

LAYOUTS: dict[str, str] = {
    # Lee et al. 2020, src/mnist_LeNet.py: 20C5(p2)-AP2-50C5(p2)-AP2-200FC-10
    "lenet": "20C5p2-P2-50C5p2-P2-FC200",
    # Wu et al. 2019 CIFARNet 128C3-256C3-AP2-512C3-AP2-1024C3-512C3-1024FC-512FC, at 1/4 width:
    # 512 input channels into a 3x3 kernel is a fan-in of 4608 > 4096 (no Loihi 1 core can hold it)
    "cifarnet": "32C3p1-64C3p1-P2-128C3p1-P2-256C3p1-128C3p1-FC256-FC128",
    # Lee et al. 2020, src/cifar10_VGG9.py (dropout 0.2 as there): fits Loihi 1 at full width
    "vgg9": "64C3p1-D0.2-64C3p1-P2-128C3p1-D0.2-128C3p1-P2-256C3p1-D0.2-256C3p1-D0.2-256C3p1-P2-FC1024-D0.2",
    # Lee et al. 2020, src/cifar10_ResNet11.py at 1/2 width (its 512-channel 3x3 convs exceed 4096 fan-in):
    # 64C3-AP2-[128,128]+1x1-[256,256/s2]+1x1/s2-[512,512]+1x1-[512,512/s2]+id/s2-1024FC
    "resnet11": "32C3p1-P2-R64-R128s2-R256-R256s2-FC512",
    # Shen et al. 2021 (BPSTA), official N-MNIST script: 128C-MP2-128C-MP2-256C-AP2-512C-AP4-Dropout(0.5)-FC;
    # sum pooling for max pooling; the code's BN and ReLU before every node are not deployable and left out
    "bpsta-nmnist": "128C3p1-P2-128C3p1-P2-256C3p1-P2-512C3p1-P4-D0.5",
}

_TOKEN = re.compile(r"^(?:(?P<c>\d+)C(?P<k>\d+)(?:p(?P<p>\d+))?(?:s(?P<s>\d+))?|P(?P<pool>\d+)|"
                    r"R(?P<r>\d+)(?:s(?P<rs>\d+))?|FC(?P<fc>\d+)|D(?P<d>[0-9.]+))$")


def build_layers(layout: str, input_shape: tuple[int, ...], **neuron: Any) -> list[nn.Module]:
    """The hidden layers of ``layout`` for ``input_shape`` (C, H, W)."""
    if len(input_shape) != 3:
        raise UnsupportedLayerError(f"a convolutional architecture needs (C, H, W) input; this dataset gives "
                                    f"{tuple(input_shape)}. Use --arch mlp, or a dataset of images or events.")
    layers: list[nn.Module] = []
    shape: tuple[int, ...] = tuple(int(x) for x in input_shape)
    tokens = layout.split("-")
    for i, token in enumerate(tokens):
        m = _TOKEN.match(token)
        if m is None:
            raise ValueError(f"bad layout token '{token}' in '{layout}'")
        g = m.groupdict()
        layer: nn.Module
        if g["c"]:
            layer = CubaConv(shape, int(g["c"]), int(g["k"]), padding=int(g["p"] or 0), stride=int(g["s"] or 1),
                             **neuron)
        elif g["pool"]:
            k = int(g["pool"])
            if min(shape[1:]) < k:
                continue   # the map is already smaller than the window (small inputs such as 8x8 digits)
            folded = _folded_fan_in(shape, k, tokens[i + 1:])
            layer = SumPool(shape, k) if folded <= MAX_FAN_IN else SpikingPool(shape, k, **neuron)
        elif g["r"]:
            layer = ResidualBlock(shape, int(g["r"]), stride=int(g["rs"] or 1), **neuron)
        elif g["d"]:
            layer = SpikeDropout(shape, float(g["d"]))
        else:
            if len(shape) == 3:
                layers += _fit_fan_in(layers, shape, neuron)
                shape = layers[-1].out_shape  # type: ignore[assignment]
            layer = CubaDense(int(shape[0]), int(g["fc"]), **neuron)
            layers.append(layer)
            shape = (layer.out_features,)
            continue
        layers.append(layer)
        shape = tuple(layer.out_shape)  # type: ignore[arg-type]
    if len(shape) == 3:
        layers += _fit_fan_in(layers, shape, neuron)
    return layers


def _folded_fan_in(shape: tuple[int, ...], k: int, rest: list[str]) -> int:
    """Inputs per neuron of the next synaptic layer if a k x k pool before it is folded into it."""
    for token in rest:
        m = _TOKEN.match(token)
        g = m.groupdict() if m else {}
        if g.get("c"):
            kernel = int(g["k"])
            return shape[0] * (k * (kernel - 1) + k) ** 2
        if g.get("r"):
            return shape[0] * (k * 2 + k) ** 2
        if g.get("fc"):
            return shape[0] * shape[1] * shape[2]   # every pre-pool feature
        if g.get("pool"):
            k *= int(g["pool"])
    return shape[0] * shape[1] * shape[2]


def _fit_fan_in(layers: list[nn.Module], shape: tuple[int, ...], neuron: dict[str, Any]) -> list[nn.Module]:
    """Before the first dense layer: spiking 2x2 pools until the features its neurons read (every
    pre-pool feature of a folded pool) fit one core's input axons, then Flatten."""
    out: list[nn.Module] = []
    if layers and isinstance(layers[-1], SumPool):   # folding it would multiply the dense fan-in by k^2
        pool = layers.pop()
        if pool.in_features > MAX_FAN_IN:
            out.append(SpikingPool(pool.in_shape, pool.kernel, **neuron))
        else:
            out.append(pool)
        shape = pool.out_shape
    while shape[0] * shape[1] * shape[2] > MAX_FAN_IN and min(shape[1:]) >= 2:
        pool = SpikingPool(shape, 2, **neuron)
        out.append(pool)
        shape = pool.out_shape
    out.append(Flatten(shape))
    return out
