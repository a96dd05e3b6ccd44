"""The training loop behind ``snn-train``: seeded, rate-coded input, the rule's loss, Adam."""
from __future__ import annotations

import random
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from snnc.models.datasets import Dataset, rate_encode
from snnc.models.network import SpikingNet


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


def predict(out_spikes: torch.Tensor) -> torch.Tensor:
    """Class = argmax of output spike counts (ties -> lowest index, as every engine decides)."""
    return out_spikes.sum(dim=1).argmax(dim=-1)


@torch.no_grad()
def evaluate(model: SpikingNet, data: Dataset, timesteps: int, seed: int = 1234, batch_size: int = 256) -> float:
    """Accuracy on ``data`` with a fixed encoding seed."""
    model.eval()
    g = torch.Generator().manual_seed(seed)
    correct = 0
    for i in range(0, len(data.y), batch_size):
        x = rate_encode(torch.from_numpy(data.x[i:i + batch_size]), timesteps, g)
        correct += int((predict(model(x)[-1]) == torch.from_numpy(data.y[i:i + batch_size])).sum())
    return correct / len(data.y)


def train(model: SpikingNet, train_data: Dataset, *, epochs: int, timesteps: int, batch_size: int = 64,
          lr: float = 5e-3, seed: int = 0, test_data: Dataset | None = None, max_steps: int | None = None,
          on_epoch: Callable[[EpochLog], None] | None = None) -> list[EpochLog]:
    """Train with the model's rule; ``max_steps`` caps optimiser steps per epoch (for smoke tests)."""
    seed_everything(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    g = torch.Generator().manual_seed(seed)
    x_all, y_all = torch.from_numpy(train_data.x), torch.from_numpy(train_data.y)
    logs = []
    for epoch in range(1, epochs + 1):
        model.train()
        order = torch.randperm(len(y_all), generator=g)
        t0, seen, loss_sum, correct = time.perf_counter(), 0, 0.0, 0
        for step, i in enumerate(range(0, len(order), batch_size)):
            if max_steps is not None and step >= max_steps:
                break
            idx = order[i:i + batch_size]
            x, y = rate_encode(x_all[idx], timesteps, g), y_all[idx]
            out = model(x)[-1]
            loss = model.rule.objective(out, y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            seen += len(idx)
            loss_sum += float(loss.detach()) * len(idx)
            correct += int((predict(out) == y).sum())
        elapsed = time.perf_counter() - t0
        test_acc = evaluate(model, test_data, timesteps) if test_data is not None else None
        log = EpochLog(epoch, loss_sum / max(seen, 1), correct / max(seen, 1), test_acc, seen / elapsed)
        logs.append(log)
        if on_epoch:
            on_epoch(log)
    return logs
