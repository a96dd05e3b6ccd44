"""The snnc checkpoint: architecture spec + state dict + metadata, readable without unpickling code.

``torch.load(path, weights_only=True)`` reads it: only tensors and plain containers inside.
A file holding a whole pickled module can be read only with ``allow_pickle_code_execution=True``
(CLI ``--allow-pickle-code-execution``), because unpickling runs arbitrary code from the file.
"""
from __future__ import annotations

import os
import pickle
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from snnc.errors import InputFileError, UnsupportedLayerError
from snnc.models.network import SpikingNet

FORMAT = "snnc.checkpoint"
FORMAT_VERSION = 1


@dataclass
class Checkpoint:
    """What a model file holds: ``module`` is set only for trusted pickled modules."""

    path: Path
    spec: dict[str, Any] | None = None
    state_dict: dict[str, torch.Tensor] | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    module: nn.Module | None = None

    def build(self) -> nn.Module:
        """The model as a module (built from the spec, or the trusted pickled module)."""
        if self.module is not None:
            return self.module
        assert self.spec is not None and self.state_dict is not None
        try:
            model = SpikingNet.from_spec(self.spec)
        except UnsupportedLayerError as e:
            raise UnsupportedLayerError(f"{self.path}: {e}") from None
        try:
            model.load_state_dict(self.state_dict)
        except RuntimeError as e:
            raise InputFileError(f"{self.path}: the state dict does not match the architecture spec "
                                 f"({str(e).splitlines()[0]}). The file is damaged or was edited by hand.") from None
        return model


def atomic_torch_save(obj: Any, path: Path) -> Path:
    """torch.save to a temp file beside ``path``, then rename: a crash never leaves half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        torch.save(obj, tmp)
        mask = os.umask(0)
        os.umask(mask)
        os.chmod(tmp, 0o666 & ~mask)  # mkstemp makes 0600
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def save(model: SpikingNet, path: str | os.PathLike, metadata: dict[str, Any] | None = None) -> Path:
    """Write ``model`` atomically as an snnc checkpoint."""
    payload = {"format": FORMAT, "format_version": FORMAT_VERSION, "spec": model.spec(),
               "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
               "metadata": dict(metadata or {})}
    return atomic_torch_save(payload, Path(path))


def load(path: str | os.PathLike, *, allow_pickle_code_execution: bool = False) -> Checkpoint:
    """Read a model file; never executes code from it unless ``allow_pickle_code_execution``."""
    path = Path(path)
    if not path.exists():
        raise InputFileError(f"{path}: no such file. Pass the path of a model saved by snn-train or "
                             f"snnc.save(model, path).")
    if path.is_dir():
        raise InputFileError(f"{path}: is a directory, not a model file.")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        if not allow_pickle_code_execution:
            raise InputFileError(
                f"{path}: contains pickled Python objects beyond tensors and plain data "
                f"({str(e).splitlines()[0][:160]}). Loading it would execute code stored in the file, so snnc "
                f"refuses. If you trust the file, pass --allow-pickle-code-execution (Python: "
                f"allow_pickle_code_execution=True); "
                f"better, re-save the model with snnc.save(model, path).") from None
        return _load_pickled(path)
    except Exception as e:  # the weights-only parser runs no file code: any error means a malformed file
        raise InputFileError(f"{path}: not a PyTorch model file ({type(e).__name__}: "
                             f"{str(e).splitlines()[0][:160] if str(e) else 'unreadable'}). "
                             f"Expected a checkpoint written by snn-train or snnc.save().") from None
    return _from_payload(path, obj)


def _from_payload(path: Path, obj: Any) -> Checkpoint:
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        keys = sorted(obj)[:6] if isinstance(obj, dict) else type(obj).__name__
        raise InputFileError(
            f"{path}: is a PyTorch file but not an snnc checkpoint (found {keys}). A bare state_dict "
            f"has no architecture; save the model with snnc.save(model, path) or snn-train.")
    if obj.get("format_version") != FORMAT_VERSION:
        raise InputFileError(f"{path}: snnc checkpoint format version {obj.get('format_version')} is not "
                             f"supported (this snnc reads version {FORMAT_VERSION}).")
    spec, state = obj.get("spec"), obj.get("state_dict")
    if not isinstance(spec, dict) or not isinstance(state, dict):
        raise InputFileError(f"{path}: snnc checkpoint without a valid 'spec' and 'state_dict'.")
    return Checkpoint(path=path, spec=spec, state_dict=state, metadata=dict(obj.get("metadata") or {}))


def _load_pickled(path: Path) -> Checkpoint:
    """Trusted path: unpickle a whole module (runs code from the file, by the user's choice)."""
    try:
        obj = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:  # unpickling can raise anything the file's code raises
        raise InputFileError(f"{path}: could not be unpickled even with --allow-pickle-code-execution "
                             f"({type(e).__name__}: {e}).") from None
    if isinstance(obj, nn.Module):
        return Checkpoint(path=path, module=obj, metadata={"source": "pickled module"})
    return _from_payload(path, obj)
