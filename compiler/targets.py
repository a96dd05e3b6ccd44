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
    max_chips: int = 1               # chips in the target system (the mapping's chip budget)
    system: str = ""                 # the board or system those chips are on
    synapse_word_bits: int = 64      # width of one synaptic-memory word
    cores_per_tile: int = 4          # cores sharing one mesh router
    mesh_tiles: tuple[int, int] = (8, 4)   # tiles per chip, (east-west, north-south)
    sources: Mapping[str, str] = field(default_factory=dict, compare=False)

    @property
    def max_cores(self) -> int:
        """Cores in the whole target system: the budget the mapper checks last."""
        return self.max_chips * self.cores_per_chip

    def limits(self) -> dict[str, int]:
        """The numbers the mapper checks, as plain data (for report.json)."""
        return {k: int(getattr(self, k)) for k in (
            "neurons_per_core", "input_axons_per_core", "output_axons_per_core", "synapse_words_per_core",
            "synapse_word_bits", "synapse_block", "synapse_block_header_bits", "stored_weight_bits",
            "cores_per_chip", "max_chips")}


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
    max_chips=32,
    system="Nahuku board, 32 Loihi 1 chips",
    synapse_word_bits=64,
    cores_per_tile=4,
    mesh_tiles=(8, 4),
    # Keys are loihi-limits.md's source keys (status V/S/D as tagged there); see docs/mapping.md.
    sources={
        "neurons_per_core": "1024 compartments (V): [NL block.py MAX_COMPARTMENTS]; [D18 p.89 constraint 1]",
        "input_axons_per_core": "4096 axon_id slots (V): [NL block.py MAX_IN_AXONS]; [D18 p.89 constraint 4]",
        "output_axons_per_core": "4096 slots, one per (neuron, destination core) (V): [NL block.py MAX_OUT_AXONS]; "
                                 "[SF arch/loihi.yaml@0d49da8 axon_out comment]; [D18 p.89 constraint 3]",
        "synapse_words_per_core": "16384 x 64-bit words = 128 KiB (V): [NL block.py MAX_SYNAPSE_BITS = 16384*64]; "
                                  "[D18 p.89 constraint 2, p.92]",
        "synapse_word_bits": "64-bit memory words (V): [NL block.py SynapseConfig.bits_per_axon]",
        "synapse_block": "<= 64 synapses per block (V): [NL block.py SynapseConfig.bits_per_axon, n_synapses=63]",
        "synapse_block_header_bits": "4 format-index + 6 count bits = 10 per block, each block rounded up to "
                                     "64-bit words (V): [NL block.py SynapseConfig.bits_per_axon]",
        "stored_weight_bits": "8-bit weights, no delay/tag bits, dense format has no index bits (V): "
                              "[NL block.py Synapse._set_weights_indices, SynapseConfig.bits_per_axon]",
        "synapse_block/header": "nengo-loihi block.py SynapseConfig.bits_per_axon (<=64 per block, "
                                "10-bit header, rounded to 64-bit words)",
        "cores_per_chip": "128 (V, S): [NL hardware/allocators.py \"Chips cannot have more than 128 cores\"]; "
                          "[D18 §Chip Overview]",
        "max_chips": "Nahuku: 8 or 32 chips (V, S): [NL docs/setup/host-board.rst]; [PR] (\"8 to 32\" chips); "
                     "we budget the 32-chip board",
        "cores_per_tile": "4 cores per tile (D, S): [D18 Table 2] 1-32 tiles for 128 cores; "
                          "[SF sim.h CORES_PER_TILE 4]",
        "mesh_tiles": "8 x 4 tiles per chip (V in a simulator model only): [SF arch/loihi.yaml width 8 / "
                      "height 4]; dimension-order routing is assumed for hop counts",
        "max_synaptic_sum": "SP/lava/proc/lif/models.py:150-171: u + (a << 6) is wrapped once at 24 "
                            "bits, which is a true wrap only while |a << 6| <= 2**24",
    },
)

TARGETS: dict[str, Target] = {LOIHI.name: LOIHI}


def population_size_problem(name: str, neurons: int, shape: tuple[int, ...] | None, limit: int,
                            target: Target | None = None) -> str:
    """A design-rule message for a population larger than snnc maps (``limit`` neurons): what it needs
    on ``target`` (default: Loihi), what the target has, and what to change."""
    t = target or LOIHI
    cores = -(-neurons // t.neurons_per_core)
    chips = -(-cores // t.cores_per_chip)
    dims = f" ({' x '.join(str(d) for d in shape)})" if shape is not None and len(shape) > 1 else ""
    return (f"layer '{name}' has {neurons:,} neurons{dims}: at {t.neurons_per_core:,} neurons per core it needs at "
            f"least {cores:,} cores on {chips:,} chips of {t.cores_per_chip}, and snnc maps at most {limit:,} "
            f"neurons ({-(-limit // t.neurons_per_core):,} cores) per population; the {t.name} target "
            f"({t.system or t.name}) has {t.max_cores * t.neurons_per_core:,} neurons in all. "
            f"Make the layer smaller: fewer channels or neurons, a stride, or pooling before it.")


def network_size_problem(neurons: int, largest: list[tuple[str, int]], limit: int, target: Target | None = None) -> str:
    """A design-rule message for a network with more neurons than snnc compiles (``limit``)."""
    t = target or LOIHI
    cores = -(-neurons // t.neurons_per_core)
    big = ", ".join(f"'{n}' {k:,}" for n, k in largest[:3])
    return (f"the network has {neurons:,} neurons: at {t.neurons_per_core:,} neurons per core it needs at least "
            f"{cores:,} cores on {-(-cores // t.cores_per_chip):,} chips of {t.cores_per_chip}, and snnc compiles at "
            f"most {limit:,} neurons per network; the {t.name} target ({t.system or t.name}) has "
            f"{t.max_cores * t.neurons_per_core:,}. Largest layers: {big}. Use fewer channels or neurons, strides, "
            f"or pooling.")


def get_target(name: str) -> Target:
    """The target called ``name``; the error lists what is supported."""
    if name not in TARGETS:
        raise SnncError(f"unknown target '{name}'. Supported targets: {', '.join(sorted(TARGETS))} "
                        f"(Loihi 2 is planned: its neuron programs are not public, see docs/architecture.md).")
    return TARGETS[name]
