"""What snn-run's progress costs hwsim: one engine call against the chunks a progress callback asks for.

    python benchmarks/progress_overhead.py [--samples 10000] [--repeats 5]

A 784-128-10 MLP (random weights, every layer active) on Bernoulli input at rate 0.2, T=20, run by
``HwSimPool.run`` on one worker: without a callback (one call), with one (chunks of at least
``hwsim.parallel.PROGRESS_CHUNK`` samples) and, for contrast, with chunks of 64. Prints the best of
``--repeats`` runs as samples/s and each ratio to the single call, measured in this one run.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from snnc.compiler.artifact import load_artifact
from snnc.hwsim import parallel
from snnc.hwsim.parallel import HwSimPool
from snnc.models.checkpoint import save
from snnc.models.network import mlp
from snnc.pipeline import compile_model


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--samples", type=int, default=10_000)
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args(argv)
    torch.manual_seed(0)
    model = mlp(784, 10, hidden=(128,))
    with torch.no_grad():
        for layer in model.layers:
            layer.weight.mul_(3.0)
    model.refit_formats()
    with tempfile.TemporaryDirectory() as tmp:
        save(model, Path(tmp) / "m.pt", metadata={"timesteps": 20})
        art = load_artifact(compile_model(Path(tmp) / "m.pt", out=Path(tmp) / "art").out)
    x = np.random.default_rng(0).random((args.samples, 20, 784)) < 0.2
    keep = {art.graph.output.name}
    best: dict[str, float] = {}
    configured = parallel.PROGRESS_CHUNK
    with HwSimPool(art.graph, workers=1) as pool:
        pool.run(x[:16], keep=keep)
        for _ in range(args.repeats):
            for name, chunk, prog in (("one call", configured, None),
                                      (f"progress, chunks >= {configured}", configured, lambda *a: None),
                                      ("progress, chunks >= 64", 64, lambda *a: None)):
                parallel.PROGRESS_CHUNK = chunk
                t = time.perf_counter()
                pool.run(x, keep=keep, progress=prog)
                best[name] = max(best.get(name, 0.0), args.samples / (time.perf_counter() - t))
    parallel.PROGRESS_CHUNK = configured
    base = best["one call"]
    for name, rate in best.items():
        print(f"{name:28s} {rate:9.0f} samples/s   {rate / base:.2f}x one call")
    return 0


if __name__ == "__main__":
    sys.exit(main())
