"""Your own data on the command line: ``--data FILE`` (an .npz or a torch dict of x, y [, x_test, y_test]),
torchvision's ``MNIST/raw`` layout, and ``snn-compile --input-shape`` for a netx file without an input layer.

Every file here is written in its true on-disk format (numpy.savez, torch.save, IDX bytes, h5py as
SLAYER's export_hdf5 writes it) and read through the real code path; the CLI is driven in-process.
"""
from __future__ import annotations

import gzip
import json
import struct
from pathlib import Path
from typing import Any, Callable

import h5py
import numpy as np
import pytest
import torch

from snnc import validate
from snnc.cli import compile_main, report_main, run_main, train_main
from snnc.compiler.artifact import load_artifact
from snnc.compiler.netx_hdf5 import read_netx
from snnc.errors import InputFileError, SnncError
from snnc.hwsim.sim import HwSim
from snnc.models.checkpoint import load, save
from snnc.models.datasets import (batch_spikes, dataset_from_arrays, infer_layout, load_data_file,
                                  load_data_file_splits, load_dataset, read_idx)
from snnc.pipeline import decisions

from conftest import make_model


# ---------------------------------------------------------------- files in the true format

def _static(n: int = 40, shape: tuple[int, ...] = (16,), classes: int = 4, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Static samples in [0, 1] whose brightest quarter of features depends on the class."""
    rng = np.random.default_rng(seed)
    y = (np.arange(n) % classes).astype(np.int64)
    f = int(np.prod(shape))
    x = rng.random((n, f)) * 0.3
    for c in range(classes):
        x[y == c, c * f // classes:(c + 1) * f // classes] += 0.6
    return np.clip(x, 0, 1).astype(np.float32).reshape(n, *shape), y


def _frames(n: int = 30, t: int = 5, shape: tuple[int, ...] = (12,), classes: int = 3,
            seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Spike counts 0..2, denser in a class's own block of features."""
    rng = np.random.default_rng(seed)
    y = (np.arange(n) % classes).astype(np.int64)
    f = int(np.prod(shape))
    p = np.full((n, t, f), 0.05)
    for c in range(classes):
        p[y == c, :, c * f // classes:(c + 1) * f // classes] = 0.6
    x = (rng.random((n, t, f)) < p).astype(np.int64) * rng.integers(1, 3, (n, t, f))
    return x.reshape(n, t, *shape), y


def _write(path: Path, **arrays: Any) -> Path:
    """An .npz (numpy.savez) or a torch dict of tensors (torch.save), by the suffix."""
    if path.suffix == ".npz":
        np.savez(path, **arrays)
    else:
        torch.save({k: torch.as_tensor(v) if isinstance(v, np.ndarray) else v for k, v in arrays.items()}, path)
    return path


# ---------------------------------------------------------------- reading: both containers, both layouts, both splits

@pytest.mark.parametrize("suffix", [".npz", ".pt"])
@pytest.mark.parametrize("kind, shape", [("static", (16,)), ("static", (1, 4, 4)), ("frames", (12,)),
                                         ("frames", (2, 2, 3))])
def test_files_read_as_built_in_data(tmp_path: Path, suffix: str, kind: str, shape: tuple[int, ...]) -> None:
    """x/y round-trip through either container; static samples stay values, frames become bool spikes;
    without x_test 10% of each class is held out (disjoint, seeded), with x_test that is the test split."""
    x, y = _static(40, shape) if kind == "static" else _frames(30, 5, shape)
    path = _write(tmp_path / f"d{suffix}", x=x, y=y)
    train, test, about = load_data_file_splits(path, seed=3)
    assert train.encoding == ("rate" if kind == "static" else "events") and train.num_classes == int(y.max()) + 1
    assert train.input_shape == (shape if len(shape) == 3 else (int(np.prod(shape)),))
    assert len(train.y) + len(test.y) == len(y) and 0 < len(test.y) < len(y)
    assert "held out" in about and f"{len(test.y)} test samples" in about and str(path) in about
    everything = load_data_file(path, "eval")           # no x_test: eval is every sample, in file order
    flat = x.reshape(len(x), -1) if kind == "static" else x.reshape(len(x), x.shape[1], -1) > 0
    np.testing.assert_array_equal(everything.x, flat)
    assert everything.y.tolist() == y.tolist()
    rows = [int(np.flatnonzero((flat == r).all(axis=tuple(range(1, flat.ndim))))[0]) for r in test.x]
    assert sorted(np.bincount(y[rows], minlength=train.num_classes).tolist()) == [1] * train.num_classes
    again = load_data_file(path, "test", seed=3)
    np.testing.assert_array_equal(again.x, test.x)      # the same held-out part every time for a seed
    # batch_spikes treats them like built-in data: rate-coded 0/1 spikes, or the frames as they are
    t = 5
    spikes = batch_spikes(train, slice(0, 4), t, torch.Generator().manual_seed(0))
    assert spikes.shape == (4, t, train.input_size) and set(spikes.unique().tolist()) <= {0.0, 1.0}
    if kind == "frames":
        np.testing.assert_array_equal(spikes.numpy(), train.x[:4].astype(np.float32))

    xt, yt = (x[:6], y[:6])
    split = _write(tmp_path / f"s{suffix}", x=x, y=y, x_test=xt, y_test=yt)
    train2, test2, about2 = load_data_file_splits(split)
    assert len(train2.y) == len(y) and test2.y.tolist() == yt.tolist() and "x_test/y_test" in about2
    assert load_data_file(split, "eval").y.tolist() == yt.tolist()


def test_layout_is_declared_or_read_from_shape_or_network(tmp_path: Path) -> None:
    """--data-layout > the file's 'layout' > the network's input size > the number of dimensions."""
    assert infer_layout((5, 16)) == "static" and infer_layout((5, 1, 4, 4)) == "static"
    assert infer_layout((5, 8, 16)) == "frames" and infer_layout((5, 8, 2, 4, 4)) == "frames"
    assert infer_layout((5, 8, 16), input_size=128) == "static"      # (N, H, W) images for a 128-input network
    assert infer_layout((5, 8, 16), input_size=16) == "frames"
    assert infer_layout((5, 1, 4, 4), input_size=16) == "static" and infer_layout((5, 6, 4, 4), input_size=16) == "frames"
    assert infer_layout((5, 8, 16), layout="static", input_size=16) == "static"
    images = np.random.default_rng(0).random((12, 8, 8)).astype(np.float32)
    y = np.arange(12) % 2
    declared = _write(tmp_path / "l.npz", x=images, y=y, layout=np.array("static"))
    d = load_data_file(declared)
    assert d.encoding == "rate" and d.input_shape == (1, 8, 8)
    plain = _write(tmp_path / "p.npz", x=images, y=y)
    with pytest.raises(InputFileError, match="fractional values.*--data-layout static"):
        load_data_file(plain)
    assert load_data_file(plain, layout="static").input_shape == (1, 8, 8)
    assert load_data_file(plain, input_size=64).encoding == "rate"   # the network decides
    torch.save({"x": torch.as_tensor(images), "y": torch.as_tensor(y), "layout": "static"}, tmp_path / "l.pt")
    assert load_data_file(tmp_path / "l.pt").input_shape == (1, 8, 8)
    counts = dataset_from_arrays(torch.ones(3, 4, 5, dtype=torch.int32), torch.tensor([0, 1, 2]), name="t")
    assert counts.encoding == "events" and counts.timesteps == 4 and counts.x.dtype == bool


# ---------------------------------------------------------------- every bad file: one line through the CLI

class Opaque:
    """Pickled by torch.save as a class: reading it back would run code, so it is refused."""


def _bad_cases() -> dict[str, tuple[Callable[[Path], Path], str]]:
    x, y = _static(20)
    return {
        "no_y": (lambda d: _write(d / "f.npz", x=x), "no entry 'y' (found: x)"),
        "test_half": (lambda d: _write(d / "f.npz", x=x, y=y, x_test=x), "has 'x_test' but no 'y_test'"),
        "object": (lambda d: (np.savez(d / "f.npz", x=np.array([[0.5], "a"], dtype=object), y=y), d / "f.npz")[1],
                   "array 'x' holds Python objects"),
        "strings": (lambda d: _write(d / "f.npz", x=np.array([["a"]] * 20), y=y), "x has dtype <U1; samples must be numbers"),
        "nan": (lambda d: _write(d / "f.npz", x=np.where(x > 0.8, np.nan, x), y=y), "x holds NaN"),
        "range": (lambda d: _write(d / "f.npz", x=x * 255, y=y), "static samples must lie in [0, 1]"),
        "float_labels": (lambda d: _write(d / "f.pt", x=x, y=y.astype(np.float32)), "y has dtype float32; labels must be integers"),
        "negative": (lambda d: _write(d / "f.npz", x=x, y=y - 1), "y holds the negative label -1"),
        "label_shape": (lambda d: _write(d / "f.npz", x=x, y=y[:, None]), "y has shape (20, 1); labels must be one"),
        "lengths": (lambda d: _write(d / "f.npz", x=x, y=y[:-3]), "x holds 20 samples but y holds 17 labels"),
        "test_lengths": (lambda d: _write(d / "f.npz", x=x, y=y, x_test=x[:4], y_test=y[:3]),
                         "x_test holds 4 samples but y_test holds 3 labels"),
        "test_shape": (lambda d: _write(d / "f.npz", x=x, y=y, x_test=x[:4, :8], y_test=y[:4]),
                       "x_test has samples of shape (8,) but x has (16,)"),
        "empty": (lambda d: _write(d / "f.npz", x=x[:0], y=y[:0]), "x holds zero samples"),
        "one_dim": (lambda d: _write(d / "f.npz", x=x[:, 0], y=y), "x has shape (20,); expected static samples"),
        "fractional_frames": (lambda d: _write(d / "f.pt", x=np.stack([x] * 3, 1), y=y), "fractional values"),
        "negative_frames": (lambda d: _write(d / "f.npz", x=-np.ones((20, 3, 4), np.int8), y=y),
                            "negative value"),
        "layout_entry": (lambda d: _write(d / "f.npz", x=x, y=y, layout=np.array("movie")), "'layout' is 'movie'"),
        "too_few": (lambda d: _write(d / "f.npz", x=x[:3], y=np.arange(3)), "too few to hold out"),
        "text": (lambda d: (d / "f.npz").write_text("x,y\n0.5,1\n") and d / "f.npz", "neither an .npz archive nor a torch file"),
        "zip_not_npz": (lambda d: _zip(d / "f.npz"), "no entry 'x'"),
        "pickled_code": (lambda d: (torch.save({"x": Opaque(), "y": torch.as_tensor(y)}, d / "f.pt"), d / "f.pt")[1],
                         "would run code stored in the file"),
        "list_value": (lambda d: (torch.save({"x": x.tolist(), "y": torch.as_tensor(y)}, d / "f.pt"), d / "f.pt")[1],
                       "'x' is a list, not a tensor"),
        "not_a_dict": (lambda d: (torch.save(torch.as_tensor(x), d / "f.pt"), d / "f.pt")[1], "holding a Tensor, not a dict"),
        "missing": (lambda d: d / "nowhere.npz", "no such"),
        "a_model": (lambda d: save(make_model((16, 8, 3)), d / "f.pt"), "is an snnc model checkpoint, not a data file"),
    }


def _zip(path: Path) -> Path:
    import zipfile

    with zipfile.ZipFile(path, "w") as z:
        z.writestr("readme.txt", "hello")
    return path


@pytest.mark.parametrize("case", sorted(_bad_cases()))
def test_bad_data_file_is_one_line_naming_the_file(case: str, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    build, needle = _bad_cases()[case]
    path = build(tmp_path)
    code = train_main(["--data", str(path), "--epochs", "1", "--max-steps", "1", "--hidden", "4",
                       "--out", str(tmp_path / "m.pt"), "--device", "cpu"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith("snn-train: error: ") and err.count("\n") == 1, err
    assert err.startswith(f"snn-train: error: {path}: ") or case == "missing", err   # argparse checks existence
    assert str(path) in err, err
    assert needle in err, err
    assert "Traceback" not in err and not (tmp_path / "m.pt").exists()


def test_data_flags_that_do_not_go_together(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    x, y = _static(20)
    path = _write(tmp_path / "d.npz", x=x, y=y)
    common = ["--epochs", "1", "--max-steps", "1", "--out", str(tmp_path / "m.pt"), "--device", "cpu"]
    assert train_main(["--data", str(path), "--dataset", "digits", *common]) == 2
    assert "--dataset digits and --data" in capsys.readouterr().err
    assert train_main(["--data-layout", "static", *common]) == 2
    assert "--data-layout static: applies to --data FILE only" in capsys.readouterr().err
    frames = _write(tmp_path / "f.npz", x=_frames(30, 5)[0], y=_frames(30, 5)[1])
    assert train_main(["--data", str(frames), "--timesteps", "7", *common]) == 2
    err = capsys.readouterr().err
    assert "frames of 5 time bins but 7 timesteps" in err and err.count("\n") == 1


# ---------------------------------------------------------------- train -> compile -> run on a file (hwsim, no Lava)

def test_train_compile_run_on_a_static_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    x, y = _static(60, (1, 4, 4), classes=3)
    data = _write(tmp_path / "mine.npz", x=x, y=y)
    model, build = tmp_path / "m.pt", tmp_path / "build"
    assert train_main(["--data", str(data), "--epochs", "1", "--max-steps", "2", "--hidden", "8", "--timesteps", "6",
                       "--out", str(model), "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    held = load_data_file(data, "test")
    assert f"{len(y) - len(held.y)} training samples, {len(held.y)} test samples (held out from x/y: 10% of each " \
           f"class, chosen with --seed 0)" in out
    meta = load(model).metadata
    assert meta["dataset"] == "file" and meta["data_file"] == str(data.resolve()) and meta["data_layout"] == "static"
    import hashlib
    assert meta["data_sha256"] == hashlib.sha256(data.read_bytes()).hexdigest()

    # compile without --data: the recorded file's held-out test part
    assert compile_main([str(model), "--out", str(build)]) == 0
    out = capsys.readouterr().out
    assert f"report inputs: {data.resolve()} (its test part, static)" in out
    art = load_artifact(build)
    spec = art.manifest["input"]
    assert (spec["dataset"], spec["data_file"], spec["data_split"]) == ("file", str(data.resolve()), "test")
    assert json.loads((build / "report.json").read_text())["accuracy"]["samples"] == len(held.y)

    # snn-run: the recorded test part by default, the whole file with --data
    assert run_main([str(build), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["samples"] == len(held.y)
    assert run_main([str(build), "--data", str(data), "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["samples"] == len(y) and res["data_file"] == str(data.resolve()) and 0 <= res["correct"] <= len(y)

    # --resume continues on the same file only: another path is another setting, other bytes another file
    args = ["--epochs", "2", "--max-steps", "2", "--hidden", "8", "--timesteps", "6", "--out", str(model),
            "--device", "cpu", "--resume"]
    other = _write(tmp_path / "other.npz", x=x[::-1].copy(), y=y[::-1].copy())
    assert train_main(["--data", str(other), *args]) == 2
    assert "other settings: --data" in capsys.readouterr().err
    original = data.read_bytes()
    data.write_bytes(other.read_bytes())
    assert train_main(["--data", str(data), *args]) == 2
    assert "holds other samples; resume on the same data file" in capsys.readouterr().err
    data.write_bytes(original)
    assert train_main(["--data", str(data), "--epochs", "2", "--max-steps", "2", "--hidden", "8", "--timesteps",
                       "6", "--out", str(model), "--device", "cpu", "--resume"]) == 0
    assert load(model).metadata["epochs"] == 2

    # a file that does not fit the network: one line naming both
    wrong = _write(tmp_path / "wrong.npz", x=np.zeros((3, 1, 28, 28), np.float32), y=np.arange(3))
    capsys.readouterr()
    assert run_main([str(build), "--data", str(wrong)]) == 2
    err = capsys.readouterr().err
    assert err == (f"snn-run: error: {wrong.resolve()}: x has samples of shape (1, 28, 28) (784 values) but the "
                   f"network in {build} takes 16 inputs; give 16 values per sample.\n")
    assert run_main([str(build), "--data", str(data), "--dataset", "digits"]) == 2
    assert "give one of them" in capsys.readouterr().err

    # the training file changed: its held-out part may differ, so compile says so
    _write(data, x=x[::-1].copy(), y=y[::-1].copy())
    assert compile_main([str(model), "--out", str(tmp_path / "b3")]) == 2
    err = capsys.readouterr().err
    assert "changed since the model was trained on it" in err and f"--data {data.resolve()}" in err


def test_compile_data_replaces_the_recorded_data(tmp_path: Path) -> None:
    """snn-compile --data FILE: the report runs on FILE's samples and the manifest records FILE."""
    x, y = _static(30, (16,), classes=4)
    model = _ok(tmp_path, _write(tmp_path / "trained.npz", x=x, y=y))
    other = _write(tmp_path / "other.pt", x=x[:7], y=y[:7])
    assert compile_main([str(model), "--out", str(tmp_path / "b"), "--data", str(other)]) == 0
    spec = load_artifact(tmp_path / "b").manifest["input"]
    assert (spec["data_file"], spec["data_split"], spec["data_layout"]) == (str(other.resolve()), "eval", "static")
    assert json.loads((tmp_path / "b" / "report.json").read_text())["accuracy"]["samples"] == 7


def test_train_compile_run_on_frames_in_a_torch_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Frames bring their T; the artifact is fed the frames themselves, so snn-run's count of correct
    samples is exactly what hwsim decides on the file's x_test."""
    x, y = _frames(36, 6, (12,))
    xt, yt = _frames(9, 6, (12,), seed=5)
    data = _write(tmp_path / "ev.pt", x=x, y=y, x_test=torch.as_tensor(xt > 0), y_test=yt)
    model, build = tmp_path / "m.pt", tmp_path / "build"
    assert train_main(["--data", str(data), "--epochs", "1", "--max-steps", "2", "--hidden", "8",
                       "--out", str(model), "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "event frames of 6 time bins" in out and "9 test samples (the file's x_test/y_test)" in out
    meta = load(model).metadata
    assert meta["timesteps"] == 6 and meta["encoding"] == "events" and meta["data_layout"] == "frames"
    assert compile_main([str(model), "--out", str(build)]) == 0
    spec = load_artifact(build).manifest["input"]
    assert spec["encoding"]["kind"] == "events" and spec["timesteps"] == 6
    capsys.readouterr()
    assert run_main([str(build), "--data", str(data), "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    art = load_artifact(build)
    run = HwSim.from_graph(art.graph).run(xt > 0)
    assert res["samples"] == 9 and res["correct"] == int((decisions(art.graph, run.spikes, run.final_v) == yt).sum())
    short = _write(tmp_path / "short.npz", x=xt[:, :4], y=yt)
    assert run_main([str(build), "--data", str(short)]) == 2
    assert "frames of 4 time bins but 6 timesteps" in capsys.readouterr().err
    # snn-report re-reads the recorded file's test split: the same frames, the same accuracy
    compiled = json.loads((build / "report.json").read_text())["accuracy"]
    assert compiled["samples"] == 9 and compiled["value"] == res["correct"] / 9
    assert report_main([str(build), "--json", "--no-html"]) == 0
    assert json.loads(capsys.readouterr().out)["accuracy"] == compiled


@pytest.mark.slow
def test_verify_on_a_data_file_with_lava(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """snn-compile --verify on --data: PyTorch, hwsim and Lava agree spike for spike on the file's frames."""
    x, y = _frames(24, 5, (12,))
    data = _write(tmp_path / "ev.npz", x=x, y=y)
    model = tmp_path / "m.pt"
    assert train_main(["--data", str(data), "--epochs", "1", "--max-steps", "2", "--hidden", "8",
                       "--out", str(model), "--device", "cpu"]) == 0
    assert compile_main([str(model), "--out", str(tmp_path / "b"), "--verify", "2", "--data", str(data)]) == 0
    assert "Verification PASS" in capsys.readouterr().out


def test_compile_without_data_says_random_and_uses_data_when_given(tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """A model with no dataset (a netx file) is reported on random spikes, and says so; --data gives the
    report real inputs and labels."""
    net = tmp_path / "net.net"
    with h5py.File(net, "w") as f:
        _dense(f, 0, 16, 8)
        _dense(f, 1, 8, 3)
    assert compile_main([str(net), "--out", str(tmp_path / "b"), "--timesteps", "5"]) == 0
    out = capsys.readouterr().out
    assert f"report inputs: random spikes ({net} records no dataset); pass --data FILE for real ones" in out
    assert "accuracy" not in json.loads((tmp_path / "b" / "report.json").read_text())
    x, y = _static(10, (16,), classes=3)
    data = _write(tmp_path / "d.npz", x=x, y=y)
    assert compile_main([str(net), "--out", str(tmp_path / "b2"), "--timesteps", "5", "--data", str(data)]) == 0
    rep = json.loads((tmp_path / "b2" / "report.json").read_text())
    assert rep["accuracy"]["samples"] == 10 and rep["activity"]["samples"] == 10
    # frames fix the sample length when nothing else does (no --timesteps, no tSample in the file)
    fx, fy = _frames(6, 7, (16,))
    frames = _write(tmp_path / "f.pt", x=fx, y=fy)
    assert compile_main([str(net), "--out", str(tmp_path / "b3"), "--data", str(frames)]) == 0
    spec = load_artifact(tmp_path / "b3").manifest["input"]
    assert spec["timesteps"] == 7 and spec["encoding"]["kind"] == "events" and spec["data_layout"] == "frames"


# ---------------------------------------------------------------- torchvision's MNIST/raw

def _idx(path: Path, a: np.ndarray, gz: bool) -> None:
    raw = struct.pack(">I", 0x800 + a.ndim) + struct.pack(f">{a.ndim}I", *a.shape) + a.astype(np.uint8).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    if gz:
        with gzip.open(path.with_name(path.name + ".gz"), "wb") as f:
            f.write(raw)
    else:
        path.write_bytes(raw)


@pytest.mark.parametrize("gz", [False, True])
def test_mnist_in_torchvisions_raw_layout(tmp_path: Path, gz: bool) -> None:
    rng = np.random.default_rng(0)
    images, labels = rng.integers(0, 256, (7, 28, 28)), (np.arange(7) * 3) % 10
    raw = tmp_path / "MNIST" / "raw"
    _idx(raw / "t10k-images-idx3-ubyte", images, gz)
    _idx(raw / "t10k-labels-idx1-ubyte", labels, gz)
    d = load_dataset("mnist", "test", data_dir=tmp_path)
    np.testing.assert_allclose(d.x, images.reshape(7, -1) / 255.0, rtol=1e-6)
    assert d.y.tolist() == labels.tolist() and d.shape == (1, 28, 28)
    labels_file = raw / ("t10k-labels-idx1-ubyte" + (".gz" if gz else ""))
    assert read_idx(labels_file, 1).tolist() == labels.tolist()     # told gzip from raw by the bytes
    with pytest.raises(InputFileError) as e:       # the train split is not there: both layouts named
        load_dataset("mnist", "train", data_dir=tmp_path)
    assert str(tmp_path / "MNIST" / "raw") in str(e.value) and str(tmp_path / "mnist") in str(e.value)


def test_mnist_raw_damage_names_the_file(tmp_path: Path) -> None:
    raw = tmp_path / "MNIST" / "raw"
    _idx(raw / "t10k-images-idx3-ubyte", np.zeros((3, 28, 28)), False)
    _idx(raw / "t10k-labels-idx1-ubyte", np.zeros((3, 2)), False)   # a 2-D "label" file: wrong magic
    with pytest.raises(InputFileError, match=r"t10k-labels-idx1-ubyte: IDX magic number 0x00000802"):
        load_dataset("mnist", "test", data_dir=tmp_path)


# ---------------------------------------------------------------- --input-shape for a netx conv export without input layer

def _layer(f: h5py.File, i: int, kind: str, **data: Any) -> None:
    """One layer group as SLAYER's export_hdf5 writes it (S10 type string, CUBA neuron keys)."""
    g = f.create_group(f"layer/{i}")
    g.create_dataset("type", (1,), "S10", [kind.encode()])
    for k, v in data.items():
        g[k] = v
    if kind in ("dense", "conv"):
        for k, v in {"type": "CUBA", "iDecay": 1024, "vDecay": 123, "vThMant": 80, "refDelay": 1,
                     "gradedSpike": False}.items():
            g.create_dataset(f"neuron/{k}", data=v)


def _dense(f: h5py.File, i: int, n_in: int, n_out: int) -> None:
    w = np.full((n_out, n_in), 2.0, dtype=np.float32)
    w[0, 0] = -4.0
    _layer(f, i, "dense", shape=np.array([n_out]), inFeatures=n_in, outFeatures=n_out, weight=w)


def _conv_net(path: Path, input_layer: bool) -> Path:
    """1 -> 2 channel 3x3 pad-1 conv on (1, 4, 4), flatten, dense 32 -> 3 (slayer's 5-D kernel)."""
    with h5py.File(path, "w") as f:
        i = 0
        if input_layer:
            _layer(f, 0, "input", shape=np.array([1, 4, 4]))
            i = 1
        _layer(f, i, "conv", shape=np.array([2, 4, 4]), inChannels=1, outChannels=2, kernelSize=np.array([3, 3]),
               stride=np.array([1, 1]), padding=np.array([1, 1]), dilation=np.array([1, 1]), groups=1,
               weight=np.full((2, 1, 3, 3, 1), 20.0, dtype=np.float32))
        _layer(f, i + 1, "flatten", shape=np.array([32, 1, 1]))
        _dense(f, i + 2, 32, 3)
    return path


def test_input_shape_for_a_netx_conv_export_without_input_layer(tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    bare, full = _conv_net(tmp_path / "bare.net", False), _conv_net(tmp_path / "full.net", True)
    with pytest.raises(InputFileError, match=r"layer 0: the first conv layer needs an input layer.*--input-shape C,H,W"):
        read_netx(bare)
    g, ref = read_netx(bare, (1, 4, 4)), read_netx(full)
    assert g.input.shape == ref.input.shape == (1, 4, 4)
    spikes = np.random.default_rng(0).random((3, 8, 16)) < 0.5
    a, b = HwSim.from_graph(g).run(spikes), HwSim.from_graph(ref).run(spikes)
    assert all(np.array_equal(a.spikes[k], b.spikes[k]) for k in b.spikes) and a.spikes["lif1"].any()

    assert compile_main([str(bare), "--out", str(tmp_path / "b"), "--timesteps", "4", "--input-shape", "1,4,4"]) == 0
    assert load_artifact(tmp_path / "b").manifest["input"]["shape"] == [1, 4, 4]
    capsys.readouterr()
    for flags, needle in (
            (["--input-shape", "2,4,4"], "--input-shape 2,4,4: the first layer (" + str(bare) +
             " layer 0, conv, weight (2, 1, 3, 3), groups 1) reads 1 input channel(s), not 2; give 1,H,W."),
            (["--input-shape", "16"], "--input-shape 16: the first layer (" + str(bare) + " layer 0) is a conv layer"),
            (["--input-shape", "1,2,2"], "--input-shape 1,2,2: " + str(bare) + " layer 0: shape (2, 4, 4) is not the "
                                          "conv output (2, 2, 2)"),
            (["--input-shape", "0,4"], "'0,4' is not C,H,W or F"),
            (["--input-shape", "a,b,c"], "'a,b,c' is not C,H,W or F")):
        assert compile_main([str(bare), "--out", str(tmp_path / "x"), "--timesteps", "4", *flags]) == 2
        err = capsys.readouterr().err
        assert err.startswith("snn-compile: error: ") and needle in err and err.count("\n") == 1, err
    # a file that carries its shape must agree with the flag
    assert compile_main([str(full), "--out", str(tmp_path / "y"), "--input-shape", "1,4,4", "--timesteps", "4"]) == 0
    assert compile_main([str(full), "--out", str(tmp_path / "y"), "--input-shape", "1,2,8", "--timesteps", "4"]) == 2
    assert "the file carries its input shape, leave --input-shape out" in capsys.readouterr().err
    dense = tmp_path / "dense.net"
    with h5py.File(dense, "w") as f:
        _dense(f, 0, 16, 3)
    assert read_netx(dense, (1, 4, 4)).input.shape == (1, 4, 4)
    with pytest.raises(SnncError, match=r"--input-shape 1,3,3: 9 values, but the first layer .* reads 16 inputs"):
        read_netx(dense, (1, 3, 3))
    ckpt = tmp_path / "m.pt"
    save(make_model((16, 8, 3)), ckpt)
    assert compile_main([str(ckpt), "--out", str(tmp_path / "z"), "--input-shape", "1,4,4"]) == 2
    assert f"{ckpt} carries its input shape (16,)" in capsys.readouterr().err
    assert validate.input_shape("2x34x34") == (2, 34, 34) and validate.input_shape(" 784 ") == (784,)


# ---------------------------------------------------------------- what files record

def test_checkpoint_and_manifest_fields_for_a_data_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """dataset 'file' needs data_file; a manifest's data fields are checked like the rest of it."""
    bad = tmp_path / "bad.pt"
    save(make_model((16, 8, 3)), bad, metadata={"dataset": "file"})
    with pytest.raises(InputFileError, match="'dataset' 'file' needs 'data_file'"):
        load(bad)
    x, y = _static(20)
    data = _write(tmp_path / "d.npz", x=x, y=y)
    assert compile_main([str(_ok(tmp_path, data)), "--out", str(tmp_path / "b")]) == 0
    man_path = tmp_path / "b" / "manifest.json"
    man = json.loads(man_path.read_text())
    assert man["input"]["data_file"] == str(data.resolve())
    man["input"]["data_split"] = "everything"
    man_path.write_text(json.dumps(man))
    capsys.readouterr()
    assert run_main([str(tmp_path / "b")]) == 2
    assert "input.data_split must be one of train, test, eval" in capsys.readouterr().err


def _ok(tmp_path: Path, data: Path) -> Path:
    path = tmp_path / "ok.pt"
    save(make_model((16, 8, 4)), path, metadata={"dataset": "file", "data_file": str(data.resolve()), "timesteps": 4})
    return path
