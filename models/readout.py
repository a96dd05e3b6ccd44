"""How a class decision is read from the output layer: the same rule in training and in every engine.

* ``rate``: one spiking neuron per class; score = firing rate, decision = most spikes.
* ``voting``: ``voters`` spiking neurons per class (Wu et al. 2019's voting layer: class ``c`` owns
  neurons ``c*voters .. (c+1)*voters - 1``, the fixed voting matrix averages them); score = the
  voters' mean rate, decision = most spikes summed over the voters.
* ``membrane``: one non-spiking leaky integrator per class (Lee et al. 2020's output layer); score =
  v[T] / (threshold * T), decision = largest v[T]. On the chip the population is an ordinary CUBA-LIF
  with the largest threshold the target holds, and the engines read its ``v`` after the last step.

Ties go to the lowest class index everywhere (numpy's and torch's ``argmax``).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:       # scores() takes tensors; the engines' decide() needs no torch (snn-run's start-up)
    import torch

READOUT_KINDS = ("rate", "voting", "membrane")


@dataclass(frozen=True)
class Readout:
    kind: str = "rate"
    voters: int = 1

    def __post_init__(self) -> None:
        if not isinstance(self.kind, str) or self.kind not in READOUT_KINDS:
            raise ValueError(f"unknown readout '{self.kind}' (supported: {', '.join(READOUT_KINDS)})")
        if isinstance(self.voters, bool) or not isinstance(self.voters, int):
            raise ValueError(f"readout voters must be an integer, got {self.voters!r}")
        if self.voters < 1 or (self.kind != "voting" and self.voters != 1):
            raise ValueError(f"readout '{self.kind}' cannot have {self.voters} voters")

    @property
    def spiking(self) -> bool:
        """Whether the output population's spikes (not its membrane) carry the decision."""
        return self.kind != "membrane"

    def neurons(self, classes: int) -> int:
        """Size of the output population for ``classes`` classes."""
        return classes * self.voters

    def classes(self, neurons: int) -> int:
        if neurons % self.voters:
            raise ValueError(f"{neurons} output neurons do not split into groups of {self.voters} voters")
        return neurons // self.voters

    def scores(self, out: torch.Tensor) -> torch.Tensor:
        """Training scores (batch, classes) from the output layer's trace (batch, T, neurons): spikes,
        or for ``membrane`` the potential in threshold units."""
        if self.kind == "membrane":
            return out[:, -1] / out.shape[1]
        rate = out.mean(dim=1)
        return rate.reshape(rate.shape[0], -1, self.voters).mean(dim=-1)

    def decide(self, output: np.ndarray) -> np.ndarray:
        """Class per sample from what an engine reports: output spikes (batch, T, neurons) for spiking
        readouts, integer ``v[T]`` (batch, neurons) for ``membrane``."""
        output = np.asarray(output)
        if self.kind == "membrane":
            return output.argmax(axis=-1)
        counts = output.sum(axis=1, dtype=np.int64)
        return counts.reshape(counts.shape[0], -1, self.voters).sum(axis=-1).argmax(axis=-1)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, d: dict[str, Any] | None) -> "Readout":
        return cls(**(d or {}))
