"""Where Lava's fixed-point models and the silicon-tested Loihi 1 semantics compute different results.

hwsim equals Lava's fixed-point models bit for bit (PyDenseModelBitAcc, PyConvModelFixed,
PyLifModelBitAcc), and snnc's verification compares exactly those; neither says what the chip does.
The semantics that were tested against Loihi 1 silicon are nengo-loihi 1.1.0's emulator
(``SP/nengo_loihi/emulator/interface.py``, ``SP/nengo_loihi/builder/discretize.py``; its tests ran
the same models on the chip through ``HardwareInterface`` and compared with ``allclose``). Without
overflow, with weights the 8-bit synapses hold, ``weight_exp >= -1``, ``vmin = -(2**23 - 1)`` and no
refractory period, the two compute the same (shared/references/field-2026.md). :data:`REGIMES` lists
where they do not, each with both sources and the silicon evidence.

This module finds, for given inputs, every (sample, step, neuron) of a population where the run
enters such a regime *and the two semantics give different values there* (a u wrap that both wrap
alike is not a divergence; it is the state_overflow finding's, snnc.hwsim.headroom), and the
whole-layer (structural) regimes. A :class:`SiliconWatch` is fed every step by hwsim's torch engine
through the same hook as ``headroom.StateWatch``: :func:`observe_silicon`, or
:func:`snnc.hwsim.headroom.observe` for the state ranges and this check from one pass. Each event is judged on Lava's run: its incoming spikes and its previous state,
so the network's first event is exactly where silicon would first compute something else; later
events count where Lava's run enters a regime (silicon's own run has parted from it by then).

Conventions: ``a`` is a population's summed synaptic input of one step in weight units (what the
Dense/Conv delivers; the LIF adds ``a << 6`` to u, SP/lava/proc/lif/models.py:155-157); timesteps in
events are 1-based as Lava counts them; the first event is the earliest timestep, then the lowest
sample, then the lowest neuron. One (sample, step, neuron) can enter several regimes; each counts it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from snnc.compiler.ir import Graph, Population, QConv, QCubaLIF, QDense
from snnc.hwsim.sim import (_conv, _top, conv_bound, delayed_dense, delayed_train, lava_weights, shift_signed,
                            wrap24, wrap_int32)

#: The input accumulator q0 = a << 6 holds 21 bits and a sign (nengo_loihi Q_BITS = 21,
#: SP/nengo_loihi/builder/discretize.py:19; overflow_signed wraps to [-2**21, 2**21 - 1], :50-91), so
#: a itself holds [-2**15, 2**15 - 1] weight units: 129 weights of 254 arriving in one step wrap it.
Q0_BITS = 22
INPUT_MIN, INPUT_MAX = -(2**15), 2**15 - 1
#: u (and u + bias) in silicon: 23 bits and a sign (U_BITS = 23, discretize.py:21).
STATE_BITS = 24


def wrap_signed(x: torch.Tensor, bits: int) -> torch.Tensor:
    """Two's complement wrap of int64 values to ``bits`` bits with sign: nengo_loihi's
    ``overflow_signed(x, bits - 1)`` (SP/nengo_loihi/builder/discretize.py:50-91)."""
    half = 2 ** (bits - 1)
    return ((x + half) & (2 * half - 1)) - half


def _inside(x: torch.Tensor, bits: int) -> torch.Tensor:
    half = 2 ** (bits - 1)
    return (x >= -half) & (x < half)


@dataclass(frozen=True)
class Regime:
    """One place where Lava's model and the silicon-tested semantics differ. ``check``: "counted" per
    (sample, step, neuron) on the observed inputs, "structural" (a property of the layer), or "by
    construction" (snnc's semantics rule it out; ``condition`` says why)."""

    id: str
    what: str
    lava: str
    hardware: str
    evidence: str
    condition: str
    check: str
    remedy: str

    def to_json(self) -> dict[str, str]:
        return {"id": self.id, "what": self.what, "lava": self.lava, "hardware": self.hardware,
                "evidence": self.evidence, "condition": self.condition, "check": self.check, "remedy": self.remedy}


_UV_TEST = ("nengo_loihi/emulator/tests/test_interface.py:41-113 test_uv_overflow (@pytest.mark.target_loihi: "
            "the emulator against HardwareInterface on Loihi, compared with allclose)")

REGIMES: tuple[Regime, ...] = (
    Regime(
        "q0_wrap", "input accumulator q0 (one step's summed synaptic input)",
        "unbounded: Dense sums in int32 (SP/lava/proc/dense/models.py:96-107), the InPort adds its ports in "
        "int32 (SP/lava/magma/core/model/py/ports.py:346-350), the LIF adds a << 6 in int32 "
        "(SP/lava/proc/lif/models.py:153-157)",
        "wraps at 22-bit two's complement: overflow_signed(q0, bits=Q_BITS=21) "
        "(SP/nengo_loihi/emulator/interface.py:311-313; builder/discretize.py:19): a << 6 in [-2**21, 2**21 - 1], "
        "i.e. a in [-32768, 32767] weight units",
        f"{_UV_TEST}: 200 axons x 16256 (254 << 6) overflow q0 to -943104 on the chip",
        "wrap22(a_hw << 6) != wrap32(a_lava << 6) where a_hw, the per-synapse sum silicon accumulates, is outside "
        "[-32768, 32767]",
        "counted",
        "lower the layer's weights or weight_scale, or let fewer large weights reach one neuron in one step: the "
        "accumulator holds |a| <= 32767 weight units per step (129 weights of 254)"),
    Regime(
        "u_wrap", "u overflow",
        "one fold with off-by-one bounds: u > 2**23 -> u - 2**24, then u <= -2**23 -> u + 2**24 "
        "(SP/lava/proc/lif/models.py:158-171): +2**23 stays, -2**23 becomes +2**23, 3*2**23 becomes 2**23",
        "true 24-bit two's complement: overflow_signed(current, bits=U_BITS=23) "
        "(SP/nengo_loihi/emulator/interface.py:315-316; builder/discretize.py:21)",
        f"{_UV_TEST}: u wraps on the chip (200 axons) and the emulator matches it",
        "Lava's u != wrap24(trunc0(u * (4096 - du) / 4096) + (a << 6)), the unbounded sum wrapped: exactly at "
        "+-2**23 and beyond +-3*2**23 (between them both wrap alike)",
        "counted",
        "lower the weights or the layer's weight_scale so that u stays inside 24 bits"),
    Regime(
        "u_bias_wrap", "u + bias",
        "never wrapped: v = clip(decay(v) + u + bias) (SP/lava/proc/lif/models.py:185-186)",
        "u2 = current + bias wrapped to 24 bits before it enters v (SP/nengo_loihi/emulator/interface.py:317-319)",
        "emulator only: the hardware test has no bias (test_interface.py:41-113)",
        "u inside [-2**23, 2**23 - 1] and u + bias (bias_mant << bias_exp) outside it",
        "counted",
        "lower the bias or the weights so that |u + bias| stays below 2**23"),
    Regime(
        "v_bounds", "v's bounds",
        "clip to +-(2**23 - 1) (SP/lava/proc/lif/models.py:176-186)",
        "clip to the vmin / vmax registers (SP/nengo_loihi/emulator/interface.py:326; vmin = -(2**vmine) + 1, "
        "vmax = 2**(9 + 2 vmaxe) - 1, builder/discretize.py:359-365; nengo's builder default vmin = 0, "
        "block.py:179)",
        f"{_UV_TEST} sets vmin = -(2**22) + 1 (line 80) and the chip reaches it",
        "none: snnc's semantics clip v to +-(2**23 - 1) (compiler/ir.py CUBA_SEMANTICS v_overflow), i.e. "
        "vmin = -(2**23 - 1) (vmine = 23) and vmax = 2**23 - 1 (vmaxe = 7): Lava's clip exactly",
        "by construction",
        "program vmin = -(2**23 - 1) and vmax = 2**23 - 1 on the chip"),
    Regime(
        "weight_exp", "weight exponent",
        "shifts the summed input: (W @ s) >> -weight_exp, an arithmetic (floor) shift of the sum "
        "(SP/lava/proc/dense/models.py:97-107)",
        "per synapse before the sum: each weight is shifted by shift_bits + weight_exp, then << 6 "
        "(SP/nengo_loihi/builder/discretize.py:473-490, 'the two-part weight shift that currently happens on "
        "the chip'); q0 sums those (emulator/interface.py:506-518); brian2-loihi the same",
        "nengo-loihi's hardware tests run the discretized per-synapse weights on the chip; brian2-loihi matches "
        "the emulator (shared/references/field-2026.md)",
        "a Dense from binary spikes with weight_exp = -k <= -1: floor(sum_active W / 2**k) != "
        "sum_active floor(W / 2**k), i.e. sum_active (W mod 2**k) >= 2**k (never for even weights at k = 1)",
        "counted",
        "use weight_exp >= -1, or weights that are multiples of 2**-weight_exp (then both shifts agree)"),
    Regime(
        "conv_wrap", "Conv output",
        "PyConvModelFixed wraps each Conv's output to 24 bits before the LIF's << 6 (signed_clamp, "
        "SP/lava/proc/conv/models.py:77-79; conv/utils.py:67-84) and has no weight_exp (conv/models.py:20-51)",
        "a convolution is ordinary synapses into the same q0 accumulator (22-bit wrap after << 6; "
        "SP/nengo_loihi/emulator/interface.py:506-518)",
        "nengo_loihi/tests/test_conv.py:122-260 test_pop_tiny runs a convolution on Loihi (HardwareInterface "
        "with --target loihi)",
        "a Conv's exact output leaves [-2**23, 2**23 - 1] and silicon's q0 differs from Lava's input; snnc's QConv "
        "has no weight_exp, so Lava ignoring it cannot arise",
        "counted",
        "lower the convolution's weights or the layer's weight_scale"),
    Regime(
        "conv_weights", "Conv weights the 8-bit synapses cannot hold",
        "Conv uses its integers as they are, no clip or truncation (SP/lava/proc/conv/models.py:34-51, 68-79); "
        "Dense clips and floors them (snnc forces MIXED, num_weight_bits=8: every engine and the chip get the "
        "same even weights, so Dense has no such regime)",
        "8-bit synapses: mixed-sign kernels hold even integers in [-256, 254], same-sign ones [0, 255] or "
        "[-255, 0] (Lava's own bit-accurate rule, SP/lava/utils/weightutils.py:21-43, 204-295; nengo_loihi "
        "shift_bits = 8 - weight_bits + is_mixed, block.py:512-514)",
        "Loihi 1's synapse format (nengo_loihi discretize_weights asserts -256 <= w <= 255, "
        "builder/discretize.py:492-494)",
        "a Conv weight outside the set of its kernel's sign mode (graph.h5, NIR and ONNX carry any integers; "
        "netx dense imports of such weights are refused, compiler/netx_hdf5.py:163-190)",
        "structural",
        "use even integer weights in [-256, 254] (or [0, 255] / [-255, 0] for a same-sign kernel)"),
    Regime(
        "refractory", "refractory period",
        "none (PyLifModelBitAcc docstring, SP/lava/proc/lif/models.py:245-248)",
        "v held at 0 while ref_count > 0; ref_count = refract_delay on a spike, then decremented "
        "(SP/nengo_loihi/emulator/interface.py:327-334): refract_delay = 1 has no effect",
        "brian2-loihi matches the emulator (shared/references/field-2026.md)",
        "none: snnc has no refractory period (QCubaLIF has none; netx refDelay != 1 is refused, "
        "compiler/netx_hdf5.py:497-501)",
        "by construction",
        "program refract_delay = 1 on the chip"),
)
REGIME_BY_ID = {r.id: r for r in REGIMES}
#: The regimes counted per (sample, step, neuron), in report order.
COUNTED = tuple(r.id for r in REGIMES if r.check == "counted")
#: Short phrases for messages: "N (sample, step, neuron) where ...".
WHERE = {
    "q0_wrap": "the input accumulator q0 wraps at 22 bits",
    "u_wrap": "u meets the 24-bit bounds where Lava's single fold and the two's complement wrap differ",
    "u_bias_wrap": "u + bias leaves 24 bits (silicon wraps it, Lava does not)",
    "weight_exp": "the weight exponent rounds differently (per synapse on silicon, the sum in Lava)",
    "conv_wrap": "a Conv output leaves 24 bits (Lava wraps it alone, silicon in the 22-bit accumulator)",
}


def _first(mask: torch.Tensor, step: int | None) -> dict[str, int] | None:
    """The earliest event of ``mask``: (batch, n) at 0-based ``step``, or (batch, T, n) with ``step``
    None (earliest timestep, then lowest sample, then lowest neuron); timestep 1-based as Lava."""
    if not bool(mask.any()):
        return None
    if step is None:
        t = int(torch.nonzero(mask.any(dim=(0, 2)))[0])
        return _first(mask[:, t], t)
    sample, neuron = (int(i) for i in torch.nonzero(mask)[0])
    return {"sample": sample, "timestep": step + 1, "neuron": neuron}


def _order(e: dict[str, int]) -> tuple[int, int, int]:
    return e["timestep"], e["sample"], e["neuron"]


def conv_weight_problem(w: np.ndarray) -> tuple[int, str]:
    """How many weights of a Conv kernel Loihi 1's 8-bit synapses cannot hold, and the rule, by the
    kernel's sign mode as Lava's Dense derives it (SP/lava/utils/weightutils.py:21-43, 250-295)."""
    w = np.asarray(w, dtype=np.int64)
    if w.size == 0 or w.min() >= 0:
        return int((w > 255).sum()), "integers in [0, 255] (same-sign kernel)"
    if w.max() <= 0:
        return int((w < -255).sum()), "integers in [-255, 0] (same-sign kernel)"
    return int(((w < -256) | (w > 254) | (w % 2 != 0)).sum()), "even integers in [-256, 254] (mixed-sign kernel)"


@dataclass
class SiliconCheck:
    """One population's silicon check on the observed inputs: events per counted regime, the first
    of each, the structural regimes, the peak of silicon's input accumulator and what was not
    checked (with why)."""

    name: str
    samples: int
    steps: int
    neurons: int
    events: dict[str, int] = field(default_factory=lambda: {r: 0 for r in COUNTED})
    first: dict[str, dict[str, int]] = field(default_factory=dict)
    structural: list[dict[str, Any]] = field(default_factory=list)
    unchecked: list[str] = field(default_factory=list)
    checked: list[str] = field(default_factory=list)
    peak_input: int = 0       # max |a_hw|, weight units: silicon's accumulator before its wrap

    def count(self, regime: str, mask: torch.Tensor, step: int | None) -> None:
        n = int(mask.sum())
        if not n:
            return
        self.events[regime] += n
        if regime not in self.first:
            self.first[regime] = _first(mask, step)  # type: ignore[assignment]

    @property
    def regimes(self) -> list[str]:
        """The regimes this layer enters: counted ones with events, then structural ones."""
        return [r for r in COUNTED if self.events[r]] + sorted({s["regime"] for s in self.structural})

    @property
    def verdict(self) -> str:
        return "diverges" if self.regimes else "agrees"

    def earliest(self) -> dict[str, Any] | None:
        """The first event over all counted regimes, with its regime."""
        if not self.first:
            return None
        regime, e = min(self.first.items(), key=lambda kv: (_order(kv[1]), COUNTED.index(kv[0])))
        return {**e, "regime": regime}

    def to_json(self) -> dict[str, Any]:
        return {"verdict": self.verdict, "regimes": self.regimes,
                "events": dict(self.events), "event_total": sum(self.events.values()),
                "first": self.earliest(), "first_by_regime": {r: self.first[r] for r in COUNTED if r in self.first},
                "structural": list(self.structural),
                "samples": self.samples, "timesteps": self.steps, "neurons": self.neurons,
                "peak_input": self.peak_input, "input_range": [INPUT_MIN, INPUT_MAX],
                "checked": (f"{self.samples} samples x {self.steps} timesteps x {self.neurons} neurons: "
                            + "; ".join(self.checked)),
                "unchecked": list(self.unchecked)}


class SiliconWatch:
    """Fed by hwsim's ``_LifStepper`` every step (the hook ``headroom.StateWatch`` uses), for one
    population; fills a :class:`SiliconCheck`. ``trains``: every spike train that has run (all
    sources of the population's feed-forward synapses; a convolution is never on a cycle).

    The synaptic regimes need silicon's accumulator a_hw. Where it provably equals Lava's a (no Dense
    with weight_exp < 0 whose weights leave a remainder, no Conv that can leave 24 bits) q0 is checked
    every step on Lava's input; otherwise Lava's a is recorded and :meth:`finish` computes a_hw from
    the sources' whole trains (after the block: recurrent sources included), one GEMM or convolution
    per such synapse over (batch x time)."""

    def __init__(self, pop: Population, trains: dict[str, torch.Tensor], batch: int, steps: int):
        neu = pop.neuron
        assert isinstance(neu, QCubaLIF)
        self.check = SiliconCheck(neu.name, batch, steps, neu.size)
        dev = next(iter(trains.values())).device
        self.bias = torch.from_numpy(shift_signed(neu.bias_mant.astype(np.int64), neu.bias_exp)).to(dev)
        self.post: list[tuple[str, Any, str, Any]] = []   # (kind, synapse, source, its operand)
        c = self.check
        c.checked = ["q0 22-bit wrap", "u 24-bit wrap", "u + bias 24-bit wrap"]
        exps, convs = [], []
        for syn, src in pop.inputs:
            graded = src in trains and trains[src].dtype != torch.bool
            if graded:
                c.unchecked.append(
                    f"{syn.name}: graded input: Loihi 1 spikes are binary and nengo-loihi's emulator has no graded "
                    f"spikes, so no silicon-tested semantics exist for it; q0 is checked on Lava's sum"
                    + (", the per-synapse exponent is not" if isinstance(syn, QDense) and syn.weight_exp < 0 else ""))
            if isinstance(syn, QConv):
                convs.append(syn.name)
                bad, rule = conv_weight_problem(syn.weight)
                if bad:
                    c.structural.append({"regime": "conv_weights", "synapse": syn.name, "count": bad,
                                         "detail": f"{bad} of {syn.weight.size} weights are not {rule}"})
                if conv_bound(syn, _top(delayed_train(trains[src]))) >= 2 ** (STATE_BITS - 1):
                    self.post.append(("conv", syn, src, None))
            elif isinstance(syn, QDense) and syn.weight_exp < 0 and not graded:
                k = -syn.weight_exp
                exps.append(f"{syn.name} (weight_exp {syn.weight_exp})")
                rem = np.mod(lava_weights(syn.weight, neu.fmt), 2**k)
                if rem.any():
                    self.post.append(("exp", syn, src, rem))
        if exps:
            c.checked.append("per-synapse weight exponent of " + ", ".join(exps))
        if convs:
            c.checked.append("Conv 24-bit output wrap of " + ", ".join(convs) + "; their weights' 8-bit format")
        c.checked.append("v bounds and refractory period agree by construction")
        self.a = torch.zeros((batch, steps, neu.size), dtype=torch.int64, device=dev) if self.post else None

    def step(self, t: int, a_in: torch.Tensor, u_exact: torch.Tensor, u: torch.Tensor,
             v_exact: torch.Tensor, v: torch.Tensor, vth: int) -> None:
        """``a_in`` = a << 6 (int64, unbounded); ``u_exact`` the unbounded sum, ``u`` Lava's folded u
        (SP/lava/proc/lif/models.py:145-171)."""
        c = self.check
        if self.a is not None:
            self.a[:, t] = a_in >> 6          # exact: a_in = a << 6 in int64
        else:                                 # a_hw = a: q0 differs where its 22-bit wrap changes Lava's input
            c.peak_input = max(c.peak_input, int(a_in.abs().max()) >> 6 if a_in.numel() else 0)
            c.count("q0_wrap", wrap_signed(a_in, Q0_BITS) != wrap_int32(a_in), t)
        c.count("u_wrap", u != wrap24(u_exact), t)
        c.count("u_bias_wrap", _inside(u, STATE_BITS) & ~_inside(u + self.bias, STATE_BITS), t)

    def finish(self, pop: Population, trains: dict[str, torch.Tensor]) -> None:
        """After the population's block: silicon's accumulator from the whole trains, and the synaptic
        regimes where it was not checked step by step."""
        if self.a is None:
            return
        c, a_lava = self.check, self.a
        a_hw = a_lava.clone()
        exp_mask = torch.zeros_like(a_lava, dtype=torch.bool)
        conv_mask = torch.zeros_like(exp_mask)
        for kind, syn, src, rem in self.post:
            delayed = delayed_train(trains[src])
            if kind == "exp":     # floor(sum W / 2**k) - sum floor(W / 2**k) = floor(sum (W mod 2**k) / 2**k),
                # per delay group: Lava floors each group's sum (hwsim.sim.delayed_dense), silicon each synapse
                lost = delayed_dense(delayed, rem, syn.weight_exp, syn.delay)
                exp_mask |= lost > 0
                a_hw -= lost
            else:                 # silicon adds the exact convolution; Lava its 24-bit wrap
                exact = _conv(delayed, syn, wrap=False)
                wrapped = wrap24(exact)
                conv_mask |= exact != wrapped
                a_hw += exact - wrapped
        differs = wrap_signed(a_hw << 6, Q0_BITS) != wrap_int32(a_lava << 6)
        c.peak_input = int(a_hw.abs().max()) if a_hw.numel() else 0
        c.count("q0_wrap", differs & ~_inside(a_hw << 6, Q0_BITS), None)
        c.count("weight_exp", differs & exp_mask, None)
        c.count("conv_wrap", differs & conv_mask, None)
        self.a = None


def silicon_summary(checks: dict[str, SiliconCheck], unchecked_reason: str | None = None) -> dict[str, Any]:
    """report.json ``numerics.silicon``: the network's verdict, the diverging layers and the regimes
    table (both sources, the silicon evidence, the condition counted).

    The regimes are Loihi 1 silicon evidence. For a target without a silicon-tested reference (Loihi 2)
    ``unchecked_reason`` says so: the verdict is "unchecked" with that reason, never "agrees"."""
    if unchecked_reason is not None:
        return {"verdict": "unchecked", "reason": unchecked_reason, "layers_diverging": [], "regimes": [],
                "loihi1_regimes_entered": sorted({r for c in checks.values() for r in c.regimes})}
    diverging = [name for name, c in checks.items() if c.verdict == "diverges"]
    return {"verdict": "diverges" if diverging else "agrees", "layers_diverging": diverging,
            "regimes": [r.to_json() for r in REGIMES]}


def unchecked_layer(check: SiliconCheck, reason: str) -> dict[str, Any]:
    """A layer's ``numerics.layers.NAME.silicon`` on a target without a silicon-tested reference: the
    Loihi 1 counts kept for reference under ``loihi1_*``, the verdict "unchecked" with ``reason``."""
    j = check.to_json()
    return {"verdict": "unchecked", "reason": reason, "regimes": [], "loihi1_regimes": j["regimes"],
            "loihi1_events": j["events"], "events": {}, "event_total": 0, "first": None, "first_by_regime": {},
            "structural": [], "samples": j["samples"], "timesteps": j["timesteps"], "neurons": j["neurons"],
            "peak_input": j["peak_input"], "input_range": j["input_range"], "checked": "nothing: " + reason,
            "unchecked": [reason]}


def silicon_watch(pop: Population, trains: dict[str, torch.Tensor], batch: int, steps: int) -> SiliconWatch:
    """A watch factory for :func:`snnc.hwsim.headroom.run_watched`."""
    return SiliconWatch(pop, trains, batch, steps)


def observe_silicon(graph: Graph, inputs: np.ndarray) -> dict[str, SiliconCheck]:
    """The silicon check of every population of ``graph`` (fixed point) on ``inputs`` (batch, T, n_in).
    snnc.hwsim.headroom.observe gives it together with the state ranges from the same pass."""
    from snnc.hwsim.headroom import run_watched   # headroom imports this module: the pass lives there

    (watches,) = run_watched(graph, inputs, [silicon_watch])
    return {name: w.check for name, w in watches.items()}


__all__ = ["REGIMES", "Regime", "SiliconCheck", "SiliconWatch", "silicon_summary", "unchecked_layer", "silicon_watch", "observe_silicon",
           "conv_weight_problem", "wrap_signed", "INPUT_MIN", "INPUT_MAX"]
