"""Every benchmark in one run (``make bench``): results.json, the scaling plot and a markdown summary.

    python benchmarks/run_all.py [--out bench-out] [--quick]

Runs, one after the other (never side by side: each wants the whole machine), as child processes:
hwsim_vs_lava.py, hwsim_scaling.py, train_throughput.py, compile_time.py. Writes OUT/results.json
(everything measured, with the machine) and OUT/hwsim_scaling.png, and prints the tables that
docs/performance.md reproduces. ``--quick`` shrinks every run (a smoke test of the scripts).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


def child(script: str, *args: str) -> dict[str, Any]:
    t = time.perf_counter()
    print(f"running {script} {' '.join(args)}", flush=True)
    out = subprocess.run([sys.executable, str(HERE / script), *args, "--json"], check=True, stdout=subprocess.PIPE,
                         text=True).stdout
    print(f"  done in {time.perf_counter() - t:.0f} s", flush=True)
    return json.loads(out.strip().splitlines()[-1])


def summary(r: dict[str, Any]) -> str:
    lines = ["## hwsim vs Lava (T = 100)", "",
             "| network | hwsim samples/s | Lava samples/s | hwsim / Lava | spikes compared, mismatches | "
             "float32 limit samples/s | hwsim / float32 limit | int8 limit | peak MiB hwsim / Lava |",
             "|---|---|---|---|---|---|---|---|---|"]
    for x in r["hwsim_vs_lava"]["results"]:
        hw, lv, lim = x["hwsim"], x["lava"], x["limit"]
        lines.append(f"| {x['network']} | {hw['samples_per_s']:.0f} ({hw['samples']} samples) | "
                     f"{lv['samples_per_s']:.2f} ({lv['samples']}) | **{x['speedup_vs_lava']:.0f}x** | "
                     f"{lv['compared_spikes']}, {lv['mismatches']} | {lim['float32_samples_per_s']:.0f} | "
                     f"{x['fraction_of_float32_limit']:.2f} | {lim['int8_samples_per_s']:.0f} | "
                     f"{hw['peak_mib']:.0f} / {lv['peak_mib']:.0f} |")
    t = r["train_throughput"]
    lines += ["", "## Training throughput", "", "```", json.dumps(t.get("results", t), indent=1)[:4000], "```"]
    lines += ["", "## Compile time", "", "| arch | input | T | compile s | peak MiB | neurons | cores |",
              "|---|---|---|---|---|---|---|"]
    for c in r["compile_time"]["results"]:
        lines.append(f"| {c['arch']} | {c['input_shape']} | {c['timesteps']} | {c['compile_s']:.1f} | "
                     f"{c['peak_mib']:.0f} | {c['neurons']} | {c['cores']} |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("bench-out"))
    p.add_argument("--quick", action="store_true")
    args = p.parse_args()
    out = str(args.out)
    args.out.mkdir(parents=True, exist_ok=True)
    quick_lava = ["--hwsim-samples", "200", "--lava-samples", "1"] if args.quick else []
    results = {
        "hwsim_vs_lava": child("hwsim_vs_lava.py", "--out", out, *quick_lava),
        "hwsim_scaling": child("hwsim_scaling.py", "--out", out, *(["--quick"] if args.quick else [])),
        "train_throughput": child("train_throughput.py", *(["--steps", "3"] if args.quick else [])),
        "compile_time": child("compile_time.py", "--out", out, *(["--archs", "mlp", "lenet"] if args.quick else [])),
    }
    (args.out / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    print(summary(results))
    print(f"\nwritten: {args.out / 'results.json'}, {args.out / 'hwsim_scaling.png'}")


if __name__ == "__main__":
    main()
