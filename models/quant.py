"""Loihi fixed-point number formats, and the fake-quantizers that train with them.

This module is the single source of the integer formats: hardware-exact training uses them to
fake-quantize, the compiler's quantize pass uses them to produce the integers it writes, and hwsim
reads them from the compiled graph. Every constant names the Lava source it mirrors
(lava-nc 0.10.0; ``SP`` = site-packages).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Mapping, Sequence

import torch


@dataclass(frozen=True)
class FixedPointFormat:
    """Bit widths and encodings of one chip's neuron and synapse state."""

    name: str
    # Mixed-sign 8-bit Dense: clip to [-256, 255] then drop the LSB (k = 8 - 8 + 1), so the
    # representable weights are the even integers in [-256, 254].
    weight_min: int = -256
    weight_max: int = 254
    weight_step: int = 2
    decay_unity: int = 4096          # 12-bit decays
    current_decay_offset: int = 1    # ds_offset: Lava adds 1 to du
    act_shift: int = 6               # a_in << 6 into u
    vth_shift: int = 6               # v > vth << 6
    state_bits: int = 24             # u wraps, v clips, at 24 bits
    vth_max: int = 2**17 - 1         # 17-bit threshold mantissa
    bias_mant_min: int = -(2**12)    # 13-bit signed bias mantissa
    bias_mant_max: int = 2**12 - 1
    bias_exp: int = 6                # bias in weight units, as netx writes it
    sources: Mapping[str, str] = field(default_factory=dict, compare=False)

    @property
    def state_max(self) -> int:
        return 2 ** (self.state_bits - 1)


LOIHI_FIXED_POINT = FixedPointFormat(
    name="loihi",
    sources={
        "weight_min/weight_max/weight_step": "SP/lava/utils/weightutils.py:204-295 (clip_weights, "
        "truncate_weights, MIXED, num_weight_bits=8); SP/lava/proc/dense/models.py:82-91",
        "decay_unity": "SP/lava/proc/lif/models.py:94-108 (decay_shift=12, decay_unity=4096)",
        "current_decay_offset": "SP/lava/proc/lif/models.py:94-108 (ds_offset=1)",
        "act_shift/vth_shift": "SP/lava/proc/lif/models.py:94-108 (act_shift=6, vth_shift=6)",
        "state_bits": "SP/lava/proc/lif/models.py:145-186 (u wraps, v clips at 24 bits)",
        "vth_max": "SP/lava/proc/lif/process.py:124 (vth 17 bits; docstring range 0..131071)",
        "bias_mant": "SP/lava/proc/lif/models.py:78-85 (bias_mant precision 13)",
        "bias_exp": "SP/lava/lib/dl/netx/hdf5.py:144-163 (bias_exp=6)",
    },
)


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
