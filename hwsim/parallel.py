"""hwsim over many processes: a large test set split into shards, one process per shard.

Samples are independent (every one starts from zero state), so shards need no communication; the
result is the shards' results concatenated in order, identical to one process's run
(tests/test_hwsim_engines.py). Each worker gets ``cores // workers`` threads so that workers and
their thread pools do not oversubscribe the machine. The same split works across machines: run
``snn-run --shard K/N`` (``shard_range``) on each and add the counts.
"""
from __future__ import annotations

import multiprocessing as mp
import os
import signal
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Callable, Collection

import numpy as np

from snnc.compiler.ir import Graph
from snnc.hwsim.sim import HwSim, HwSimResult, merge_results
from snnc.processes import die_with_parent


#: the fewest samples in one chunk of a run that reports progress (a chunk is one engine call): small
#: chunks cost throughput (benchmarks/progress_overhead.py: 784-128-10, 2,000 samples, chunks of 100:
#: 0.72x one call; chunks >= 2,048: 1.02x; 10,000 samples in 5 chunks: 1.08x)
PROGRESS_CHUNK = 2048


def warm_up(graph: Graph, engine: str = "auto", device: str = "cpu") -> None:
    """Load the engine's compiled kernels (numba's cache) with a one-sample run, so that timing
    what follows measures simulation, not start-up."""
    x = np.zeros((1, 2, graph.input.size), dtype=np.int64 if graph.input.bits else bool)
    HwSim.from_graph(graph).run(x, engine=engine, device=device)


def _init_worker(threads: int, graph: Graph, engine: str, parent: int) -> None:
    """Limit the worker's thread pools (numba's and torch's) to its share of the cores; warm it up.
    The worker ends with its parent (a killed snn-run left both workers running before)."""
    import numba
    import torch

    die_with_parent(signal.SIGKILL, parent)

    numba.set_num_threads(max(1, min(threads, numba.config.NUMBA_NUM_THREADS)))
    torch.set_num_threads(max(1, threads))
    warm_up(graph, engine)


def _run_shard(graph: Graph, inputs: np.ndarray, engine: str, keep: Collection[str] | None) -> HwSimResult:
    return HwSim.from_graph(graph).run(inputs, engine=engine, keep=keep)


class HwSimPool:
    """hwsim ready to run on the CPU: kernels loaded and, with ``workers`` > 1, that many worker
    processes started (fresh, "spawn": no thread pool or Lava state inherited) and warmed up.
    Use as a context manager; :meth:`run` splits a batch into one contiguous shard per worker."""

    def __init__(self, graph: Graph, *, workers: int = 1, engine: str = "numba"):
        self.graph, self.workers, self.engine = graph, max(1, int(workers)), engine
        self._pool: ProcessPoolExecutor | None = None

    def __enter__(self) -> "HwSimPool":
        if self.workers == 1:
            warm_up(self.graph, self.engine)
            return self
        threads = max(1, (os.cpu_count() or 1) // self.workers)
        self._pool = ProcessPoolExecutor(self.workers, mp_context=mp.get_context("spawn"),
                                         initializer=_init_worker,
                                         initargs=(threads, self.graph, self.engine, os.getpid()))
        for f in [self._pool.submit(int) for _ in range(self.workers)]:   # start every worker now
            f.result()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def run(self, inputs: np.ndarray, keep: Collection[str] | None = None,
            progress: Callable[[str, int, int], None] | None = None) -> HwSimResult:
        """``keep`` as in :meth:`HwSim.run` (what travels back from the workers).

        ``progress(task, done, total)`` hears samples finished (task 'hwsim samples'): the batch then
        runs in chunks of at least :data:`PROGRESS_CHUNK` samples (at most 20, or 4 per worker),
        which gives the same result (samples are independent) at a little more overhead."""
        n = len(inputs)
        parts = 1 if self._pool is None or n < 2 else min(self.workers, n)
        if progress is not None:
            parts = max(parts, min(max(20, 4 * parts), -(-n // PROGRESS_CHUNK)))
        bounds = np.linspace(0, n, max(parts, 1) + 1).astype(int)
        chunks = list(zip(bounds[:-1], bounds[1:]))
        if self._pool is None or n < 2:
            if len(chunks) <= 1:
                res = HwSim.from_graph(self.graph).run(inputs, engine=self.engine, keep=keep)
                if progress is not None:
                    progress("hwsim samples", n, n)
                return res
            sim, results = HwSim.from_graph(self.graph), []
            for a, b in chunks:
                results.append(sim.run(inputs[a:b], engine=self.engine, keep=keep))
                if progress is not None:
                    progress("hwsim samples", int(b), n)
            return merge_results(results)
        futures = [self._pool.submit(_run_shard, self.graph, inputs[a:b], self.engine, keep) for a, b in chunks]
        if progress is not None:
            sizes, done = {f: int(b - a) for f, (a, b) in zip(futures, chunks)}, 0
            for f in as_completed(futures):
                f.result()
                done += sizes[f]
                progress("hwsim samples", done, n)
        return merge_results([f.result() for f in futures])


def run_sharded(graph: Graph, inputs: np.ndarray, *, workers: int, engine: str = "numba") -> HwSimResult:
    """Run ``inputs`` split over ``workers`` processes; ``workers`` <= 1 runs in this process."""
    with HwSimPool(graph, workers=workers, engine=engine) as pool:
        return pool.run(inputs)


def shard_range(total: int, shard: int, shards: int) -> range:
    """The sample indices of shard ``shard`` (0-based) of ``shards`` over ``total`` samples."""
    if not 0 <= shard < shards:
        raise ValueError(f"shard {shard} out of range for {shards} shards")
    bounds = np.linspace(0, total, shards + 1).astype(int)
    return range(int(bounds[shard]), int(bounds[shard + 1]))


def warm_kernels(say: Callable[[str], None] = print) -> int:
    """Compile the numba engine's kernels into numba's cache (``hwsim/__pycache__``, or
    ``$NUMBA_CACHE_DIR``) by running small networks of the shapes snnc builds through every path the
    engine takes: dense and sparse (event-driven) binary input, graded 8-bit input, a recurrent block,
    synaptic delays, a convolutional network, and one hardware-exact training step (the training
    kernels of models/recurrence.py, cached beside them). ``make install`` runs it (``python -m
    snnc.hwsim.parallel --warm-up``), so that a fresh environment's first ``snn-run`` loads compiled
    kernels instead of compiling them (~10 s; docs/performance.md, "Start-up"). A network that cannot
    be built here is skipped with a note (the kernels then compile on first use, as before); returns
    how many ran."""
    import torch

    from snnc.compiler.frontend import graph_from_module
    from snnc.compiler.passes import quantize
    from snnc.compiler.targets import get_target
    from snnc.models.network import ARCHS, random_delays
    from snnc.models.rules import make_rule

    def nets() -> list[tuple[str, Callable[[], object], tuple[int, ...]]]:
        return [("mlp", lambda: ARCHS["mlp"](64, 10, (32,)), (64,)),
                ("mlp, analog input", lambda: ARCHS["mlp"](64, 10, (32,), rule=make_rule("bpsta")), (64,)),
                ("rmlp", lambda: ARCHS["rmlp"](64, 10, (32,)), (64,)),
                ("mlp with delays", lambda: _delayed(ARCHS["mlp"](64, 10, (32,))), (64,)),
                ("lenet", lambda: ARCHS["lenet"](256, 10, input_shape=(1, 16, 16)), (1, 16, 16))]

    def _delayed(model: object) -> object:
        random_delays(model, 4, seed=0)   # type: ignore[arg-type]
        return model

    ran = 0
    target = get_target("loihi")
    for name, build, _shape in nets():
        try:
            torch.manual_seed(0)
            model = build()
            graph = quantize(graph_from_module(model), target)   # type: ignore[arg-type]
            rng = np.random.default_rng(0)
            n = graph.input.size
            for density in (0.01, 0.3):          # the event-driven path and the GEMM path
                x = (rng.integers(0, 256, (4, 8, n)) if graph.input.bits
                     else rng.random((4, 8, n)) < density)
                HwSim.from_graph(graph).run(x, engine="numba")
            ran += 1
        except Exception as e:  # a warm-up that cannot run costs the first run its compile time, nothing else
            say(f"numba warm-up: {name} skipped ({type(e).__name__}: {e})")
    try:   # training's hardware-exact kernels (models/recurrence.py): one forward and backward
        torch.manual_seed(0)
        model = ARCHS["mlp"](64, 10, (32,))
        x = (torch.rand(4, 8, 64) < 0.3).to(torch.float32)
        model(x)[-1].sum().backward()
        ran += 1
    except Exception as e:
        say(f"numba warm-up: training step skipped ({type(e).__name__}: {e})")
    return ran


if __name__ == "__main__":
    import sys
    import time

    if sys.argv[1:] != ["--warm-up"]:
        sys.exit("usage: python -m snnc.hwsim.parallel --warm-up")
    t0 = time.perf_counter()
    count = warm_kernels()
    print(f"numba kernels compiled and cached ({count} networks, {time.perf_counter() - t0:.1f} s)")
