"""The fake-quantizers that train with Loihi's fixed-point formats, and the per-layer format choice.

The formats themselves are data in :mod:`snnc.models.fixed_point` (torch-free, so that the runtime
and hwsim load without torch); they are re-exported here.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch

from snnc.models.fixed_point import LOIHI_FIXED_POINT, FixedPointFormat

__all__ = ["LOIHI_FIXED_POINT", "FixedPointFormat", "AUTO_VTH_MAX", "AUTO_VTH_MAX_READOUT", "choose_weight_scale",
           "weight_to_int", "bias_to_int", "threshold_to_int", "decay_to_int", "trunc_ste"]

#: Per-layer formats (:func:`choose_weight_scale`): the largest threshold mantissa chosen automatically.
#: ``vth << 6`` is then at most 2**17, so a spiking layer's 24-bit state keeps +-64 thresholds of
#: headroom; a readout integrator, whose v sums its input over the whole window, keeps +-1024 (2**7).
AUTO_VTH_MAX = 2**11
AUTO_VTH_MAX_READOUT = 2**7


def choose_weight_scale(weights: Sequence[torch.Tensor], bias: torch.Tensor | None, threshold: float,
                        spiking: bool = True, fmt: FixedPointFormat = LOIHI_FIXED_POINT) -> float:
    """A layer's fixed-point format: the integer units per threshold unit (``weight_scale``).

    The largest power of two at which no weight of any synapse into the layer (``weights``, threshold
    units) leaves the 8-bit range and no bias leaves the 13-bit mantissa, capped at a threshold
    mantissa of :data:`AUTO_VTH_MAX` (:data:`AUTO_VTH_MAX_READOUT` for a readout integrator). The
    threshold mantissa is then ``threshold * scale``: fine weight steps (2 / scale thresholds) where
    weights are small, e.g. a 784-input layer's initial +-1/28 spans 71 levels at scale 2048 where
    the fixed scale 64 gave it 3, and range where they are large. Nothing clips; rounding is the only
    loss. A power of two, so that the integers change only when the weight range crosses a factor 2.
    """
    limits = [(AUTO_VTH_MAX if spiking else AUTO_VTH_MAX_READOUT) / threshold]
    pos = max((float(w.detach().max()) for w in weights if w.numel()), default=0.0)
    neg = max((float(-w.detach().min()) for w in weights if w.numel()), default=0.0)
    if pos > 0:
        limits.append(fmt.weight_max / pos)
    if neg > 0:
        limits.append(-fmt.weight_min / neg)
    if bias is not None and bias.numel() and float(bias.detach().abs().max()) > 0:
        limits.append(fmt.bias_mant_max / float(bias.detach().abs().max()))
    return 2.0 ** math.floor(math.log2(min(limits)))


def _ste(exact: torch.Tensor, surrogate: torch.Tensor) -> torch.Tensor:
    """Forward ``exact``, backward the identity of ``surrogate`` (straight-through estimator)."""
    return surrogate + (exact - surrogate).detach()


def weight_to_int(w: torch.Tensor, scale: float, fmt: FixedPointFormat = LOIHI_FIXED_POINT) -> torch.Tensor:
    """Float weights (threshold units) to the chip's integer weights, straight-through.

    ``torch.round`` rounds half to even, like slayer's ``quantize_8bit``.
    """
    scaled = w * scale
    q = torch.clamp(torch.round(scaled / fmt.weight_step) * fmt.weight_step, fmt.weight_min, fmt.weight_max)
    return _ste(q, scaled)


def bias_to_int(b: torch.Tensor, scale: float, fmt: FixedPointFormat = LOIHI_FIXED_POINT) -> torch.Tensor:
    """Float bias (threshold units per step) to the 13-bit bias mantissa (added as mant << 6)."""
    scaled = b * scale
    return _ste(torch.clamp(torch.round(scaled), fmt.bias_mant_min, fmt.bias_mant_max), scaled)


def threshold_to_int(threshold: float, scale: float) -> int:
    """Float threshold to the integer ``vth`` mantissa (range is checked by the compiler)."""
    return int(round(threshold * scale))


def decay_to_int(decay: float, fmt: FixedPointFormat = LOIHI_FIXED_POINT) -> int:
    """A decay fraction in [0, 1] to the effective 12-bit decay (factor (4096 - d) / 4096)."""
    return int(round(decay * fmt.decay_unity))


def trunc_ste(x: torch.Tensor) -> torch.Tensor:
    """Round toward zero, as Lava's ``sign(x) * (abs(x) >> 12)``; identity gradient."""
    return _ste(torch.trunc(x), x)
