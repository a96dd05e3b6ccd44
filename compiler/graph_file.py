"""``graph.h5``: the intermediate graph itself, any node and edge, as the artifact's source of truth.

netx HDF5 (``network.net``) can only hold chains of binary-input layers; this file holds every graph
the compiler makes (NeuNorm's auxiliary populations, graded input, readouts, residual blocks) and reads back to an
equal graph. Layout::

    attrs: format = "snnc.graph", format_version, meta (JSON)
    /nodes/<k>   attrs: kind (class name), name, scalar fields; datasets: array fields
    /edges       (E, 2) UTF-8 strings: source, destination
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from snnc.compiler.ir import Conv, CubaLIF, Dense, Graph, Input, Output, QConv, QCubaLIF, QDense
from snnc.errors import GraphError, InputFileError
from snnc.models.quant import LOIHI_FIXED_POINT

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
    kind = str(g.attrs.get("kind", ""))
    if kind not in NODE_KINDS:
        raise InputFileError(f"{where}: unknown node kind '{kind}' (known: {', '.join(NODE_KINDS)})")
    cls = NODE_KINDS[kind]
    kwargs: dict[str, Any] = {}
    for fld in dataclasses.fields(cls):
        name = fld.name
        if name in _DERIVED:
            continue
        if name in g:
            kwargs[name] = np.asarray(g[name][()])
        elif f"{name}.none" in g.attrs:
            kwargs[name] = None
        elif name in g.attrs:
            value = g.attrs[name]
            if name == "fmt":
                if str(value) not in FORMATS:
                    raise InputFileError(f"{where}: unknown fixed-point format '{value}'")
                value = FORMATS[str(value)]
            elif name in _TUPLES:
                value = tuple(int(v) for v in np.asarray(value).reshape(-1))
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
        raise InputFileError(f"{path}: not a readable HDF5 file ({e}).") from None


def read_graph(path: Path) -> Graph:
    """Read a ``graph.h5`` back into an equal, checked graph."""
    with open_hdf5(path) as f:
        if f.attrs.get("format") != FORMAT or int(f.attrs.get("format_version", -1)) != FORMAT_VERSION:
            raise InputFileError(f"{path}: not an {FORMAT} v{FORMAT_VERSION} file; recompile with this snnc.")
        try:
            meta = json.loads(str(f.attrs.get("meta", "{}")))
            nodes = [_node(f["nodes"][k], f"{path} node {k}") for k in sorted(f["nodes"].keys(), key=int)]
            edges = [(_text(a), _text(b)) for a, b in np.asarray(f["edges"][()]).reshape(-1, 2)]
        except (KeyError, ValueError, json.JSONDecodeError) as e:
            raise InputFileError(f"{path}: damaged graph file ({type(e).__name__}: {e}).") from None
    try:
        return Graph.build(nodes, edges, meta)
    except GraphError as e:
        raise InputFileError(f"{path}: the stored graph is invalid: {e}") from None


def _text(x: Any) -> str:
    return x.decode() if isinstance(x, bytes) else str(x)
