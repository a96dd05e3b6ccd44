"""The training loop behind ``snn-train``: seeded input spikes (``batch_spikes``), the rule's loss, Adam.

Under ``torchrun`` it trains data-parallel with DistributedDataParallel (``snnc.models.distributed``).
"""
from __future__ import annotations

import random
import time
from dataclasses import asdict, dataclass, field
from typing import Callable

import numpy as np
import torch

from snnc.models import distributed
from snnc.models.datasets import Dataset, batch_spikes
from snnc.models.network import POPULATION_LAYERS, SpikingNet, layer_populations
from snnc.models.neurons import CubaDense
from snnc.models.presets import ADAM, CONSTANT, Optimizer, Schedule


@dataclass(frozen=True)
class EpochLog:
    epoch: int
    loss: float
    train_accuracy: float
    test_accuracy: float | None
    samples_per_s: float


def seed_everything(seed: int) -> None:
    """Seed Python, numpy and torch so a run is reproducible."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def predict(scores: torch.Tensor) -> torch.Tensor:
    """Class = argmax of the readout's scores (ties -> lowest index, as every engine decides)."""
    return scores.argmax(dim=-1)


@torch.no_grad()
def evaluate(model: SpikingNet, data: Dataset, timesteps: int, seed: int = 1234, batch_size: int = 256) -> float:
    """Accuracy on ``data`` with a fixed encoding seed."""
    model.eval()
    dev = next(model.parameters()).device
    g = torch.Generator().manual_seed(seed)
    correct = 0
    for i in range(0, len(data.y), batch_size):
        x = batch_spikes(data, slice(i, i + batch_size), timesteps, g, model.input_encoding).to(dev)
        correct += int((predict(model.scores(model(x)[-1])).cpu() == torch.from_numpy(data.y[i:i + batch_size])).sum())
    return correct / len(data.y)


@dataclass
class TrainState:
    """What resuming needs besides the weights: epochs done, optimiser and data-RNG state, the log.

    Plain data and tensors only, so it loads with ``torch.load(weights_only=True)``.
    """

    epoch: int
    optimizer: dict
    generator: torch.Tensor          # the data generator (order and rate coding)
    logs: list[dict] = field(default_factory=list)
    torch_rng: torch.Tensor | None = None   # torch's global RNG (training-time masks, e.g. dropout)

    def to_dict(self) -> dict:
        return {"format": "snnc.train-state", "epoch": self.epoch, "optimizer": self.optimizer,
                "generator": self.generator, "logs": self.logs, "torch_rng": self.torch_rng}

    @classmethod
    def from_dict(cls, d: dict) -> "TrainState":
        if not isinstance(d, dict) or d.get("format") != "snnc.train-state":
            raise ValueError("not an snnc training state")
        if not (isinstance(d["epoch"], int) and isinstance(d["optimizer"], dict)
                and isinstance(d["generator"], torch.Tensor) and isinstance(d["logs"], list)):
            raise ValueError("fields of the wrong type")
        return cls(d["epoch"], d["optimizer"], d["generator"], list(d["logs"]), d.get("torch_rng"))


def resolve_device(name: str) -> torch.device:
    """'auto' picks CUDA when present, else the CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


#: the fan-in at which a layer trains with ``lr`` itself (the 8x8-digits MLP's first layer, where
#: snnc's defaults were first measured); see :func:`param_groups`
REFERENCE_FAN_IN = 64


def param_groups(model: torch.nn.Module, lr: float, scaling: str = "fan-in") -> list[dict]:
    """Adam parameter groups: with ``scaling='fan-in'`` each neuron population's parameters train at
    ``lr * min(1, sqrt(REFERENCE_FAN_IN / fan_in))``.

    Why: Adam moves every weight by about ``lr`` per step whatever its gradient's size, while a
    layer's initial weights span +-1/sqrt(fan_in). One fixed ``lr`` therefore moves a 784-input
    layer's weights 3.5x as far, relative to their range, as a 64-input layer's, and its potential
    (a sum over 784 inputs) further still: at lr 5e-3 the 784-input MLP killed 78 of 128 hidden
    neurons and 3 of 10 outputs in its first epoch (docs/rules.md, "Learning rate"). Scaled, every
    layer moves by the same fraction of its initial range. ``scaling='none'``: one ``lr`` for all.
    """
    if scaling not in ("fan-in", "none"):
        raise ValueError(f"unknown learning-rate scaling '{scaling}' (supported: fan-in, none)")
    from snnc.models.neurons import CubaNeurons

    groups: list[dict] = []
    seen: set[int] = set()
    for module in model.modules():
        if not isinstance(module, CubaNeurons):
            continue
        params = [p for p in module.parameters() if id(p) not in seen]
        seen.update(id(p) for p in params)
        factor = min(1.0, (REFERENCE_FAN_IN / module.fan_in) ** 0.5) if scaling == "fan-in" else 1.0
        if params:
            groups.append({"params": params, "lr": lr * factor})
    rest = [p for p in model.parameters() if id(p) not in seen]
    if rest:
        groups.append({"params": rest, "lr": lr})
    return groups


#: the mean firing rate below which a spiking population starts training with louder weights
#: (:func:`calibrate_activity`); 0 turns the calibration off
MIN_INITIAL_RATE = 0.01
CALIBRATION_SAMPLES = 256


@torch.no_grad()
def calibrate_activity(model: SpikingNet, x: torch.Tensor, min_rate: float = MIN_INITIAL_RATE,
                       max_gain: float = 64.0) -> dict[str, float]:
    """Before training, scale up the initial weights of every spiking population that is nearly
    silent on ``x`` (a batch of training input), layer by layer from the input, by factors of sqrt(2)
    until its mean firing rate reaches ``min_rate`` (or the gain ``max_gain``); returns the gains.

    Why: rules whose gradient passes only through neurons that fired (BPSTA, Lee et al.) get exactly
    zero gradient from a silent layer, and every rule's output decision is a tie while the output is
    silent. On the N-MNIST-format events (2,312 channels at 7% activity) the initial 2312-128-100
    BPSTA net fired 0.02% in its voters, 87 of 100 of them never, and stayed at chance. The official
    BPSTA code avoids this with batch norm and ReLU before every node, which Loihi cannot run; scaling
    the initial weights is deployable and in the spirit of data-driven SNN initialisation (Rossbroich,
    Gygax & Zenke 2022, fluctuation-driven initialisation). Layers already active are left alone.
    """
    gains: dict[int, float] = {}    # by id of the population
    if min_rate <= 0:
        return {}
    was_training = model.training
    model.eval()
    try:   # one layer at a time, each on the output of the (already calibrated) layers before it
        for layer in model.layers:
            if not isinstance(layer, POPULATION_LAYERS):
                x = layer(x)
                continue
            pops = [p for p in layer_populations(layer) if p.spiking and p.weight.requires_grad
                    and not (isinstance(layer, CubaDense) and p is layer.aux)]
            while True:
                out = layer.traces(x, model.rule, model.hardware_exact)
                quiet = [p for p, trace in zip(pops, out[-len(pops):])
                         if float(trace.float().mean()) < min_rate and gains.get(id(p), 1.0) < max_gain]
                if not quiet:
                    break
                for pop in quiet:
                    pop.weight.mul_(2 ** 0.5)
                    gains[id(pop)] = gains.get(id(pop), 1.0) * 2 ** 0.5
                layer.refit_format()
            x = out[-1]
    finally:
        model.train(was_training)
    names = {id(pop): name for name, pop in model.named_populations()}
    return {names[k]: g for k, g in gains.items()}
    was_training = model.training
    model.eval()
    try:
        for name, pop in model.named_populations():
            if not pop.spiking or not name.startswith("lif") or not pop.weight.requires_grad:
                continue
            gain = 1.0
            while float(model.traces(x)[name].float().mean()) < min_rate and gain < max_gain:
                pop.weight.mul_(2 ** 0.5)
                gain *= 2 ** 0.5
                model.refit_formats()
            if gain > 1.0:
                gains[name] = gain
    finally:
        model.train(was_training)
    return gains


class TrainingWarning(UserWarning):
    """A run that is not learning (a flat loss at chance, a silent output); ``snn-train`` prints it as
    'snn-train: warning: ...', the API emits it through ``train(on_warning=...)`` or Python ``warnings``."""


#: the loss has stopped moving when its relative spread over an epoch's steps, or its relative change
#: between epochs at chance accuracy, is below this (a dead network's loss is the same on every batch:
#: 0.5000 for rate-mse with a silent output)
FLAT_LOSS = 1e-3
#: train accuracy below this multiple of chance (1 / classes) counts as chance
CHANCE_MARGIN = 1.5
WHAT_HELPS = ("a larger --lr{lr}, --readout membrane (a decision even without output spikes), more --timesteps "
              "(every layer delays by one step: the output cannot respond before step layers + 1), a different "
              "--encoding, and check the data (labels, value range)")


class TrainingMonitor:
    """Watches a run for signs that it cannot learn and says so once per kind (``emit(kind, message)``):

    * ``output_silent``: on some training batch every sample's output scores are all equal (no output
      spike at all for a spiking readout): no decision, and rules that pass gradient only through
      spikes get none;
    * ``loss_flat``: the loss moved by less than :data:`FLAT_LOSS` (relative) over an epoch's steps,
      or between two epochs while the train accuracy is at chance.
    """

    def __init__(self, classes: int, lr: float, emit: Callable[[str, str], None]) -> None:
        self.classes, self.lr, self.emit = classes, lr, emit
        self.said: set[str] = set()
        self.losses: list[float] = []
        self.previous: float | None = None

    def warn(self, kind: str, message: str) -> None:
        if kind not in self.said:
            self.said.add(kind)
            self.emit(kind, message)

    def _helps(self) -> str:
        return WHAT_HELPS.format(lr=f" (this run: {self.lr:g})")

    def step(self, epoch: int, step: int, loss: torch.Tensor, scores: torch.Tensor) -> None:
        self.losses.append(float(loss))
        if self.classes < 2 or scores.numel() == 0 or "output_silent" in self.said:
            return
        if bool((scores == scores.max(dim=-1, keepdim=True).values).all()):
            self.warn("output_silent",
                      f"epoch {epoch}, step {step + 1}: the output decided nothing on any of the {scores.shape[0]} "
                      f"samples of the training batch: every class scored {float(scores.flatten()[0]):g} (a spiking "
                      f"readout: not one output spike). What helps: {self._helps()}.")

    def end_epoch(self, log: EpochLog) -> None:
        losses, self.losses = self.losses, []
        chance = 1.0 / max(1, self.classes)
        at_chance = log.train_accuracy < CHANCE_MARGIN * chance
        mean = float(np.mean(losses)) if losses else log.loss
        spread = (max(losses) - min(losses)) / abs(mean) if len(losses) >= 3 and mean != 0 else None
        moved = abs(log.loss - self.previous) / abs(self.previous) if self.previous else None
        self.previous = log.loss
        if spread is not None and spread < FLAT_LOSS:
            what = f"moved by {spread:.1e} (relative) over the epoch's {len(losses)} steps"
        elif moved is not None and moved < FLAT_LOSS and at_chance:
            what = f"changed by {moved:.1e} (relative) since the epoch before"
        else:
            return
        self.warn("loss_flat",
                  f"epoch {log.epoch}: the loss stayed at {log.loss:.4f} ({what}) with train accuracy "
                  f"{log.train_accuracy:.1%} (chance with {self.classes} classes: {chance:.1%}): the network is "
                  f"not learning. What helps: {self._helps()}.")


def _warn(kind: str, message: str) -> None:
    import warnings

    warnings.warn(message, TrainingWarning, stacklevel=6)   # at train()'s caller


def train_step(model: SpikingNet, opt: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor,
               net: torch.nn.Module | None = None, loss_weight: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """One optimiser step on a batch -> (loss, scores), both detached.

    ``net`` is what runs the forward (a DistributedDataParallel wrapper of ``model``, which then
    averages the gradients); ``loss_weight`` scales the loss that is differentiated (a rank's share).
    """
    scores = model.scores((net or model)(x)[-1])
    loss = model.rule.objective(scores, y)
    opt.zero_grad()
    (loss * loss_weight if loss_weight != 1.0 else loss).backward()
    opt.step()
    model.refit_formats()
    return loss.detach(), scores.detach()


def train(model: SpikingNet, train_data: Dataset, *, epochs: int, timesteps: int, batch_size: int = 64,
          lr: float = 5e-3, lr_scaling: str = "fan-in", optimizer: Optimizer = ADAM,
          schedule: Schedule = CONSTANT, min_rate: float = MIN_INITIAL_RATE, seed: int = 0, test_data: Dataset | None = None, max_steps: int | None = None,
          device: str | torch.device = "cpu", resume: TrainState | None = None,
          on_epoch: Callable[[EpochLog, TrainState], None] | None = None,
          on_warning: Callable[[str, str], None] | None = None,
          progress: Callable[[str, int, int], None] | None = None) -> list[EpochLog]:
    """Train with the model's rule up to ``epochs`` (continuing ``resume`` if given).

    ``progress(task, done, total)`` hears each optimiser step (task 'epoch N steps') and each
    finished epoch (task 'epochs'), on rank 0 only (snnc.progress draws it).

    ``on_warning(kind, message)`` hears once per kind that the run is not learning (a flat loss at
    chance, a silent output: :class:`TrainingMonitor`); without it they are Python warnings
    (:class:`TrainingWarning`).

    Input spikes are drawn on the CPU from one seeded generator, so a run resumed from the state of
    epoch k gives bit-identical weights to an uninterrupted run (on the same device).
    ``max_steps`` caps optimiser steps per epoch (smoke tests).

    Started by torchrun (WORLD_SIZE > 1), every rank draws the same global batches and trains on its
    slice of each under DistributedDataParallel; epoch statistics are summed over the ranks, and only
    rank 0 evaluates and calls ``on_epoch``. The returned logs are rank 0's (other ranks: without
    test accuracy).
    """
    ctx = distributed.from_environment()
    dev = torch.device(device)
    joined = False
    if ctx is not None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        dev, joined = distributed.setup(ctx, dev)
    try:
        return _train(model, train_data, epochs=epochs, timesteps=timesteps, batch_size=batch_size, lr=lr,
                      lr_scaling=lr_scaling, optimizer=optimizer, schedule=schedule, min_rate=min_rate, seed=seed, test_data=test_data, max_steps=max_steps, dev=dev, resume=resume,
                      on_epoch=on_epoch, ctx=ctx, on_warning=on_warning, progress=progress)
    finally:
        distributed.teardown(joined)


def _train(model: SpikingNet, train_data: Dataset, *, epochs: int, timesteps: int, batch_size: int, lr: float,
           lr_scaling: str, optimizer: Optimizer, schedule: Schedule, min_rate: float, seed: int, test_data: Dataset | None, max_steps: int | None, dev: torch.device,
           resume: TrainState | None, on_epoch: Callable[[EpochLog, TrainState], None] | None,
           ctx: distributed.DistributedContext | None,
           on_warning: Callable[[str, str], None] | None = None,
           progress: Callable[[str, int, int], None] | None = None) -> list[EpochLog]:
    seed_everything(seed)
    model.to(dev)
    model.refit_formats()   # the formats follow the weights, also weights loaded with load_state_dict
    net: torch.nn.Module = model
    if ctx is not None:   # same initial weights on every rank: DDP broadcasts rank 0's at construction
        net = torch.nn.parallel.DistributedDataParallel(model, device_ids=[dev] if dev.type == "cuda" else None)
    groups = param_groups(model, lr, lr_scaling)
    base_lrs = [group["lr"] for group in groups]
    opt = optimizer.build(groups, lr)
    g = torch.Generator().manual_seed(seed)
    first = 1
    logs: list[EpochLog] = []
    if resume is not None:
        opt.load_state_dict(resume.optimizer)
        g.set_state(resume.generator)
        if resume.torch_rng is not None:
            torch.set_rng_state(resume.torch_rng)
        first = resume.epoch + 1
        logs = [EpochLog(**log) for log in resume.logs]
    y_all = torch.from_numpy(train_data.y)
    main = ctx is None or ctx.is_main
    monitor = TrainingMonitor(train_data.num_classes, lr, on_warning or _warn)   # rank 0 speaks
    if resume is None and min_rate > 0:   # its own generator: the training stream stays the same
        cal = torch.Generator().manual_seed(seed + 1)
        pick = torch.randperm(len(y_all), generator=cal)[:CALIBRATION_SAMPLES]
        calibrate_activity(model, batch_spikes(train_data, pick, timesteps, cal, model.input_encoding).to(dev),
                           min_rate)
    for epoch in range(first, epochs + 1):
        for group, base in zip(opt.param_groups, base_lrs):
            group["lr"] = base * schedule.factor(epoch)
        net.train()
        order = torch.randperm(len(y_all), generator=g)
        t0, seen, loss_sum, correct = time.perf_counter(), 0, 0.0, 0
        steps = -(-len(order) // batch_size) if max_steps is None else min(max_steps, -(-len(order) // batch_size))
        tell = progress if progress is not None and main else None
        if tell is not None:
            tell("epochs", epoch - 1, epochs)
            tell(f"epoch {epoch} steps", 0, steps)
        for step, i in enumerate(range(0, len(order), batch_size)):
            if max_steps is not None and step >= max_steps:
                break
            idx = order[i:i + batch_size]
            x = batch_spikes(train_data, idx, timesteps, g, model.input_encoding)   # the whole global batch
            y, weight = y_all[idx], 1.0
            if ctx is not None:
                part, weight = distributed.shard(len(idx), ctx)
                x, y = x[part], y[part]
            loss, scores = train_step(model, opt, x.to(dev), y.to(dev), net, weight)
            if weight > 0:
                seen += len(y)
                loss_sum += float(loss) * len(y)
                correct += int((predict(scores) == y.to(dev)).sum())
                if main:
                    monitor.step(epoch, step, loss, scores)
            if tell is not None:
                tell(f"epoch {epoch} steps", step + 1, steps)
        elapsed = time.perf_counter() - t0
        if ctx is not None:
            total = distributed.all_sum([seen, loss_sum, correct], dev)
            seen, loss_sum, correct = int(total[0]), total[1], int(total[2])
        test_acc = evaluate(model, test_data, timesteps) if test_data is not None and main else None
        log = EpochLog(epoch, loss_sum / max(seen, 1), correct / max(seen, 1), test_acc, seen / elapsed)
        logs.append(log)
        if tell is not None:
            tell("epochs", epoch, epochs)
        if on_epoch and main:
            on_epoch(log, TrainState(epoch, opt.state_dict(), g.get_state(), [asdict(x) for x in logs],
                                     torch.get_rng_state()))
        if main:
            monitor.end_epoch(log)
    return logs
