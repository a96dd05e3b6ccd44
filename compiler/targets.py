"""Targets as data: bit widths and per-core limits, each with where the number comes from.

A limit whose number is not public is ``None``: it is reported as "not public, not checked" and never
replaced by a guess (``Target.unknown`` says why it is not public). ``Target.limit_table`` is the
report's "Target limits" section: every limit with its value, whether the compiler checks it, and its
source.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from snnc.errors import SnncError
from snnc.models.fixed_point import LOIHI_FIXED_POINT, FixedPointFormat


@dataclass(frozen=True)
class Board:
    """A system of ``chips`` chips; ``note`` says where the number comes from (and any doubt)."""

    name: str
    chips: int
    note: str


@dataclass(frozen=True)
class Target:
    """A chip: its fixed-point format and the limits a mapping must respect (None: not public)."""

    name: str
    description: str
    fixed_point: FixedPointFormat
    neurons_per_core: int
    input_axons_per_core: int
    output_axons_per_core: int
    synapse_words_per_core: int | None   # words of synaptic memory; None: the unit is not public (unchecked)
    synapse_block: int | None            # synapses per block in the dense format
    synapse_block_header_bits: int | None
    stored_weight_bits: int
    cores_per_chip: int
    max_synaptic_sum: int            # |W @ s| bound under which u cannot leave its 24 bits
    max_chips: int = 1               # chips in the target system (the mapping's chip budget)
    system: str = ""                 # the board or system those chips are on
    synapse_word_bits: int | None = 64   # width of one synaptic-memory word
    cores_per_tile: int = 4          # cores sharing one mesh router
    mesh_tiles: tuple[int, int] = (8, 4)   # tiles per chip, (east-west, north-south)
    sources: Mapping[str, str] = field(default_factory=dict, compare=False)
    # --- what differs between chip generations (defaults: Loihi 1) ---
    chip: str = "Loihi 1"            # the chip's name in messages
    #: graded spike payload the silicon carries; 0: binary spikes only (Lava's model still runs graded
    #: input, so on such a target graded input is a warning, not an error)
    graded_spike_bits: int = 0
    max_delay: int | None = None     # longest synaptic delay (steps on top of the synapse's one); None: unchecked
    delay_slots: int | None = None   # delay slots guaranteed without extra cost (warning above); None: no such rule
    neuron_groups_per_core: int | None = None   # distinct neuron configurations one core holds
    #: synapses per core above which a core cannot be expected to fit (a published headline, a warning only)
    synapses_per_core_headline: int | None = None
    boards: tuple[Board, ...] = ()   # systems the chips come in, fewest chips first
    #: the silicon-tested reference snnc compares Lava's model with (None: there is none public)
    silicon_reference: str | None = None
    no_silicon_reason: str = ""
    default_cost_model: str = "loihi1-davies2018"
    compared_cost_models: tuple[str, ...] = ("loihi1-davies2018", "loihi1-sanafe2025")
    #: measured system-level figures (never a per-operation model): [{what, value, source}]
    measured_context: tuple[Mapping[str, str], ...] = field(default=(), compare=False)
    #: the name each checked budget has in the vendor's tools, for design-rule messages (field -> label)
    budget_labels: Mapping[str, str] = field(default_factory=dict, compare=False)
    #: limits whose number is not public: field -> why (reported "not public, not checked")
    unknown: Mapping[str, str] = field(default_factory=dict, compare=False)

    @property
    def max_cores(self) -> int:
        """Cores in the whole target system: the budget the mapper checks last."""
        return self.max_chips * self.cores_per_chip

    @property
    def synapse_memory_known(self) -> bool:
        """Whether synaptic memory is counted and checked (its size, word and block format are public)."""
        return None not in (self.synapse_words_per_core, self.synapse_block, self.synapse_block_header_bits,
                            self.synapse_word_bits)

    def limits(self) -> dict[str, int | None]:
        """The numbers the mapper checks, as plain data (for report.json); None: not public."""
        return {k: (None if getattr(self, k) is None else int(getattr(self, k))) for k in (
            "neurons_per_core", "input_axons_per_core", "output_axons_per_core", "synapse_words_per_core",
            "synapse_word_bits", "synapse_block", "synapse_block_header_bits", "stored_weight_bits",
            "cores_per_chip", "max_chips")}

    def budget(self, key: str) -> str:
        """``key``'s limit as design-rule messages name it: "loihi's 4096" on Loihi 1 (unchanged), with
        the vendor's budget name and source where the target gives one (``budget_labels``)."""
        value = getattr(self, key)
        label = self.budget_labels.get(key)
        return f"{self.name}'s {value}" if label is None else f"{self.name}'s {value:,} ({label})"

    def limit_table(self) -> list[dict[str, Any]]:
        """Every limit: name, value (None: not public), unit, whether snnc checks it, status, source."""
        rows = []
        for key, unit, how in _LIMIT_ROWS:
            if key not in self.sources and key not in self.unknown:
                continue
            value = getattr(self, key, None)
            if key == "graded_spike_bits" and value == 0:   # binary-spike silicon: graded input is a warning
                how = "warning"
            assumed = None
            if key in self.unknown and value is not None and how == "info":   # a geometry used for counting only
                assumed, value = value, None
                status, checked = "not public: assumed for hop counts, not checked", False
            elif key in self.unknown or value is None:
                status, checked = "not public: not checked", False
            elif how == "warning":
                status, checked = "checked (a warning above it)", True
            elif how == "info":
                status, checked = "known (not a limit snnc checks)", False
            else:
                status, checked = "known: checked", True
            if isinstance(value, tuple):
                value = list(value)
            row = {"name": key, "value": value, "unit": unit, "checked": checked, "status": status,
                   "source": self.unknown.get(key) or self.sources.get(key, "")}
            if assumed is not None:
                row["assumed"] = list(assumed) if isinstance(assumed, tuple) else assumed
            rows.append(row)
        return rows


#: (Target field, unit, how snnc uses it): "error" limits stop the compile, "warning" ones add a finding,
#: "info" ones are reported only.
_LIMIT_ROWS: tuple[tuple[str, str, str], ...] = (
    ("neurons_per_core", "neurons", "error"),
    ("neuron_groups_per_core", "neuron groups (populations)", "error"),
    ("input_axons_per_core", "input axons", "error"),
    ("output_axons_per_core", "output axons", "error"),
    ("synapse_words_per_core", "synaptic-memory words", "error"),
    ("synapse_word_bits", "bits per word", "error"),
    ("synapse_block", "synapses per block", "error"),
    ("synapse_block_header_bits", "header bits per block", "error"),
    ("synapses_per_core_headline", "synapses per core", "warning"),
    ("stored_weight_bits", "bits per weight", "info"),
    ("graded_spike_bits", "payload bits (0: binary spikes only)", "error"),
    ("max_delay", "steps", "error"),
    ("delay_slots", "delay slots", "warning"),
    ("cores_per_chip", "cores", "error"),
    ("max_chips", "chips", "error"),
    ("cores_per_tile", "cores per tile (hop counts only)", "info"),
    ("mesh_tiles", "tiles per chip (hop counts only)", "info"),
)


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
    graded_spike_bits=0,
    max_delay=62,
    delay_slots=8,
    boards=(Board("Kapoho Bay", 2, "2 Loihi 1 chips, USB form factor (V): [LR lava/magma/core/resources.py KapohoBay]"),
            Board("Nahuku", 32, "8 to 32 Loihi 1 chips (V, S): [LR lava/magma/core/resources.py Nahuku]; "
                                "[NL docs/setup/host-board.rst]; snnc budgets the 32-chip board")),
    silicon_reference="nengo-loihi 1.1.0's emulator, whose tests compared it with Loihi 1 silicon",
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
        "graded_spike_bits": "binary spikes only (S): graded spikes came with Loihi 2 [Intel Loihi 2 brief 2021]; "
                             "Lava's model runs graded input (num_message_bits), the chip does not: a warning",
        "max_delay": "up to 62 steps, paid for in compartments beyond the 8 guaranteed slots (S): [D18 §Synaptic "
                     "delays]; snnc's IR holds 0..62 (lava-dl netx clamps to 62, lava/lib/dl/netx/hdf5.py:425-430)",
        "delay_slots": "8 delay slots (delays 0..7) guaranteed (V, S): [NL hardware/builder.py:276 "
                       "dendriteAccumCfg.configure(delayBits=3)], [NL emulator/interface.py:223 MAX_DELAY = 1 "
                       "'delay not yet implemented']; [D18]; a delayed synapse stores "
                       "delay_bits per weight [NL block.py SynapseConfig.bits_per_axon, builder/validate.py:105 "
                       "delay_bits < 8]; longer delays cost compartments snnc does not count: a warning",
    },
)

_L2_TUTORIALS = ("Intel's Loihi 2 compiler budget, \"Per core utilization\" logs in lava-dl's tutorials "
                 "tutorials/lava/lib/dl/netx/{mnist,yolo_kp,pilotnet_snn,pilotnet_sdnn,oxford}/*.ipynb @ d825ac5")

LOIHI2 = Target(
    name="loihi2",
    description="Intel Loihi 2 under its compiler's per-core budgets, Lava's fixed_pt CUBA-LIF arithmetic",
    chip="Loihi 2",
    # Lava's Loihi2SimCfg selects the same PyLifModelBitAcc / PyDenseModelBitAcc as Loihi1SimCfg:
    # 24-bit u/v, 12-bit decays, 13-bit bias mantissa, 8-bit weights (lava/proc/dense, lava/proc/lif)
    fixed_point=LOIHI_FIXED_POINT,
    neurons_per_core=4095,
    input_axons_per_core=16000,
    output_axons_per_core=16000,
    synapse_words_per_core=None,
    synapse_block=None,
    synapse_block_header_bits=None,
    synapse_word_bits=None,
    stored_weight_bits=8,
    cores_per_chip=120,
    max_synaptic_sum=2**18,
    max_chips=8,
    system="Kapoho Point, 8 Loihi 2 chips (Lava's docstring says four: 4-8 is uncertain)",
    cores_per_tile=4,
    mesh_tiles=(8, 4),
    graded_spike_bits=24,
    max_delay=62,
    delay_slots=None,
    neuron_groups_per_core=8,
    synapses_per_core_headline=120_000_000 // 128,
    boards=(Board("Oheo Gulch", 1, "1 Loihi 2 chip (V): [LR lava/magma/core/resources.py OheoGulch "
                                   "'a single Loihi 2 chip']"),
            Board("Kapoho Point", 8, "8 Loihi 2 chips per Intel's announcement (S); Lava's docstring says four "
                                     "([LR lava/magma/core/resources.py KapohoPoint]): 4-8 is uncertain, snnc "
                                     "budgets 8"),
            Board("Hala Point", 1152, "1,152 Loihi 2 chips, 140,544 cores (S): Intel's Hala Point announcement, 2024")),
    silicon_reference=None,
    no_silicon_reason=("there is no public silicon-tested Loihi 2 reference: nengo-loihi's emulator and its hardware "
                       "tests are Loihi 1, and Intel's Loihi 2 neuron programs are not public; Lava's fixed-point "
                       "model is what every engine checks"),
    default_cost_model="loihi2-counts-only",
    compared_cost_models=(),
    measured_context=(
        {"what": "PilotNet-LIF on Oheo Gulch (1 Loihi 2 chip)", "value": "408.9 frames/s; 0.679 W total "
         "(0.232 W static); 1.66 mJ per inference", "source": "lava-dl tutorials/lava/lib/dl/netx/pilotnet_snn "
         "benchmark notebook @ d825ac5 (measured, whole system)"},
        {"what": "Hala Point (1,152 Loihi 2 chips)", "value": "380 T synaptic ops/s and 240 T neuron ops/s at up "
         "to 2.6 kW", "source": "Intel's Hala Point announcement, 2024 (measured, whole system)"},
        {"what": "static power per chip", "value": "about 0.23-0.28 W", "source": "the Oheo Gulch board "
         "measurements in lava-dl's PilotNet tutorials (measured, whole board)"},
    ),
    budget_labels={
        "input_axons_per_core": f"AxonIn, {_L2_TUTORIALS}",
        "output_axons_per_core": f"AxonMap, {_L2_TUTORIALS}",
        "neurons_per_core": f"Neurons, {_L2_TUTORIALS}",
        "cores_per_chip": "Lava maps 120 neuron cores per Loihi 2 chip: NUM_VIRTUAL_CORES_L3 = 120, "
                          "lava/magma/compiler/subcompilers/constants.py",
    },
    sources={
        "neurons_per_core": "4,095 neuron slots: Intel's Loihi 2 compiler budget 'Neurons' (3,584 neurons = 87.52%) "
                            "in lava-dl's tutorial logs [LDL tutorials/lava/lib/dl/netx/*/*.ipynb 'Per core "
                            "utilization' @ d825ac5]; the effective budget, the architecture holds up to 8,192 per "
                            "core (1M neurons per chip / 128 cores, derived from Intel's Loihi 2 brief 2021, S)",
        "neuron_groups_per_core": "8 neuron groups per core: the compiler budget 'NeuronGr' (1 group = 12.50%) "
                                  "[LDL tutorial logs]; snnc gives each core one population = one group",
        "input_axons_per_core": "16,000: the compiler budget 'AxonIn' (784 axons = 4.90%) [LDL tutorial logs]",
        "output_axons_per_core": "16,000: the compiler budget 'AxonMap' (64 neurons = 0.40%) [LDL tutorial logs]; "
                                 "snnc counts one slot per (neuron, destination core), an upper bound of its entries",
        "synapses_per_core_headline": "937,500 = Intel's 120M synapses per chip / 128 cores (S: Intel Loihi 2 brief "
                                      "2021, via WikiChip / Open Neuromorphic): an upper sanity bound, not the "
                                      "memory limit (8-bit dense weights in the 128 KB synaptic memory, S, would "
                                      "hold far fewer); a warning above it",
        "stored_weight_bits": "8-bit weights, raw range -256..255, one weight_exp per connection (V): "
                              "lava/proc/dense/process.py, models.py",
        "graded_spike_bits": "24-bit graded values in Lava's Loihi 2 models (V: num_message_bits, "
                             "lava/proc/dense/process.py); the silicon payload is up to 32 bits (S: Intel brief 2021)",
        "max_delay": "0..62 steps (V): lava-dl netx clamps delays to 62 (lava/lib/dl/netx/hdf5.py:425-430); Lava's "
                     "DelayDense holds 6 bits, 0..63 (lava/proc/dense/models.py PyDelayDenseModelBitAcc)",
        "cores_per_chip": "120 (V): Lava maps NUM_VIRTUAL_CORES_L3 = 120 neuron cores per Loihi 2 chip "
                          "(lava/magma/compiler/subcompilers/constants.py, compiler/mapper.py); 128 on the die, "
                          "and Hala Point's 140,544 cores on 1,152 chips are 122 per chip (S)",
        "max_chips": "Kapoho Point: 8 chips per Intel's announcement (S); Lava's docstring says four "
                     "(lava/magma/core/resources.py KapohoPoint): 4-8 is uncertain, snnc budgets 8",
        "max_synaptic_sum": "the same Lava LIF arithmetic as loihi (lava/proc/lif/models.py:150-171)",
    },
    unknown={
        "synapse_words_per_core": "not public: Intel's compiler budgets 'SynMem' at 12,000 allocation units "
                                  "(cost_db.registers['SynMem'] = 12000 in lava-dl's pilotnet benchmark notebooks) "
                                  "of unpublished width, and shows no 'AxonMem' or 'Synapses' limit; the synaptic "
                                  "memory is 128 KB inside 192 KB of flexible core memory (S) in unpublished formats. "
                                  "Synaptic memory is not checked: report.json counts synapses per core instead",
        "cores_per_tile": "not public: Loihi 1's 4 cores per tile assumed, for spike-hop counts only",
        "mesh_tiles": "not public: Loihi 1's 8 x 4 tiles per chip assumed, for spike-hop counts only",
    },
)

TARGETS: dict[str, Target] = {LOIHI.name: LOIHI, LOIHI2.name: LOIHI2}



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
        raise SnncError(f"unknown target '{name}'. Supported targets: "
                        f"{', '.join(f'{k} ({t.chip})' for k, t in sorted(TARGETS.items()))}.")
    return TARGETS[name]
