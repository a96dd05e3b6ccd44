"""snnc.models: the PyTorch side: CUBA-LIF layers, training rules, datasets, checkpoints.

What a PyTorch user reaches for is importable from here::

    from snnc.models import SpikingNet, CubaDense, CubaConv, SumPool, Flatten
    net = SpikingNet([CubaConv((2, 16, 16), 8, 3, padding=1), SumPool((8, 16, 16), 2),
                      Flatten((8, 8, 8)), CubaDense(512, 4)])

The names resolve on first use (PEP 562), so ``import snnc.models.datasets`` stays as light as before
and the submodules never import each other through this package.
"""
from __future__ import annotations

import importlib
from typing import Any

#: public name -> the submodule that defines it
_EXPORTS = {
    # layers and the network
    "CubaDense": "neurons", "CubaNeurons": "neurons", "CubaRecurrentDense": "neurons",
    "CubaConv": "conv", "ResidualBlock": "conv", "SumPool": "conv", "SpikingPool": "conv", "Flatten": "conv",
    "SpikeDropout": "conv",
    "SpikingNet": "network", "ARCHS": "network", "mlp": "network", "rmlp": "network", "LAYER_ADVICE": "network",
    "Readout": "readout",
    # training
    "Rule": "rules", "RULES": "rules", "make_rule": "rules",
    "EpochLog": "train", "evaluate": "train",
    "PRESETS": "presets",
    # data
    "Dataset": "datasets", "DATASETS": "datasets", "load_dataset": "datasets", "batch_spikes": "datasets",
    "dataset_from_arrays": "datasets", "load_data_file": "datasets",
    # checkpoints
    "Checkpoint": "checkpoint",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    where = _EXPORTS.get(name)
    if where is None:
        raise AttributeError(f"module 'snnc.models' has no attribute '{name}'")
    value = getattr(importlib.import_module(f"snnc.models.{where}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
