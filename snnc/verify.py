"""Verification: the same input spikes through several engines, compared layer by layer, step by step.

Engines: ``torch`` (the hardware-exact PyTorch model), ``hwsim``, ``lava`` (Lava fixed_pt), and
``emulator`` (nengo-loihi's Loihi 1 emulator, snnc.runtime.emulator) where it is installed and can run
the network; an engine that could not run is named in ``not_run`` with the reason.
Observables: every population's spikes (batch, T, n), and a readout integrator's integer v after
the last step (``NAME.v[T]``, batch x 1 x n). Zero mismatches is the only pass, with one exception:
an engine listed in ``expected`` (engine -> reason) models the chip where Lava's model does not, and
the run entered such a regime (snnc.hwsim.divergence says so), so its mismatches are counted and
reported but do not fail the run.
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
    first: FirstMismatch | None = None           # the earliest mismatch of any pair
    #: each pair's earliest mismatch (pairs without one are absent)
    first_by_pair: dict[str, FirstMismatch] = field(default_factory=dict)
    #: engines that did not run, each with the reason (e.g. the emulator not installed)
    not_run: dict[str, str] = field(default_factory=dict)
    #: engines whose mismatches are expected, each with the reason: counted, reported, not failing
    expected: dict[str, str] = field(default_factory=dict)

    def _tolerated(self, pair: str) -> bool:
        return any(engine in self.expected for engine in pair.split("-"))

    @property
    def failing_pairs(self) -> list[str]:
        """The engine pairs that disagree somewhere and are not excused by ``expected``."""
        return [pair for pair, per_layer in self.mismatches.items()
                if any(n for n in per_layer.values()) and not self._tolerated(pair)]

    @property
    def passed(self) -> bool:
        return not self.failing_pairs

    def to_json(self) -> dict[str, Any]:
        return {"samples": self.samples, "timesteps": self.timesteps, "engines": self.engines,
                "mismatches": self.mismatches, "spikes": self.spikes, "passed": self.passed,
                "first_mismatch": None if self.first is None else self.first.__dict__,
                "not_run": dict(self.not_run),
                "expected_mismatches": {e: {"reason": why, "mismatches": sum(
                    n for pair, per in self.mismatches.items() if e in pair.split("-") for n in per.values())}
                    for e, why in self.expected.items()}}

    def describe_failure(self) -> str:
        failing = [self.first_by_pair[p] for p in self.failing_pairs if p in self.first_by_pair]
        f = min(failing, key=lambda m: m.timestep) if failing else self.first
        assert f is not None
        total = sum(sum(self.mismatches[p].values()) for p in self.failing_pairs)
        where = (f"verification failed: {total} mismatched spikes. First: engines {f.pair}, layer '{f.layer}', "
                 f"sample {f.sample}, timestep {f.timestep}, neuron {f.neuron} ({f.values}). Per pair and "
                 f"layer: {self.mismatches}.")
        if "emulator" in f.pair.split("-") and all("emulator" in p.split("-") for p in self.failing_pairs):
            return (f"{where} Only nengo-loihi's Loihi emulator disagrees, and the divergence checks found no "
                    f"regime where Lava's model and the silicon-tested semantics differ: either such a regime "
                    f"is missing from them or snnc passes the emulator something wrong. This is a bug in snnc: "
                    f"please report it with the model file.")
        return f"{where} This is a bug in snnc: please report it with the model file."


def compare(runs: dict[str, dict[str, np.ndarray]], layers: list[str]) -> VerificationResult:
    """Count mismatched spikes per engine pair and layer; remember each pair's earliest one and the
    earliest of all (by timestep, then layer)."""
    engines = list(runs)
    first_run = runs[engines[0]][layers[0]]
    res = VerificationResult(samples=first_run.shape[0], timesteps=first_run.shape[1], engines=engines)
    res.spikes = {e: {name: int(runs[e][name].sum()) for name in layers if runs[e][name].dtype == bool}
                  for e in engines}
    best: tuple[int, int] | None = None
    for a, b in combinations(engines, 2):
        pair = f"{a}-{b}"
        res.mismatches[pair] = {}
        pair_best: tuple[int, int] | None = None
        for li, name in enumerate(layers):
            x, y = np.asarray(runs[a][name]), np.asarray(runs[b][name])  # spikes, or integer v[T]
            if x.shape != y.shape:
                raise ValueError(f"engines {pair} disagree on the shape of layer '{name}': {x.shape} vs {y.shape}")
            diff = x != y
            res.mismatches[pair][name] = int(diff.sum())
            if diff.any():
                s, t, n = (int(i) for i in np.argwhere(diff)[np.argmin(np.argwhere(diff)[:, 1])])
                here = FirstMismatch(pair, name, s, t + 1, n, {a: x[s, t, n].item(), b: y[s, t, n].item()})
                if pair_best is None or (t, li) < pair_best:
                    pair_best = (t, li)
                    res.first_by_pair[pair] = here
                if best is None or (t, li) < best:
                    best = (t, li)
                    res.first = here
    return res
