"""Compile time and peak memory of the model-zoo networks (``snn-compile``, one child process each).

    python benchmarks/compile_time.py [--out bench-out] [--json]

Each zoo architecture is built untrained (random weights: compile time does not depend on training)
for its usual input (MNIST-shaped 1x28x28 for mlp/lenet, CIFAR-10-shaped 3x32x32 for the CIFAR nets;
docs/models.md lists the sizes that fit a Nahuku board), saved as a checkpoint, and compiled with
``snn-compile MODEL --target loihi --out DIR`` (no --verify: Lava's time is benchmarked apart).
The wall time of the whole command (interpreter start-up and imports included) and the peak
resident memory of its process tree are reported, with the stages' own time from report.json
where the artifact records it.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import BIN, machine  # noqa: E402

#: zoo architecture -> (input shape, timesteps)
ZOO: dict[str, tuple[tuple[int, ...], int]] = {
    "mlp": ((1, 28, 28), 100),
    "lenet": ((1, 28, 28), 100),
    "cifarnet": ((3, 32, 32), 20),
    "vgg9": ((3, 32, 32), 20),
    "resnet11": ((3, 32, 32), 20),
}


def save_model(arch: str, path: Path) -> None:
    """(child) build ``arch`` with random weights and save it as snn-train would."""
    from snnc.models.checkpoint import save
    from snnc.models.network import ARCHS

    shape, steps = ZOO[arch]
    size = int(__import__("numpy").prod(shape))
    kw: dict[str, Any] = {"hidden": (256,)} if arch == "mlp" else {}
    model = ARCHS[arch](size, 10, input_shape=shape, **kw)
    save(model, path, metadata={"timesteps": steps})


def measure(arch: str, out: Path) -> dict[str, Any]:
    import psutil

    model = out / f"zoo-{arch}.pt"
    subprocess.run([sys.executable, __file__, "--save", arch, str(model)], check=True)
    build = out / f"zoo-{arch}.loihi"
    t0 = time.perf_counter()
    proc = subprocess.Popen([str(BIN / "snn-compile"), str(model), "--target", "loihi", "--out", str(build)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak = 0
    ps = psutil.Process(proc.pid)
    while proc.poll() is None:
        try:
            peak = max(peak, sum(p.memory_info().rss for p in [ps, *ps.children(recursive=True)]))
        except psutil.Error:
            pass
        time.sleep(0.02)
    wall = time.perf_counter() - t0
    _, err = proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"snn-compile {model} failed:\n{err[-2000:]}")
    report = json.loads((build / "report.json").read_text())
    mapping = report.get("mapping", {})
    return {"arch": arch, "input_shape": list(ZOO[arch][0]), "timesteps": ZOO[arch][1], "compile_s": wall,
            "peak_mib": peak / 2**20, "cores": mapping.get("cores"),
            "neurons": sum(layer.get("neurons", 0) for layer in mapping.get("layers", []))}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("bench-out"))
    p.add_argument("--archs", nargs="+", default=list(ZOO), choices=list(ZOO))
    p.add_argument("--json", action="store_true")
    p.add_argument("--save", nargs=2, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.save:
        save_model(args.save[0], Path(args.save[1]))
        return
    args.out.mkdir(parents=True, exist_ok=True)
    rows = [measure(a, args.out.resolve()) for a in args.archs]
    report = {"benchmark": "compile_time", "machine": machine(), "results": rows}
    if args.json:
        print(json.dumps(report))
        return
    for r in rows:
        print(f"{r['arch']:9s} input {r['input_shape']} T={r['timesteps']:3d}: {r['compile_s']:6.1f} s, "
              f"peak {r['peak_mib']:6.0f} MiB, {r['neurons']} neurons on {r['cores']} cores")


if __name__ == "__main__":
    main()
