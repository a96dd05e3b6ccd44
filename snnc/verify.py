"""Verification: the same input spikes through several engines, compared layer by layer, step by step.

Engines: ``torch`` (the hardware-exact PyTorch model), ``hwsim``, ``lava`` (Lava fixed_pt).
Observables: every population's spikes (batch, T, n), and a readout integrator's integer v after
the last step (``NAME.v[T]``, batch x 1 x n). Zero mismatches is the only pass.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from itertools import combinations
from typing import Any

import numpy as np


@dataclass(frozen=True)
class FirstMismatch:
    pair: str
    layer: str
    sample: int
    timestep: int   # 1-based, as Lava counts
    neuron: int
    values: dict[str, bool | int]


@dataclass
class VerificationResult:
    samples: int
    timesteps: int
    engines: list[str]
    mismatches: dict[str, dict[str, int]] = field(default_factory=dict)
    spikes: dict[str, dict[str, int]] = field(default_factory=dict)
    first: FirstMismatch | None = None

    @property
    def passed(self) -> bool:
        return all(n == 0 for per_layer in self.mismatches.values() for n in per_layer.values())

    def to_json(self) -> dict[str, Any]:
        return {"samples": self.samples, "timesteps": self.timesteps, "engines": self.engines,
                "mismatches": self.mismatches, "spikes": self.spikes, "passed": self.passed,
                "first_mismatch": None if self.first is None else self.first.__dict__}

    def describe_failure(self) -> str:
        f = self.first
        assert f is not None
        total = sum(sum(v.values()) for v in self.mismatches.values())
        return (f"verification failed: {total} mismatched spikes. First: engines {f.pair}, layer '{f.layer}', "
                f"sample {f.sample}, timestep {f.timestep}, neuron {f.neuron} ({f.values}). Per pair and "
                f"layer: {self.mismatches}. This is a bug in snnc: please report it with the model file.")


def compare(runs: dict[str, dict[str, np.ndarray]], layers: list[str]) -> VerificationResult:
    """Count mismatched spikes per engine pair and layer; remember the earliest one (by timestep)."""
    engines = list(runs)
    first_run = runs[engines[0]][layers[0]]
    res = VerificationResult(samples=first_run.shape[0], timesteps=first_run.shape[1], engines=engines)
    res.spikes = {e: {name: int(runs[e][name].sum()) for name in layers if runs[e][name].dtype == bool}
                  for e in engines}
    best: tuple[int, int] | None = None
    for a, b in combinations(engines, 2):
        pair = f"{a}-{b}"
        res.mismatches[pair] = {}
        for li, name in enumerate(layers):
            x, y = np.asarray(runs[a][name]), np.asarray(runs[b][name])  # spikes, or integer v[T]
            if x.shape != y.shape:
                raise ValueError(f"engines {pair} disagree on the shape of layer '{name}': {x.shape} vs {y.shape}")
            diff = x != y
            res.mismatches[pair][name] = int(diff.sum())
            if diff.any():
                s, t, n = (int(i) for i in np.argwhere(diff)[np.argmin(np.argwhere(diff)[:, 1])])
                if best is None or (t, li) < best:
                    best = (t, li)
                    res.first = FirstMismatch(pair, name, s, t + 1, n, {a: x[s, t, n].item(), b: y[s, t, n].item()})
    return res
