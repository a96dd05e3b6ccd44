"""A small fuzzing library for snnc's file readers: seed files, mutators and an oracle.

Why: a compiler is fed files from strangers. Every reader must answer a truncated, corrupted or
adversarial file with an ``SnncError`` that names the file (never a library's exception, a hang, a
huge allocation or a half-written artifact). This module makes valid seed files with snnc itself,
mutates them (bytes, and structure: HDF5, ONNX protobuf, checkpoint payload, JSON), and classifies
what a reader does with each mutant (:func:`check_case`).

Used by tests/test_fuzz.py (hypothesis draws the mutator and its seed) and by ``make fuzz``
(``python tests/fuzzing.py --cases N``: a campaign with a summary table). Not a test module.
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import importlib
import json
import math
import os
import random
import re
import resource
import shutil
import signal
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import h5py
import numpy as np

#: What a reader may do with a mutant.
ACCEPTED, CLEAN, FAILURE = "accepted", "clean error", "FAILURE"
#: Wall-clock limit of one case (a reader that takes longer hangs, as far as a user can tell).
TIME_LIMIT_S = 20.0
#: An error message longer than this is not a paragraph (it dumps data from the file).
MAX_MESSAGE = 2000
#: Readers fuzzed, and the seed file each starts from.
KINDS = ("checkpoint", "nir", "onnx", "netx", "graph", "manifest", "cost_model", "compile", "run")
SEED_FILES = {"checkpoint": "model.pt", "nir": "graph.nir", "onnx": "graph.onnx", "netx": "network.net",
              "graph": "graph.h5", "cost_model": "cost.json"}
#: Reads that run in a child process (snnc.compiler.isolation) are stopped after this many seconds, well
#: within TIME_LIMIT_S, so that a file on which libhdf5 loops is reported as a clean error.
os.environ.setdefault("SNNC_READ_DEADLINE_S", "5")
#: Sources compile_model reads (the 'compile' kind mutates one of them, then compiles it).
MODEL_KINDS = ("checkpoint", "nir", "onnx", "netx", "graph")


# ------------------------------------------------------------------------------------------- seeds

def _small_model(conv: bool) -> Any:
    """A small network whose layers spike (weights scaled up as tests/conftest.py's make_model does)."""
    import torch

    from snnc.models.conv import CubaConv, Flatten
    from snnc.models.network import SpikingNet, mlp
    from snnc.models.neurons import CubaDense

    torch.manual_seed(0)
    if conv:
        c1 = CubaConv((1, 6, 6), 2, 3)
        model = SpikingNet([c1, Flatten(c1.out_shape), CubaDense(c1.out_features, 4)])
    else:
        model = mlp(12, 4, hidden=(6,))
    with torch.no_grad():
        for layer in model.layers:
            if hasattr(layer, "weight"):
                layer.weight.mul_(3.0)
            if getattr(layer, "bias", None) is not None:
                layer.bias.uniform_(-0.05, 0.05)
    return model


def make_seeds(where: Path, conv: bool = False) -> dict[str, Path]:
    """Valid seed files made by snnc itself: a checkpoint, and one compile's graph.h5, graph.nir,
    graph.onnx, network.net and artifact directory (key 'artifact'), plus a shipped cost model."""
    from snnc.models.checkpoint import save
    from snnc.pipeline import compile_model

    where.mkdir(parents=True, exist_ok=True)
    ckpt = save(_small_model(conv), where / "model.pt", metadata={"timesteps": 4})
    art = compile_model(ckpt, out=where / "artifact", report_samples=2).out
    seeds = {"checkpoint": ckpt, "artifact": art}
    for kind in ("nir", "onnx", "netx", "graph"):
        seeds[kind] = shutil.copy(art / SEED_FILES[kind], where / SEED_FILES[kind])
    import snnc.hwsim

    shipped = Path(snnc.hwsim.__file__).parent / "cost_models" / "loihi1_davies2018.json"
    seeds["cost_model"] = Path(shutil.copy(shipped, where / "cost.json"))
    import yaml

    seeds["cost_model_yaml"] = where / "cost.yaml"
    seeds["cost_model_yaml"].write_text(yaml.safe_dump(json.loads(shipped.read_text())))
    return {k: Path(v) for k, v in seeds.items()}


# --------------------------------------------------------------------------------- byte mutators

def _span(rng: random.Random, n: int) -> tuple[int, int]:
    """A random [a, b) range of a file of n bytes, short most of the time."""
    a = rng.randrange(max(n, 1))
    length = rng.choice([1, 2, 4, 8, 16, 64, 512, max(1, n // 4)])
    return a, min(n, a + length)


def truncate(data: bytes, rng: random.Random) -> bytes:
    """The file cut at any offset (a download or copy that stopped)."""
    return data[:rng.randrange(len(data) + 1)]


def flip_bits(data: bytes, rng: random.Random) -> bytes:
    """A few bits flipped anywhere (bit rot)."""
    b = bytearray(data)
    for _ in range(rng.choice([1, 2, 8, 32])):
        if b:
            i = rng.randrange(len(b))
            b[i] ^= 1 << rng.randrange(8)
    return bytes(b)


def overwrite_random(data: bytes, rng: random.Random) -> bytes:
    """A range overwritten with random bytes."""
    a, z = _span(rng, len(data))
    return data[:a] + bytes(rng.randrange(256) for _ in range(z - a)) + data[z:]


def overwrite_ff(data: bytes, rng: random.Random) -> bytes:
    """A range overwritten with 0xff (huge lengths and offsets in headers)."""
    a, z = _span(rng, len(data))
    return data[:a] + b"\xff" * (z - a) + data[z:]


def zero_range(data: bytes, rng: random.Random) -> bytes:
    """A range zeroed (a hole in the file)."""
    a, z = _span(rng, len(data))
    return data[:a] + bytes(z - a) + data[z:]


def insert_bytes(data: bytes, rng: random.Random) -> bytes:
    """Random bytes inserted (every later offset is wrong)."""
    a = rng.randrange(len(data) + 1)
    return data[:a] + bytes(rng.randrange(256) for _ in range(rng.choice([1, 3, 16, 100]))) + data[a:]


def delete_range(data: bytes, rng: random.Random) -> bytes:
    """A range deleted."""
    a, z = _span(rng, len(data))
    return data[:a] + data[z:]


def duplicate_range(data: bytes, rng: random.Random) -> bytes:
    """A range repeated in place."""
    a, z = _span(rng, len(data))
    return data[:z] + data[a:z] + data[z:]


BYTE_MUTATORS: dict[str, Callable[[bytes, random.Random], bytes]] = {
    f.__name__: f for f in (truncate, flip_bits, overwrite_random, overwrite_ff, zero_range, insert_bytes,
                            delete_range, duplicate_range)}


# ---------------------------------------------------------------------------- adversarial values

def odd_value(rng: random.Random) -> Any:
    """A value of the wrong type or an absurd magnitude, for any field of any format."""
    return rng.choice([None, True, False, 0, -1, -(2**31), 2**31, 10**9, 2**63 - 1, 10**30, 0.5, -0.0,
                       math.nan, math.inf, -math.inf, 1e308, "", "x", "../../etc/passwd", "/etc/passwd",
                       [], [1, 2], [[1], [2, 3]], {}, {"a": 1}, [None], ["x"] * 3, 10**9 * [0][:0]])


def odd_array(rng: random.Random, like: np.ndarray | None = None) -> np.ndarray:
    """An array with the wrong dtype, shape or values (NaN, inf, huge, negative)."""
    shape = like.shape if like is not None and like.ndim else (3,)
    choices: list[Callable[[], np.ndarray]] = [
        lambda: np.full(shape, np.nan), lambda: np.full(shape, np.inf), lambda: np.full(shape, -np.inf),
        lambda: np.full(shape, 1e300), lambda: np.full(shape, -(2**62), dtype=np.int64),
        lambda: np.full(shape, 2**62, dtype=np.int64), lambda: np.full(shape, -1, dtype=np.int64),
        lambda: np.zeros(shape), lambda: np.zeros((0,)), lambda: np.zeros(()), lambda: np.zeros((2, 0, 3)),
        lambda: np.ones((1,) * 5), lambda: np.arange(7, dtype=np.float32), lambda: np.full(shape, 0.5),
        lambda: np.array([b"abc", b"de"]), lambda: np.array(["x"], dtype=h5py.string_dtype()),
        lambda: np.ones(shape, dtype=np.complex64), lambda: np.ones(shape, dtype=bool),
        lambda: np.full(shape, 10**9, dtype=np.int64), lambda: np.full(shape, 255, dtype=np.uint8),
        lambda: np.ones(shape[::-1]) if len(shape) > 1 else np.ones((2, 2)),
        lambda: np.ones(tuple(s + 1 for s in shape)), lambda: np.array([10**9, 10**9, 10**9], dtype=np.int64),
    ]
    return rng.choice(choices)()


# ---------------------------------------------------------------------------- HDF5 mutators

def _h5_objects(f: h5py.File) -> tuple[list[str], list[str], list[tuple[str, str]]]:
    groups: list[str] = []
    datasets: list[str] = []
    f.visititems(lambda name, obj: (groups if isinstance(obj, h5py.Group) else datasets).append(name))
    attrs = [("/", a) for a in f.attrs]
    for name in groups + datasets:
        attrs += [(name, a) for a in f[name].attrs]
    return groups, datasets, attrs


def _h5_store(parent: h5py.Group, key: str, value: Any) -> None:
    """Write ``value`` as a dataset under ``key`` (replacing what is there)."""
    if key in parent:
        del parent[key]
    if isinstance(value, np.ndarray):
        parent.create_dataset(key, data=value)
    elif value is None or isinstance(value, (dict, list)) and not value:
        parent.create_group(key)
    else:
        parent[key] = np.asarray(json.dumps(value) if isinstance(value, (dict, list)) else value)


def mutate_json_text(text: str, rng: random.Random) -> str:
    """One edit inside a JSON document held in a string (graph meta, node metadata): a value of the wrong
    type or magnitude, a deleted key, or a new key."""
    obj = json.loads(text)
    items = [(k, v) for k, v in _walk(obj) if k]
    if items and rng.random() < 0.7:
        keys, _ = rng.choice(items)
        if rng.random() < 0.25:
            _delete(obj, keys)
        else:
            _set(obj, keys, odd_value(rng))
    elif isinstance(obj, dict):
        obj[rng.choice(["readout", "weight_scales", "timesteps", "kind", "fmt", "bits", "junk"])] = odd_value(rng)
    return json.dumps(obj, allow_nan=True)


def _json_text(value: Any) -> str | None:
    """``value`` if it is a string holding a JSON object or list, else None."""
    if isinstance(value, bytes):
        value = value.decode("utf-8", errors="replace")
    if not isinstance(value, str):
        return None
    try:
        return value if isinstance(json.loads(value), (dict, list)) else None
    except ValueError:
        return None


def h5_structural(path: Path, rng: random.Random) -> None:
    """One structural edit of an HDF5 file in place: delete, rename or retype a dataset, group or
    attribute; write NaN/inf/huge/negative values, wrong dtypes and shapes; a group for a dataset."""
    with h5py.File(path, "r+") as f:
        groups, datasets, attrs = _h5_objects(f)
        actions = ["del_obj", "rename", "del_attr", "set_attr", "dataset_values", "dataset_odd_value",
                   "dataset_to_group", "group_to_dataset", "add_junk", "attr_to_array", "link_loop", "json_text",
                   "json_text"]
        action = rng.choice(actions)
        if action == "json_text":   # edit inside a JSON string: graph.h5's meta, NIR's snnc metadata
            texts = [(o, a) for o, a in attrs if _json_text(f[o].attrs[a]) is not None]
            texts += [(d, None) for d in datasets if f[d].shape == () and _json_text(f[d][()]) is not None]
            if texts:
                owner, a = rng.choice(texts)
                if a is None:
                    new = mutate_json_text(_json_text(f[owner][()]) or "{}", rng)
                    parent, _, key = owner.rpartition("/")
                    p = f[parent] if parent else f
                    del p[key]
                    p[key] = new
                else:
                    f[owner].attrs[a] = mutate_json_text(_json_text(f[owner].attrs[a]) or "{}", rng)
                return
            action = "set_attr"
        if action in ("del_obj", "rename", "group_to_dataset", "link_loop") and groups + datasets:
            name = rng.choice(groups + datasets if action != "group_to_dataset" else groups or datasets)
            parent, _, key = name.rpartition("/")
            p = f[parent] if parent else f
            if action == "del_obj":
                del p[key]
            elif action == "rename":
                new = rng.choice([key + "x", "0", "99", "-1", "layer", "node", "nodes", "a b", "1e3"])
                if new not in p:
                    p.move(key, new)
            elif action == "group_to_dataset":
                del p[key]
                _h5_store(p, key, odd_value(rng) if rng.random() < 0.5 else odd_array(rng))
            else:   # a soft link pointing up: cycles in the tree
                if isinstance(f[name], h5py.Group):
                    f[name]["loop"] = h5py.SoftLink("/" + (parent or ""))
        elif action in ("del_attr", "set_attr", "attr_to_array") and attrs:
            owner, a = rng.choice(attrs)
            obj = f[owner]
            if action == "del_attr":
                del obj.attrs[a]
            elif action == "set_attr":
                v = odd_value(rng)
                obj.attrs[a] = json.dumps(v) if isinstance(v, (dict, list)) or v is None else v
            else:
                obj.attrs[a] = odd_array(rng)
        elif action in ("dataset_values", "dataset_odd_value", "dataset_to_group") and datasets:
            name = rng.choice(datasets)
            parent, _, key = name.rpartition("/")
            p = f[parent] if parent else f
            old = f[name]
            like = np.asarray(old[()]) if old.dtype.kind in "iufb" else None
            if action == "dataset_values":
                _h5_store(p, key, odd_array(rng, like))
            elif action == "dataset_odd_value":
                _h5_store(p, key, odd_value(rng))
            else:
                del p[key]
                p.create_group(key)
        else:   # add_junk, or nothing else applied
            target = f[rng.choice(groups)] if groups else f
            _h5_store(target, rng.choice(["junk", "0", "99", "neuron", "weight", "type"]), odd_array(rng))


# ---------------------------------------------------------------------------- ONNX mutators

def onnx_structural(path: Path, rng: random.Random) -> None:
    """One structural edit of an ONNX model in place: drop nodes, initializers or attributes, change
    attribute types and values, tensor dims/dtypes/data, metadata, opsets; add external-data refs."""
    import onnx
    from onnx import TensorProto, helper

    m = onnx.load_model_from_string(path.read_bytes())
    g = m.graph
    action = rng.choice(["drop_node", "drop_init", "drop_attr", "attr_type", "attr_value", "external_data",
                         "init_dims", "init_dtype", "init_raw", "meta_drop", "meta_value", "meta_json", "meta_json",
                         "input_dims", "op_type", "node_io", "opset", "dup_node", "external_data_all"])
    nodes, inits = list(g.node), list(g.initializer)
    if action == "drop_node" and nodes:
        g.node.remove(rng.choice(nodes))
    elif action == "dup_node" and nodes:
        g.node.append(copy.deepcopy(rng.choice(nodes)))
    elif action == "drop_init" and inits:
        g.initializer.remove(rng.choice(inits))
    elif action in ("drop_attr", "attr_type", "attr_value") and any(n.attribute for n in nodes):
        node = rng.choice([n for n in nodes if n.attribute])
        attr = rng.choice(list(node.attribute))
        if action == "drop_attr":
            node.attribute.remove(attr)
        elif action == "attr_type":
            value = rng.choice([1.5, "text", [1, 2, 3], [1.0], b"\xff\xfe", 2**62, -5])
            new = helper.make_attribute(attr.name, value)
            node.attribute.remove(attr)
            node.attribute.append(new)
        else:
            if attr.type == onnx.AttributeProto.INT:
                attr.i = rng.choice([-1, 0, 2**31, 2**62, -(2**62), 4097, 10**9])
            elif attr.type == onnx.AttributeProto.INTS:
                del attr.ints[:]
                attr.ints.extend(rng.choice([[], [0], [-1, -1], [10**9, 10**9], [2**62] * 3, [1, 2, 3, 4, 5]]))
            elif attr.type == onnx.AttributeProto.STRING:
                attr.s = rng.choice([b"", b"{", b"\xff\xfe", b"null", b"[1, 2]", b'{"a": NaN}', b"unknown"])
            elif attr.type == onnx.AttributeProto.FLOAT:
                attr.f = rng.choice([math.nan, math.inf, -1.0])
    elif action in ("external_data", "external_data_all") and inits:
        for t in (inits if action == "external_data_all" else [rng.choice(inits)]):
            t.ClearField("raw_data")
            for fld in ("int32_data", "int64_data", "float_data", "double_data"):
                t.ClearField(fld)
            t.data_location = TensorProto.EXTERNAL
            del t.external_data[:]
            for k, v in (("location", rng.choice(["../../etc/passwd", "/etc/passwd", "weights.bin", "."])),
                         ("offset", rng.choice(["0", "-1", "99999999999"])), ("length", rng.choice(["8", "-8"]))):
                e = t.external_data.add()
                e.key, e.value = k, v
    elif action == "init_dims" and inits:
        t = rng.choice(inits)
        del t.dims[:]
        t.dims.extend(rng.choice([[], [0], [-1], [10**9, 10**9], [2**62], [1, 1, 1, 1, 1], [3, 5]]))
    elif action == "init_dtype" and inits:
        t = rng.choice(inits)
        t.data_type = rng.choice([TensorProto.STRING, TensorProto.FLOAT16, TensorProto.DOUBLE, TensorProto.BOOL,
                                  TensorProto.COMPLEX64, 0, 99])
    elif action == "init_raw" and inits:
        t = rng.choice(inits)
        raw = t.raw_data
        t.raw_data = rng.choice([raw[: len(raw) // 2], raw + b"\x00" * 3, b"", b"\xff" * len(raw),
                                 np.full(max(1, len(raw) // 8), np.nan).tobytes()[: len(raw)] or b"\x00"])
    elif action in ("meta_drop", "meta_value", "meta_json") and m.metadata_props:
        p = rng.choice(list(m.metadata_props))
        if action == "meta_json" and _json_text(p.value) is not None:
            p.value = mutate_json_text(p.value, rng)
        elif action == "meta_drop":
            m.metadata_props.remove(p)
        else:
            p.value = rng.choice(["", "{", "null", "[]", "[[1]]", '["x", "y"]', "1e999", "NaN", "-1", "99",
                                  '{"readout": 5}', '[["a", "b", "c"]]', "\u00ff"])
    elif action == "input_dims" and g.input:
        vi = rng.choice(list(g.input))
        dims = vi.type.tensor_type.shape.dim
        if dims:
            d = rng.choice(list(dims))
            choice = rng.choice(["big", "neg", "param", "zero", "drop"])
            if choice == "big":
                d.dim_value = 10**12
            elif choice == "neg":
                d.dim_value = -3
            elif choice == "param":
                d.dim_param = "M"
            elif choice == "zero":
                d.dim_value = 0
            else:
                dims.remove(d)
    elif action == "op_type" and nodes:
        n = rng.choice(nodes)
        n.op_type = rng.choice(["Relu", "Loop", "CubaLIF", "Gemm", "Conv", ""])
        if rng.random() < 0.5:
            n.domain = rng.choice(["", "ai.snnc", "com.evil"])
    elif action == "node_io" and nodes:
        n = rng.choice(nodes)
        which = n.input if (rng.random() < 0.5 and n.input) else n.output
        if which:
            which[rng.randrange(len(which))] = rng.choice(["", "x", "%/s_prev", "input/s_prev", "lif1/s"])
        elif n.input:
            del n.input[:]
    elif action == "opset" and m.opset_import:
        o = rng.choice(list(m.opset_import))
        o.version = rng.choice([0, 1, 99, -1])
    path.write_bytes(m.SerializeToString())


# ---------------------------------------------------------------------------- checkpoint mutators

def _walk(obj: Any, prefix: tuple = ()) -> Iterator[tuple[tuple, Any]]:
    """Every (key path, value) in a nested dict/list payload (tensors are leaves)."""
    yield prefix, obj
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _walk(v, (*prefix, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _walk(v, (*prefix, i))


def _set(obj: Any, keys: tuple, value: Any) -> None:
    for k in keys[:-1]:
        obj = obj[k]
    obj[keys[-1]] = value


def _delete(obj: Any, keys: tuple) -> None:
    for k in keys[:-1]:
        obj = obj[k]
    del obj[keys[-1]]


def checkpoint_payload(path: Path, rng: random.Random) -> None:
    """One edit of a checkpoint's payload, saved again with torch.save: wrong tensor shapes/dtypes, NaN,
    unknown layer kinds, huge sizes, wrong types, missing or extra keys."""
    import torch

    obj = torch.load(path, map_location="cpu", weights_only=True)
    items = [(k, v) for k, v in _walk(obj) if k]
    tensors = [(k, v) for k, v in items if isinstance(v, torch.Tensor)]
    layer_fields = [(k, v) for k, v in items if len(k) == 4 and k[:2] == ("spec", "layers")]
    action = rng.choice(["field_value", "layer_field", "layer_field", "huge_size", "tensor_values",
                         "tensor_shape", "tensor_dtype", "tensor_to_value", "delete", "unknown_kind",
                         "extra_layer", "extra_key"])
    if action == "field_value" and items:
        keys, _ = rng.choice(items)
        _set(obj, keys, odd_value(rng))
    elif action in ("layer_field", "huge_size") and layer_fields:
        keys, _ = rng.choice(layer_fields)
        if action == "huge_size":
            keys = (*keys[:3], rng.choice(["in_features", "out_features", "out_channels", "kernel_size"]))
            _set(obj, keys, rng.choice([10**9, 10**5, 2**40, -4, 0, 10**30]))
        else:
            _set(obj, keys, odd_value(rng))
    elif action == "tensor_values" and tensors:
        keys, t = rng.choice(tensors)
        bad = rng.choice([math.nan, math.inf, -math.inf, 1e38, -1e38, 1e10])
        _set(obj, keys, torch.full_like(t, bad) if t.is_floating_point() else t)
    elif action == "tensor_shape" and tensors:
        keys, t = rng.choice(tensors)
        shape = rng.choice([(), (0,), (1,), tuple(s + 1 for s in t.shape), tuple(reversed(t.shape)), (2, 2, 2, 2)])
        _set(obj, keys, torch.zeros(shape, dtype=t.dtype))
    elif action == "tensor_dtype" and tensors:
        keys, t = rng.choice(tensors)
        dtype = rng.choice([torch.int64, torch.bool, torch.float16, torch.complex64, torch.uint8, torch.float64])
        _set(obj, keys, t.to(dtype))
    elif action == "tensor_to_value" and tensors:
        keys, _ = rng.choice(tensors)
        _set(obj, keys, odd_value(rng))
    elif action == "delete" and items:
        keys, _ = rng.choice(items)
        _delete(obj, keys)
    elif action == "unknown_kind" and layer_fields:
        keys, _ = rng.choice(layer_fields)
        _set(obj, (*keys[:3], "kind"), rng.choice(["lstm", "", 5, None, "cuba_conv", "residual", "sum_pool"]))
    elif action == "extra_layer" and isinstance(obj.get("spec"), dict) and isinstance(obj["spec"].get("layers"), list):
        layers = obj["spec"]["layers"]
        layers.insert(rng.randrange(len(layers) + 1), copy.deepcopy(rng.choice(layers)) if layers else {})
    else:
        target = rng.choice([k for k, v in items if isinstance(v, dict)] or [()])
        node = obj
        for k in target:
            node = node[k]
        node[rng.choice(["junk", "kind", "bias", "weight", "lif1"])] = odd_value(rng)
    torch.save(obj, path)


# ---------------------------------------------------------------------------- JSON mutators

def json_structural(path: Path, rng: random.Random) -> None:
    """One edit of a JSON document (manifest, cost model) in place: wrong types, missing or unknown
    keys, NaN, huge and negative numbers, bad file names in a manifest's 'files'."""
    yaml_file = path.suffix in (".yaml", ".yml")
    if yaml_file:
        import yaml

        obj = yaml.safe_load(path.read_text())
    else:
        obj = json.loads(path.read_text())
    items = [(k, v) for k, v in _walk(obj) if k]
    action = rng.choice(["value", "value", "delete", "extra", "bad_file_name", "root_type", "yaml_text"])
    if action == "value" and items:
        keys, _ = rng.choice(items)
        _set(obj, keys, odd_value(rng))
    elif action == "delete" and items:
        keys, _ = rng.choice(items)
        _delete(obj, keys)
    elif action == "bad_file_name" and isinstance(obj, dict) and isinstance(obj.get("files"), dict):
        name = rng.choice(["../x", "/etc/passwd", "../../etc/passwd", "sub/graph.h5", ".", "", "graph.h5\x00",
                           "report.json", "C:\\x", "~/.ssh/id_rsa"])
        digest = rng.choice(["0" * 64, None, 5, "x"])
        if rng.random() < 0.5 and obj["files"]:
            old = rng.choice(list(obj["files"]))
            obj["files"][name] = obj["files"].pop(old)
        else:
            obj["files"][name] = digest
    elif action == "root_type":
        obj = odd_value(rng)
    elif action == "yaml_text":   # YAML/JSON edge texts: the document replaced wholesale
        path.write_text(rng.choice(["", "{", "[]", "null", "NaN", '{"a": 1e999}', "a: &a [*a]",
                                    "!!python/object:os.system {}",
                                    "a: &a [*a, *a, *a]\nb: &b [*a, *a, *a]\nc: &c [*b, *b, *b]\nd: [*c, *c, *c]",
                                    '{"name": "x", "source": "y", "energy_j": []}', "\x00\x01", "- - -"]))
        return
    else:
        parents = [k for k, v in items if isinstance(v, dict)] + [()]
        target = rng.choice(parents)
        node = obj
        for k in target:
            node = node[k]
        if isinstance(node, dict):
            node[rng.choice(["junk", "files", "input", "timesteps", "synaptic_op", "kind"])] = odd_value(rng)
    if yaml_file:
        path.write_text(yaml.safe_dump(obj))
    else:
        path.write_text(json.dumps(obj, allow_nan=True))


# ---------------------------------------------------------------------------- mutation dispatch

STRUCTURAL: dict[str, Callable[[Path, random.Random], None]] = {
    "checkpoint": checkpoint_payload, "nir": h5_structural, "netx": h5_structural, "graph": h5_structural,
    "onnx": onnx_structural, "cost_model": json_structural}


def mutators(kind: str) -> list[str]:
    """Names of the mutations that apply to a reader's files (byte-level and structural)."""
    if kind in ("manifest", "run"):
        return ["manifest_json", "manifest_json", "artifact_file_bytes", "artifact_file_structural",
                "artifact_file_structural_rehash"]
    return [*BYTE_MUTATORS, "structural", "structural", "structural", "structural2"]


def mutate_file(kind: str, src: Path, dst: Path, mutator: str, seed: int) -> Path:
    """Copy the seed ``src`` of reader ``kind`` to ``dst`` with mutation ``mutator`` (random by ``seed``)."""
    rng = random.Random(seed)
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dst)
    if mutator in BYTE_MUTATORS:
        dst.write_bytes(BYTE_MUTATORS[mutator](src.read_bytes(), rng))
    elif mutator in ("structural", "structural2"):
        for _ in range(1 if mutator == "structural" else 2):
            # h5py/onnx refuse some edits (e.g. an attribute of an unsupported type): keep what was done
            with contextlib.suppress(OSError, KeyError, ValueError, TypeError, RuntimeError):
                STRUCTURAL[kind](dst, rng)
    else:
        raise ValueError(f"unknown mutator {mutator}")
    return dst


def mutate_artifact(src: Path, dst: Path, mutator: str, seed: int) -> Path:
    """Copy the artifact directory ``src`` to ``dst`` and mutate its manifest or one of its files (with the
    manifest's digest updated, 'rehash', so the reader goes past the hash check into the content)."""
    from snnc.compiler.artifact import MANIFEST_FILE, sha256

    rng = random.Random(seed)
    shutil.copytree(src, dst)
    if mutator == "manifest_json":
        json_structural(dst / MANIFEST_FILE, rng)
        return dst
    name = rng.choice(["graph.h5", "graph.h5", "graph.nir", "graph.onnx", "network.net", "report.json"])
    f = dst / name
    if mutator == "artifact_file_bytes":
        f.write_bytes(BYTE_MUTATORS[rng.choice(list(BYTE_MUTATORS))](f.read_bytes(), rng))
    else:
        kind = {"graph.h5": "graph", "graph.nir": "nir", "graph.onnx": "onnx", "network.net": "netx"}.get(name)
        with contextlib.suppress(OSError, KeyError, ValueError, TypeError, RuntimeError):
            if kind is None:
                json_structural(f, rng)
            else:
                STRUCTURAL[kind](f, rng)
    if mutator == "artifact_file_structural_rehash":
        man = json.loads((dst / MANIFEST_FILE).read_text())
        if name in man.get("files", {}):
            man["files"][name] = sha256(f)
            (dst / MANIFEST_FILE).write_text(json.dumps(man))
    return dst


# ---------------------------------------------------------------------------- oracle

class CaseTimeout(BaseException):
    """Raised by the alarm when a case runs past its wall-clock limit (BaseException: readers that
    catch Exception cannot swallow it)."""


@contextlib.contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Raise CaseTimeout in the main thread after ``seconds`` (SIGALRM via setitimer)."""
    def on_alarm(signum: int, frame: Any) -> None:
        raise CaseTimeout(f"no answer within {seconds:g} s")

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


@dataclass(frozen=True)
class Outcome:
    """What a reader did with one file: ``status`` is ACCEPTED, CLEAN or FAILURE; ``detail`` says how."""

    status: str
    detail: str
    seconds: float = 0.0

    @property
    def failed(self) -> bool:
        return self.status == FAILURE


#: The readers that take just a path: kind -> (module, function).
_READERS = {"nir": ("snnc.compiler.nir_io", "read_nir"), "onnx": ("snnc.compiler.onnx_io", "read_onnx"),
            "netx": ("snnc.compiler.netx_hdf5", "read_netx_file"), "graph": ("snnc.compiler.graph_file", "read_graph"),
            "manifest": ("snnc.compiler.artifact", "load_artifact"),
            "cost_model": ("snnc.hwsim.energy", "load_cost_model")}


def _run_reader(kind: str, path: Path) -> None:
    """What each reader kind does with one file (``compile``/``run``: the full pipeline paths)."""
    if kind == "checkpoint":
        from snnc.compiler.frontend import graph_from_checkpoint
        from snnc.models.checkpoint import load

        graph_from_checkpoint(load(path))
    elif kind in _READERS:
        module, function = _READERS[kind]
        getattr(importlib.import_module(module), function)(path)
    elif kind == "compile":
        from snnc.compiler.sources import load_source
        from snnc.pipeline import compile_model

        load_source(path)       # the reader accepted it: the rest of the pipeline must cope too
        compile_model(path, out=path.parent / "out", report_samples=2)
    elif kind == "run":
        from snnc.pipeline import rebuild_report, run_artifact

        run_artifact(path, backend="hwsim", dataset=None, samples=2)
        rebuild_report(path, samples=2)
    else:
        raise ValueError(f"unknown reader kind {kind}")


ROOT = Path(__file__).resolve().parents[1]


def _ours(filename: str) -> bool:
    """A traceback frame in snnc's own code (not a library in the virtualenv, not this oracle)."""
    p = Path(filename)
    return p.is_absolute() and ROOT in p.parents and ROOT / ".venv" not in p.parents and p.name != "fuzzing.py"


def _leftovers(where: Path) -> list[str]:
    return sorted(p.name for p in where.iterdir() if p.name.endswith(".partial") or ".old-" in p.name)


def check_case(kind: str, path: Path, limit_s: float = TIME_LIMIT_S) -> Outcome:
    """Run reader ``kind`` on ``path`` under a wall-clock limit and classify what happened:
    accepted; a clean error (an SnncError whose one-paragraph message names the file); or FAILURE
    (any other exception, a timeout, a message without the path or with a traceback, a partial directory)."""
    from snnc.errors import SnncError

    path = Path(path)
    t0 = time.perf_counter()
    out = path.parent / "out"
    error: BaseException | None = None
    try:
        with time_limit(limit_s):
            _run_reader(kind, path)
    except CaseTimeout as e:
        return Outcome(FAILURE, f"timeout: {e}", time.perf_counter() - t0)
    except MemoryError as e:
        return Outcome(FAILURE, f"MemoryError (huge allocation): {e}", time.perf_counter() - t0)
    except SnncError as e:
        error = e
    except Exception as e:   # the oracle's job: anything but SnncError is a finding  # noqa: BLE001
        tb = traceback.extract_tb(e.__traceback__)
        where = next((f"{Path(fr.filename).relative_to(ROOT)}:{fr.lineno}" for fr in reversed(tb)
                      if _ours(fr.filename)), "?")
        for note in getattr(e, "__notes__", []):   # raised in snnc.compiler.isolation's child: its traceback
            found = [(f, n) for f, n in re.findall(r'File "([^"]+)", line (\d+)', note) if _ours(f)]
            if found:
                where = f"{Path(found[-1][0]).relative_to(ROOT)}:{found[-1][1]} (isolated reader)"
        return Outcome(FAILURE, f"{type(e).__name__} at {where}: {str(e)[:300]}", time.perf_counter() - t0)
    seconds = time.perf_counter() - t0
    if kind == "compile":
        left = _leftovers(path.parent)
        if left:
            return Outcome(FAILURE, f"partial directories left behind: {left}", seconds)
        if error is not None and out.exists():
            return Outcome(FAILURE, f"{out} exists after a failed compile", seconds)
    if error is None:
        return Outcome(ACCEPTED, "accepted", seconds)
    msg = str(error)
    if str(path) not in msg and str(path.resolve()) not in msg:
        return Outcome(FAILURE, f"{type(error).__name__} without the file's path: {msg[:300]}", seconds)
    if "Traceback (most recent call last)" in msg or "\n\n" in msg.strip():
        return Outcome(FAILURE, f"{type(error).__name__} message is not one paragraph: {msg[:300]}", seconds)
    if len(msg) > MAX_MESSAGE:
        return Outcome(FAILURE, f"{type(error).__name__} message of {len(msg)} chars: {msg[:200]}...", seconds)
    return Outcome(CLEAN, f"{type(error).__name__}: {msg[:300]}", seconds)


def make_case(kind: str, seeds: dict[str, Path], work: Path, mutator: str, seed: int,
              source_kind: str | None = None) -> Path:
    """The mutated input of one case of reader ``kind`` under ``work`` (a fresh directory)."""
    if kind in ("manifest", "run"):
        return mutate_artifact(seeds["artifact"], work / "artifact", mutator, seed)
    src_kind = source_kind or (kind if kind != "compile" else MODEL_KINDS[seed % len(MODEL_KINDS)])
    src = seeds[src_kind]
    if kind == "cost_model" and seed % 2:   # cost models are JSON or YAML
        src = seeds["cost_model_yaml"]
    return mutate_file(src_kind, src, work / src.name, mutator, seed)


def run_case(kind: str, seeds: dict[str, Path], mutator: str, seed: int, source_kind: str | None = None,
             limit_s: float = TIME_LIMIT_S) -> Outcome:
    """Make one mutant in a fresh temporary directory, check it, and clean up."""
    work = Path(tempfile.mkdtemp(prefix=f"snnc-fuzz-{kind}-"))
    try:
        try:
            path = make_case(kind, seeds, work, mutator, seed, source_kind)
        except Exception as e:   # noqa: BLE001 - a mutator that cannot apply is not a reader finding
            return Outcome(ACCEPTED, f"mutator could not apply ({type(e).__name__}: {e}); seed file used")
        return check_case(kind, path, limit_s)
    finally:
        shutil.rmtree(work, ignore_errors=True)


# ---------------------------------------------------------------------------- campaign (make fuzz)

def limit_memory(gib: float) -> None:
    """Cap this process's address space, so a huge allocation fails (MemoryError: a finding) instead of
    swapping the machine."""
    soft = int(gib * 2**30)
    resource.setrlimit(resource.RLIMIT_AS, (soft, resource.getrlimit(resource.RLIMIT_AS)[1]))


def campaign(cases: int, kinds: tuple[str, ...] = KINDS, start: int = 0, verbose: bool = False,
             out: Any = sys.stdout, heavy: int | None = None) -> dict[str, dict[str, Any]]:
    """``cases`` mutants per reader (``heavy`` for compile and run; mutator i mod n, seed start + i,
    seed files alternating between a dense and a conv network); returns the tallies and failures."""
    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="snnc-fuzz-seeds-") as tmp:
        seed_sets = [make_seeds(Path(tmp) / "dense"), make_seeds(Path(tmp) / "conv", conv=True)]
        for kind in kinds:
            tally: dict[str, Any] = {"tried": 0, ACCEPTED: 0, CLEAN: 0, FAILURE: 0, "failures": [], "s": 0.0}
            names = mutators(kind)
            t0 = time.perf_counter()
            for i in range(heavy if heavy is not None and kind in ("compile", "run") else cases):
                seed = start + i
                mutator = names[i % len(names)]
                seeds = seed_sets[(i // len(names)) % 2]
                o = run_case(kind, seeds, mutator, seed)
                tally["tried"] += 1
                tally[o.status] += 1
                if o.failed:
                    tally["failures"].append((mutator, seed, (i // len(names)) % 2, o.detail))
                    print(f"  FAILURE {kind} {mutator} seed={seed} set={(i // len(names)) % 2}: {o.detail}",
                          file=out, flush=True)
                elif verbose:
                    print(f"  {kind} {mutator} seed={seed}: {o.status}: {o.detail[:120]}", file=out, flush=True)
            tally["s"] = time.perf_counter() - t0
            results[kind] = tally
            print(f"{kind}: {tally['tried']} cases, {tally[ACCEPTED]} accepted, {tally[CLEAN]} clean errors, "
                  f"{tally[FAILURE]} failures ({tally['s']:.0f} s)", file=out, flush=True)
    return results


def summary_table(results: dict[str, dict[str, Any]]) -> str:
    """The per-reader table ``make fuzz`` prints."""
    rows = [f"{'reader':<12}{'cases':>8}{'accepted':>10}{'clean errors':>14}{'failures':>10}{'seconds':>9}"]
    for kind, t in results.items():
        rows.append(f"{kind:<12}{t['tried']:>8}{t[ACCEPTED]:>10}{t[CLEAN]:>14}{t[FAILURE]:>10}{t['s']:>9.0f}")
    total = {k: sum(t[k] for t in results.values()) for k in ("tried", ACCEPTED, CLEAN, FAILURE, "s")}
    rows.append(f"{'total':<12}{total['tried']:>8}{total[ACCEPTED]:>10}{total[CLEAN]:>14}{total[FAILURE]:>10}"
                f"{total['s']:>9.0f}")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    """``python tests/fuzzing.py --cases N``: fuzz every reader, print the table; exit 1 on any failure."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cases", type=int, default=200, help="mutants per reader (default 200)")
    p.add_argument("--kinds", default=",".join(KINDS), help=f"comma-separated readers (default: {','.join(KINDS)})")
    p.add_argument("--start", type=int, default=0, help="first random seed (default 0)")
    p.add_argument("--compile-cases", type=int, default=None,
                   help="mutants for the slower compile and run paths (default: --cases / 4)")
    p.add_argument("--memory-gib", type=float, default=6.0, help="address-space cap (default 6 GiB)")
    p.add_argument("-v", "--verbose", action="store_true")
    args = p.parse_args(argv)
    limit_memory(args.memory_gib)
    kinds = tuple(k for k in args.kinds.split(",") if k)
    heavy = args.compile_cases if args.compile_cases is not None else max(1, args.cases // 4)
    results = campaign(args.cases, kinds, start=args.start, verbose=args.verbose, heavy=heavy)
    print()
    print(summary_table(results))
    return 1 if any(t[FAILURE] for t in results.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
