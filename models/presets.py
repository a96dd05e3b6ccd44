"""The seed papers' training configurations as one-word presets: ``snn-train --preset NAME``.

A preset fixes what the paper (or its official code) fixes: dataset, network, rule, T, epochs, batch,
optimiser, learning rate and schedule. What snnc cannot or does not follow is in ``deviations``, said
where the preset is printed. Any flag given beside ``--preset`` overrides the preset's value.
Sources: the team's extraction of the papers and official code (docs/results.md lists the figures).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable

from snnc.errors import SnncError


@dataclass(frozen=True)
class Schedule:
    """Learning-rate factor per epoch (1-based), applied to every group's base rate.

    ``kind``: ``constant``; ``step`` (x ``gamma`` at every epoch of ``milestones``, or every ``every``
    epochs); ``inv-sqrt`` (1/sqrt(epoch), HM2-BP's lr_epoch = lr/sqrt(epoch + 1) counted from 0);
    ``cosine`` (linear warm-up over ``warmup`` epochs, then cosine to 0 at ``total``)."""

    kind: str = "constant"
    gamma: float = 0.1
    every: int = 0
    milestones: tuple[int, ...] = ()
    warmup: int = 0
    total: int = 0

    def factor(self, epoch: int) -> float:
        if self.kind == "constant":
            return 1.0
        if self.kind == "step":
            passed = (epoch - 1) // self.every if self.every else sum(epoch >= m for m in self.milestones)
            return self.gamma ** passed
        if self.kind == "inv-sqrt":
            return 1.0 / math.sqrt(epoch)
        if self.kind == "cosine":
            if epoch <= self.warmup:
                return epoch / (self.warmup + 1)
            span = max(self.total - self.warmup, 1)
            return 0.5 * (1 + math.cos(math.pi * (epoch - 1 - self.warmup) / span))
        raise ValueError(f"unknown schedule '{self.kind}' (supported: constant, step, inv-sqrt, cosine)")


CONSTANT = Schedule()


@dataclass(frozen=True)
class Optimizer:
    """``adam``, ``adamw`` or ``sgd`` with its hyper-parameters (learning rates come from the groups)."""

    kind: str = "adam"
    momentum: float = 0.0
    weight_decay: float = 0.0

    def build(self, groups: list[dict], lr: float) -> Any:
        import torch

        makers: dict[str, Callable[[], Any]] = {
            "adam": lambda: torch.optim.Adam(groups, lr=lr, weight_decay=self.weight_decay),
            "adamw": lambda: torch.optim.AdamW(groups, lr=lr, weight_decay=self.weight_decay),
            "sgd": lambda: torch.optim.SGD(groups, lr=lr, momentum=self.momentum, weight_decay=self.weight_decay)}
        if self.kind not in makers:
            raise ValueError(f"unknown optimizer '{self.kind}' (supported: {', '.join(makers)})")
        return makers[self.kind]()


ADAM = Optimizer()


@dataclass(frozen=True)
class Preset:
    name: str
    paper: str
    dataset: str
    arch: str
    rule: str
    timesteps: int
    epochs: int
    batch_size: int
    lr: float
    optimizer: Optimizer = ADAM
    schedule: Schedule = CONSTANT
    hidden: tuple[int, ...] = ()
    rule_params: dict[str, Any] = field(default_factory=dict)
    lr_scaling: str = "none"      # the papers use one learning rate for every layer
    encoding: str | None = None   # None: the rule's own
    deviations: str = ""

    def describe(self) -> str:
        opt = self.optimizer
        extra = "".join(f", {k} {v:g}" for k, v in (("momentum", opt.momentum), ("weight decay", opt.weight_decay)) if v)
        net = f"{self.arch} {list(self.hidden)}" if self.hidden else self.arch
        return (f"preset {self.name} ({self.paper}): {self.dataset}, {net}, rule "
                f"{self.rule}, T={self.timesteps}, {self.epochs} epochs, batch {self.batch_size}, {opt.kind} lr "
                f"{self.lr:g}{extra}, schedule {self.schedule.kind}"
                + (f". Differs from the paper: {self.deviations}" if self.deviations else ""))


_STBP_RECIPE = dict(rule="stbp-rect", timesteps=20, epochs=100, batch_size=100, lr=1e-3,
                    schedule=Schedule("step", gamma=0.1, every=40))

def _hm2bp(dataset: str, network: str, timesteps: int, deviations: str) -> Preset:
    """HM2-BP's official config (jinyyy666/mm-bp-snn): 784/2312-800-10, Adam 1e-3 / sqrt(epoch), 200
    epochs, one millisecond per step, target counts 35 (correct class) and 5 (others), margin 5."""
    counts = {"desired_rate": 35 / timesteps, "undesired_rate": 5 / timesteps, "margin": 5 / timesteps}
    return Preset(f"hm2bp-{dataset}-mlp", f"Jin et al. 2018, {network}, official code's config", dataset, "mlp",
                  hidden=(800,), rule="hm2bp", timesteps=timesteps, epochs=200, batch_size=32, lr=1e-3,
                  schedule=Schedule("inv-sqrt"), rule_params=counts, deviations=deviations)


PRESETS: dict[str, Preset] = {p.name: p for p in (
    Preset("stbp-mnist-mlp", "Wu et al. 2018, MNIST 784-800-10; recipe of the official PyTorch code", "mnist",
           "mlp", hidden=(800,), **_STBP_RECIPE,    # type: ignore[arg-type]
           deviations="snnc's CUBA-LIF neuron (decays 0.5/0.2, threshold 1) instead of the code's LIF "
                      "(V_th 0.5, decay 0.2)"),
    Preset("stbp-nmnist-mlp", "Wu et al. 2018, N-MNIST 34x34x2-800-10", "nmnist", "mlp", hidden=(800,),
           **_STBP_RECIPE,    # type: ignore[arg-type]
           deviations="T (20 time bins) and the recipe are the official MNIST code's; the paper's are not "
                      "recoverable; snnc's CUBA-LIF neuron"),
    _hm2bp("mnist", "MNIST 784-800-10", 400,
           "batch 32 instead of 1 (200 epochs at batch 1 are about 12 million steps); snnc's CUBA-LIF decays "
           "instead of tau_m 64 / tau_s 8 ms and no refractory period"),
    _hm2bp("nmnist", "N-MNIST 2312-800-10", 540,
           "as hm2bp-mnist-mlp; T = 540 one-millisecond bins of the 540 ms the code uses"),
    Preset("lee-mnist-lenet", "Lee et al. 2020, MNIST LeNet 20C5-AP2-50C5-AP2-200FC-10, official code", "mnist",
           "lenet", rule="lee", timesteps=100, epochs=125, batch_size=64, lr=0.0085,
           optimizer=Optimizer("sgd", weight_decay=5e-4), schedule=Schedule("step", gamma=0.2, milestones=(75,)),
           encoding="rate",
           deviations="unsigned Poisson input (snnc deploys signed input for dense first layers only); CUBA-LIF "
                      "hidden neurons (a synaptic current Lee's LIF does not have); hidden leak "
                      "0.2 instead of 0.01"),
    Preset("neunorm-nmnist-mlp", "Wu et al. 2019 (NeuNorm), official code's recipe, N-MNIST", "nmnist", "mlp",
           hidden=(800,), rule="neunorm", timesteps=5, epochs=120, batch_size=10, lr=0.01,
           optimizer=Optimizer("sgd", momentum=0.9), schedule=Schedule("step", gamma=0.1, every=35),
           deviations="the paper's N-MNIST network is not recoverable: STBP's 2312-800-10 MLP with NeuNorm; "
                      "the code's FC learning rate (0.01) for every layer"),
    Preset("bpsta-nmnist", "Shen et al. 2021 (BPSTA), official code's N-MNIST script", "nmnist", "bpsta-nmnist",
           rule="bpsta", rule_params={"loss": "rate-mse"}, timesteps=16, epochs=300, batch_size=64, lr=1e-3,
           optimizer=Optimizer("adamw", weight_decay=1e-4), schedule=Schedule("cosine", warmup=5, total=300),
           deviations="no batch norm or ReLU before the nodes (not deployable on Loihi), sum pooling for max "
                      "pooling, dropout 0.5 as spike dropout"),
)}


def get_preset(name: str) -> Preset:
    if name not in PRESETS:
        raise SnncError(f"unknown --preset '{name}'. Presets: {', '.join(PRESETS)} (docs/rules.md, 'Presets').")
    return PRESETS[name]
