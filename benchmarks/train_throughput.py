"""Training throughput of snnc vs snnTorch and SpikingJelly on the 784-256-10 LIF MLP and LeNet (CPU).

    python benchmarks/train_throughput.py [--timesteps 25 100] [--batch 128] [--steps N] [--json]
    python benchmarks/train_throughput.py --models lenet --lenet-timesteps 25 100   # LeNet only

The last lines print, per model and T, snnc-hw's samples/s over SpikingJelly's beside issue 22's goal
(hardware-exact >= 1.2x SpikingJelly on the MLP, >= 1x on LeNet), measured with the two libraries'
steps alternated in one process (``--paired-rounds``, best of each; the separate processes' ratio is
printed beside it): on a shared machine whose speed drifts between the separate runs, only the
interleaved ratio is stable.

One training step = forward + loss + backward + Adam step, batch 128, torch threads = the machine's
cores. Rate-coded input spikes are drawn once before timing, for every library alike, so input
generation is excluded. Each library runs in its own subprocess, so its peak resident memory
(ru_maxrss) is its own; the RSS before the first step (imports, input spikes, model) is reported
beside it as the baseline. Compared:

* ``snnc-hw``: ``snnc.models.network.mlp`` with ``--rule stbp-rect`` in hardware-exact mode, what
  ``snn-train`` and ``make demo`` train; the step is :func:`snnc.models.train.train_step` itself;
* ``snnc-float``: the same network with ``--float``;
* ``snntorch``: snnTorch 1.0.0 ``snntorch.Leaky`` (beta 0.8, fast_sigmoid slope 25) in the
  tutorials' loop over time, ``nn.Linear`` layers, cross-entropy on spike counts;
* ``spikingjelly``: SpikingJelly 2.0.0 ``activation_based`` ``layer.Linear`` + ``neuron.LIFNode``
  (tau 5, i.e. keep 0.8) in multi-step mode 'm' (on CPU its torch implementation),
  ``functional.reset_net`` after every step, cross-entropy on spike counts.

LeNet (``--models lenet``): snnc's zoo ``lenet`` (``--arch lenet``: 20C5p2-P2-50C5p2-P2-FC200-10 on
1x28x28; the first P2 a SumPool, the second a SpikingPool: 2x2 depthwise stride-2 synapses into LIF
neurons, as the zoo builds it for a 784-pixel input), against SpikingJelly with the same layers: Conv2d +
LIFNode, AvgPool2d (SumPool up to a factor 4 in the next weights), Conv2d + LIFNode, depthwise 2x2 stride-2
Conv2d + LIFNode, Linear 2450-200 + LIFNode, Linear 200-10 + LIFNode; same input spikes, T and batch.
Its rows are under ``lenet_rows`` in the JSON (``rows`` stay the MLP's); its default T is 25 only
(``--lenet-timesteps``; a LeNet step is ~50x an MLP step), best of ``--lenet-repeats`` (default 3).

snnc's neurons are CUBA-LIF (a synaptic current and a membrane: two states per neuron), the others'
plain LIF (one state); snnc's loss is the rule's own (stbp-rect: rate MSE). Timing: ``--warmup``
steps, then ``--repeats`` runs of ``--steps`` steps; the best run gives samples/s (the machine is
shared and noisy; default: the best of 8 single steps), the median is reported too.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from typing import Any, Callable

LIBRARIES = ("snnc-hw", "snnc-float", "snntorch", "spikingjelly")
LENET_LIBRARIES = ("snnc-hw", "snnc-float", "spikingjelly")
SIZES = (784, 256, 10)
#: issue 22: hardware-exact training's samples/s over SpikingJelly's, at least
GOALS = {"mlp": 1.2, "lenet": 1.0}


def _rss_mib() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 2**20


def _inputs(batch: int, steps: int, seed: int = 0) -> tuple[Any, Any]:
    """Rate-coded spikes (batch, T, 784) from random pixel intensities, and labels; drawn once."""
    import torch

    g = torch.Generator().manual_seed(seed)
    intensity = torch.rand(batch, 1, SIZES[0], generator=g) * 0.5
    x = (torch.rand(batch, steps, SIZES[0], generator=g) < intensity).float()
    y = torch.randint(0, SIZES[-1], (batch,), generator=g)
    return x, y


def _snnc_step(hardware_exact: bool, x: Any, y: Any, model_name: str = "mlp") -> Callable[[], None]:
    import torch

    from snnc.models import train as snnc_train
    from snnc.models.network import conv_arch, mlp
    from snnc.models.rules import make_rule

    if model_name == "lenet":
        model = conv_arch("lenet")(SIZES[0], SIZES[-1], input_shape=(1, 28, 28), hardware_exact=hardware_exact,
                                   rule=make_rule("stbp-rect"))
    else:
        model = mlp(SIZES[0], SIZES[-1], hidden=SIZES[1:-1], hardware_exact=hardware_exact,
                    rule=make_rule("stbp-rect"))
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=5e-3)
    if hasattr(snnc_train, "train_step"):
        return lambda: snnc_train.train_step(model, opt, x, y) and None

    def step() -> None:   # older snnc (before/after comparisons): the body of its train() loop
        scores = model.scores(model(x)[-1])
        loss = model.rule.objective(scores, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        float(loss.detach()), int((scores.detach().argmax(-1) == y).sum())

    return step


def time_first_step(net: Any, x: Any, y: Any) -> Callable[[], None]:
    """One Adam training step (lr 5e-3, cross-entropy of the summed output spikes) of ``net``, which
    takes time-first input as snnTorch's tutorials do; ``x`` is (batch, T, features)."""
    import torch

    opt = torch.optim.Adam(net.parameters(), lr=5e-3)
    xt = x.transpose(0, 1).contiguous()

    def step() -> None:
        loss = torch.nn.functional.cross_entropy(net(xt).sum(0), y)
        opt.zero_grad()
        loss.backward()
        opt.step()

    return step


def _snntorch_step(x: Any, y: Any) -> Callable[[], None]:
    import snntorch as snn
    import torch
    from snntorch import surrogate
    from torch import nn

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            grad = surrogate.fast_sigmoid(slope=25)
            self.fc1, self.lif1 = nn.Linear(SIZES[0], SIZES[1]), snn.Leaky(beta=0.8, spike_grad=grad)
            self.fc2, self.lif2 = nn.Linear(SIZES[1], SIZES[2]), snn.Leaky(beta=0.8, spike_grad=grad)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            mem1, mem2 = self.lif1.init_leaky(), self.lif2.init_leaky()
            out = []
            for t in range(x.shape[0]):
                spk1, mem1 = self.lif1(self.fc1(x[t]), mem1)
                spk2, mem2 = self.lif2(self.fc2(spk1), mem2)
                out.append(spk2)
            return torch.stack(out)

    return time_first_step(Net(), x, y)


def _spikingjelly_step(x: Any, y: Any) -> Callable[[], None]:
    import torch
    from spikingjelly.activation_based import functional, layer, neuron
    from torch import nn

    net = nn.Sequential(layer.Linear(SIZES[0], SIZES[1]), neuron.LIFNode(tau=5.0),
                        layer.Linear(SIZES[1], SIZES[2]), neuron.LIFNode(tau=5.0))
    functional.set_step_mode(net, "m")
    opt = torch.optim.Adam(net.parameters(), lr=5e-3)
    xt = x.transpose(0, 1).contiguous()          # multi-step mode takes (T, batch, ...)

    return _sj_train_step(net, opt, xt, y)


def _sj_train_step(net: Any, opt: Any, xt: Any, y: Any) -> Callable[[], None]:
    """One SpikingJelly training step in multi-step mode: cross-entropy on spike counts, reset after."""
    import torch
    from spikingjelly.activation_based import functional

    def step() -> None:
        loss = torch.nn.functional.cross_entropy(net(xt).sum(0), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        functional.reset_net(net)

    return step


def _spikingjelly_lenet_step(x: Any, y: Any) -> Callable[[], None]:
    """SpikingJelly with snnc's zoo LeNet's layers (see the module docstring), multi-step mode."""
    import torch
    from spikingjelly.activation_based import functional, layer, neuron
    from torch import nn

    def lif() -> nn.Module:
        return neuron.LIFNode(tau=5.0)

    net = nn.Sequential(layer.Conv2d(1, 20, 5, padding=2), lif(), layer.AvgPool2d(2),
                        layer.Conv2d(20, 50, 5, padding=2), lif(),
                        layer.Conv2d(50, 50, 2, stride=2, groups=50, bias=False), lif(),
                        layer.Flatten(), layer.Linear(50 * 7 * 7, 200), lif(), layer.Linear(200, SIZES[-1]), lif())
    functional.set_step_mode(net, "m")
    opt = torch.optim.Adam(net.parameters(), lr=5e-3)
    xt = x.transpose(0, 1).reshape(x.shape[1], x.shape[0], 1, 28, 28).contiguous()

    return _sj_train_step(net, opt, xt, y)


def worker(lib: str, timesteps: int, batch: int, steps: int, repeats: int, warmup: int,
           model: str = "mlp") -> dict[str, Any]:
    """Measure one library in this process -> its result row."""
    import torch

    torch.set_num_threads(os.cpu_count() or 1)
    x, y = _inputs(batch, timesteps)
    builders: dict[str, Callable[[], Callable[[], None]]] = {
        "snnc-hw": lambda: _snnc_step(True, x, y, model), "snnc-float": lambda: _snnc_step(False, x, y, model),
        "snntorch": lambda: _snntorch_step(x, y),
        "spikingjelly": lambda: _spikingjelly_lenet_step(x, y) if model == "lenet" else _spikingjelly_step(x, y)}
    if model == "lenet" and lib not in LENET_LIBRARIES:
        raise ValueError(f"no LeNet for {lib}")
    step = builders[lib]()
    baseline = _rss_mib()
    for _ in range(warmup):
        step()
    runs = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(steps):
            step()
        runs.append(batch * steps / (time.perf_counter() - t0))
    return {"library": lib, "model": model, "timesteps": timesteps, "batch": batch, "samples_per_s": max(runs),
            "samples_per_s_median": statistics.median(runs), "runs": runs,
            "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "baseline_rss_mib": baseline, "threads": torch.get_num_threads()}


def paired_worker(timesteps: int, batch: int, rounds: int, warmup: int, model: str = "mlp") -> dict[str, Any]:
    """snnc-hw and SpikingJelly in this one process, their training steps alternated ``rounds`` times:
    the goal's ratio, measured so that a machine whose speed drifts (shared, throttled) slows both alike."""
    import torch

    torch.set_num_threads(os.cpu_count() or 1)
    x, y = _inputs(batch, timesteps)
    steps = {"snnc-hw": _snnc_step(True, x, y, model),
             "spikingjelly": _spikingjelly_lenet_step(x, y) if model == "lenet" else _spikingjelly_step(x, y)}
    for step in steps.values():
        for _ in range(warmup):
            step()
    times: dict[str, list[float]] = {lib: [] for lib in steps}
    for _ in range(rounds):
        for lib, step in steps.items():
            t0 = time.perf_counter()
            step()
            times[lib].append(time.perf_counter() - t0)
    best = {lib: batch / min(ts) for lib, ts in times.items()}
    median = {lib: batch / statistics.median(ts) for lib, ts in times.items()}
    return {"model": model, "timesteps": timesteps, "batch": batch, "rounds": rounds,
            "samples_per_s": best, "samples_per_s_median": median,
            "ratio": best["snnc-hw"] / best["spikingjelly"],
            "ratio_median": median["snnc-hw"] / median["spikingjelly"]}


def _run_paired(t: int, args: argparse.Namespace, model: str) -> dict[str, Any]:
    rounds = args.lenet_repeats if model == "lenet" else args.paired_rounds
    cmd = [sys.executable, os.path.abspath(__file__), "--paired", "--timesteps", str(t), "--batch", str(args.batch),
           "--repeats", str(rounds), "--warmup", str(args.warmup), "--models", model]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        return {"model": model, "timesteps": t, "error": done.stderr.strip().splitlines()[-1:]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def _run_worker(lib: str, t: int, args: argparse.Namespace, model: str = "mlp") -> dict[str, Any]:
    repeats = args.lenet_repeats if model == "lenet" else args.repeats
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", lib, "--timesteps", str(t),
           "--batch", str(args.batch), "--steps", str(args.steps), "--repeats", str(repeats),
           "--warmup", str(args.warmup), "--models", model]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        return {"library": lib, "model": model, "timesteps": t, "error": done.stderr.strip().splitlines()[-1:]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def _cpu_name() -> str:
    """The CPU's model name (Linux), else what platform knows."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for dist in ("snnc", "torch", "snntorch", "spikingjelly"):
        try:
            out[dist] = version(dist)
        except PackageNotFoundError:
            out[dist] = "not installed"
    return out


def _table(rows: list[dict[str, Any]]) -> str:
    lines = [f"{'library':<13} {'T':>4} {'samples/s':>10} {'median':>9} {'peak RSS MiB':>13} {'before MiB':>11}"]
    for r in rows:
        if "error" in r:
            lines.append(f"{r['library']:<13} {r['timesteps']:>4} error: {' '.join(r['error'])}")
            continue
        lines.append(f"{r['library']:<13} {r['timesteps']:>4} {r['samples_per_s']:>10.0f} "
                     f"{r['samples_per_s_median']:>9.0f} {r['peak_rss_mib']:>13.0f} {r['baseline_rss_mib']:>11.0f}")
    return "\n".join(lines)


def ratios(rows: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Per T: each snnc mode's samples/s over the fastest other library's (> 1: snnc is faster)."""
    out: dict[str, dict[str, float]] = {}
    for t in sorted({r["timesteps"] for r in rows}):
        ok = [r for r in rows if r["timesteps"] == t and "error" not in r]
        others = [r for r in ok if not r["library"].startswith("snnc")]
        if not others:
            continue
        fastest = max(others, key=lambda r: r["samples_per_s"])
        out[str(t)] = {"fastest_other": fastest["library"], **{
            r["library"]: r["samples_per_s"] / fastest["samples_per_s"] for r in ok if r["library"].startswith("snnc")}}
    return out


def goals(rows: list[dict[str, Any]], paired: list[dict[str, Any]] = ()) -> list[dict[str, Any]]:
    """Per (model, T): snnc-hw's samples/s over SpikingJelly's, beside issue 22's goal: from the
    interleaved run in one process where there is one (``paired``), else from the separate processes."""
    out = []
    for model in ("mlp", "lenet"):
        for t in sorted({r["timesteps"] for r in [*rows, *paired] if r.get("model", "mlp") == model}):
            got = {r["library"]: r["samples_per_s"] for r in rows
                   if r.get("model", "mlp") == model and r["timesteps"] == t and "error" not in r}
            pair = next((r for r in paired if r["model"] == model and r["timesteps"] == t and "error" not in r), None)
            separate = got["snnc-hw"] / got["spikingjelly"] if "snnc-hw" in got and "spikingjelly" in got else None
            ratio = pair["ratio"] if pair else separate
            if ratio is not None:
                out.append({"model": model, "timesteps": t, "ratio_hw_over_spikingjelly": ratio,
                            "measured": "interleaved in one process" if pair else "separate processes",
                            "ratio_median": pair["ratio_median"] if pair else None,
                            "ratio_separate_processes": separate, "goal": GOALS[model], "met": ratio >= GOALS[model]})
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--timesteps", type=int, nargs="+", default=[25, 100])
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--steps", type=int, default=1, help="timed steps per run (default 1)")
    p.add_argument("--repeats", type=int, default=8,
                   help="timed runs; the best counts (default 8: the best single step of 8, robust to a busy machine)")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--libraries", nargs="+", default=list(LIBRARIES), choices=LIBRARIES)
    p.add_argument("--models", nargs="+", default=["mlp", "lenet"], choices=["mlp", "lenet"],
                   help="networks to train (default both; LeNet: snnc-hw, snnc-float and SpikingJelly only)")
    p.add_argument("--lenet-timesteps", type=int, nargs="+", default=[25])
    p.add_argument("--lenet-repeats", type=int, default=3)
    p.add_argument("--paired-rounds", type=int, default=12,
                   help="rounds of the interleaved snnc-hw / SpikingJelly run that gives the goal's ratio (default "
                        "12; 0: the ratio of the separate processes' figures; LeNet: --lenet-repeats)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    p.add_argument("--worker", choices=LIBRARIES, help=argparse.SUPPRESS)
    p.add_argument("--paired", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.paired:
        print(json.dumps(paired_worker(args.timesteps[0], args.batch, args.repeats, args.warmup, args.models[0])))
        return 0
    if args.worker:
        print(json.dumps(worker(args.worker, args.timesteps[0], args.batch, args.steps, args.repeats, args.warmup,
                                args.models[0])))
        return 0
    rows = ([_run_worker(lib, t, args) for t in args.timesteps for lib in args.libraries]
            if "mlp" in args.models else [])
    lenet_rows = ([_run_worker(lib, t, args, "lenet") for t in args.lenet_timesteps for lib in args.libraries
                   if lib in LENET_LIBRARIES] if "lenet" in args.models else [])
    paired = []
    if args.paired_rounds > 0 and {"snnc-hw", "spikingjelly"} <= set(args.libraries):
        paired = ([_run_paired(t, args, "mlp") for t in args.timesteps] if "mlp" in args.models else []) + \
                 ([_run_paired(t, args, "lenet") for t in args.lenet_timesteps] if "lenet" in args.models else [])
    result = {"machine": {"cpu": _cpu_name(), "cores": os.cpu_count(),
                          "python": platform.python_version(), **_versions()},
              "batch": args.batch, "steps": args.steps, "repeats": args.repeats, "rows": rows,
              "ratio_snnc_over_fastest_other": ratios(rows), "lenet_rows": lenet_rows,
              "lenet_repeats": args.lenet_repeats, "paired": paired, "goals": goals(rows + lenet_rows, paired)}
    if args.json:
        print(json.dumps(result))
        return 0
    m = result["machine"]
    print(f"{m['cpu']}, {m['cores']} cores, torch {m['torch']}, snntorch {m['snntorch']}, spikingjelly {m['spikingjelly']}; "
          f"batch {args.batch}, best of {args.repeats} x {args.steps} steps")
    if rows:
        print("MLP 784-256-10")
        print(_table(rows))
    for t, r in result["ratio_snnc_over_fastest_other"].items():
        print(f"T={t}: " + ", ".join(f"{k} / {r['fastest_other']} = {v:.2f}" for k, v in r.items()
                                     if k != "fastest_other"))
    if lenet_rows:
        print(f"LeNet 20C5p2-P2-50C5p2-P2-FC200-10 (best of {args.lenet_repeats})")
        print(_table(lenet_rows))
    for pr in paired:
        if "error" in pr:
            print(f"{pr['model']} T={pr['timesteps']} interleaved: error: {' '.join(pr['error'])}")
    for g in result["goals"]:
        how = (f"{g['measured']}, best of {args.lenet_repeats if g['model'] == 'lenet' else args.paired_rounds}; "
               f"medians {g['ratio_median']:.2f}" if g["ratio_median"] is not None else g["measured"])
        sep = (f"; separate processes {g['ratio_separate_processes']:.2f}"
               if g["ratio_separate_processes"] is not None and g["ratio_median"] is not None else "")
        print(f"{g['model']} T={g['timesteps']}: snnc-hw / spikingjelly = {g['ratio_hw_over_spikingjelly']:.2f} "
              f"({how}{sep}) (goal >= {g['goal']:g}: {'met' if g['met'] else 'NOT met'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
