"""The snnc checkpoint: architecture spec + state dict + metadata, readable without unpickling code.

``torch.load(path, weights_only=True)`` reads it: only tensors and plain containers inside.
A file holding a whole pickled module can be read only with ``allow_pickle_code_execution=True``
(CLI ``--allow-pickle-code-execution``), because unpickling runs arbitrary code from the file.
"""
from __future__ import annotations

import json
import os
import pickle
import re
import tempfile
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from snnc.errors import InputFileError, SnncError
from snnc.models.network import SpikingNet

FORMAT = "snnc.checkpoint"
FORMAT_VERSION = 1

# ----------------------------------------------------------------------------- what a file holds, by content
HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
ZIP_MAGIC = b"PK\x03\x04"
NPY_MAGIC = b"\x93NUMPY"
#: torch.save's pre-zip format starts with its magic number pickled at protocol 2 (torch/serialization.py)
TORCH_LEGACY_MAGIC = b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19"
#: protobuf keys a serialized onnx.ModelProto may have after ir_version (field 1): fields 2-8, 14, 15, 20
_ONNX_KEYS = frozenset({0x12, 0x1A, 0x22, 0x28, 0x32, 0x3A, 0x42, 0x72, 0x7A, 0xA2})
_HEAD = 4096
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_PYTHON = re.compile(r"^(import [A-Za-z_]|from [\w.]+ import |def \w+\(|class \w+[(:]|if __name__ ==)", re.M)


@dataclass(frozen=True)
class Content:
    """What a file's bytes are: ``kind`` is torch (a torch.save zip or legacy file), pickle (a Python
    pickle torch did not write), damaged (a zip cut short), zip, hdf5, onnx, npy, empty, text, json,
    python or binary; ``clause`` says it to a user ("it looks like text (first line: 'hello')")."""

    kind: str
    clause: str


def sniff_content(path: Path) -> Content:
    """The kind of ``path`` from its first bytes (suffixes lie); cheap: reads at most 4 KiB, and a zip's
    directory. Raises OSError if the file cannot be read."""
    with open(path, "rb") as f:
        head = f.read(_HEAD)
        size = os.fstat(f.fileno()).st_size
    if not head:
        return Content("empty", "it is empty (0 bytes)")
    if head.startswith(ZIP_MAGIC):
        return _zip_content(path)
    if head.startswith(HDF5_MAGIC):
        return Content("hdf5", "it is an HDF5 file")
    if head.startswith(NPY_MAGIC):
        return Content("npy", "it is a NumPy array file (np.save)")
    if head.startswith(TORCH_LEGACY_MAGIC):
        return Content("torch", "it is a PyTorch file (torch.save, pre-zip format)")
    if head[0] == 0x80 and len(head) > 1 and 2 <= head[1] <= 5:
        return Content("pickle", f"it is a Python pickle (protocol {head[1]}) that torch.save did not write")
    if looks_onnx(head):
        return Content("onnx", "it is an ONNX model (protobuf)")
    return _text_or_binary(head, size)


def looks_onnx(head: bytes) -> bool:
    """A serialized onnx.ModelProto: ir_version (field 1, a small varint) first, then another ModelProto
    field; text, pickles and the other formats never start so."""
    return len(head) > 2 and head[0] == 0x08 and 1 <= head[1] <= 0x7F and head[2] in _ONNX_KEYS


def _zip_content(path: Path) -> Content:
    try:
        with zipfile.ZipFile(path) as z:
            names = z.namelist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError):
        return Content("damaged", "it starts like a zip archive (as torch.save writes) but its zip directory is "
                                  "missing or damaged: the file was cut short or corrupted")
    if any(n == "data.pkl" or n.endswith("/data.pkl") for n in names):
        return Content("torch", "it is a PyTorch file (torch.save)")
    shown = ", ".join(repr(n[:60]) for n in names[:4]) + (f" and {len(names) - 4} more" if len(names) > 4 else "")
    if names and all(n.endswith(".npy") for n in names):
        return Content("zip", f"it is a NumPy .npz archive (np.savez) holding {shown}")
    return Content("zip", f"it is a zip archive holding {shown or 'nothing'}, not a torch.save file "
                          f"(which holds a data.pkl record)")


def _text_or_binary(head: bytes, size: int) -> Content:
    text = None
    if b"\x00" not in head:
        for cut in range(4):   # the 4 KiB may end inside a UTF-8 character
            try:
                text = head[:len(head) - cut].decode("utf-8")
                break
            except UnicodeDecodeError:
                continue
    if not text or sum(c.isprintable() or c in "\t\n\r\f" for c in text) < 0.95 * len(text):
        first = " ".join(f"{b:02x}" for b in head[:8]) + (" ..." if len(head) > 8 else "")
        return Content("binary", f"it is binary data of unknown kind (first bytes {first})")
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    quoted = f"(first line: {_quote(lines[0])})" if lines else "(only blank lines)"
    if (lines and lines[0].startswith("#!") and "python" in lines[0]) or _PYTHON.search(text):
        return Content("python", f"it looks like Python source {quoted}")
    if lines and lines[0][:1] in "{[":
        try:
            if size <= _HEAD:
                json.loads(text)
            return Content("json", f"it looks like JSON text {quoted}")
        except ValueError:
            pass
    return Content("text", f"it looks like text {quoted}")


def _quote(line: str, limit: int = 60) -> str:
    """``line`` quoted, cut at a word boundary (marked '...') if it is long."""
    if len(line) > limit:
        cut = line[:limit].rsplit(" ", 1)[0] if " " in line[:limit] else line[:limit]
        line = cut.rstrip() + " ..."
    return repr(line)


def torch_reason(text: str, limit: int = 200) -> str:
    """A library message as one clean clause: terminal escapes removed, whitespace collapsed, cut at the
    end of a sentence or word (marked '...') rather than mid-word."""
    text = " ".join(_ANSI.sub("", text).split())
    if len(text) <= limit:
        return text
    cut = text[:limit]
    end = max(cut.rfind(". "), cut.rfind("; "))
    if end > limit // 2:
        return cut[:end + 1]
    return cut.rsplit(" ", 1)[0].rstrip(",;:") + " ..."


def pickled_class(error: Exception) -> str | None:
    """The class or function torch's weights-only reader refused ("Unsupported global: GLOBAL x.y.Z")."""
    m = re.search(r"GLOBAL ([A-Za-z_][\w.]*)", _ANSI.sub("", str(error)))
    return m.group(1) if m else None


def _weights_only_why(error: Exception) -> str:
    """The part of torch's weights-only refusal that says what it met (not its generic advice)."""
    text = _ANSI.sub("", str(error))
    m = re.search(r"WeightsUnpickler error:\s*(.*?)(?:\n\s*\n|$)", text, re.S)
    return torch_reason(m.group(1) if m else text, 160)


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
        _check_delays(self.path, model)
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


def _check_delays(path: Path, model: nn.Module) -> None:
    """Synaptic delays read from a state dict are whole steps in [0, MAX_DELAY] (the buffer is uint8, so
    a file can still hold 63..255)."""
    from snnc.models.neurons import MAX_DELAY, CubaDense

    for name, module in model.named_modules():
        d = module.delay if isinstance(module, CubaDense) else None
        if d is not None and d.numel() and int(d.max()) > MAX_DELAY:
            raise InputFileError(f"{path}: layer '{name}' has synaptic delays up to {int(d.max())} steps; snnc and "
                                 f"Lava hold 0..{MAX_DELAY}. The file is damaged or was edited by hand.")


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
        what = ("an snnc artifact directory (snn-compile's output; run it with snn-run)"
                if (path / "manifest.json").is_file() else "a directory")
        raise InputFileError(f"{path}: is {what}, not a model file. Pass the path of a model saved by "
                             f"snn-train or snnc.save(model, path).")
    try:
        content = sniff_content(path)
    except OSError as e:
        raise InputFileError(f"{path}: cannot be read ({e.strerror or type(e).__name__}).") from None
    if content.kind == "damaged":
        raise InputFileError(f"{path}: {content.clause}. Copy it again or re-save the model (snn-train, "
                             f"snnc.save(model, path)).")
    if content.kind not in ("torch", "pickle"):
        other = (" (snn-compile reads NIR, lava-dl netx, snnc's ONNX and graph.h5 files too)"
                 if content.kind in ("hdf5", "onnx") else "")
        raise InputFileError(f"{path}: not a PyTorch model file: {content.clause}. Expected an snnc checkpoint, "
                             f"written by snn-train or snnc.save(model, path){other}.")
    try:
        with warnings.catch_warnings():   # torch warns on stderr about pickle protocols it did not write
            warnings.simplefilter("ignore")
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        cls = pickled_class(e)
        if cls is None and content.kind == "pickle":
            raise InputFileError(
                f"{path}: not a PyTorch model file: {content.clause}, and torch's safe reader cannot parse it "
                f"({_weights_only_why(e)}). snnc reads checkpoints written by snn-train or "
                f"snnc.save(model, path).") from None
        if not allow_pickle_code_execution:
            raise InputFileError(_code_refusal(path, cls, e)) from None
        return _load_pickled(path)
    except Exception as e:  # the weights-only parser runs no file code: any error means a malformed file
        why = torch_reason(str(e), 160) or "unreadable"
        if content.kind == "pickle":
            raise InputFileError(f"{path}: not a PyTorch model file: {content.clause} ({type(e).__name__}: "
                                 f"{why}). snnc reads checkpoints written by snn-train or "
                                 f"snnc.save(model, path).") from None
        raise InputFileError(f"{path}: a damaged PyTorch file: {content.clause}, but torch cannot read it "
                             f"({type(e).__name__}: {why}). Copy it again or re-save the model (snn-train, "
                             f"snnc.save(model, path)).") from None
    return _from_payload(path, obj)


def _code_refusal(path: Path, cls: str | None, error: Exception) -> str:
    """Why a real pickle with Python objects in it is refused, and what the user can do."""
    risk = ("Loading it would execute code stored in the file, so snnc refuses. If it is an snnc model (a "
            "SpikingNet, or an nn.Sequential of snnc.models layers) you trust, pass --allow-pickle-code-execution "
            "(Python: allow_pickle_code_execution=True)")
    resave = "; better, re-save it with snnc.save(model, path)."
    if cls is None:
        return (f"{path}: contains pickled Python objects beyond tensors and plain data (torch's safe reader: "
                f"{_weights_only_why(error)}). {risk}{resave}")
    if cls.startswith("snnc."):
        return f"{path}: holds a pickled {cls} (a whole Python object, not an snnc checkpoint). {risk}{resave}"
    return (f"{path}: holds a pickled {cls} (a whole Python object, not an snnc checkpoint). {risk}; a plain "
            f"torch.nn model must be rebuilt from snnc.models layers and saved with snnc.save(model, path) "
            f"(docs/your-own-model.md).")


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
    from snnc.models.datasets import DATA_FILE_DATASET, DATASETS, LAYOUTS, MAX_TIMESTEPS

    if not isinstance(metadata, dict) or not all(isinstance(k, str) for k in metadata):
        return f"a {type(metadata).__name__}, not a mapping with string keys"
    t = metadata.get("timesteps")
    if t is not None and (isinstance(t, bool) or not isinstance(t, int) or not 1 <= t <= MAX_TIMESTEPS):
        return f"'timesteps' must be an integer in [1, {MAX_TIMESTEPS}], got {str(t)[:40]}"
    seed = metadata.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        return f"'seed' must be an integer, got {str(seed)[:40]}"
    dataset = metadata.get("dataset")
    if dataset is not None and (not isinstance(dataset, str) or dataset not in (*DATASETS, DATA_FILE_DATASET)):
        return f"'dataset' {str(dataset)[:60]!r} is not one of {', '.join(sorted(DATASETS))} or '{DATA_FILE_DATASET}'"
    if dataset == DATA_FILE_DATASET and not isinstance(metadata.get("data_file"), str):
        return f"'dataset' '{DATA_FILE_DATASET}' needs 'data_file', the data file's path"
    if metadata.get("data_layout") is not None and metadata["data_layout"] not in LAYOUTS:
        return f"'data_layout' must be one of {', '.join(LAYOUTS)}, got {str(metadata['data_layout'])[:40]}"
    digest = metadata.get("data_sha256")
    if digest is not None and not (isinstance(digest, str) and len(digest) == 64
                                   and all(c in "0123456789abcdef" for c in digest)):
        return "'data_sha256' must be 64 hex digits"
    delays = metadata.get("delays")
    if delays is not None and (isinstance(delays, bool) or not isinstance(delays, int) or not 0 <= delays <= 62):
        return f"'delays' (the longest synaptic delay snn-train drew) must be an integer in [0, 62], got {str(delays)[:40]}"
    for key in ("encoding", "data_dir", "data_file"):
        if metadata.get(key) is not None and not isinstance(metadata[key], str):
            return f"'{key}' must be a string, got {str(metadata[key])[:40]}"
    return None


def _load_pickled(path: Path) -> Checkpoint:
    """Trusted path: unpickle a whole module (runs code from the file, by the user's choice)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            obj = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:  # unpickling can raise anything the file's code raises
        raise InputFileError(f"{path}: could not be unpickled even with --allow-pickle-code-execution "
                             f"({type(e).__name__}: {torch_reason(str(e), 160) or 'no message'}).") from None
    if isinstance(obj, nn.Module):
        return Checkpoint(path=path, module=obj, metadata={"source": "pickled module"})
    return _from_payload(path, obj)
