"""Lowerings that turn model layers the chip has no process for into synapses it runs exactly.

Sum pooling of spikes feeding synapses is linear, so ``W * sumpool_k(s)`` is one synapse reading
``s`` directly: a Conv with the kernel repeated over each k x k window (kernel ``k d (K - 1) + k``,
stride ``k`` times the conv's, padding ``k`` times), or a Dense whose columns repeat over the
window. Windows do not overlap (stride = kernel), so every fused weight is one trained weight and
the integers are unchanged. BatchNorm folding lives with the layer (``CubaConv.effective``).
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
