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
from snnc.models.readout import Readout


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
    #: Adam's learning rate for this rule when none is given (``snn-train --lr``); per population it is
    #: scaled by fan-in (:func:`snnc.models.train.param_groups`)
    default_lr: ClassVar[float] = 5e-3

    def __post_init__(self) -> None:
        if self.loss not in LOSSES:
            raise ValueError(f"unknown loss '{self.loss}' (supported: {', '.join(sorted(LOSSES))})")

    def spike(self, x: torch.Tensor) -> torch.Tensor:
        return SpikeFunction.apply(x, self)

    def surrogate(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    # --- hooks into the neuron step (defaults: plain BPTT through the iterative LIF, as STBP) -------
    # Each hook changes gradients only: its forward value is exactly what the chip computes.

    #: whether the gradient flows through the reset's spike mask, v * (1 - s)
    reset_gradient: ClassVar[bool] = True
    #: whether the gradient flows through the membrane leak, v * (1 - decay), or sees the identity
    leak_gradient: ClassVar[bool] = True

    def temporal_term(self, s: torch.Tensor) -> torch.Tensor | None:
        """A forward-zero term (in threshold units) added to v after the reset; None for none."""
        return None

    def spike_gradient_scale(self, spikes: torch.Tensor, voltage_keep: float) -> torch.Tensor | None:
        """A per-(sample, neuron) factor on the gradient of a layer's whole spike train (batch, T, n)."""
        return None

    def input_mask(self, shape: torch.Size, generator: torch.Generator | None = None) -> torch.Tensor | None:
        """A training-time mask (batch, 1, n) on a layer's input spikes, shared over time; None for none."""
        return None

    #: rules that are not BPTT (HM2-BP) set this and implement :meth:`layer_backward`
    custom_layer_backward: ClassVar[bool] = False

    def layer_backward(self, layer: Any, s_in: torch.Tensor, spikes: torch.Tensor) -> torch.Tensor:
        """Return ``spikes`` (batch, T, out; computed without autograd) unchanged in value, with the
        rule's own gradient w.r.t. ``s_in`` (batch, T, in; undelayed) and ``layer``'s parameters."""
        raise NotImplementedError

    def objective(self, scores: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Loss on the readout's scores (batch, classes; firing rates for spiking readouts) against
        integer labels (batch,)."""
        return LOSSES[self.loss](scores, target)

    def architecture(self) -> dict[str, Any]:
        """Architecture elements the rule brings (``readout``: a Readout; ``encoding``: 'rate',
        'analog' or 'signed'; ``neunorm_decay``); :func:`snnc.models.network.mlp` applies them."""
        return {}

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "params": asdict(self)}


def rate_mse_loss(rate: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """STBP's loss: L = 1/(2S) sum_s ||y_s - mean_t o_s^t||^2 (Wu et al. 2018, Sec. 2); ``rate`` is
    the readout's score (mean_t o for one neuron per class; the voters' mean with voting)."""
    onehot = torch.nn.functional.one_hot(target, rate.shape[-1]).to(rate.dtype)
    return 0.5 * ((rate - onehot) ** 2).sum(dim=-1).mean()


def rate_ce_loss(rate: torch.Tensor, target: torch.Tensor, temperature: float = 10.0) -> torch.Tensor:
    """Cross-entropy on firing rates scaled to logits in [0, temperature].

    Raw spike counts as logits (temperature = T) trained worse with every rule measured.
    """
    return torch.nn.functional.cross_entropy(rate * temperature, target)


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


# --- BPSTA: Shen, Zhao, Zeng 2021 (arXiv:2110.08858), reconstructed from the official code ---------
# (Brain-Cog-Lab/BP-STA code/nodes.py HTGLIFNode; ../shared seed-paper notes, section 3.)

@dataclass(frozen=True)
class BPSTA(Rule):
    """Spatial adjustment: ds/du = 1/u for neurons that fired, 0 for the rest (BPSA: "avoids the
    unnecessary influence from non-spiking neurons"); in threshold units h(x) = 1[x > 0] / (1 + x).
    Temporal adjustment (BPTA): u <- u + alpha (s - sg(s)) after the reset, a forward no-op that lets
    the error at u[t+1] reach s[t] (alpha = 0.2 as the official code). The reset is not differentiated.
    """

    name: ClassVar[str] = "bpsta"
    reset_gradient: ClassVar[bool] = False
    #: measured on the 784-128-(10x10 voters) MLP, MNIST-format digits, 5 epochs: with rate-mse 61 of the 100
    #: voters and 53 of 128 hidden neurons fell silent in the first epoch (BPSA passes gradient only through
    #: neurons that fired, so they never return): 68.6%; rate-ce pushes the wrong classes down relative to
    #: the right one instead of every voter towards 0: 76.4%. The official code defaults to MSE and offers
    #: cross-entropy (its --preset keeps MSE).
    loss: str = "rate-ce"
    default_lr: ClassVar[float] = 2e-3
    alpha: float = 0.2

    def surrogate(self, x: torch.Tensor) -> torch.Tensor:
        fired = x > 0
        return torch.where(fired, 1.0 / (1.0 + x.clamp(min=0)), torch.zeros_like(x))

    def temporal_term(self, s: torch.Tensor) -> torch.Tensor:
        return self.alpha * (s - s.detach())

    def architecture(self) -> dict[str, Any]:
        """The official code's output: FC(10 x classes) -> spiking node -> voting; direct (analog) input."""
        return {"readout": Readout("voting", 10), "encoding": "analog"}


# --- Lee, Sarwar, Panda, Srinivasan, Roy 2020 (arXiv:1903.06379), from the official code ------------
# (chan8972/Enabling_Spikebased_Backpropagation src/*.py; ../shared seed-paper notes, section 4.)

@dataclass(frozen=True)
class LeeLeakAware(Rule):
    """Spike-based BP with the leak-corrected approximate derivative.

    * spike gradient 1/V_th at steps where the neuron fired, 0 elsewhere: h(x) = 1[x > 0];
    * the membrane leak is applied in the forward pass only (its gradient is the identity); the CUBA
      synaptic current, which Lee's LIF does not have, keeps its true gradient;
    * the reset is not differentiated (V - V 1[fired]);
    * every spike's gradient is scaled per neuron and sample by the leak correction
      NG = 1[LF > 1e-3] + ln(lambda) LF / gamma, LF = sum_k lambda^(T - t_k) over the neuron's spike
      times, gamma = its spike count (1 if silent), lambda = the voltage keep factor (1 - voltage_decay);
      i.e. the paper's (1 + (1/gamma) sum_k f'(t - t_k)) with f(t) = exp(-t / tau_m);
    * dropout with one mask per layer per mini-batch, reused at every timestep, scaled 1/(1 - p).
    """

    name: ClassVar[str] = "lee"
    reset_gradient: ClassVar[bool] = False
    leak_gradient: ClassVar[bool] = False
    #: measured on the 784-128-10 MLP, MNIST-format digits, 5 epochs: at 5e-3, 106 of 128 hidden neurons fell
    #: silent in the first epoch (the gradient passes only at steps where a neuron fired) and accuracy reached
    #: 68%; at 2e-3, 75%
    default_lr: ClassVar[float] = 2e-3
    dropout: float = 0.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")

    def surrogate(self, x: torch.Tensor) -> torch.Tensor:
        return (x > 0).to(x.dtype)

    def spike_gradient_scale(self, spikes: torch.Tensor, voltage_keep: float) -> torch.Tensor:
        s = spikes.detach()
        steps = s.shape[1]
        lam = max(float(voltage_keep), 1e-12)
        weights = lam ** torch.arange(steps - 1, -1, -1, dtype=s.dtype, device=s.device)  # lambda^(T - t)
        lf = (s * weights[None, :, None]).sum(dim=1)
        gamma = s.sum(dim=1).clamp(min=1.0)
        return (lf > 1e-3).to(s.dtype) + math.log(lam) * lf / gamma

    def architecture(self) -> dict[str, Any]:
        """Signed Poisson input and the non-spiking leaky-integrator output (decision = v[T])."""
        return {"readout": Readout("membrane"), "encoding": "signed"}

    def input_mask(self, shape: torch.Size, generator: torch.Generator | None = None) -> torch.Tensor | None:
        if self.dropout == 0.0:
            return None
        keep = torch.rand((shape[0], 1, shape[2]), generator=generator) >= self.dropout
        return keep.to(torch.float32) / (1.0 - self.dropout)


# --- Direct training with NeuNorm: Wu, Deng, Li, Zhu, Xie, Shi 2019 (arXiv:1809.05793) ---------------

@dataclass(frozen=True)
class NeuNorm(STBPRect):
    """STBP's rectangular-curve BPTT (the paper's rule) plus the architecture it trains:

    * an encoding first layer that takes the analog image at every step (8-bit graded input);
    * NeuNorm on the input of every later layer: an auxiliary neuron that integrates the layer's
      input spikes and inhibits the layer through trained weights -(W alpha) (see CubaDense);
      ``aux_decay`` = 1 - k_tau2 (SpikingJelly's default k_tau2 = 0.9; the paper's value is not
      recoverable, ../shared seed-paper notes section 2);
    * the voting output layer: 10 spiking neurons per class, averaged (the official code's M).
    The narrowed rate-coding window is the timestep count: train with ``--timesteps 5..12``.
    """

    name: ClassVar[str] = "neunorm"
    aux_decay: float = 0.1

    def architecture(self) -> dict[str, Any]:
        return {"readout": Readout("voting", 10), "encoding": "analog", "neunorm_decay": self.aux_decay}


LOSSES: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "rate-mse": rate_mse_loss, "rate-ce": rate_ce_loss}

RULES: dict[str, type[Rule]] = {r.name: r for r in (STBPRect, STBPPoly, STBPSigmoid, STBPGauss, NeuNorm,
                                                     FastSigmoid, ArcTan, Triangle, BPSTA, LeeLeakAware)}


# HM2-BP is not a per-step surrogate rule; it lives in its own module (which imports Rule from here).
from snnc.models.hm2bp import HM2BP  # noqa: E402

RULES[HM2BP.name] = HM2BP


def make_rule(name: str, **params: Any) -> Rule:
    """The rule called ``name`` (a ``--rule`` value) with ``params`` overriding its defaults."""
    if name not in RULES:
        raise SnncError(f"unknown training rule '{name}'. Supported rules: {', '.join(sorted(RULES))}.")
    try:
        return RULES[name](**params)
    except (TypeError, ValueError) as e:
        raise SnncError(f"bad parameters {params} for rule '{name}': {e}") from None
