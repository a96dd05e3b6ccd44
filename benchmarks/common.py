"""What the benchmarks share: the machine's description, a child-process runner that measures peak
memory of the whole process tree (Lava runs one OS process per Lava process), the made MNIST- and
N-MNIST-format data they use, and the compiled benchmark networks, built with the user's own commands.

The data: these machines cannot download MNIST or N-MNIST, so both are made from scikit-learn's 8x8
digits upscaled to 28x28: 1437 training images, and test sets drawn from the 360 held-out digits shifted
by up to 2 pixels (10,000 by default for MNIST, so that throughput is measured on a test set of its
size). ``mnist_like`` writes the images in MNIST's true on-disk format (gzipped IDX) where ``--dataset
mnist`` reads them; ``nmnist_like`` records them as N-MNIST was recorded, with a simulated DVS watching
each digit move along three saccades, into N-MNIST's 40-bit .bin event files where ``--dataset nmnist``
reads them. Neither is the real dataset: they are input of its shape and format with realistic (sparse,
structured) activity.
"""
from __future__ import annotations

import gzip
import json
import os
import platform
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

BIN = Path(sys.executable).parent


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(), "torch": torch.__version__,
            "numpy": np.__version__, "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}


def best_time(fn: Callable[[], Any], repeats: int = 3) -> float:
    """Seconds of the fastest of ``repeats`` calls, after one warm-up call (the machine is shared)."""
    fn()
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def run_child(cmd: list[str], *, timeout: float = 1800) -> tuple[dict[str, Any], float]:
    """Run ``cmd`` (which prints one JSON object as its last stdout line); returns that object and the
    peak resident memory in MiB of the child's whole process tree, sampled every 20 ms."""
    import psutil

    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        root = psutil.Process(proc.pid)
        while not done.is_set():
            try:
                procs = [root, *root.children(recursive=True)]
                peak = max(peak, sum(p.memory_info().rss for p in procs if p.is_running()))
            except psutil.Error:
                pass
            time.sleep(0.02)

    watcher = threading.Thread(target=sample, daemon=True)
    watcher.start()
    try:
        out, err = proc.communicate(timeout=timeout)
    finally:
        done.set()
        watcher.join()
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{err[-3000:]}")
    return json.loads(out.strip().splitlines()[-1]), peak / 2**20


def _idx_gz(path: Path, array: np.ndarray) -> None:
    """MNIST's file format: big-endian magic 0x0000080N, N dims, then unsigned bytes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    header = struct.pack(f">I{array.ndim}I", 0x800 + array.ndim, *array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + np.ascontiguousarray(array, dtype=np.uint8).tobytes())


#: scikit-learn's digits that are training images (the first 1437 of the seeded order; 80 %)
TRAIN_DIGITS = 1437


def _digit_images(seed: int) -> tuple[np.ndarray, np.ndarray, np.random.Generator]:
    """scikit-learn's 1797 digits in a seeded order, upscaled (bilinear) to 24x24 and padded to 28x28
    as MNIST centres its digits in a 2-px margin: (images (n, 28, 28) in [0, 1], labels, the rng that
    drew the order, for the test draws)."""
    import torch
    from sklearn.datasets import load_digits

    digits = load_digits()
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(digits.target))
    images = torch.from_numpy(digits.images[order] / 16.0).float()[:, None]
    big = torch.nn.functional.interpolate(images, size=(24, 24), mode="bilinear", align_corners=False)
    big = torch.nn.functional.pad(big, (2, 2, 2, 2))[:, 0].clamp(0, 1).numpy()
    return big, digits.target[order], rng


def _test_draws(images: np.ndarray, labels: np.ndarray, test_size: int,
                rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``test_size`` test images drawn with replacement from the held-out digits, each shifted by up to
    2 px (within the margin, so no stroke wraps around): (images, labels)."""
    source = rng.integers(TRAIN_DIGITS, len(labels), test_size)
    shifts = rng.integers(-2, 3, (test_size, 2))
    test = np.stack([np.roll(images[i], tuple(s), axis=(0, 1)) for i, s in zip(source, shifts)])
    return test, labels[source]


def mnist_like(data_dir: Path, test_size: int = 10_000, seed: int = 0) -> Path:
    """Write the MNIST-format files described in the module docstring (once); returns ``data_dir``."""
    folder = data_dir / "mnist"
    if (folder / "t10k-labels-idx1-ubyte.gz").is_file():
        return data_dir
    images, labels, rng = _digit_images(seed)
    test, test_labels = _test_draws(images, labels, test_size, rng)
    _idx_gz(folder / "train-images-idx3-ubyte.gz", np.round(images[:TRAIN_DIGITS] * 255))
    _idx_gz(folder / "train-labels-idx1-ubyte.gz", labels[:TRAIN_DIGITS])
    _idx_gz(folder / "t10k-images-idx3-ubyte.gz", np.round(test * 255))
    _idx_gz(folder / "t10k-labels-idx1-ubyte.gz", test_labels)
    return data_dir


# ---------------------------------------------------------------- N-MNIST-format events

#: N-MNIST's sensor: the ATIS's 34x34 pixels, enough for a 28x28 digit moving a few pixels
SENSOR = 34
#: where the 28x28 image's top-left corner is at the start and end of each of the three 100-ms
#: saccades, (x, y) px: N-MNIST's triangle (down-right, up-right, back left; tonic's ``stabilize``
#: undoes +3.5/+7, +3.5/-7, -7/0 px) scaled to stay inside the 34x34 frame
SACCADE_CORNERS = np.array([(0.0, 0.0), (3.0, 6.0), (6.0, 0.0), (0.0, 0.0)])
STEP_US = 1000                # simulation step: 1 ms
STEPS = 300                   # three saccades of 100 ms, N-MNIST's ~300 ms recordings
#: DVS pixel model: an event each time log(I + LOG_EPS) moves CONTRAST from the pixel's reference
#: level; each pixel's ON and OFF threshold is CONTRAST x (1 + N(0, THRESHOLD_JITTER)) (mismatch)
CONTRAST = 0.3
THRESHOLD_JITTER = 0.1
LOG_EPS = 0.2                 # the monitor's black is not black: background light, bounds the log
NOISE_EVENTS = 30             # mean background-activity events per recording (~0.1 Hz per pixel)
RECORD_BATCH = 256            # images simulated at once (memory: a few (batch, 34, 34) arrays)


def _placed(images: np.ndarray, x: float, y: float) -> np.ndarray:
    """(B, 28, 28) images in the (B, 34, 34) frame with their top-left corner at sub-pixel (x, y):
    a bilinear shift, the four integer placements around (x, y) weighted by their overlap."""
    ix, iy = int(np.floor(x)), int(np.floor(y))
    fx, fy = x - ix, y - iy
    n, h, w = images.shape
    frame = np.zeros((n, SENSOR, SENSOR), dtype=np.float32)
    for dy, wy in ((0, 1 - fy), (1, fy)):
        for dx, wx in ((0, 1 - fx), (1, fx)):
            if wx * wy > 0:
                frame[:, iy + dy:iy + dy + h, ix + dx:ix + dx + w] += np.float32(wx * wy) * images
    return frame


def _crossings(count: np.ndarray, ref: np.ndarray, step: np.ndarray, before: np.ndarray,
               after: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One polarity's events in one time step, all pixels at once (flat arrays): pixel ``i`` with
    ``count[i]`` crossings emits them at the levels ref + j * step (j = 1..count; ``step`` signed),
    each at the fraction of the step where its log intensity, linear from ``before`` to ``after``,
    reaches that level. Returns (each event's flat pixel index, its fraction of the step in [0, 1])."""
    where = np.flatnonzero(count)
    n = count[where]
    pixel = np.repeat(where, n)
    j = np.arange(len(pixel)) - np.repeat(np.cumsum(n) - n, n) + 1
    level = ref[pixel] + j * step[pixel]
    return pixel, np.clip((level - before[pixel]) / (after[pixel] - before[pixel]), 0.0, 1.0)


def _record(images: np.ndarray, rngs: list[np.random.Generator]) -> list[np.ndarray]:
    """DVS recordings of ``images`` (B, 28, 28) moving along the saccades: per image an (n, 4) int64
    array of x, y, t [us], p (1 = ON), sorted by t. ``rngs`` (one per image) draw its pixels'
    thresholds and its background noise, so a recording does not depend on how images are batched."""
    pixels = SENSOR * SENSOR

    def thresholds() -> np.ndarray:
        jitter = np.concatenate([r.standard_normal(pixels) for r in rngs])
        return (CONTRAST * np.maximum(1 + THRESHOLD_JITTER * jitter, 0.5)).astype(np.float32)

    def log_frame(k: int) -> np.ndarray:
        return np.log(_placed(images, xs[k], ys[k]) + np.float32(LOG_EPS)).ravel()

    c_on, c_off = thresholds(), thresholds()
    corners = np.arange(len(SACCADE_CORNERS))
    saccades = np.linspace(0, corners[-1], STEPS + 1)     # the step boundaries, in saccades
    xs, ys = (np.interp(saccades, corners, SACCADE_CORNERS[:, c]) for c in (0, 1))
    before = log_frame(0)
    ref = before.copy()                   # the pixels have adapted to the still digit
    parts = []
    for k in range(STEPS):
        after = log_frame(k + 1)
        on = np.floor(np.maximum(after - ref, 0) / c_on).astype(np.int64)
        off = np.floor(np.maximum(ref - after, 0) / c_off).astype(np.int64)
        for count, step, polarity in ((on, c_on, 1), (off, -c_off, 0)):
            pixel, frac = _crossings(count, ref, step, before, after)
            sample, yx = np.divmod(pixel, pixels)
            y, x = np.divmod(yx, SENSOR)
            t = np.round((k + frac) * STEP_US).astype(np.int64)
            parts.append(np.stack([sample, x, y, t, np.full_like(sample, polarity)], axis=1))
        ref += on * c_on - off * c_off
        before = after
    for i, r in enumerate(rngs):          # background activity: uniform in space, time and polarity
        n = r.poisson(NOISE_EVENTS)
        parts.append(np.stack([np.full(n, i), r.integers(0, SENSOR, n), r.integers(0, SENSOR, n),
                               r.integers(0, STEPS * STEP_US, n), r.integers(0, 2, n)], axis=1))
    events = np.concatenate(parts)
    events = events[np.lexsort((events[:, 3], events[:, 0]))]     # by sample, then time
    bounds = np.searchsorted(events[:, 0], np.arange(1, len(rngs)))
    return [ev[:, 1:] for ev in np.split(events, bounds)]


def _nmnist_bin(ev: np.ndarray) -> bytes:
    """N-MNIST's 40-bit events from (n, 4) int64 x, y, t [us], p: bytes x, y, then polarity in bit 7 and
    the 23-bit timestamp, big-endian (the encoder tests/test_datasets.py checks against tonic's reader)."""
    x, y, t, p = ev.T
    raw = np.stack([x, y, (p << 7) | ((t >> 16) & 0x7F), (t >> 8) & 0xFF, t & 0xFF], axis=1).astype(np.uint8)
    return raw.tobytes()


def nmnist_like(data_dir: Path, n_train: int | None = None, test_size: int = 2000, seed: int = 0) -> Path:
    """Write the N-MNIST-format recordings described in the module docstring (once): the first
    ``n_train`` training digits (None: all 1437) to ``NMNIST/Train/<digit>/<id>.bin`` and ``test_size``
    shifted held-out digits to ``NMNIST/Test/...``, with the digits, order and test draws of
    :func:`mnist_like`. Each recording's thresholds and noise are seeded by (seed, split, id), so a
    file does not depend on which images were simulated with it. Returns ``data_dir``."""
    root = data_dir / "NMNIST"
    # the test split's last file is written last: if it is there, so is everything
    if next((root / "Test").glob(f"*/{test_size - 1:05d}.bin"), None) is not None:
        return data_dir
    images, labels, rng = _digit_images(seed)
    test, test_labels = _test_draws(images, labels, test_size, rng)
    n = TRAIN_DIGITS if n_train is None else min(n_train, TRAIN_DIGITS)
    for code, (split, split_images, split_labels) in enumerate((("Train", images[:n], labels[:n]),
                                                                ("Test", test, test_labels))):
        for start in range(0, len(split_labels), RECORD_BATCH):
            ids = range(start, min(start + RECORD_BATCH, len(split_labels)))
            recordings = _record(split_images[ids.start:ids.stop],
                                 [np.random.default_rng([seed, code, i]) for i in ids])
            for i, ev in zip(ids, recordings):
                path = root / split / str(split_labels[i]) / f"{i:05d}.bin"
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(_nmnist_bin(ev))
    return data_dir


#: the benchmark networks: snn-train arguments (trained briefly at T=20; compiled for T=100) and how
#: many test samples each engine runs (Lava needs ~70 s per LeNet sample here; hwsim ~0.1 s)
NETWORKS: dict[str, dict[str, Any]] = {
    "mlp": {"train": ["--arch", "mlp", "--hidden", "256", "--epochs", "3"], "title": "MLP 784-256-10",
            "hwsim_samples": 10_000, "lava_samples": 16},
    "lenet": {"train": ["--arch", "lenet", "--epochs", "1", "--max-steps", "6"],
              "title": "LeNet 20C5-P2-50C5-P2-200-10", "hwsim_samples": 500, "lava_samples": 1},
}


def artifact(name: str, out: Path, timesteps: int = 100) -> Path:
    """Train (briefly) and compile benchmark network ``name`` with snn-train / snn-compile; cached.
    Training evaluates on a 360-image test set (its own data dir): snn-train tests every epoch."""
    build = out / f"{name}.T{timesteps}"
    if (build / "manifest.json").is_file():
        return build
    model = out / f"{name}.pt"
    if not model.is_file():
        data_dir = mnist_like(out / "data-train", test_size=360)
        subprocess.run([str(BIN / "snn-train"), "--dataset", "mnist", "--data-dir", str(data_dir),
                        *NETWORKS[name]["train"], "--timesteps", "20", "--out", str(model)],
                       check=True, stdout=subprocess.DEVNULL)
    subprocess.run([str(BIN / "snn-compile"), str(model), "--target", "loihi", "--timesteps", str(timesteps),
                    "--out", str(build)], check=True, stdout=subprocess.DEVNULL)
    return build
