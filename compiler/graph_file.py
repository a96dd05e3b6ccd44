"""``graph.h5``: the intermediate graph itself, any node and edge, as the artifact's source of truth.

netx HDF5 (``network.net``) can only hold chains of binary-input layers; this file holds every graph
the compiler makes (NeuNorm's auxiliary populations, graded input, readouts, residual blocks) and reads back to an
equal graph. Layout::

    attrs: format = "snnc.graph", format_version, meta (JSON)
    /nodes/<k>   attrs: kind (class name), name, scalar fields; datasets: array fields
                 (a Dense/QDense's synaptic delays: dataset ``delay``, uint8 (out, in); none: attr ``delay.none``;
                 a file written before delays existed has neither and reads as no delay)
    /edges       (E, 2) UTF-8 strings: source, destination
"""
from __future__ import annotations

import dataclasses
import json
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import h5py
import numpy as np

from snnc.compiler.isolation import isolated
from snnc.compiler.ir import Conv, CubaLIF, Dense, Graph, Input, Output, QConv, QCubaLIF, QDense
from snnc.errors import GraphError, InputFileError
from snnc.models.fixed_point import LOIHI_FIXED_POINT

FORMAT = "snnc.graph"
FORMAT_VERSION = 1
NODE_KINDS = {cls.__name__: cls for cls in (Input, Output, Dense, Conv, CubaLIF, QDense, QConv, QCubaLIF)}
_TUPLES = {"shape", "in_shape", "stride", "padding", "dilation"}
FORMATS = {LOIHI_FIXED_POINT.name: LOIHI_FIXED_POINT}
_DERIVED = {"semantics"}  # fields rebuilt from the code's constants, not stored


def write_graph(graph: Graph, path: Path) -> None:
    """Write every node (its dataclass fields) and edge of ``graph``."""
    with h5py.File(path, "w") as f:
        f.attrs["format"] = FORMAT
        f.attrs["format_version"] = FORMAT_VERSION
        f.attrs["meta"] = json.dumps(dict(graph.meta), sort_keys=True, default=str)
        nodes = f.create_group("nodes")
        for k, node in enumerate(graph.ordered()):
            g = nodes.create_group(str(k))
            g.attrs["kind"] = type(node).__name__
            for fld in dataclasses.fields(node):
                value = getattr(node, fld.name)
                if fld.name in _DERIVED:
                    continue
                if fld.name == "fmt":
                    g.attrs["fmt"] = value.name
                elif isinstance(value, np.ndarray):
                    g.create_dataset(fld.name, data=value)
                elif value is None:
                    g.attrs[f"{fld.name}.none"] = True
                else:
                    g.attrs[fld.name] = list(value) if isinstance(value, tuple) else value
        edges = np.array(graph.edges, dtype=object).reshape(-1, 2)
        f.create_dataset("edges", data=edges.astype("S"), dtype=h5py.string_dtype())


def _node(g: h5py.Group, where: str) -> Any:
    if not isinstance(g, h5py.Group):
        raise InputFileError(f"{where}: a {type(g).__name__}, not a node group")
    kind = _text(g.attrs.get("kind", ""))
    if kind not in NODE_KINDS:
        raise InputFileError(f"{where}: unknown node kind '{kind[:80]}' (known: {', '.join(NODE_KINDS)})")
    cls = NODE_KINDS[kind]
    kwargs: dict[str, Any] = {}
    for fld in dataclasses.fields(cls):
        name = fld.name
        if name in _DERIVED:
            continue
        if name in g:
            kwargs[name] = np.asarray(dataset(g, name, where)[()])
        elif f"{name}.none" in g.attrs:
            kwargs[name] = None
        elif name in g.attrs:
            value = g.attrs[name]
            if name == "fmt":
                if _text(value) not in FORMATS:
                    raise InputFileError(f"{where}: unknown fixed-point format '{_text(value)[:80]}'")
                value = FORMATS[_text(value)]
            elif name in _TUPLES:
                arr = np.asarray(value).reshape(-1)
                if arr.dtype.kind not in "iu":
                    raise InputFileError(f"{where}: '{name}' must be integers, got {arr.dtype} {arr.tolist()[:8]}")
                value = tuple(int(v) for v in arr)
            elif name == "name":
                value = _text(value)
            elif isinstance(value, np.generic):
                value = value.item()
            kwargs[name] = value
        elif fld.default is dataclasses.MISSING and fld.default_factory is dataclasses.MISSING:  # type: ignore[misc]
            raise InputFileError(f"{where}: node of kind {kind} lacks '{name}'")
    try:
        return cls(**kwargs)
    except (TypeError, ValueError, GraphError) as e:
        raise InputFileError(f"{where}: bad {kind} node: {e}") from None


def open_hdf5(path: Path) -> h5py.File:
    """Open an HDF5 file for reading, or say in one line which file is not readable HDF5."""
    try:
        return h5py.File(path, "r")
    except OSError as e:
        raise InputFileError(f"{path}: not a readable HDF5 file ({_first_line(e)}).") from None


def _first_line(e: BaseException) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0][:300]


@contextmanager
def damaged_hdf5(path: Path) -> Iterator[None]:
    """Report a damaged HDF5 file as an InputFileError naming it.

    HDF5 finds damage lazily, on whichever read touches it, and h5py reports it as OSError or
    RuntimeError (HDF5's error stack: bad B-tree or heap signatures, truncated data), or as a KeyError
    whose message starts 'Unable to' when an object's header is damaged. Our readers raise none of
    these themselves; any other KeyError is a bug and propagates.
    """
    try:
        yield
    except (OSError, RuntimeError) as e:
        raise InputFileError(f"{path}: a damaged HDF5 file ({type(e).__name__}: {_first_line(e)}). "
                             f"The file is truncated or corrupted; write it again.") from None
    except KeyError as e:
        if not str(e).strip("'\"").startswith("Unable to"):
            raise
        raise InputFileError(f"{path}: a damaged HDF5 file ({_first_line(e)}). The file is truncated or "
                             f"corrupted; write it again.") from None


def _member(parent: h5py.Group, key: str, where: str, cls: type, what: str) -> Any:
    """``parent[key]``, which must be a ``cls`` (a damaged or edited file may hold the other kind there)."""
    if key not in parent:
        raise InputFileError(f"{where}: missing {what} '{key}'")
    obj = parent[key]
    if not isinstance(obj, cls):
        raise InputFileError(f"{where}: '{key}' is a {type(obj).__name__}, not a {what}")
    return obj


def group(parent: h5py.Group, key: str, where: str) -> h5py.Group:
    """``parent[key]``, which must be a group."""
    return _member(parent, key, where, h5py.Group, "group")


def dataset(parent: h5py.Group, key: str, where: str) -> h5py.Dataset:
    """``parent[key]``, which must be a dataset."""
    return _member(parent, key, where, h5py.Dataset, "dataset")


def read_graph(path: Path) -> Graph:
    """Read a ``graph.h5`` back into an equal, checked graph (in a child process with a deadline:
    libhdf5 can loop forever on a damaged file, see snnc.compiler.isolation)."""
    return isolated(Path(path), "HDF5", _read_graph, Path(path))


def _read_graph(path: Path) -> Graph:
    with damaged_hdf5(path), open_hdf5(path) as f:
        version = f.attrs.get("format_version", -1)
        if (_text(f.attrs.get("format")) != FORMAT or np.asarray(version).shape != ()
                or np.asarray(version).dtype.kind not in "iu" or int(version) != FORMAT_VERSION):
            raise InputFileError(f"{path}: not an {FORMAT} v{FORMAT_VERSION} file; recompile with this snnc.")
        try:
            meta = json.loads(_text(f.attrs.get("meta", "{}")))
            groups = group(f, "nodes", str(path))
            nodes = [_node(groups[k], f"{path} node {k}") for k in sorted(groups.keys(), key=int)]
            edges = [(_text(a), _text(b)) for a, b in np.asarray(dataset(f, "edges", str(path))[()]).reshape(-1, 2)]
        except (ValueError, TypeError, json.JSONDecodeError) as e:   # int() of a node name, a bad edges shape
            raise InputFileError(f"{path}: damaged graph file ({type(e).__name__}: {e}).") from None
    if not isinstance(meta, dict):
        raise InputFileError(f"{path}: damaged graph file (meta is a {type(meta).__name__}, not a JSON object).")
    try:
        return Graph.build(nodes, edges, meta)
    except GraphError as e:
        raise InputFileError(f"{path}: the stored graph is invalid: {e}") from None


def _text(x: Any) -> str:
    """An HDF5 string (bytes, str, or a 1-element array of either) as str; '' for anything else."""
    if isinstance(x, np.ndarray) and x.size == 1 and x.dtype.kind in "SUO":
        x = x.reshape(-1)[0]
    if isinstance(x, bytes):
        return x.decode("utf-8", errors="replace")
    return x if isinstance(x, str) else ""
