"""The artifact directory: written complete into a temporary sibling, then renamed into place.

Contents: ``graph.h5`` (the fixed-point graph, what every engine runs), ``graph.nir`` and
``graph.onnx`` (the same graph for other tools, each reading back to it exactly), ``network.net`` (the same
network as lava-dl netx HDF5, when netx can express it), ``manifest.json`` (versions, target, input
spec, readout, discrete semantics, file hashes), ``report.json`` (activity, energy, latency,
verification).
"""
from __future__ import annotations

import hashlib
import os
import json
import re
import shutil
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any, Callable, Iterator

import snnc
from snnc.compiler.ir import CUBA_SEMANTICS, Graph
from snnc.compiler.graph_file import read_graph
from snnc.errors import InputFileError
from snnc.models.datasets import sample_size_problem

FORMAT = "snnc.artifact"
FORMAT_VERSION = 2
GRAPH_FILE = "graph.h5"
NETWORK_FILE = "network.net"
NIR_FILE = "graph.nir"
ONNX_FILE = "graph.onnx"
MANIFEST_FILE = "manifest.json"
REPORT_FILE = "report.json"
HTML_REPORT_FILE = "report.html"


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def versions() -> dict[str, str | None]:
    """Versions of the stack that produced an artifact (read from metadata, nothing imported)."""
    out: dict[str, str | None] = {"snnc": snnc.__version__}
    for dist in ("torch", "numpy", "lava-nc", "lava-dl", "h5py"):
        try:
            out[dist] = importlib_metadata.version(dist)
        except importlib_metadata.PackageNotFoundError:
            out[dist] = None
    return out


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_json(path: Path, obj: Any) -> None:
    path.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n")


@contextmanager
def staged_directory(out: Path, on_error: Callable[[], None] | None = None) -> Iterator[Path]:
    """Yield a temporary directory beside ``out``; on success it replaces ``out``, on error it vanishes
    (after ``on_error()``: e.g. stopping a helper process that writes into it).

    An existing ``out`` is replaced only if it is an snnc artifact (has a manifest) or empty.
    """
    out = out.resolve()
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / MANIFEST_FILE).exists())):
        raise InputFileError(f"{out}: exists and is not an snnc artifact directory; refusing to overwrite it. "
                             f"Choose another --out or remove it.")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent))
    tmp.chmod(0o777 & ~_umask())  # mkdtemp makes 0700; an artifact is as readable as any new directory
    try:
        yield tmp
        old = None
        if out.exists():
            old = out.with_name(f".{out.name}.old-{tmp.name}")
            out.rename(old)
        tmp.rename(out)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        if tmp.exists():
            if on_error is not None:
                on_error()
            shutil.rmtree(tmp, ignore_errors=True)


def manifest(graph: Graph, *, target: str, input_spec: dict[str, Any], files: dict[str, str],
             source: dict[str, Any], netx: str) -> dict[str, Any]:
    """The manifest: what this artifact is, how to feed it, what it means, and how to check it."""
    return {"format": FORMAT, "format_version": FORMAT_VERSION, "target": target, "versions": versions(),
            "source": source, "input": input_spec, "semantics": dict(CUBA_SEMANTICS), "files": files,
            "readout": graph.meta.get("readout"), "netx": netx,
            "layers": [{"name": p.name, "neurons": p.neuron.size, "du": p.neuron.du, "dv": p.neuron.dv,  # type: ignore[union-attr]
                        "vth": p.neuron.vth, "inputs": [syn.name for syn, _ in p.inputs],  # type: ignore[union-attr]
                        "recurrent": sorted(p.recurrent),
                        "weight_scale": graph.meta.get("weight_scales", {}).get(p.name)}
                       for p in graph.populations()]}


@dataclass(frozen=True)
class Artifact:
    path: Path
    graph: Graph
    manifest: dict[str, Any]

    @property
    def timesteps(self) -> int:
        return int(self.manifest["input"]["timesteps"])

    def report(self) -> dict[str, Any]:
        """report.json (not hashed: snn-report rewrites it), checked as far as snn-report reads it."""
        p = self.path / REPORT_FILE
        if not p.exists():
            return {}
        try:
            rep = json.loads(p.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise InputFileError(f"{p}: not a readable JSON report ({type(e).__name__}: {e}); delete it and run "
                                 f"snn-report again, or recompile.") from None
        if not isinstance(rep, dict):
            raise InputFileError(f"{p}: the report is a JSON {type(rep).__name__}, not an object; delete it and "
                                 f"run snn-report again, or recompile.")
        energy, activity = rep.get("energy") or {}, rep.get("activity") or {}
        samples = activity.get("samples") if isinstance(activity, dict) else None
        if (not isinstance(energy, dict) or not isinstance(activity, dict)
                or any(k in energy and not isinstance(energy[k], str) for k in ("model", "file"))
                or samples is not None and (not _is_int(samples) or not 1 <= samples <= MAX_REPORT_SAMPLES)):
            raise InputFileError(f"{p}: damaged report ('energy' must say which cost model priced it, "
                                 f"'activity.samples' must be a count); delete it and run snn-report again.")
        return rep


#: The files a manifest may list (with their sha256): nothing else is ever opened through it.
HASHED_FILES = (GRAPH_FILE, NIR_FILE, ONNX_FILE, NETWORK_FILE)
#: Input codes sample_inputs knows (snnc.inputs.input_spec writes them).
ENCODINGS = ("rate", "signed", "analog", "events")
MAX_REPORT_SAMPLES = 10**7
_SHA256 = re.compile(r"[0-9a-f]{64}")


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _check_manifest(man: Any, mpath: Path) -> None:
    """Refuse a manifest whose fields snn-run / snn-report read have the wrong type or an absurd value,
    or whose ``files`` name anything but the artifact's own files (no '../x', no '/etc/passwd')."""
    from snnc.compiler.targets import TARGETS
    from snnc.models.datasets import DATA_FILE_DATASET, DATASETS, FILE_SPLITS, LAYOUTS, MAX_TIMESTEPS

    def bad(what: str) -> InputFileError:
        return InputFileError(f"{mpath}: {what}. The manifest is damaged or was edited by hand; recompile.")

    if not isinstance(man, dict):
        raise bad(f"the manifest is a JSON {type(man).__name__}, not an object")
    if man.get("format") != FORMAT or man.get("format_version") != FORMAT_VERSION:
        raise InputFileError(f"{mpath}: format {str(man.get('format'))[:80]} v{str(man.get('format_version'))[:20]} "
                             f"is not {FORMAT} v{FORMAT_VERSION}; recompile with this snnc.")
    files = man.get("files")
    if not isinstance(files, dict) or GRAPH_FILE not in files:
        raise bad(f"'files' must map the artifact's files (at least {GRAPH_FILE}) to their sha256")
    for name, digest in files.items():
        if name not in HASHED_FILES:
            raise bad(f"'files' names '{str(name)[:100]}', which is not an artifact file "
                      f"({', '.join(HASHED_FILES)})")
        if not isinstance(digest, str) or not _SHA256.fullmatch(digest):
            raise bad(f"the sha256 of {name} is not 64 hex digits")
    target = man.get("target", "loihi")
    if not isinstance(target, str) or target not in TARGETS:
        raise bad(f"target '{str(target)[:80]}' is not one of {', '.join(sorted(TARGETS))}")
    source = man.get("source", {})
    if not isinstance(source, dict) or not isinstance(source.get("path", ""), str):
        raise bad("'source' must be an object with the model's path")
    spec = man.get("input")
    if not isinstance(spec, dict):
        raise bad("'input' (how to feed the network) is missing or not an object")
    t = spec.get("timesteps")
    if not _is_int(t) or not 1 <= t <= MAX_TIMESTEPS:
        raise bad(f"input.timesteps must be an integer in [1, {MAX_TIMESTEPS}], got {str(t)[:40]}")
    code = spec.get("encoding", {})
    if not isinstance(code, dict) or code.get("kind", "rate") not in ENCODINGS:
        raise bad(f"input.encoding must be an object whose kind is one of {', '.join(ENCODINGS)}")
    dataset = spec.get("dataset")
    if dataset is not None and (not isinstance(dataset, str) or dataset not in (*DATASETS, DATA_FILE_DATASET)):
        raise bad(f"input.dataset '{str(dataset)[:80]}' is not one of {', '.join(sorted(DATASETS))} or "
                  f"'{DATA_FILE_DATASET}'")
    if (dataset == DATA_FILE_DATASET and not isinstance(spec.get("data_file"), str)
            or spec.get("data_split", "test") not in FILE_SPLITS or spec.get("data_layout", "static") not in LAYOUTS
            or spec.get("data_sha256") is not None and not _SHA256.fullmatch(str(spec["data_sha256"]))):
        raise bad(f"input.dataset '{DATA_FILE_DATASET}' needs input.data_file (a path); input.data_split must be one "
                  f"of {', '.join(FILE_SPLITS)}, input.data_layout one of {', '.join(LAYOUTS)}, input.data_sha256 "
                  f"64 hex digits")
    if not _is_int(spec.get("split_seed", 0)) or not isinstance(spec.get("data_dir", ""), str):
        raise bad("input.split_seed must be an integer and input.data_dir a path")
    shape = spec.get("shape")
    if shape is not None and (not isinstance(shape, list) or not all(_is_int(d) and d >= 1 for d in shape)):
        raise bad("input.shape must be a list of positive integers")


def _one_line(text: str) -> str:
    return " ".join(text.split())[:200]


#: what snn-compile reads (compiler/sources.py), by the kind sniff_content finds
_MODEL_KINDS = {"torch": "a PyTorch model file", "pickle": "a Python pickle", "onnx": "an ONNX model file",
                "hdf5": "an HDF5 file"}


def not_an_artifact(path: Path) -> str:
    """Why ``path`` is not an artifact directory, and what to pass instead (snn-run and snn-report)."""
    take = ("snn-run and snn-report take the directory snn-compile writes (--out; by default the model's name "
            "with .loihi)")
    if not path.exists():
        return f"{path}: no such artifact directory. {take}."
    if path.is_file():
        if path.name in (MANIFEST_FILE, *HASHED_FILES, REPORT_FILE, HTML_REPORT_FILE) and \
                (path.parent / MANIFEST_FILE).is_file():
            return f"{path}: is a file inside an artifact; pass the artifact directory {path.parent}."
        from snnc.models.checkpoint import sniff_content

        try:
            content = sniff_content(path)
        except OSError as e:
            return f"{path}: cannot be read ({e.strerror or type(e).__name__}). {take}."
        model = _MODEL_KINDS.get(content.kind)
        if model is not None:
            out = path.with_suffix(".loihi")
            maybe = "If it is a model (NIR, netx or snnc's graph.h5), compile" if content.kind == "hdf5" else "Compile"
            return (f"{path}: is {model}, not an artifact directory. {maybe} it first: snn-compile {path} --target "
                    f"loihi writes {out}, then pass {out} to snn-run or snn-report.")
        return f"{path}: is a file, not an snnc artifact directory: {content.clause}. {take}."
    if not path.is_dir():
        return f"{path}: is not a directory. {take}."
    try:
        entries = sorted(p.name for p in path.iterdir())
    except OSError as e:
        return f"{path}: cannot be read ({e.strerror or type(e).__name__}). {take}."
    if not entries:
        return (f"{path}: an empty directory, not an snnc artifact (no {MANIFEST_FILE}). Create one with "
                f"snn-compile MODEL --target loihi --out {path}.")
    if GRAPH_FILE in entries:
        return (f"{path}: has {GRAPH_FILE} but no {MANIFEST_FILE}: an incomplete or damaged artifact. "
                f"Recompile with snn-compile MODEL --target loihi --out {path}.")
    shown = ", ".join(entries[:5]) + (f" and {len(entries) - 5} more" if len(entries) > 5 else "")
    return (f"{path}: not an snnc artifact directory (no {MANIFEST_FILE}; it holds {shown}). {take}; an "
            f"artifact holds {MANIFEST_FILE}, {GRAPH_FILE}, {NIR_FILE}, {ONNX_FILE} and {REPORT_FILE}.")


def load_artifact(path: str | Path) -> Artifact:
    """Read an artifact directory, checking its format, its fields and its file hashes."""
    path = Path(path)
    mpath = path / MANIFEST_FILE
    if not mpath.is_file():
        raise InputFileError(not_an_artifact(path))
    try:
        man = json.loads(mpath.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InputFileError(f"{mpath}: not valid JSON ({type(e).__name__}: {_one_line(str(e))}). The manifest is "
                             f"damaged or was edited by hand; recompile.") from None
    _check_manifest(man, mpath)
    for name, digest in man["files"].items():
        f = path / name
        if not f.is_file() or sha256(f) != digest:
            raise InputFileError(f"{f}: missing or modified since compilation (sha256 mismatch); recompile.")
    graph = read_graph(path / GRAPH_FILE)
    shape = man["input"].get("shape")
    if shape is not None and tuple(shape) != tuple(graph.input.shape):
        raise InputFileError(f"{mpath}: input.shape {shape} is not the graph's input shape "
                             f"{list(graph.input.shape)}; the manifest was edited by hand. Recompile.")
    why = sample_size_problem(man["input"]["timesteps"], graph.input.size)
    if why:
        raise InputFileError(f"{mpath}: input.timesteps: {why}. The manifest was edited by hand; recompile.")
    return Artifact(path, graph, man)
