"""What ``snn-compile`` accepts, recognised by content: snnc checkpoints, NIR graphs, lava-dl netx
HDF5, snnc's ONNX and snnc's own ``graph.h5``. Each becomes a graph (float, or already fixed point)
plus what is known about how to feed it; the rest of the pipeline does not care where it came from.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from snnc.compiler.ir import Graph
from snnc.errors import InputFileError

HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
ZIP_MAGIC = b"PK\x03\x04"
SUPPORTED = ("an snnc checkpoint (.pt, snn-train / snnc.save)", "a NIR graph (.nir, nir.write)",
             "a lava-dl netx HDF5 file (.net, SLAYER export_hdf5 or snnc)", "snnc's ONNX (graph.onnx)",
             "snnc's graph.h5")


@dataclass
class Source:
    """A model file read into a graph. ``model`` is snnc's PyTorch model when the file holds one
    (it then joins verification as the 'torch' engine); ``metadata`` feeds the input spec."""

    path: Path
    kind: str                       # checkpoint | nir | netx | onnx | graph
    graph: Graph
    model: Any = None
    metadata: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)   # how it was read (conventions, warnings by node)


def sniff(path: Path) -> str:
    """The kind of model file ``path`` is, from its bytes (suffixes lie)."""
    if not path.exists():
        raise InputFileError(f"{path}: no such file. snn-compile takes {', '.join(SUPPORTED)}.")
    if path.is_dir():
        if (path / "manifest.json").is_file():
            raise InputFileError(f"{path}: is an snnc artifact directory (snn-compile's output), not a model file: "
                                 f"run it with snn-run {path}, or compile the model file it was made from.")
        raise InputFileError(f"{path}: is a directory, not a model file. snn-compile takes {', '.join(SUPPORTED)}.")
    from snnc.models.checkpoint import sniff_content

    try:
        content = sniff_content(path)
    except OSError as e:
        raise InputFileError(f"{path}: cannot be read ({e.strerror or type(e).__name__}).") from None
    if content.kind == "hdf5":
        from snnc.compiler.isolation import isolated

        kind, found = isolated(path, "HDF5", _sniff_hdf5, path)   # libhdf5 can loop on a damaged file
        if kind:
            return kind
        raise InputFileError(f"{path}: an HDF5 file with groups {found}, neither NIR (/node), netx (/layer) nor "
                             f"snnc's graph.h5. snn-compile takes {', '.join(SUPPORTED)}.")
    if content.kind == "onnx" or (content.kind == "binary" and path.suffix.lower() == ".onnx"):
        return "onnx"   # a damaged .onnx file: the ONNX reader says what is wrong with it
    if content.kind in ("torch", "pickle", "damaged"):
        return "checkpoint"   # torch zip or legacy pickle; the checkpoint loader explains anything else
    if path.suffix.lower() == ".onnx":
        raise InputFileError(f"{path}: not an ONNX model despite its name: {content.clause}. snn-compile takes "
                             f"{', '.join(SUPPORTED)}.")
    raise InputFileError(f"{path}: not a PyTorch model file or any other model file snnc reads: {content.clause}. "
                         f"snn-compile takes {', '.join(SUPPORTED)}.")


def _sniff_hdf5(path: Path) -> tuple[str | None, list[str]]:
    """(kind, None) of an HDF5 model file, or (None, its first groups)."""
    from snnc.compiler.graph_file import FORMAT, damaged_hdf5, open_hdf5

    with damaged_hdf5(path), open_hdf5(path) as h:
        if "layer" in h:
            return "netx", []
        if "node" in h:
            return "nir", []
        fmt = h.attrs.get("format")
        if isinstance(fmt, bytes):
            fmt = fmt.decode(errors="replace")
        if isinstance(fmt, str) and fmt == FORMAT:
            return "graph", []
        return None, sorted(h.keys())[:6]


def _check_input_shape(src: Source, input_shape: tuple[int, ...]) -> None:
    """``--input-shape`` beside a file that carries its input shape: it must say the same."""
    from snnc.errors import SnncError

    have = tuple(src.graph.input.shape)
    if tuple(input_shape) != have:
        raise SnncError(f"--input-shape {','.join(map(str, input_shape))}: {src.path} carries its input shape "
                        f"{have} ({src.graph.input.size} inputs); leave --input-shape out (it is for netx files "
                        f"without an input layer and NIR files whose Input node has no shape).")


def load_source(path: str | Path, *, allow_pickle_code_execution: bool = False,
                nir_convention: str = "auto", nir_dt: float | None = None,
                input_shape: tuple[int, ...] | None = None) -> Source:
    """Read any supported model file; errors name the file and what to do. ``input_shape`` is the
    input of a netx file without an input layer; any other file must carry the same shape."""
    path = Path(path)
    kind = sniff(path)
    if input_shape is not None and kind not in ("netx", "nir"):
        src = load_source(path, allow_pickle_code_execution=allow_pickle_code_execution,
                          nir_convention=nir_convention, nir_dt=nir_dt)
        _check_input_shape(src, input_shape)
        return src
    if kind == "checkpoint":
        from snnc.compiler.frontend import graph_from_checkpoint
        from snnc.models.checkpoint import load

        ckpt = load(path, allow_pickle_code_execution=allow_pickle_code_execution)
        graph, model = graph_from_checkpoint(ckpt)
        return Source(path, kind, graph, model, dict(ckpt.metadata))
    if kind == "nir":
        from snnc.compiler.nir_io import read_nir

        imp = read_nir(path, convention=nir_convention, dt=nir_dt, input_shape=input_shape)
        src = Source(path, kind, imp.graph, None, {}, [f"NIR read with the '{imp.convention}' convention, dt = "
                                                        f"{imp.dt:g}" if imp.dt else imp.convention, *imp.warnings])
        if input_shape is not None:
            _check_input_shape(src, input_shape)
        return src
    if kind == "netx":
        from snnc.compiler.netx_hdf5 import read_netx_file

        imp = read_netx_file(path, input_shape)      # notes: what was read (layers, writer, Ts/tSample), then remarks
        meta: dict[str, Any] = {"netx": {"writer": imp.writer, "Ts": imp.ts, "tSample": imp.tsample}}
        if imp.tsample:
            meta["timesteps"] = imp.tsample
        return Source(path, kind, imp.graph, None, meta, list(imp.notes))
    if kind == "onnx":
        from snnc.compiler.onnx_io import read_onnx

        graph = read_onnx(path)
        return Source(path, kind, graph, None, {})
    from snnc.compiler.graph_file import read_graph

    return Source(path, kind, read_graph(path), None, {})
