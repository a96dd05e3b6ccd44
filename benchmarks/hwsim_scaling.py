"""How hwsim's cost grows with timesteps, batch, layer width and input activity (one plot).

    python benchmarks/hwsim_scaling.py [--out bench-out] [--plot docs/performance.png] [--json]

Random fixed-point MLPs (zero-mean integer weights in Lava's format, CUBA-LIF with decays 1/10,
thresholds scaled with the fan-in; each point reports its layers' spike rates), rate-coded random input, the numba engine in this
process (best of 3 runs per point, start-up excluded). Each point is also timed as a dense float32
GEMM of the same layer shapes (the arithmetic limit hwsim is compared with), and the activity sweep
runs the event-driven path and the GEMM path separately, to show where events pay.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import best_time, machine  # noqa: E402


VTH_GAIN = 5.0   # threshold = this x the std of one step's input at rate 0.1: hidden rates ~1-20%


def mlp_graph(sizes: tuple[int, ...], seed: int = 0) -> Any:
    """A random fixed-point MLP; under rate-0.1 input the 784-256-10 one spikes at ~10% / 20%."""
    from snnc.compiler.ir import Graph, Input, Output, QCubaLIF, QDense

    rng = np.random.default_rng(seed)
    nodes: list[Any] = [Input("in", (sizes[0],))]
    for k, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:]), start=1):
        w = rng.integers(-64, 64, (n_out, n_in)) * 2
        vth = max(1, int(VTH_GAIN * 74 * np.sqrt(0.1 * n_in)))   # x the std of one step's input at rate 0.1
        nodes += [QDense(f"fc{k}", w), QCubaLIF(f"lif{k}", n_out, 410, 410, vth, np.zeros(n_out, np.int64))]
    return Graph.chain([*nodes, Output("out")])


def point(sizes: tuple[int, ...], steps: int, batch: int, rate: float, event_density: float | None = None) -> dict:
    """samples/s of hwsim and of float32 GEMMs of the same shapes; hidden-layer spike rates."""
    import torch

    from snnc.hwsim.fast import EVENT_DENSITY, FastEngine

    g = mlp_graph(sizes)
    x = np.random.default_rng(1).random((batch, steps, sizes[0])) < rate
    eng = FastEngine(g, event_density=EVENT_DENSITY if event_density is None else event_density)
    t_hw = best_time(lambda: eng.run(x))
    res = eng.run(x[: min(batch, 64)])
    rates = {a.name: float(a.spikes.sum() / (res.batch * steps * a.neurons)) for a in res.activity}
    rows = min(batch, 128) * steps
    mats = [(torch.rand(rows, a) < rate).float() for a in sizes[:-1]]
    ws = [torch.randn(a, b) for a, b in zip(sizes[:-1], sizes[1:])]
    t_f32 = sum(best_time(lambda m=m, w=w: m @ w) for m, w in zip(mats, ws)) * batch / min(batch, 128)
    return {"sizes": list(sizes), "timesteps": steps, "batch": batch, "input_rate": rate,
            "hwsim_samples_per_s": batch / t_hw, "float32_gemm_samples_per_s": batch / t_f32,
            "us_per_sample_step": 1e6 * t_hw / (batch * steps), "spike_rates": rates}


def sweeps(quick: bool) -> dict[str, list[dict]]:
    mlp = (784, 256, 10)
    b = 256 if quick else 1024
    out: dict[str, list[dict]] = {}
    out["timesteps"] = [point(mlp, t, b, 0.1) for t in (25, 50, 100, 200, 400)]
    out["batch"] = [point(mlp, 100, n, 0.1) for n in (1, 8, 64, 256, 1024, 4096 if not quick else 512)]
    out["width"] = [point((784, w, 10), 100, b // 2, 0.1) for w in (64, 256, 1024, 4096)]
    wide = (8192, 256, 10)   # a DVS-sized input (2 x 64 x 64)
    out["activity"] = []
    for r in (0.001, 0.003, 0.01, 0.03, 0.1, 0.3):
        auto = point(wide, 100, 128, r)
        gemm = point(wide, 100, 128, r, event_density=0.0)
        events = point(wide, 100, 128, r, event_density=1.1)
        out["activity"].append({**auto, "gemm_path_samples_per_s": gemm["hwsim_samples_per_s"],
                                "event_path_samples_per_s": events["hwsim_samples_per_s"]})
    return out


def plot(data: dict[str, list[dict]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 4, figsize=(17, 3.8))
    specs = [("timesteps", "timesteps", "MLP 784-256-10, batch 1024"),
             ("batch", "batch", "MLP 784-256-10, T=100"),
             ("width", "sizes", "784-W-10, T=100"),
             ("activity", "input_rate", "8192-256-10, T=100, batch 128")]
    for ax, (key, xkey, title) in zip(axes, specs):
        rows = data[key]
        xs = [r[xkey][1] if xkey == "sizes" else r[xkey] for r in rows]
        ax.plot(xs, [r["hwsim_samples_per_s"] for r in rows], "o-", label="hwsim (numba engine)")
        ax.plot(xs, [r["float32_gemm_samples_per_s"] for r in rows], "s--", label="float32 GEMM limit")
        if key == "activity":
            ax.plot(xs, [r["event_path_samples_per_s"] for r in rows], "^:", label="event path only")
            ax.plot(xs, [r["gemm_path_samples_per_s"] for r in rows], "v:", label="int8 GEMM path only")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel({"sizes": "hidden width W", "input_rate": "input spike rate"}.get(xkey, xkey))
        ax.set_title(title, fontsize=9)
        ax.grid(True, which="both", alpha=0.3)
    axes[0].set_ylabel("samples / s")
    axes[-1].legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("bench-out"))
    p.add_argument("--plot", type=Path, default=None, help="PNG to write (default: OUT/hwsim_scaling.png)")
    p.add_argument("--quick", action="store_true", help="smaller batches (a smoke run)")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    data = sweeps(args.quick)
    plot(data, args.plot or args.out / "hwsim_scaling.png")
    report = {"benchmark": "hwsim_scaling", "machine": machine(), "sweeps": data}
    if args.json:
        print(json.dumps(report))
        return
    for key, rows in data.items():
        print(f"\n{key}:")
        for r in rows:
            extra = (f"  events-only {r['event_path_samples_per_s']:9.0f}  gemm-only {r['gemm_path_samples_per_s']:9.0f}"
                     if key == "activity" else "")
            print(f"  sizes {r['sizes']} T={r['timesteps']:4d} batch {r['batch']:5d} rate {r['input_rate']:<6}"
                  f" hwsim {r['hwsim_samples_per_s']:9.0f}/s  float32 GEMM {r['float32_gemm_samples_per_s']:9.0f}/s"
                  f"  {r['us_per_sample_step']:.2f} us/sample-step{extra}")


if __name__ == "__main__":
    main()
