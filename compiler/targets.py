"""Targets as data: bit widths and per-core limits, each with where the number comes from."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

from snnc.errors import SnncError
from snnc.models.quant import LOIHI_FIXED_POINT, FixedPointFormat


@dataclass(frozen=True)
class Target:
    """A chip: its fixed-point format and the limits a mapping must respect."""

    name: str
    description: str
    fixed_point: FixedPointFormat
    neurons_per_core: int
    input_axons_per_core: int
    output_axons_per_core: int
    synapse_words_per_core: int      # 64-bit words of synaptic memory
    synapse_block: int               # synapses per block in the dense format
    synapse_block_header_bits: int
    stored_weight_bits: int
    cores_per_chip: int
    max_synaptic_sum: int            # |W @ s| bound under which u cannot leave its 24 bits
    sources: Mapping[str, str] = field(default_factory=dict, compare=False)


LOIHI = Target(
    name="loihi",
    description="Intel Loihi 1 as modelled bit-exactly by Lava's fixed_pt processes",
    fixed_point=LOIHI_FIXED_POINT,
    neurons_per_core=1024,
    input_axons_per_core=4096,
    output_axons_per_core=4096,
    synapse_words_per_core=16384,
    synapse_block=64,
    synapse_block_header_bits=10,
    stored_weight_bits=8,
    cores_per_chip=128,
    max_synaptic_sum=2**18,
    sources={
        "neurons_per_core": "nengo-loihi block.py MAX_COMPARTMENTS; Davies et al. 2018 p.89",
        "input_axons_per_core": "nengo-loihi block.py MAX_IN_AXONS; Davies et al. 2018 p.89",
        "output_axons_per_core": "nengo-loihi block.py MAX_OUT_AXONS; Davies et al. 2018 p.89",
        "synapse_words_per_core": "nengo-loihi block.py MAX_SYNAPSE_BITS = 16384*64",
        "synapse_block/header": "nengo-loihi block.py SynapseConfig.bits_per_axon (<=64 per block, "
                                "10-bit header, rounded to 64-bit words)",
        "cores_per_chip": "Davies et al. 2018; nengo-loihi allocators.py",
        "max_synaptic_sum": "SP/lava/proc/lif/models.py:150-171: u + (a << 6) is wrapped once at 24 "
                            "bits, which is a true wrap only while |a << 6| <= 2**24",
    },
)

TARGETS: dict[str, Target] = {LOIHI.name: LOIHI}


def get_target(name: str) -> Target:
    """The target called ``name``; the error lists what is supported."""
    if name not in TARGETS:
        raise SnncError(f"unknown target '{name}'. Supported targets: {', '.join(sorted(TARGETS))} "
                        f"(Loihi 2 is planned: its neuron programs are not public, see docs/architecture.md).")
    return TARGETS[name]
