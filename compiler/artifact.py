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
import shutil
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any, Iterator

import snnc
from snnc.compiler.ir import CUBA_SEMANTICS, Graph
from snnc.compiler.graph_file import read_graph
from snnc.errors import InputFileError

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
def staged_directory(out: Path) -> Iterator[Path]:
    """Yield a temporary directory beside ``out``; on success it replaces ``out``, on error it vanishes.

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
            shutil.rmtree(tmp, ignore_errors=True)


def manifest(graph: Graph, *, target: str, input_spec: dict[str, Any], files: dict[str, str],
             source: dict[str, Any], netx: str) -> dict[str, Any]:
    """The manifest: what this artifact is, how to feed it, what it means, and how to check it."""
    return {"format": FORMAT, "format_version": FORMAT_VERSION, "target": target, "versions": versions(),
            "source": source, "input": input_spec, "semantics": dict(CUBA_SEMANTICS), "files": files,
            "readout": graph.meta.get("readout"), "netx": netx,
            "layers": [{"name": p.name, "neurons": p.neuron.size, "du": p.neuron.du, "dv": p.neuron.dv,  # type: ignore[union-attr]
                        "vth": p.neuron.vth, "inputs": [syn.name for syn, _ in p.inputs],  # type: ignore[union-attr]
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
        p = self.path / REPORT_FILE
        return json.loads(p.read_text()) if p.exists() else {}


def load_artifact(path: str | Path) -> Artifact:
    """Read an artifact directory, checking its format and file hashes."""
    path = Path(path)
    mpath = path / MANIFEST_FILE
    if not mpath.is_file():
        raise InputFileError(f"{path}: not an snnc artifact directory (no {MANIFEST_FILE}). "
                             f"Create one with snn-compile MODEL --target loihi --out {path}.")
    try:
        man = json.loads(mpath.read_text())
    except json.JSONDecodeError as e:
        raise InputFileError(f"{mpath}: not valid JSON ({e}).") from None
    if man.get("format") != FORMAT or man.get("format_version") != FORMAT_VERSION:
        raise InputFileError(f"{mpath}: format {man.get('format')} v{man.get('format_version')} is not "
                             f"{FORMAT} v{FORMAT_VERSION}; recompile with this snnc.")
    for name, digest in man.get("files", {}).items():
        f = path / name
        if not f.is_file() or sha256(f) != digest:
            raise InputFileError(f"{f}: missing or modified since compilation (sha256 mismatch); recompile.")
    graph = read_graph(path / GRAPH_FILE)
    return Artifact(path, graph, man)
