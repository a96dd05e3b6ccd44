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

from snnc.errors import InputFileError, SnncError
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
            # First on the meta device (no memory): a spec claiming 10**9 neurons must not allocate them
            # before its sizes are compared with the tensors the file really holds.
            with torch.device("meta"):
                skeleton = SpikingNet.from_spec(self.spec)
            self._check_state_dict(skeleton)
            model = SpikingNet.from_spec(self.spec)
        except SnncError as e:
            raise type(e)(f"{self.path}: {e}") from None
        try:
            model.load_state_dict(self.state_dict)
        except RuntimeError as e:
            raise InputFileError(f"{self.path}: the state dict does not match the architecture spec "
                                 f"({str(e).splitlines()[0]}). The file is damaged or was edited by hand.") from None
        return model

    def _check_state_dict(self, skeleton: nn.Module) -> None:
        """Every tensor the spec's model has, with the same shape and kind of dtype, and nothing else."""
        assert self.state_dict is not None
        want = skeleton.state_dict()
        have = self.state_dict
        missing = [k for k in want if k not in have]
        extra = [str(k)[:60] for k in have if k not in want]
        if missing or extra:
            raise InputFileError(
                f"the state dict does not match the architecture spec (missing {missing[:5]}, unexpected "
                f"{extra[:5]}). The file is damaged or was edited by hand.")
        for key, ref in want.items():
            t = have[key]
            if not isinstance(t, torch.Tensor):
                raise InputFileError(f"state dict entry '{key}' is a {type(t).__name__}, not a tensor. The file "
                                     f"is damaged or was edited by hand.")
            if tuple(t.shape) != tuple(ref.shape) or _dtype_kind(t.dtype) != _dtype_kind(ref.dtype):
                raise InputFileError(
                    f"state dict entry '{key}' is {t.dtype} {tuple(t.shape)}, the architecture spec needs "
                    f"{ref.dtype} {tuple(ref.shape)}. The file is damaged or was edited by hand.")


def _dtype_kind(dtype: torch.dtype) -> str:
    """'float', 'complex', 'bool' or 'int': a state dict may hold float64 for float32, never complex for real."""
    if dtype.is_complex:
        return "complex"
    if dtype.is_floating_point:
        return "float"
    return "bool" if dtype == torch.bool else "int"


def atomic_torch_save(obj: Any, path: Path) -> Path:
    """torch.save to a temp file beside ``path``, then rename: a crash never leaves half a file, and
    the bytes depend only on ``obj``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        with open(tmp, "wb") as f:   # a file object: torch names the zip's records "archive/...", not
            torch.save(obj, f)       # after the (random) temp file, so equal objects give equal bytes
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
    metadata = obj.get("metadata") or {}
    problem = _metadata_problem(metadata)
    if problem:
        raise InputFileError(f"{path}: damaged snnc checkpoint metadata: {problem}. The file was edited by hand "
                             f"or damaged; re-save the model with snnc.save(model, path, metadata=...).")
    return Checkpoint(path=path, spec=spec, state_dict=state, metadata=dict(metadata))


def _metadata_problem(metadata: Any) -> str | None:
    """What is wrong with the metadata fields the compiler reads (timesteps, dataset, seed, encoding,
    data_dir), or None. Other keys are the user's and pass as they are."""
    from snnc.models.datasets import DATASETS, MAX_TIMESTEPS

    if not isinstance(metadata, dict) or not all(isinstance(k, str) for k in metadata):
        return f"a {type(metadata).__name__}, not a mapping with string keys"
    t = metadata.get("timesteps")
    if t is not None and (isinstance(t, bool) or not isinstance(t, int) or not 1 <= t <= MAX_TIMESTEPS):
        return f"'timesteps' must be an integer in [1, {MAX_TIMESTEPS}], got {str(t)[:40]}"
    seed = metadata.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        return f"'seed' must be an integer, got {str(seed)[:40]}"
    dataset = metadata.get("dataset")
    if dataset is not None and (not isinstance(dataset, str) or dataset not in DATASETS):
        return f"'dataset' {str(dataset)[:60]!r} is not one of {', '.join(sorted(DATASETS))}"
    for key in ("encoding", "data_dir"):
        if metadata.get(key) is not None and not isinstance(metadata[key], str):
            return f"'{key}' must be a string, got {str(metadata[key])[:40]}"
    return None


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
