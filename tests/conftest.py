"""Shared fixtures: small models saved as real checkpoints, built fast (no training unless needed)."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from snnc.models.checkpoint import save
from snnc.models.network import mlp


def make_model(sizes: tuple[int, ...] = (64, 32, 10), *, hardware_exact: bool = True, seed: int = 0,
               gain: float = 3.0, **neuron) -> torch.nn.Module:
    """A random MLP whose weights are large enough that every layer spikes."""
    torch.manual_seed(seed)
    model = mlp(sizes[0], sizes[-1], hidden=tuple(sizes[1:-1]), hardware_exact=hardware_exact, **neuron)
    with torch.no_grad():
        for layer in model.layers:
            layer.weight.mul_(gain)
            if layer.bias is not None:
                layer.bias.uniform_(-0.05, 0.05)
    model.refit_formats()   # each layer's format for the weights it now has, as training keeps it
    return model


@pytest.fixture
def model_path(tmp_path: Path) -> Path:
    """A hardware-exact digits-sized model saved with digits metadata."""
    path = tmp_path / "model.pt"
    save(make_model(), path, metadata={"dataset": "digits", "timesteps": 12})
    return path
