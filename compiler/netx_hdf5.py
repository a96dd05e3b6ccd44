"""lava-dl netx HDF5 (``network.net``): write the fixed-point graph, and read such files back.

Layout (SP/lava/lib/dl/netx/README.md:16-56, read by netx/utils.py NetDict and hdf5.py:566-689)::

    /layer/0/type = b'input', shape = [n_in]                 (no neuron: netx only takes the shape)
    /layer/i/type = b'dense', shape = [n], inFeatures, outFeatures, weight (n, n_in), bias (n,)
    /layer/i/neuron/type = b'CUBA', iDecay (effective du), vDecay, vThMant, refDelay, gradedSpike
    /simulation/Ts, tSample

netx sets Lava's ``du = iDecay - 1`` and ``bias_exp = 6`` (hdf5.py:144-163), which is exactly our
QCubaLIF encoding, and picks ``num_weight_bits``/``weight_exp`` so integer weights round-trip.
"""
from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from snnc.compiler.graph_file import open_hdf5
from snnc.compiler.ir import Graph, Input, Output, QCubaLIF, QDense
from snnc.errors import InputFileError, UnsupportedLayerError


def netx_limitation(graph: Graph) -> str | None:
    """Why netx cannot hold ``graph`` (None if it can): netx networks are chains of binary-spike
    dense layers whose weight exponent netx picks itself."""
    if not graph.is_chain:
        return "netx holds chains of layers only; this graph has populations with several inputs or outputs"
    if graph.input.bits:
        return f"netx has no graded ({graph.input.bits}-bit) input layer"
    for syn, _ in graph.layers():
        if isinstance(syn, QDense) and syn.weight_exp != 0:
            return f"netx cannot carry weight_exp {syn.weight_exp} of '{syn.name}' (netx computes its own)"
    return None


def write_netx(graph: Graph, path: Path, timesteps: int) -> None:
    """Write a fixed-point chain as a netx HDF5 file."""
    with h5py.File(path, "w") as f:
        sim = f.create_group("simulation")
        sim["Ts"] = 1
        sim["tSample"] = int(timesteps)
        layers = f.create_group("layer")
        inp = layers.create_group("0")
        inp["type"] = np.array([b"input"])
        inp["shape"] = np.array(graph.input.shape, dtype=np.int64)
        for i, (syn, neu) in enumerate(graph.layers(), start=1):
            assert isinstance(syn, QDense) and isinstance(neu, QCubaLIF)
            if syn.weight_exp != 0:
                raise UnsupportedLayerError(f"layer '{syn.name}': netx HDF5 cannot carry weight_exp "
                                            f"{syn.weight_exp} (netx computes its own).")
            g = layers.create_group(str(i))
            g["type"] = np.array([b"dense"])
            g["shape"] = np.array([neu.size], dtype=np.int64)
            g["inFeatures"] = syn.in_size
            g["outFeatures"] = syn.out_size
            g["weight"] = syn.weight.astype(np.int32)
            g["bias"] = neu.bias_mant.astype(np.int32)
            n = g.create_group("neuron")
            n["type"] = np.array([b"CUBA"])
            n["iDecay"] = int(neu.du)
            n["vDecay"] = int(neu.dv)
            n["vThMant"] = int(neu.vth)
            n["refDelay"] = 1
            n["gradedSpike"] = False


def _scalar(g: h5py.Group, key: str, where: str) -> int:
    if key not in g:
        raise InputFileError(f"{where}: missing '{key}'")
    return int(np.asarray(g[key][()]).reshape(-1)[0])


def _text(g: h5py.Group, key: str) -> str:
    raw = np.asarray(g[key][()]).reshape(-1)[0]
    return raw.decode() if isinstance(raw, bytes) else str(raw)


def read_netx(path: Path) -> Graph:
    """Read a netx HDF5 file of CUBA dense layers back into a fixed-point graph."""
    with open_hdf5(path) as f:
        if "layer" not in f:
            raise InputFileError(f"{path}: no 'layer' group: not a lava-dl netx network file.")
        groups = f["layer"]
        keys = sorted(groups.keys(), key=int)
        nodes: list = []
        size: int | None = None
        for k in keys:
            g, where = groups[k], f"{path} layer {k}"
            kind = _text(g, "type")
            if kind == "input":
                nodes.append(Input("input", tuple(int(s) for s in np.asarray(g["shape"][()]).reshape(-1))))
                continue
            if kind != "dense":
                raise UnsupportedLayerError(f"{where}: layer type '{kind}' is not supported by this reader "
                                            f"(supported: input, dense with CUBA neurons).")
            w = np.asarray(g["weight"][()])
            if not np.all(w == np.round(w)):
                raise InputFileError(f"{where}: weights are not integers.")
            w = w.astype(np.int64)
            if size is None:
                size = int(w.shape[1])
                if not nodes:
                    nodes.append(Input("input", (size,)))
            if "neuron" not in g or _text(g["neuron"], "type") not in ("CUBA", "LOIHI"):
                raise UnsupportedLayerError(f"{where}: dense layer without CUBA neurons is not supported.")
            n = g["neuron"]
            out = int(w.shape[0])
            bias = (np.broadcast_to(np.asarray(g["bias"][()]).astype(np.int64), (out,)).copy()
                    if "bias" in g else np.zeros(out, dtype=np.int64))
            idx = len([x for x in nodes if isinstance(x, QCubaLIF)]) + 1
            nodes.append(QDense(f"fc{idx}", w, 0))
            nodes.append(QCubaLIF(f"lif{idx}", out, _scalar(n, "iDecay", where), _scalar(n, "vDecay", where),
                                  _scalar(n, "vThMant", where), bias))
        nodes.append(Output("output"))
        tsample = int(np.asarray(f["simulation/tSample"][()]).reshape(-1)[0]) if "simulation/tSample" in f else None
    return Graph.chain(nodes, meta={"source": str(path), "timesteps": tsample})
