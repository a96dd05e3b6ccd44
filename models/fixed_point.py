"""Loihi's fixed-point number formats, as data (no torch: the runtime and hwsim load it cheaply).

The single source of the integer formats: hardware-exact training (:mod:`snnc.models.quant`) fake-
quantizes with them, the compiler's quantize pass produces the integers it writes with them, and
hwsim reads them from the compiled graph. Every constant names the Lava source it mirrors
(lava-nc 0.10.0; ``SP`` = site-packages).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping


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
