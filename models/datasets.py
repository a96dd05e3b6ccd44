"""Datasets and input encodings. Only data that ships or is generated: no downloads here.

``digits`` is scikit-learn's 8x8 handwritten digits (1797 images, shipped with the package).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from snnc.errors import SnncError


@dataclass(frozen=True)
class Dataset:
    """Static samples with features scaled to [0, 1], split deterministically."""

    name: str
    x: np.ndarray          # (n, features) float32 in [0, 1]
    y: np.ndarray          # (n,) int64
    num_classes: int

    @property
    def input_size(self) -> int:
        return int(self.x.shape[1])


def _digits(split: str, seed: int) -> Dataset:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    x = (d.data / 16.0).astype(np.float32)  # pixel intensities 0..16
    y = d.target.astype(np.int64)
    xtr, xte, ytr, yte = train_test_split(x, y, test_size=0.2, random_state=seed, stratify=y)
    xs, ys = (xtr, ytr) if split == "train" else (xte, yte)
    return Dataset("digits", xs, ys, 10)


DATASETS = {"digits": _digits}


def load_dataset(name: str, split: str = "train", seed: int = 0) -> Dataset:
    """Load ``split`` ('train' or 'test') of dataset ``name``; the split is fixed by ``seed``."""
    if name not in DATASETS:
        raise SnncError(f"unknown dataset '{name}'. Supported: {', '.join(sorted(DATASETS))}.")
    if split not in ("train", "test"):
        raise SnncError(f"unknown split '{split}': use 'train' or 'test'.")
    return DATASETS[name](split, seed)


def rate_encode(x: torch.Tensor, timesteps: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Bernoulli rate code: (batch, features) in [0, 1] -> (batch, T, features) 0/1 spikes."""
    p = x.clamp(0, 1).unsqueeze(1).expand(-1, timesteps, -1)
    return (torch.rand(p.shape, generator=generator) < p).to(torch.float32)


def encode_samples(x: np.ndarray, timesteps: int, seed: int) -> np.ndarray:
    """Deterministic rate code of ``x`` (n, features) -> bool (n, T, features), same for every engine."""
    g = torch.Generator().manual_seed(seed)
    return rate_encode(torch.from_numpy(np.asarray(x, dtype=np.float32)), timesteps, g).numpy().astype(bool)
