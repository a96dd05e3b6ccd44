"""Lowerings that turn model layers the chip has no process for into synapses it runs exactly.

Sum pooling of spikes feeding synapses is linear, so ``W * sumpool_k(s)`` is one synapse reading
``s`` directly: a Conv with the kernel repeated over each k x k window (kernel ``k d (K - 1) + k``,
stride ``k`` times the conv's, padding ``k`` times), or a Dense whose columns repeat over the
window. Windows do not overlap (stride = kernel), so every fused weight is one trained weight and
the integers are unchanged. BatchNorm folding lives with the layer (``CubaConv.effective``). Convs with more groups than Lava's
int8 ``groups`` Var holds run as fewer merged groups with a block-diagonal kernel (the same conv).
"""
from __future__ import annotations

import numpy as np

from snnc.errors import UnsupportedLayerError


def fuse_pool_into_conv(weight: np.ndarray, pooled_shape: tuple[int, ...], k: int, stride: tuple[int, int],
                        padding: tuple[int, int], dilation: tuple[int, int], in_shape: tuple[int, ...],
                        where: str) -> tuple[np.ndarray, dict[str, tuple[int, int]]]:
    """(weight, geometry) of the conv on the un-pooled map equal to ``conv(sumpool_k(s))``.

    Exact only if the conv's zero padding lines up with the map: with padding, the pool must tile
    the input exactly (otherwise the fused conv would read the rows the pool drops).
    """
    c, h, w = in_shape
    if any(padding) and (h % k or w % k):
        raise UnsupportedLayerError(
            f"{where}: a {k}x{k} pool on a {h}x{w} map drops {h % k} row(s)/{w % k} column(s), and the padded "
            f"convolution after it cannot be folded exactly. Make the map divisible by {k} (pad or crop the "
            f"input) or use padding 0 in that convolution.")
    co, ci, kh, kw = weight.shape
    fused = np.zeros((co, ci, k * dilation[0] * (kh - 1) + k, k * dilation[1] * (kw - 1) + k), dtype=weight.dtype)
    for b1 in range(kh):
        for b2 in range(kw):
            y, x = k * dilation[0] * b1, k * dilation[1] * b2
            fused[:, :, y:y + k, x:x + k] = weight[:, :, b1:b1 + 1, b2:b2 + 1]
    geom = {"stride": (k * stride[0], k * stride[1]), "padding": (k * padding[0], k * padding[1]),
            "dilation": (1, 1)}
    return fused, geom


def fuse_pool_into_dense(weight: np.ndarray, pooled_shape: tuple[int, ...], k: int,
                         in_shape: tuple[int, ...]) -> np.ndarray:
    """Dense weight (out, C*H*W) over the un-pooled map equal to ``W @ flatten(sumpool_k(s))``."""
    c, hp, wp = pooled_shape
    _, h, w = in_shape
    out = weight.shape[0]
    pooled = weight.reshape(out, c, hp, wp)
    fused = np.zeros((out, c, h, w), dtype=weight.dtype)
    fused[:, :, :hp * k, :wp * k] = pooled.repeat(k, axis=2).repeat(k, axis=3)
    return fused.reshape(out, c * h * w)


#: Lava's Conv process model holds kernel_size, stride, padding, dilation and groups as int8
#: (SP/lava/proc/conv/models.py:25-29): larger values do not survive.
CONV_GEOMETRY_MAX = 127


def lava_groups(groups: int) -> int:
    """The grouping Lava can run for a conv with ``groups`` groups: the largest divisor of ``groups`` that
    Lava's int8 ``groups`` Var holds (SP/lava/proc/conv/models.py:29; 128 fails with OverflowError
    in SP/lava/magma/compiler/builders/py_builder.py:403). E.g. 128 -> 64, 254 -> 127."""
    return max(d for d in range(1, min(groups, CONV_GEOMETRY_MAX) + 1) if groups % d == 0)


def merge_groups(weight: np.ndarray, groups: int, merged: int) -> np.ndarray:
    """The same convolution with ``merged`` groups (a divisor of ``groups``): each merged group holds
    ``groups // merged`` original groups, with zero weights between them (block-diagonal kernel)."""
    out, cin_g = weight.shape[:2]
    m, out_g = groups // merged, out // groups
    w = np.zeros((out, cin_g * m, *weight.shape[2:]), dtype=weight.dtype)
    for o in range(out):
        j = (o // out_g) % m
        w[o, j * cin_g:(j + 1) * cin_g] = weight[o]
    return w


def split_groups(weight: np.ndarray, merged: int, groups: int) -> np.ndarray | None:
    """Inverse of :func:`merge_groups`; None if ``weight`` is not block-diagonal for ``groups``."""
    out, cin_m = weight.shape[:2]
    if groups % merged or out % groups or cin_m % (groups // merged):
        return None
    m, out_g = groups // merged, out // groups
    cin_g = cin_m // m
    w = np.empty((out, cin_g, *weight.shape[2:]), dtype=weight.dtype)
    for o in range(out):
        j = (o // out_g) % m
        w[o] = weight[o, j * cin_g:(j + 1) * cin_g]
    return w if np.array_equal(merge_groups(w, groups, merged), weight) else None
