"""Dataset loaders on small files written here in each dataset's true on-disk format; no downloads."""
from __future__ import annotations

import importlib

import gzip
import json
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from snnc.cli import compile_main, run_main, train_main
from snnc.errors import InputFileError, SnncError
from snnc.models.checkpoint import load
from snnc.models.datasets import (EVENT_DTYPE, SYNTH_SENSOR, Dataset, batch_spikes, default_data_dir, encode_samples,
                                  engine_spikes, frame_transform, load_dataset, resolve_data_dir, synthetic_events,
                                  to_engine_input)

MNIST_NAMES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
               "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")


# ---------------------------------------------------------------- where data lives

def test_data_dir_precedence(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("SNNC_DATA_DIR", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_data_dir() == tmp_path / "home" / ".cache" / "snnc" / "datasets"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_data_dir() == tmp_path / "xdg" / "snnc" / "datasets"
    monkeypatch.setenv("SNNC_DATA_DIR", str(tmp_path / "env"))
    assert default_data_dir() == tmp_path / "env"
    assert resolve_data_dir(None) == tmp_path / "env"
    assert resolve_data_dir(tmp_path / "flag") == tmp_path / "flag"


def test_cli_data_dir_beats_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("SNNC_DATA_DIR", str(tmp_path / "env"))
    assert train_main(["--dataset", "mnist", "--out", str(tmp_path / "m.pt")]) == 2
    assert str(tmp_path / "env" / "mnist") in capsys.readouterr().err
    assert train_main(["--dataset", "mnist", "--data-dir", str(tmp_path / "flag"), "--out", str(tmp_path / "m.pt")]) == 2
    err = capsys.readouterr().err
    assert str(tmp_path / "flag" / "mnist") in err and str(tmp_path / "env") not in err


# ---------------------------------------------------------------- mnist

def _idx_gz(path: Path, array: np.ndarray, magic: int | None = None) -> None:
    """Write ``array`` (uint8) as a gzipped big-endian IDX file, as yann.lecun.com ships them."""
    header = struct.pack(">I", magic if magic is not None else 0x800 + array.ndim)
    header += struct.pack(f">{array.ndim}I", *array.shape)
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def _write_mnist(root: Path, n_train: int = 12, n_test: int = 6) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    arrays = {"train-images-idx3-ubyte.gz": rng.integers(0, 256, (n_train, 28, 28)),
              "train-labels-idx1-ubyte.gz": np.arange(n_train) % 10,
              "t10k-images-idx3-ubyte.gz": rng.integers(0, 256, (n_test, 28, 28)),
              "t10k-labels-idx1-ubyte.gz": (np.arange(n_test) + 3) % 10}
    for name, a in arrays.items():
        _idx_gz(root / "mnist" / name, a)
    return arrays


def test_mnist_reads_gz_idx_files(tmp_path: Path) -> None:
    arrays = _write_mnist(tmp_path)
    tr, te = load_dataset("mnist", "train", data_dir=tmp_path), load_dataset("mnist", "test", data_dir=tmp_path)
    assert tr.x.shape == (12, 784) and te.x.shape == (6, 784) and tr.encoding == "rate" and tr.num_classes == 10
    np.testing.assert_allclose(tr.x, arrays["train-images-idx3-ubyte.gz"].reshape(12, -1) / 255.0, rtol=1e-6)
    assert te.y.tolist() == arrays["t10k-labels-idx1-ubyte.gz"].tolist()
    assert 0.0 <= tr.x.min() and tr.x.max() <= 1.0


def test_missing_mnist_names_the_files_and_directory(tmp_path: Path) -> None:
    with pytest.raises(InputFileError) as e:
        load_dataset("mnist", data_dir=tmp_path)
    msg = str(e.value)
    assert str(tmp_path / "mnist") in msg and "never downloads" in msg and "--data-dir" in msg
    assert all(name in msg for name in MNIST_NAMES)


@pytest.mark.parametrize("damage, needle", [
    ("magic", "magic number 0x00000802"),
    ("truncate", "truncated or corrupt"),
    ("not-gzip", "not a readable gzip file"),
    ("count", "holds 12 images but"),
])
def test_corrupt_mnist_gives_a_clear_error(tmp_path: Path, damage: str, needle: str) -> None:
    arrays = _write_mnist(tmp_path)
    images = tmp_path / "mnist" / "train-images-idx3-ubyte.gz"
    if damage == "magic":
        _idx_gz(images, arrays["train-images-idx3-ubyte.gz"], magic=0x802)
    elif damage == "truncate":
        with gzip.open(images, "rb") as f:
            raw = f.read()
        with gzip.open(images, "wb") as f:
            f.write(raw[:-100])
    elif damage == "not-gzip":
        images.write_bytes(b"<html>404 not found</html>")
    else:
        _idx_gz(tmp_path / "mnist" / "train-labels-idx1-ubyte.gz", np.arange(5))
    with pytest.raises(InputFileError, match=needle):
        load_dataset("mnist", "train", data_dir=tmp_path)


def test_train_on_mnist_records_data_dir(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _write_mnist(tmp_path / "data")
    out = tmp_path / "m.pt"
    assert train_main(["--dataset", "mnist", "--data-dir", str(tmp_path / "data"), "--epochs", "1",
                       "--max-steps", "1", "--hidden", "8", "--timesteps", "4", "--out", str(out),
                       "--device", "cpu"]) == 0
    meta = load(out).metadata
    assert meta["data_dir"] == str((tmp_path / "data").resolve()) and meta["encoding"] == "rate"
    # compile finds the data through the recorded data_dir; snn-run --data-dir overrides it
    assert compile_main([str(out), "--out", str(tmp_path / "build")]) == 0
    capsys.readouterr()
    assert run_main([str(tmp_path / "build"), "--samples", "4", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["samples"] == 4
    assert run_main([str(tmp_path / "build"), "--data-dir", str(tmp_path / "elsewhere")]) == 2
    assert str(tmp_path / "elsewhere" / "mnist") in capsys.readouterr().err


# ---------------------------------------------------------------- the one encoding

def test_encode_samples_is_the_engines_rate_code() -> None:
    data = load_dataset("digits", "test")
    x = encode_samples(data.x[:5], 9, 7)
    assert x.dtype == bool and x.shape == (5, 9, 64)
    np.testing.assert_array_equal(x, engine_spikes(data, slice(0, 5), 9, 7))
    assert not np.array_equal(x, encode_samples(data.x[:5], 9, 8))      # the seed matters


@pytest.mark.parametrize("code", ["rate", "signed"])
def test_engine_spikes_have_the_training_codes_distribution(code: str) -> None:
    """The engines' numpy code and training's torch code (batch_spikes) draw differently but from
    the same distribution: per feature, the rate of each channel over 4,000 steps is within 5 standard
    errors of the probability the code defines (a wrong threshold, sign or channel order fails)."""
    p = np.linspace(0, 1, 41, dtype=np.float32)
    data = Dataset("ramp", np.tile(p, (2, 1)), np.zeros(2, dtype=np.int64), 2)
    x = engine_spikes(data, slice(None), 2000, seed=3, encoding=code).reshape(4000, -1).mean(axis=0)
    torch_x = to_engine_input(batch_spikes(data, slice(None), 2000, torch.Generator().manual_seed(3), code).numpy(),
                              code).reshape(4000, -1).mean(axis=0)
    c = 2 * p.astype(np.float64) - 1
    want = p.astype(np.float64) if code == "rate" else np.concatenate([np.clip(c, 0, 1), np.clip(-c, 0, 1)])
    tol = 5 * np.sqrt(want * (1 - want) / 4000) + 1e-12
    assert np.all(np.abs(x - want) <= tol) and np.all(np.abs(torch_x - want) <= tol)
    assert x[0] == 0 and (code == "signed" or x[-1] == 1)          # p = 0 never fires, p = 1 always


def test_engine_spikes_analog_and_events_are_the_training_path_exactly() -> None:
    data = load_dataset("digits", "test")
    np.testing.assert_array_equal(
        engine_spikes(data, slice(0, 6), 4, 0, "analog"),
        to_engine_input(batch_spikes(data, slice(0, 6), 4, None, "analog").numpy(), "analog"))
    events = load_dataset("synthetic-events", "test", timesteps=6, limit=8)
    np.testing.assert_array_equal(engine_spikes(events, np.array([3, 1]), 6, 0),
                                  to_engine_input(batch_spikes(events, torch.tensor([3, 1]), 6).numpy(), "events"))
    with pytest.raises(SnncError, match="6 time bins but 7"):
        engine_spikes(events, slice(0, 2), 7, 0)
    with pytest.raises(SnncError, match="cannot be given the 'rate' input encoding"):
        engine_spikes(events, slice(0, 2), 6, 0, "rate")


def test_engine_spikes_first_samples_do_not_depend_on_how_many() -> None:
    """Drawn sample by sample in order (in chunks of 256): the first 260 samples of 300 are the 260 alone."""
    data = load_dataset("digits", "test")
    for code in ("rate", "signed"):
        np.testing.assert_array_equal(engine_spikes(data, slice(0, 300), 5, 1, code)[:260],
                                      engine_spikes(data, slice(0, 260), 5, 1, code))


def test_batch_spikes_events_path_needs_matching_timesteps() -> None:
    data = load_dataset("synthetic-events", "test", timesteps=6, limit=8)
    g = torch.Generator().manual_seed(0)
    before = g.get_state()
    x = batch_spikes(data, torch.tensor([3, 1]), 6, g)
    assert x.shape == (2, 6, 512) and x.dtype == torch.float32
    assert torch.equal(x, torch.from_numpy(data.x[[3, 1]]).float())
    assert torch.equal(g.get_state(), before)  # frames use no random numbers
    with pytest.raises(SnncError, match="6 time bins but 7"):
        batch_spikes(data, slice(0, 2), 7, g)


# ---------------------------------------------------------------- synthetic-events

def test_synthetic_events_are_real_tonic_events_and_deterministic() -> None:
    tonic_io = importlib.import_module("tonic.io")
    a, la = synthetic_events(24, seed=5)
    b, lb = synthetic_events(24, seed=5)
    c, _ = synthetic_events(24, seed=6)
    assert EVENT_DTYPE == tonic_io.events_struct and a[0].dtype == EVENT_DTYPE
    assert np.array_equal(la, lb) and all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not all(len(x) == len(y) and np.array_equal(x, y) for x, y in zip(a, c))
    assert all(np.all(np.diff(ev["t"]) >= 0) for ev in a)
    tr1, tr2 = load_dataset("synthetic-events", "train", 5, timesteps=8), load_dataset("synthetic-events", "train", 5, timesteps=8)
    assert np.array_equal(tr1.x, tr2.x) and tr1.x.shape == (1200, 8, 512) and tr1.x.dtype == bool
    assert not np.array_equal(tr1.x[:50], load_dataset("synthetic-events", "test", 5, timesteps=8).x[:50])


def test_synthetic_events_depend_on_the_class() -> None:
    """ON events lead the bar and OFF events trail it: the ON-OFF centroid points along the motion."""
    recordings, labels = synthetic_events(80, seed=1)
    expected = np.array([(1, 0), (-1, 0), (0, 1), (0, -1)])  # right, left, down (y grows), up
    d = np.array([[ev[ev["p"]][a].mean() - ev[~ev["p"]][a].mean() for a in ("x", "y")] for ev in recordings])
    agree = (d * expected[labels]).sum(axis=1) > np.abs(d * (1 - np.abs(expected[labels]))).sum(axis=1)
    assert agree.mean() > 0.8  # per recording, despite the background noise (0.91 measured)
    for c in range(4):
        assert np.all(np.sign(np.round(d[labels == c].mean(axis=0))) == expected[c])
    assert np.bincount(labels).tolist() == [20, 20, 20, 20]


def to_frame_numpy(events: np.ndarray, sensor_size: tuple[int, int, int], timesteps: int) -> np.ndarray:
    """Test oracle, written independently of tonic: (T, P, H, W) counts in T equal windows from t[0]."""
    w, h, p = sensor_size
    frames = np.zeros((timesteps, p, h, w), dtype=np.int16)
    t = events["t"]
    window = (t[-1] - t[0]) // timesteps
    starts = np.arange(timesteps) * window + t[0]
    lo, hi = np.searchsorted(t, starts), np.searchsorted(t, starts + window)
    for i in range(timesteps):
        ev = events[lo[i]:hi[i]]
        np.add.at(frames, (i, ev["p"].astype(int), ev["y"], ev["x"]), 1)
    return frames


def test_framing_is_tonic_to_frame_as_the_oracle_bins_it() -> None:
    recordings, _ = synthetic_events(20, seed=2)
    tonic_frames = frame_transform(SYNTH_SENSOR, 7)
    for ev in recordings:
        assert np.array_equal(tonic_frames(ev), to_frame_numpy(ev, SYNTH_SENSOR, 7))


# ---------------------------------------------------------------- tonic datasets, true on-disk formats

def _events(n: int, w: int, h: int, seed: int, t_max: int = 300_000) -> np.ndarray:
    rng = np.random.default_rng(seed)
    ev = np.zeros(n, dtype=EVENT_DTYPE)
    ev["x"], ev["y"] = rng.integers(0, w, n), rng.integers(0, h, n)
    ev["t"], ev["p"] = np.sort(rng.integers(0, t_max, n)), rng.random(n) < 0.5
    return ev


def _nmnist_bin(ev: np.ndarray) -> bytes:
    """N-MNIST's 40-bit events: x, y, polarity in bit 7 + 23-bit timestamp (us), big-endian."""
    t = ev["t"].astype(np.int64)
    raw = np.stack([ev["x"], ev["y"], (ev["p"].astype(np.int64) << 7) | ((t >> 16) & 0x7F),
                    (t >> 8) & 0xFF, t & 0xFF], axis=1).astype(np.uint8)
    return raw.tobytes()


def _expected_spikes(ev: np.ndarray, sensor: tuple[int, int, int], timesteps: int) -> np.ndarray:
    return to_frame_numpy(ev, sensor, timesteps).reshape(timesteps, -1) > 0


def _write_nmnist(root: Path, folder: str, per_class: dict[int, int]) -> dict[str, np.ndarray]:
    written = {}
    for digit, count in per_class.items():
        for k in range(count):
            ev = _events(60, 34, 34, seed=100 * digit + k)
            path = root / "NMNIST" / folder / str(digit) / f"{k:05d}.bin"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(_nmnist_bin(ev))
            written[str(path)] = ev
    return written


def test_nmnist_through_tonic(tmp_path: Path) -> None:
    importlib.import_module("tonic")
    written = _write_nmnist(tmp_path, "Train", {0: 2, 3: 2, 7: 1})
    data = load_dataset("nmnist", "train", timesteps=5, data_dir=tmp_path)
    assert data.x.shape == (5, 5, 2 * 34 * 34) and data.encoding == "events" and data.num_classes == 10
    assert sorted(data.y.tolist()) == [0, 0, 3, 3, 7]
    expected = [_expected_spikes(ev, (34, 34, 2), 5) for ev in written.values()]
    for frames in data.x:  # every loaded sample is exactly one of the written recordings, binned like tonic
        assert sum(np.array_equal(frames, e) for e in expected) == 1
    assert data.x.sum() > 0


def test_nmnist_extracts_its_zip_and_never_downloads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tonic_datasets = importlib.import_module("tonic.datasets")
    monkeypatch.setattr(tonic_datasets.NMNIST, "download", lambda self: pytest.fail("tonic tried to download"))
    with pytest.raises(InputFileError) as e:
        load_dataset("nmnist", "test", data_dir=tmp_path)
    msg = str(e.value)
    assert str(tmp_path / "NMNIST") in msg and "Test/<digit>/<id>.bin" in msg and "test.zip" in msg
    staging = tmp_path / "staging"
    _write_nmnist(staging, "Test", {1: 1, 2: 1})
    (tmp_path / "NMNIST").mkdir()
    with zipfile.ZipFile(tmp_path / "NMNIST" / "test.zip", "w") as z:  # the archive holds Test/<digit>/...
        for f in sorted((staging / "NMNIST").rglob("*.bin")):
            z.write(f, f.relative_to(staging / "NMNIST"))
    data = load_dataset("nmnist", "test", timesteps=4, data_dir=tmp_path)
    assert sorted(data.y.tolist()) == [1, 2] and (tmp_path / "NMNIST" / "Test" / "1" / "00000.bin").is_file()


def test_tonic_layout_errors_name_the_layout(tmp_path: Path) -> None:
    importlib.import_module("tonic")
    stray = tmp_path / "NMNIST" / "Train" / "00001.bin"  # not inside a <digit> folder
    stray.parent.mkdir(parents=True)
    stray.write_bytes(_nmnist_bin(_events(5, 34, 34, seed=0)))
    with pytest.raises(InputFileError, match=r"does not follow the layout Train/<digit>/<id>\.bin"):
        load_dataset("nmnist", "train", data_dir=tmp_path)


def test_dvsgesture_through_tonic(tmp_path: Path) -> None:
    importlib.import_module("tonic")
    users = {"user01_fluorescent": (0, 4), "user02_led": (10,)}
    written = {}
    for user, labels in users.items():
        for label in labels:
            ev = _events(80, 128, 128, seed=label, t_max=2000)
            # tonic's preprocessed files: (N, 4) int array, columns x, y, p, t in milliseconds
            table = np.stack([ev["x"], ev["y"], ev["p"], ev["t"]], axis=1).astype(np.int64)
            path = tmp_path / "DVSGesture" / "ibmGestureTest" / user / f"{label}.npy"
            path.parent.mkdir(parents=True, exist_ok=True)
            np.save(path, table)
            ev_us = ev.copy()
            ev_us["t"] *= 1000
            written[label] = _expected_spikes(ev_us, (128, 128, 2), 6)
    data = load_dataset("dvsgesture", "test", timesteps=6, data_dir=tmp_path)
    assert data.x.shape == (3, 6, 2 * 128 * 128) and data.num_classes == 11
    assert sorted(data.y.tolist()) == [0, 4, 10]
    for frames, label in zip(data.x, data.y):
        assert np.array_equal(frames, written[int(label)])
    with pytest.raises(InputFileError, match="ibmGestureTrain.tar.gz"):
        load_dataset("dvsgesture", "train", data_dir=tmp_path)


def test_cifar10dvs_through_tonic(tmp_path: Path) -> None:
    """AEDAT4 files written by iniVation's dv-processing, read by tonic through the aedat package."""
    importlib.import_module("aedat")
    dv = importlib.import_module("dv_processing")
    written = {}
    for c, cls in enumerate(("airplane", "cat")):
        for k in range(3):
            ev = _events(50, 128, 128, seed=10 * c + k, t_max=1_000_000)
            store = dv.EventStore()
            for e in ev:
                store.push_back(int(e["t"]) + 1_000, int(e["x"]), int(e["y"]), bool(e["p"]))
            path = tmp_path / "CIFAR10DVS" / cls / f"cifar10_{cls}_{k}.aedat4"
            path.parent.mkdir(parents=True, exist_ok=True)
            writer = dv.io.MonoCameraWriter(str(path), dv.io.MonoCameraWriter.EventOnlyConfig("DVS128", (128, 128)))
            writer.writeEvents(store)
            del writer  # closes the file
            written[path.name] = ev
    train = load_dataset("cifar10dvs", "train", timesteps=3, data_dir=tmp_path)
    test = load_dataset("cifar10dvs", "test", timesteps=3, data_dir=tmp_path)
    assert len(train.y) == 4 and len(test.y) == 2 and sorted(test.y.tolist()) == [0, 3]  # 1 of 3 per class
    expected = [_expected_spikes(ev, (128, 128, 2), 3) for ev in written.values()]
    for frames in np.concatenate([train.x, test.x]):
        assert sum(np.array_equal(frames, e) for e in expected) == 1


# ---------------------------------------------------------------- the whole flow on event data

def test_cli_train_compile_verify_run_on_synthetic_events(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model, build = tmp_path / "m.pt", tmp_path / "build"
    assert train_main(["--dataset", "synthetic-events", "--epochs", "1", "--max-steps", "3", "--hidden", "16",
                       "--timesteps", "8", "--out", str(model), "--device", "cpu"]) == 0
    assert load(model).metadata["encoding"] == "events"
    assert compile_main([str(model), "--out", str(build), "--verify", "2"]) == 0
    assert "Verification PASS" in capsys.readouterr().out
    spec = json.loads((build / "manifest.json").read_text())["input"]
    assert spec["dataset"] == "synthetic-events" and spec["encoding"]["kind"] == "events" and spec["timesteps"] == 8
    assert run_main([str(build), "--samples", "20", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["samples"] == 20 and 0 <= res["accuracy"] <= 1 and res["dataset"] == "synthetic-events"


# ---------------------------------------------------------------- Spiking Heidelberg Digits

def _write_shd(path: Path, n: int, seed: int) -> tuple[np.ndarray, list[np.ndarray], list[np.ndarray]]:
    """An SHD split in the Heidelberg files' own HDF5 layout (Cramer et al. 2020; what tonic.datasets.SHD
    reads): spikes/times in seconds (float16) and spikes/units (uint16) as variable-length arrays per
    sample, labels, extra/keys and extra/speaker. Sample 0 has no spikes at all."""
    import h5py

    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 20, n).astype(np.uint16)
    times, units = [], []
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        t = f.create_dataset("spikes/times", (n,), dtype=h5py.vlen_dtype(np.dtype("float16")))
        u = f.create_dataset("spikes/units", (n,), dtype=h5py.vlen_dtype(np.dtype("uint16")))
        for i in range(n):
            k = 0 if i == 0 else int(rng.integers(20, 80))
            times.append(np.sort(rng.random(k) * 0.9).astype(np.float16))
            units.append(rng.integers(0, 700, k).astype(np.uint16))
            t[i], u[i] = times[-1], units[-1]
        f["labels"] = labels
        f["extra/keys"] = np.array([f"digit-{i}".encode() for i in range(20)])
        f["extra/speaker"] = rng.integers(0, 12, n).astype(np.uint16)
    return labels.astype(np.int64), times, units


def test_shd_through_tonic(tmp_path: Path) -> None:
    """Every sample is tonic's ToFrame of its spikes (T bins over the sample's own duration, channel =
    unit, binarised), only channels that spiked; the empty sample gives no spikes."""
    from tonic.transforms import ToFrame

    labels, times, units = _write_shd(tmp_path / "SHD" / "shd_test.h5", 12, seed=3)
    data = load_dataset("shd", "test", 0, timesteps=6, data_dir=tmp_path)
    assert data.x.shape == (12, 6, 700) and data.encoding == "events" and data.input_shape == (700,)
    order = np.random.default_rng(0).permutation(12)
    assert np.array_equal(data.y, labels[order]) and data.num_classes == 20
    for row, i in enumerate(order):
        if len(units[i]) == 0:
            assert not data.x[row].any()
            continue
        assert set(np.flatnonzero(data.x[row].any(axis=0))) <= set(units[i].tolist()) and data.x[row].any()
        ev = np.zeros(len(units[i]), dtype=[("t", int), ("x", int), ("p", int)])
        ev["t"], ev["x"], ev["p"] = times[i].astype(np.float64) * 1e6, units[i], 1
        expected = ToFrame(sensor_size=(700, 1, 1), n_time_bins=6)(ev).reshape(6, -1) > 0
        assert np.array_equal(data.x[row], expected)


def test_shd_missing_damaged_and_zipped(tmp_path: Path) -> None:
    with pytest.raises(InputFileError, match=r"shd_train\.h5 and shd_test\.h5.*zenkelab\.org/datasets"):
        load_dataset("shd", "train", data_dir=tmp_path)
    bad = tmp_path / "SHD" / "shd_train.h5"
    bad.parent.mkdir(parents=True)
    bad.write_bytes(b"not hdf5 at all")
    with pytest.raises(InputFileError, match=r"shd_train\.h5: not a readable SHD file"):
        load_dataset("shd", "train", data_dir=tmp_path)
    bad.unlink()
    staging = tmp_path / "staging" / "shd_train.h5"
    _write_shd(staging, 5, seed=1)
    with zipfile.ZipFile(tmp_path / "SHD" / "shd_train.h5.zip", "w") as z:   # as zenkelab.org serves it
        z.write(staging, "shd_train.h5")
    assert len(load_dataset("shd", "train", data_dir=tmp_path, timesteps=4).y) == 5 and bad.is_file()


def test_cli_train_compile_verify_on_shd(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for split, n in (("train", 40), ("test", 10)):
        _write_shd(tmp_path / "data" / "SHD" / f"shd_{split}.h5", n, seed=len(split))
    model, build = tmp_path / "m.pt", tmp_path / "build"
    assert train_main(["--dataset", "shd", "--data-dir", str(tmp_path / "data"), "--epochs", "1", "--max-steps",
                       "2", "--hidden", "16", "--timesteps", "8", "--out", str(model), "--device", "cpu"]) == 0
    assert load(model).metadata["encoding"] == "events"
    assert compile_main([str(model), "--out", str(build), "--verify", "2"]) == 0
    assert "Verification PASS" in capsys.readouterr().out
    spec = json.loads((build / "manifest.json").read_text())["input"]
    assert spec["dataset"] == "shd" and spec["encoding"]["kind"] == "events" and spec["shape"] == [700]


def test_synthetic_speech_needs_memory_of_the_first_syllable() -> None:
    """Both orders of a pair carry the same syllables: the time-summed frames of (a, b) and (b, a)
    are alike, the halves are swapped; deterministic per (seed, split), balanced over 12 classes."""
    from snnc.models.datasets import SPEECH_CHANNELS, SPEECH_PAIRS, synthetic_speech_sample

    a = load_dataset("synthetic-speech", "test", 3, timesteps=40, limit=120)
    b = load_dataset("synthetic-speech", "test", 3, timesteps=40, limit=120)
    assert a.x.shape == (120, 40, SPEECH_CHANNELS) and a.x.dtype == bool and a.encoding == "events"
    assert np.array_equal(a.x, b.x) and np.array_equal(a.y, b.y) and a.num_classes == 12
    assert np.bincount(load_dataset("synthetic-speech", "test", 3, timesteps=8).y).tolist() == [30] * 12
    ev = synthetic_speech_sample(0, np.random.default_rng(0))
    assert ev.dtype == EVENT_DTYPE and ev["x"].max() < SPEECH_CHANNELS and np.all(np.diff(ev["t"]) >= 0)
    halves = np.zeros((12, 2, SPEECH_CHANNELS))
    for c in range(12):
        x = a.x[a.y == c].astype(float)
        halves[c] = x[:, :20].sum(axis=(0, 1)), x[:, 20:].sum(axis=(0, 1))
    for c, (i, j) in enumerate(SPEECH_PAIRS):
        swapped = SPEECH_PAIRS.index((j, i))
        same = np.corrcoef(halves[c, 0], halves[swapped, 1])[0, 1]
        other = np.corrcoef(halves[c, 0], halves[c, 1])[0, 1]
        assert same > 0.9 > 0.5 > other, (c, same, other)


def test_artifacts_name_their_code_generator_and_older_ones_keep_torchs() -> None:
    """An input spec records numpy's generator and is coded with it; a spec from before the generator
    was recorded is coded with torch's, as it was then (its figures reproduce); an unknown one is refused."""
    from snnc.inputs import ENCODING_SEED, coded, input_spec

    data = load_dataset("digits", "test")
    for encoding in (None, "signed"):
        spec = input_spec({"dataset": "digits"}, 7, encoding)
        code = spec["encoding"]["kind"]
        assert spec["encoding"]["generator"] == "numpy PCG64"
        np.testing.assert_array_equal(coded(spec, data, 4, code), engine_spikes(data, slice(0, 4), 7, ENCODING_SEED, code))
        old = {**spec, "encoding": {k: v for k, v in spec["encoding"].items() if k != "generator"}}
        torch_code = batch_spikes(data, slice(0, 4), 7, torch.Generator().manual_seed(ENCODING_SEED), code)
        np.testing.assert_array_equal(coded(old, data, 4, code), to_engine_input(torch_code.numpy(), code))
        with pytest.raises(SnncError, match="generator 'mt19937' is not one this snnc has"):
            coded({**spec, "encoding": {**spec["encoding"], "generator": "mt19937"}}, data, 4, code)
