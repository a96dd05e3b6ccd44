"""What the benchmarks share: the machine's description, a child-process runner that measures peak
memory of the whole process tree (Lava runs one OS process per Lava process), the MNIST-format data
they use, and the compiled benchmark networks, built with the user's own commands.

The data: these machines cannot download MNIST, so ``mnist_like`` writes scikit-learn's 8x8 digits,
upscaled to 28x28, in MNIST's true on-disk format (gzipped IDX) where ``--dataset mnist`` reads them:
1437 training images, and a 10,000-image test set made of the 360 held-out digits shifted by up to 2
pixels (so that throughput is measured on a test set of MNIST's size). Not MNIST: MNIST-shaped input
with realistic (sparse, structured) activity.
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


def mnist_like(data_dir: Path, test_size: int = 10_000, seed: int = 0) -> Path:
    """Write the MNIST-format files described in the module docstring (once); returns ``data_dir``."""
    folder = data_dir / "mnist"
    if (folder / "t10k-labels-idx1-ubyte.gz").is_file():
        return data_dir
    import torch
    from sklearn.datasets import load_digits

    digits = load_digits()
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(digits.target))
    images = torch.from_numpy(digits.images[order] / 16.0).float()[:, None]
    big = torch.nn.functional.interpolate(images, size=(24, 24), mode="bilinear", align_corners=False)
    big = torch.nn.functional.pad(big, (2, 2, 2, 2))[:, 0].clamp(0, 1).numpy()     # 28x28, MNIST's 2-px margin
    labels = digits.target[order]
    n_train = 1437
    test_src = rng.integers(n_train, len(labels), test_size)
    shifts = rng.integers(-2, 3, (test_size, 2))
    test = np.stack([np.roll(big[i], tuple(s), axis=(0, 1)) for i, s in zip(test_src, shifts)])
    _idx_gz(folder / "train-images-idx3-ubyte.gz", np.round(big[:n_train] * 255))
    _idx_gz(folder / "train-labels-idx1-ubyte.gz", labels[:n_train])
    _idx_gz(folder / "t10k-images-idx3-ubyte.gz", np.round(test * 255))
    _idx_gz(folder / "t10k-labels-idx1-ubyte.gz", labels[test_src])
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
