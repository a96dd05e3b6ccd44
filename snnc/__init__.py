"""snnc: compile PyTorch-trained spiking networks to Loihi-style hardware, verified spike for spike.

Public API (the CLI commands are thin shells over these; docs/your-own-model.md walks through it)::

    from snnc.models import SpikingNet, CubaDense     # layers, rules, readouts, datasets
    net = SpikingNet([CubaDense(64, 128), CubaDense(128, 10)])
    logs = snnc.train(net, (x, y), epochs=5, timesteps=20)   # any rule, arrays / DataLoader / dataset name
    snnc.save(net, "model.pt")                        # checkpoint: spec + state dict + metadata
    ckpt = snnc.load("model.pt")                      # never unpickles code unless allowed
    result = snnc.compile("model.pt", target="loihi", out="build/", verify=32)
    out = snnc.run("build/", (x_test, y_test), backend="hwsim")   # or backend="lava"
    print(out.accuracy, out.spikes["lif1"].shape)
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from snnc.errors import SnncError

if TYPE_CHECKING:
    from snnc.api import RunResult
    from snnc.models.checkpoint import Checkpoint
    from snnc.models.train import EpochLog
    from snnc.models.network import SpikingNet
    from snnc.pipeline import CompileResult

__version__ = "0.1.0"


def save(model: "SpikingNet", path: str | os.PathLike, metadata: dict[str, Any] | None = None) -> Path:
    """Write ``model`` as an snnc checkpoint (see :func:`snnc.models.checkpoint.save`)."""
    from snnc.models.checkpoint import save as _save

    return _save(model, path, metadata=metadata)


def load(path: str | os.PathLike, *, allow_pickle_code_execution: bool = False) -> "Checkpoint":
    """Read an snnc checkpoint; code in the file runs only with ``allow_pickle_code_execution``."""
    from snnc.models.checkpoint import load as _load

    return _load(path, allow_pickle_code_execution=allow_pickle_code_execution)


def compile(model_path: str | os.PathLike, *, target: str = "loihi", out: str | os.PathLike | None = None,
            verify: int = 0, data: str | os.PathLike | None = None, **kw: Any) -> "CompileResult":
    """Compile a model file into an artifact directory (see :func:`snnc.pipeline.compile_model`);
    ``data``: an .npz / torch file of samples ``x`` and labels ``y`` that the report and verification
    run on (``snn-compile --data``), instead of the model's recorded dataset or random spikes."""
    from snnc.pipeline import compile_model

    return compile_model(model_path, target=target, out=out, verify=verify, data_file=data, **kw)


def train(model: "SpikingNet", data: Any, **kw: Any) -> "list[EpochLog]":
    """Train a SpikingNet with its rule on any data (see :func:`snnc.api.train`)."""
    from snnc.api import train as _train

    return _train(model, data, **kw)


def run(artifact: str | os.PathLike, data: Any, **kw: Any) -> "RunResult":
    """Run your own samples through a compiled artifact on hwsim or Lava (see :func:`snnc.api.run`)."""
    from snnc.api import run as _run

    return _run(artifact, data, **kw)


__all__ = ["SnncError", "__version__", "compile", "load", "run", "save", "train"]
