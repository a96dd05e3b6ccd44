"""Start-up: how long users wait for the commands that do little work (issue 22).

    python benchmarks/startup.py [--runs 5] [--model MODEL.pt] [--artifact DIR] [--out DIR] [--json] [--quick]

Measures, as the wall time of the whole command in a child process (interpreter start, imports,
numba's cache, data loading and encoding, the work, exit), the median of ``--runs`` runs each:

- ``snn-run ARTIFACT --backend hwsim --dataset digits --samples 360`` on the demo artifact (``make demo``'s
  model: digits, mlp, stbp-rect, 5 epochs), numba's kernel cache warm;
- ``snn-compile MODEL --target loihi --out DIR`` of the demo model (the compile itself: no ``--verify``,
  which ``make demo`` adds and which runs Lava and the emulator);
- ``snn-train --help`` and ``snn-compile --help``;
- a fresh environment's first ``snn-run``, twice: ``cold`` with numba's cache empty (what a clone gets
  when nothing compiled the kernels: they compile on first use) and ``after install`` with numba's
  cache filled by the install's warm-up (``make install`` runs ``python -m snnc.hwsim.parallel
  --warm-up``), each in its own new ``NUMBA_CACHE_DIR``.

What the fresh-environment figures simulate, and what not: ``NUMBA_CACHE_DIR`` pointed at an empty
directory makes numba find no compiled kernel (as in a new clone, whose ``hwsim/__pycache__`` is
empty) and write what it compiles there. They do not simulate a cold operating-system file cache
(torch's ~1 GB of libraries read from disk the first time after a boot), nor Python's own byte-code
cache (a clone compiles snnc's ``.pyc`` files once on first import; pip already compiled the
dependencies'), nor the dataset's first read: those stay warm here.

Without ``--model``/``--artifact`` the demo model is trained first (``snn-train``, ~1 min) into
``--out``; ``--quick`` trains 2 optimiser steps and runs each figure once (a smoke test of the script:
its timings mean nothing). The commands are taken from the interpreter's bin directory, or ``--bin``.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

#: the issue's goals, seconds of wall time (None: no number, "stays instant")
GOALS: dict[str, float] = {"snn_run": 2.5, "first_run_after_install": 3.0, "snn_compile": 3.0,
                           "train_help": 0.2, "compile_help": 0.2}
LABELS: dict[str, str] = {
    "snn_run": "snn-run demo artifact, 360 samples (numba cache warm)",
    "first_run_cold": "first snn-run, fresh environment, numba cache empty (no warm-up)",
    "warm_up": "install warm-up: python -m snnc.hwsim.parallel --warm-up (once, in make install)",
    "first_run_after_install": "first snn-run, fresh environment after the install's warm-up",
    "snn_compile": "snn-compile demo model --target loihi (no --verify)",
    "train_help": "snn-train --help",
    "compile_help": "snn-compile --help",
}
DEMO_TRAIN = ("--dataset", "digits", "--arch", "mlp", "--rule", "stbp-rect", "--epochs", "5")


def timed(cmd: list[str], env: dict[str, str] | None = None, cpu: list[float] | None = None) -> float:
    """Wall seconds of one command (it must succeed); its CPU seconds (user + system, its children
    included) are appended to ``cpu`` when given: on a shared machine they move less with the load."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    done = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({done.returncode}): {done.stderr[-2000:]}")
    if cpu is not None:
        cpu.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return wall


def load_average() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def measure(bin_dir: Path, model: Path, artifact: Path, runs: int, work: Path, install_warm_up: bool = True,
            fresh_runs: int | None = None) -> dict[str, Any]:
    """Every figure, ``runs`` times each; the runs of the figures are interleaved (one of each per
    round), so that a change in the machine's load touches them alike. ``install_warm_up`` False leaves
    out the figures after the install's warm-up (code from before it existed); the fresh-environment
    figures are taken in the first ``fresh_runs`` rounds only (default: every round: they compile)."""
    run_cmd = [str(bin_dir / "snn-run"), str(artifact), "--backend", "hwsim", "--dataset", "digits", "--samples", "360"]
    warm_cmd = [str(bin_dir / "python"), "-m", "snnc.hwsim.parallel", "--warm-up"]
    times: dict[str, list[float]] = {k: [] for k in LABELS}
    cpu: dict[str, list[float]] = {k: [] for k in LABELS}
    load = {"before": load_average()}
    timed(run_cmd)                     # numba's own cache (the environment's) filled once before timing
    for i in range(runs):
        times["snn_run"].append(timed(run_cmd, cpu=cpu["snn_run"]))
        out = work / f"compiled{i}"
        shutil.rmtree(out, ignore_errors=True)
        times["snn_compile"].append(timed([str(bin_dir / "snn-compile"), str(model), "--target", "loihi",
                                           "--out", str(out)], cpu=cpu["snn_compile"]))
        times["train_help"].append(timed([str(bin_dir / "snn-train"), "--help"], cpu=cpu["train_help"]))
        times["compile_help"].append(timed([str(bin_dir / "snn-compile"), "--help"], cpu=cpu["compile_help"]))
        if fresh_runs is not None and i >= fresh_runs:
            continue
        for fresh in ("cold", "after_install") if install_warm_up else ("cold",):
            cache = Path(tempfile.mkdtemp(prefix=f"numba-{fresh}-", dir=work))
            env = {**os.environ, "NUMBA_CACHE_DIR": str(cache)}
            if fresh == "after_install":
                times["warm_up"].append(timed(warm_cmd, env, cpu=cpu["warm_up"]))
                times["first_run_after_install"].append(timed(run_cmd, env, cpu=cpu["first_run_after_install"]))
            else:
                times["first_run_cold"].append(timed(run_cmd, env, cpu=cpu["first_run_cold"]))
            shutil.rmtree(cache, ignore_errors=True)
    load["after"] = load_average()
    return {"runs": runs, "load_average": load, "cpus": os.cpu_count(),
            "figures": {k: {"median_s": statistics.median(v), "runs_s": [round(x, 3) for x in v],
                            "cpu_median_s": statistics.median(cpu[k]) if cpu[k] else None,
                            "goal_s": GOALS.get(k)} for k, v in times.items() if v}}


def table(result: dict[str, Any]) -> str:
    """The figures as a markdown table, each beside its goal and their ratio (< 1: met)."""
    lines = [f"Start-up, median of {result['runs']} run(s) (load average before / after: "
             f"{result['load_average'].get('before')} / {result['load_average'].get('after')}, "
             f"{result.get('cpus')} CPUs)", "",
             "| what | median s | runs s | CPU s (median) | goal s | median / goal | met |",
             "|---|---|---|---|---|---|---|"]
    for key, label in LABELS.items():
        f = result["figures"].get(key)
        if f is None:
            continue
        goal = f.get("goal_s")
        runs = ", ".join(f"{x:.2f}" for x in f["runs_s"])
        ratio = "" if goal is None else f"{f['median_s'] / goal:.2f}"
        met = "" if goal is None else ("yes" if f["median_s"] < goal else "**no**")
        cpu = "" if f.get("cpu_median_s") is None else f"{f['cpu_median_s']:.2f}"
        lines.append(f"| {label} | {f['median_s']:.2f} | {runs} | {cpu} | {'' if goal is None else f'{goal:g}'} | "
                     f"{ratio} | {met} |")
    return "\n".join(lines)


def demo_model(bin_dir: Path, out: Path, quick: bool) -> tuple[Path, Path]:
    """Train and compile the demo model into ``out`` (make demo's commands, without --verify)."""
    out.mkdir(parents=True, exist_ok=True)
    model, artifact = out / "model.pt", out / "build"
    if not model.is_file():
        subprocess.run([str(bin_dir / "snn-train"), *DEMO_TRAIN, "--out", str(model),
                        *(["--max-steps", "2"] if quick else [])], check=True, stdout=subprocess.DEVNULL)
    if not (artifact / "manifest.json").is_file():
        subprocess.run([str(bin_dir / "snn-compile"), str(model), "--target", "loihi", "--out", str(artifact)],
                       check=True, stdout=subprocess.DEVNULL)
    return model, artifact


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=5, help="rounds of the warm figures (default 5)")
    p.add_argument("--fresh-runs", type=int, default=2,
                   help="rounds of the fresh-environment figures, each compiling the kernels (default 2)")
    p.add_argument("--model", type=Path, default=None, help="the demo checkpoint (default: trained into --out)")
    p.add_argument("--artifact", type=Path, default=None, help="its artifact (default: compiled into --out)")
    p.add_argument("--out", type=Path, default=Path("bench-out") / "startup")
    p.add_argument("--bin", type=Path, default=Path(sys.executable).parent,
                   help="where snn-run, snn-compile, snn-train and python are (default: this interpreter's)")
    p.add_argument("--quick", action="store_true", help="train 2 steps, one run of each figure")
    p.add_argument("--no-install-warm-up", action="store_true",
                   help="leave out the figures after the install's warm-up (to time code from before it existed)")
    p.add_argument("--json", action="store_true", help="print one JSON object last")
    args = p.parse_args(argv)
    runs = 1 if args.quick else args.runs
    if args.model is None or args.artifact is None:
        model, artifact = demo_model(args.bin, args.out, args.quick)
        model, artifact = args.model or model, args.artifact or artifact
    else:
        model, artifact = args.model, args.artifact
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="startup-", dir=args.out) as work:
        result = measure(args.bin, model, artifact, runs, Path(work), install_warm_up=not args.no_install_warm_up,
                         fresh_runs=min(runs, args.fresh_runs))
    result.update(model=str(model), artifact=str(artifact), bin=str(args.bin), quick=args.quick)
    print(table(result))
    if args.json:
        print(json.dumps(result))


if __name__ == "__main__":
    main()
