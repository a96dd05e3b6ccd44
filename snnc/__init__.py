"""snnc: compile PyTorch-trained spiking networks to Loihi-style hardware, verified spike for spike.

Public API (the CLI commands are thin shells over these)::

    snnc.save(model, "model.pt")                      # checkpoint: spec + state dict + metadata
    ckpt = snnc.load("model.pt")                      # never unpickles code unless allowed
    result = snnc.compile("model.pt", target="loihi", out="build/", verify=32)
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from snnc.errors import SnncError

if TYPE_CHECKING:
    from snnc.models.checkpoint import Checkpoint
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
            verify: int = 0, **kw: Any) -> "CompileResult":
    """Compile a model file into an artifact directory (see :func:`snnc.pipeline.compile_model`)."""
    from snnc.pipeline import compile_model

    return compile_model(model_path, target=target, out=out, verify=verify, **kw)


__all__ = ["SnncError", "__version__", "compile", "load", "save"]
