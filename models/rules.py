"""Training rules: a rule decides the spike's surrogate derivative and the loss on output spikes.

The forward pass never depends on the rule, so every network a rule trains stays deployable.
A rule is a small frozen object; :func:`make_rule` builds one by its ``--rule`` name.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Callable, ClassVar

import torch

from snnc.errors import SnncError


class SpikeFunction(torch.autograd.Function):
    """Heaviside ``x > 0`` forward (strict, as Loihi's ``v > vth``); the rule's surrogate backward."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, rule: "Rule") -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(x)
        ctx.rule = rule
        return (x > 0).to(x.dtype)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:  # type: ignore[override]
        (x,) = ctx.saved_tensors
        return grad * ctx.rule.surrogate(x), None


@dataclass(frozen=True)
class Rule:
    """Base rule. ``x`` is the membrane potential minus threshold, in threshold units.

    ``loss`` names the objective on output spikes (a key of :data:`LOSSES`); each rule's default is
    the one measured to train best with it (docs/rules.md).
    """

    name: ClassVar[str] = ""
    loss: str = "rate-mse"

    def __post_init__(self) -> None:
        if self.loss not in LOSSES:
            raise ValueError(f"unknown loss '{self.loss}' (supported: {', '.join(sorted(LOSSES))})")

    def spike(self, x: torch.Tensor) -> torch.Tensor:
        return SpikeFunction.apply(x, self)

    def surrogate(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def objective(self, out_spikes: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Loss on output spikes (batch, T, classes) against integer labels (batch,)."""
        return LOSSES[self.loss](out_spikes, target)

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "params": asdict(self)}


def rate_mse_loss(out_spikes: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """STBP's loss: L = 1/(2S) sum_s ||y_s - mean_t o_s^t||^2 (Wu et al. 2018, Sec. 2)."""
    rate = out_spikes.mean(dim=1)
    onehot = torch.nn.functional.one_hot(target, rate.shape[-1]).to(rate.dtype)
    return 0.5 * ((rate - onehot) ** 2).sum(dim=-1).mean()


def rate_ce_loss(out_spikes: torch.Tensor, target: torch.Tensor, temperature: float = 10.0) -> torch.Tensor:
    """Cross-entropy on firing rates scaled to logits in [0, temperature].

    Raw spike counts as logits (temperature = T) trained worse with every rule measured.
    """
    return torch.nn.functional.cross_entropy(out_spikes.mean(dim=1) * temperature, target)


# --- STBP's four curves (Wu et al. 2018, Fig. 3B), x and widths in threshold units -----------------
# The paper's a_i values are not recoverable (../shared/references/seed-papers.md, STBP (b)); it
# reports that the four curves train alike. Defaults: the rectangular one follows the official code
# (a1 = 1 at V_th = 0.5, i.e. +-1 threshold); the other three have the same variance (1/3).

@dataclass(frozen=True)
class STBPRect(Rule):
    """h1(x) = (1/a) 1[|x| < a/2]. Official code: a1 = 1 at V_th = 0.5, a window of +-1 threshold: a = 2.

    Measured on digits (64-128-10, T=20, hardware-exact): a = 1 plateaus at 87% test accuracy, a = 2
    reaches 96%.
    """

    name: ClassVar[str] = "stbp-rect"
    width: float = 2.0

    def surrogate(self, x: torch.Tensor) -> torch.Tensor:
        return (x.abs() < self.width / 2).to(x.dtype) / self.width


@dataclass(frozen=True)
class STBPPoly(Rule):
    """h2(x) = (sqrt(a)/2 - (a/4)|x|) for |x| < 2/sqrt(a), else 0: a triangle of area 1."""

    name: ClassVar[str] = "stbp-poly"
    a: float = 2.0           # half-width 2/sqrt(a) = sqrt(2): variance 2/(3a) = 1/3

    def surrogate(self, x: torch.Tensor) -> torch.Tensor:
        return torch.clamp(self.a**0.5 / 2 - (self.a / 4) * x.abs(), min=0.0)


@dataclass(frozen=True)
class STBPSigmoid(Rule):
    """h3(x) = (1/a) e^(-x/a) / (1 + e^(-x/a))^2: the derivative of sigmoid(x/a)."""

    name: ClassVar[str] = "stbp-sigmoid"
    a: float = 1 / math.pi   # logistic variance (pi a)^2 / 3 = 1/3

    def surrogate(self, x: torch.Tensor) -> torch.Tensor:
        s = torch.sigmoid(x / self.a)
        return s * (1 - s) / self.a


@dataclass(frozen=True)
class STBPGauss(Rule):
    """h4(x) = e^(-x^2 / (2a)) / sqrt(2 pi a): a normal density of variance a."""

    name: ClassVar[str] = "stbp-gauss"
    a: float = 1 / 3

    def surrogate(self, x: torch.Tensor) -> torch.Tensor:
        return torch.exp(-x * x / (2 * self.a)) / math.sqrt(2 * math.pi * self.a)


# --- the families users of today expect (parameterised as in snnTorch / SpikingJelly) ---------------

@dataclass(frozen=True)
class FastSigmoid(Rule):
    """SuperSpike (Zenke & Ganguli 2018): h(x) = 1 / (1 + k|x|)^2; k = 25 as snnTorch's fast_sigmoid."""

    name: ClassVar[str] = "fast-sigmoid"
    loss: str = "rate-ce"     # measured: 95.6% vs 87.8% with rate-mse (docs/rules.md)
    slope: float = 25.0

    def surrogate(self, x: torch.Tensor) -> torch.Tensor:
        return 1.0 / (1.0 + self.slope * x.abs()) ** 2


@dataclass(frozen=True)
class ArcTan(Rule):
    """h(x) = (alpha/2) / (1 + (pi/2 alpha x)^2) (Fang et al. 2021; SpikingJelly/snnTorch ATan, alpha = 2)."""

    name: ClassVar[str] = "arctan"
    alpha: float = 2.0

    def surrogate(self, x: torch.Tensor) -> torch.Tensor:
        return (self.alpha / 2) / (1 + (math.pi / 2 * self.alpha * x) ** 2)


@dataclass(frozen=True)
class Triangle(Rule):
    """h(x) = max(0, 1 - |x|/w) / w (Esser et al. 2016; Bellec et al. 2018): area 1, support +-w."""

    name: ClassVar[str] = "triangle"
    width: float = 1.0

    def surrogate(self, x: torch.Tensor) -> torch.Tensor:
        return torch.clamp(1 - x.abs() / self.width, min=0.0) / self.width


LOSSES: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "rate-mse": rate_mse_loss, "rate-ce": rate_ce_loss}

RULES: dict[str, type[Rule]] = {r.name: r for r in (STBPRect, STBPPoly, STBPSigmoid, STBPGauss,
                                                     FastSigmoid, ArcTan, Triangle)}


def make_rule(name: str, **params: Any) -> Rule:
    """The rule called ``name`` (a ``--rule`` value) with ``params`` overriding its defaults."""
    if name not in RULES:
        raise SnncError(f"unknown training rule '{name}'. Supported rules: {', '.join(sorted(RULES))}.")
    try:
        return RULES[name](**params)
    except (TypeError, ValueError) as e:
        raise SnncError(f"bad parameters {params} for rule '{name}': {e}") from None
