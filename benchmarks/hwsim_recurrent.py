"""hwsim on recurrent networks: the numba engine vs the torch engine, and how the recurrent term is run.

    python benchmarks/hwsim_recurrent.py [--out bench-out] [--samples 512] [--json] [--quick]

Networks: 700 -> 256 (recurrent) -> 20 and 700 -> 256 (rec.) -> 256 (rec.) -> 20, T = 100, fed the
``synthetic-speech`` test recordings (SHD's 700-channel layout, binned to 100 steps: sparse, bursty
input; its density is reported). The weights are random integers in Lava's format (zero-mean
feed-forward, recurrent weights slightly inhibitory), each hidden layer's threshold bisected so
that it fires at a target rate on the first 32 recordings; the rates reached are reported.

1. numba (``HwSim.run(engine="numba")``: feed-forward synapses as one int8 GEMM over all steps, the
   recurrent synapse event by event inside the per-sample kernel's time loop) vs the torch engine
   (``simulate_block``: a float GEMM per step over the batch), samples/s measured in this run, start-up
   (numba's kernel cache) excluded, best of 3; both engines' spikes, v and counts compared on the
   samples the torch engine ran.
2. Event vs dense for the recurrent term: the recurrent block of 700-256r-20 alone (its
   feed-forward input precomputed, as the engine has it) at hidden rates from 2% to 40%: the
   engine's kernel (each sample's recurrent input event by event in its own time loop) against a
   dense alternative written here: all samples of a chunk step in lockstep and each step's
   recurrent input is one exact int8 GEMM over the batch (``torch._int_mm``, AMX / VNNI where the
   CPU has them), then a parallel numba neuron step. Both are checked equal to the engine;
   their calls are interleaved, best of 7.

3. Lava's fixed_pt simulator (``runtime/lava_backend.py``, recurrent Dense links included) on a few
   samples (``--lava-samples``, default 8: Lava is several hundred times slower), timed as snn-run
   runs it (the output recorded; simulation and read-back, not start-up), then recording every
   population, compared with hwsim spike for spike.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import machine  # noqa: E402

STEPS = 100
RATES = (0.02, 0.05, 0.1, 0.2, 0.4)
REPEATS = 7


def race(fns: dict[str, Any], repeats: int = REPEATS) -> dict[str, float]:
    """Best seconds of each function, their calls interleaved (a shared machine's load changes
    within seconds: figures compared with each other are measured side by side)."""
    for fn in fns.values():
        fn()
    best = {k: float("inf") for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            t = time.perf_counter()
            fn()
            best[k] = min(best[k], time.perf_counter() - t)
    return best


def rsnn_graph(hidden: tuple[int, ...], vths: tuple[int, ...], n_in: int = 700, n_out: int = 20, seed: int = 0) -> Any:
    """700 -> hidden[0] (rec.) -> ... -> n_out, random integer weights in Lava's format."""
    from snnc.compiler.ir import Graph, Input, Output, QCubaLIF, QDense

    rng = np.random.default_rng(seed)
    nodes: list[Any] = [Input("x", (n_in,))]
    edges: list[tuple[str, str]] = []
    prev, n_prev = "x", n_in
    for k, (n, vth) in enumerate(zip(hidden, vths), start=1):
        ff = QDense(f"fc{k}", 2 * rng.integers(-40, 48, (n, n_prev)))
        rec = QDense(f"rec{k}", 2 * rng.integers(-36, 32, (n, n)))
        lif = QCubaLIF(f"h{k}", n, du=410, dv=205, vth=vth, bias_mant=np.zeros(n, np.int64))
        nodes += [ff, rec, lif]
        edges += [(prev, ff.name), (ff.name, lif.name), (lif.name, rec.name), (rec.name, lif.name)]
        prev, n_prev = lif.name, n
    nodes += [QDense("fo", 2 * rng.integers(-48, 64, (n_out, n_prev))),
              QCubaLIF("o", n_out, du=410, dv=205, vth=400, bias_mant=np.zeros(n_out, np.int64)), Output("out")]
    edges += [(prev, "fo"), ("fo", "o"), ("o", "out")]
    return Graph.build(nodes, edges, {"source": "benchmarks/hwsim_recurrent.py"})


def calibrate(hidden: tuple[int, ...], rate: float, x: np.ndarray) -> tuple[Any, dict[str, float]]:
    """Thresholds bisected layer by layer so each hidden layer fires at about ``rate`` on ``x``."""
    from snnc.hwsim.sim import HwSim

    vths: list[int] = []
    for k in range(len(hidden)):
        lo, hi = 1, 2**16
        while hi - lo > 1:
            mid = (lo + hi) // 2
            g = rsnn_graph(hidden[:k + 1], (*vths, mid))
            r = HwSim.from_graph(g).run(x, engine="numba", keep=set())
            fired = next(a for a in r.activity if a.name == f"h{k + 1}")
            lo, hi = (mid, hi) if fired.spikes.sum() / (len(x) * STEPS * fired.neurons) > rate else (lo, mid)
        vths.append(hi)
    g = rsnn_graph(hidden, tuple(vths))
    r = HwSim.from_graph(g).run(x, engine="numba", keep=set())
    return g, {a.name: float(a.spikes.sum() / (len(x) * STEPS * a.neurons)) for a in r.activity}


def block_calls(graph: Any, x: np.ndarray) -> list[tuple]:
    """The arguments the engine passes its recurrent-block kernel, one call per chunk of samples (the
    feed-forward input already computed by its int8 GEMM): what both variants below start from."""
    from snnc.hwsim import kernels
    from snnc.hwsim.fast import FastEngine

    calls: list[tuple] = []
    real = kernels.lif_block
    kernels.lif_block = lambda *a: (calls.append(a), real(*a))[1]
    try:
        FastEngine(graph).run(x, keep=set())
    finally:
        kernels.lif_block = real
    return calls


def event_block(calls: list[tuple]) -> np.ndarray:
    """The engine's kernel: the recurrent synapse event by event in each sample's time loop."""
    from snnc.hwsim import kernels

    return np.concatenate([kernels.lif_block(*c)[0] for c in calls])


_STEP_ALL: list[Any] = []


def _step_all() -> Any:
    """The lockstep variant's neuron step (compiled once per process)."""
    if not _STEP_ALL:
        import numba

        from snnc.hwsim import kernels

        @numba.njit(parallel=True, nogil=True)
        def step_all(pre: np.ndarray, pre_mul: int, t: int, rec: np.ndarray, rec_mul: int, u: np.ndarray,
                     v: np.ndarray, bias: np.ndarray, keep_u: int, keep_v: int, vth: int, out: np.ndarray) -> None:
            n = u.shape[1]
            for b in numba.prange(u.shape[0]):
                a = np.zeros(n, dtype=np.int64)
                if t > 0:
                    for j in range(n):
                        a[j] = np.int64(pre[b, t - 1, j]) * pre_mul + np.int64(rec[b, j]) * rec_mul
                kernels._step(a, u[b], v[b], bias, keep_u, keep_v, 12, 6, 2**23, 2**23 - 1, vth, out[b, t])

        _STEP_ALL.append(step_all)
    return _STEP_ALL[0]


def lockstep_block(graph: Any, calls: list[tuple]) -> np.ndarray:
    """The dense alternative for a one-population recurrent block: all samples of a chunk step in
    lockstep; per step one exact int8 GEMM over the batch (``torch._int_mm``) gives the recurrent
    input, then a parallel numba neuron step. Same input (the engine's ``pre``), same spikes."""
    import torch

    from snnc.hwsim.fast import FastEngine

    step_all = _step_all()
    pop = graph.blocks()[0][0]
    (rec, _), neu = pop.recurrent_inputs[0], pop.neuron
    d_rec = FastEngine(graph).dense[rec.name]
    assert d_rec.int8 is not None and rec.weight_exp == 0 and neu.bias_exp >= 0
    bias = neu.bias_mant.astype(np.int64) << neu.bias_exp
    outs = []
    for c in calls:
        batch, steps, pre, pre_mul = c[0], c[1], c[3], int(c[5][0])
        assert c[6][0] == 0 and c[7].size == 0    # pre_exp 0, no feed-forward events
        n = neu.size
        u, v = np.zeros((batch, n), np.int64), np.zeros((batch, n), np.int64)
        out = np.zeros((batch, steps, n), dtype=bool)
        zero = np.zeros((batch, n), np.int32)
        for t in range(steps):
            r = torch._int_mm(torch.from_numpy(out[:, t - 1].view(np.int8)), d_rec.int8).numpy() if t else zero
            step_all(pre, pre_mul, t, r, d_rec.mul, u, v, bias, 4096 - neu.du, 4096 - neu.dv, neu.vth << 6, out)
        outs.append(out)
    return np.concatenate(outs)


def lava_check(graph: Any, x: np.ndarray) -> dict[str, Any]:
    """Lava's fixed_pt simulator on a few samples: timed as snn-run runs it (the output recorded
    only; simulation and read-back, not start-up), then recording every population, compared with
    hwsim spike for spike."""
    from snnc.hwsim.sim import HwSim
    from snnc.runtime.lava_backend import run_on_lava_full

    lean = run_on_lava_full(graph, x, record=(graph.output.name,)).stats
    full = run_on_lava_full(graph, x)
    hw = HwSim.from_graph(graph).run(x, engine="numba")
    mism = sum(int((full.spikes[k] != hw.spikes[k]).sum()) for k in full.spikes)
    return {"lava_samples": len(x), "lava_samples_per_s": len(x) / (lean.run_s + lean.read_s),
            "lava_ms_per_step": 1e3 * lean.run_s / (len(x) * STEPS),
            "lava_spikes_compared": int(sum(v.size for v in full.spikes.values())), "lava_mismatches": mism}


def engines(hidden: tuple[int, ...], rate: float, x: np.ndarray, torch_samples: int,
            lava_samples: int) -> dict[str, Any]:
    from snnc.hwsim.sim import HwSim

    graph, rates = calibrate(hidden, rate, x[:32])
    sim = HwSim.from_graph(graph)
    xt = x[:torch_samples]
    t = race({"numba": lambda: sim.run(x, engine="numba", keep={"o"}),
              "torch": lambda: sim.run(xt, engine="torch", keep={"o"})}, repeats=3)
    t_numba, t_torch = t["numba"], t["torch"]
    a, b = sim.run(xt, engine="numba"), sim.run(xt, engine="torch")
    mism = sum(int((a.spikes[k] != b.spikes[k]).sum()) for k in a.spikes)
    same = mism == 0 and all((a.final_v[k] == b.final_v[k]).all() for k in a.final_v) and all(
        (p.synops == q.synops).all() and (p.active_updates == q.active_updates).all()
        for p, q in zip(a.activity, b.activity))
    name = f"700-{'-'.join(f'{h}r' for h in hidden)}-20"
    lava = lava_check(graph, x[:lava_samples]) if lava_samples else {}
    return {**lava, "network": name, "hidden_rates": rates, "numba_samples": len(x), "numba_samples_per_s": len(x) / t_numba,
            "torch_samples": len(xt), "torch_samples_per_s": len(xt) / t_torch, "numba_over_torch": t_torch / len(xt)
            * len(x) / t_numba, "spikes_compared": int(sum(s.size for s in a.spikes.values())),
            "mismatches": mism, "identical_v_and_counts": bool(same)}


def event_vs_dense(rate: float, x: np.ndarray) -> dict[str, Any]:
    """The recurrent block alone (its feed-forward input precomputed, as the engine has it): the
    engine's event kernel vs the dense lockstep alternative, interleaved, on the same input."""
    from snnc.hwsim.sim import HwSim

    graph, rates = calibrate((256,), rate, x[:32])
    want = HwSim.from_graph(graph).run(x, engine="numba", keep={"h1"}).spikes["h1"]
    calls = block_calls(graph, x)
    assert np.array_equal(event_block(calls), want) and np.array_equal(lockstep_block(graph, calls), want)
    t = race({"event": lambda: event_block(calls), "dense": lambda: lockstep_block(graph, calls)})
    return {"target_rate": rate, "hidden_rate": rates["h1"], "event_samples_per_s": len(x) / t["event"],
            "dense_lockstep_samples_per_s": len(x) / t["dense"], "event_over_dense": t["dense"] / t["event"]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("bench-out"))
    p.add_argument("--samples", type=int, default=512, help="samples for the numba engine (torch runs a quarter)")
    p.add_argument("--quick", action="store_true", help="128 samples, fewer rates (a smoke run)")
    p.add_argument("--lava-samples", type=int, default=8, help="samples for Lava (0: skip Lava)")
    p.add_argument("--threads", type=int, default=0, help="threads for numba and torch (default: all cores)")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    if args.threads:
        import numba
        import torch

        import snnc.hwsim.kernels  # noqa: F401  (selects numba's threading layer first)

        numba.set_num_threads(args.threads)
        torch.set_num_threads(args.threads)
    from snnc.models.datasets import load_dataset

    n = 128 if args.quick else args.samples
    ds = load_dataset("synthetic-speech", "test", timesteps=STEPS, limit=min(n, 360))
    x = np.concatenate([ds.x] * -(-n // len(ds.x)))[:n].astype(bool)
    t0 = time.time()
    res: dict[str, Any] = {"machine": machine(), "threads": args.threads or "all", "timesteps": STEPS, "input": "synthetic-speech test set",
                           "input_density": float(x.mean()), "engines": [], "event_vs_dense": []}
    for hidden in ((256,), (256, 256)):
        res["engines"].append(engines(hidden, 0.1, x, max(16, n // 4), args.lava_samples))
        print(json.dumps(res["engines"][-1]), file=sys.stderr)
    for rate in (RATES[::2] if args.quick else RATES):
        res["event_vs_dense"].append(event_vs_dense(rate, x))
        print(json.dumps(res["event_vs_dense"][-1]), file=sys.stderr)
    res["wall_s"] = time.time() - t0
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "hwsim_recurrent.json").write_text(json.dumps(res, indent=1))
    if args.json:   # one line: benchmarks/run_all.py reads the last line
        print(json.dumps(res))
        return
    print(f"input density {res['input_density']:.3%} (synthetic-speech, T={STEPS})")
    print("| network | hidden rates | numba samples/s | torch samples/s | **numba / torch** | Lava samples/s "
          "(ms/step) | **numba / Lava** | spikes compared (torch; Lava), mismatches |")
    print("|---|---|---|---|---|---|---|---|")
    for e in res["engines"]:
        hr = " / ".join(f"{v:.1%}" for k, v in e["hidden_rates"].items() if k != "o")
        lava = (f"{e['lava_samples_per_s']:.2f} ({e['lava_samples']}; {e['lava_ms_per_step']:.2f}) | "
                f"**{e['numba_samples_per_s'] / e['lava_samples_per_s']:,.0f}x**") if "lava_samples" in e else "- | -"
        lava_cmp = f"; {e['lava_spikes_compared']:,}, {e['lava_mismatches']}" if "lava_samples" in e else ""
        print(f"| {e['network']} | {hr} | {e['numba_samples_per_s']:,.0f} ({e['numba_samples']}) | "
              f"{e['torch_samples_per_s']:,.0f} ({e['torch_samples']}) | **{e['numba_over_torch']:.1f}x** | {lava} | "
              f"{e['spikes_compared']:,}, {e['mismatches']}{lava_cmp} |")
    print("\n| hidden rate | recurrent block, events: samples/s | dense lockstep int8 GEMM: samples/s | events / dense |")
    print("|---|---|---|---|")
    for e in res["event_vs_dense"]:
        print(f"| {e['hidden_rate']:.1%} | {e['event_samples_per_s']:,.0f} | {e['dense_lockstep_samples_per_s']:,.0f} "
              f"| {e['event_over_dense']:.2f} |")


if __name__ == "__main__":
    main()
