"""Every benchmark in one run (``make bench``): results.json, the scaling plot and a markdown summary.

    python benchmarks/run_all.py [--out bench-out] [--quick]

Runs, one after the other (never side by side: each wants the whole machine), as child processes:
hwsim_vs_lava.py, hwsim_scaling.py, hwsim_recurrent.py, train_throughput.py, recurrent_training.py, compile_time.py,
startup.py, accuracy.py, memory_task.py, sanafe_energy.py. Writes OUT/results.json
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
sys.path.insert(0, str(HERE))

import accuracy  # noqa: E402


def child(out_dir: Path, script: str, *args: str) -> dict[str, Any]:
    """Run one benchmark script; its JSON is also kept as OUT/<script>.json as soon as it is done.
    A script already measured into OUT is not re-run (delete the file to measure again)."""
    saved = out_dir / f"{Path(script).stem}.json"
    if saved.is_file():
        print(f"{script}: kept {saved}", flush=True)
        return json.loads(saved.read_text())
    t = time.perf_counter()
    print(f"running {script} {' '.join(args)}", flush=True)
    out = subprocess.run([sys.executable, str(HERE / script), *args, "--json"], check=True, stdout=subprocess.PIPE,
                         text=True).stdout
    print(f"  done in {time.perf_counter() - t:.0f} s", flush=True)
    result = json.loads(out.strip().splitlines()[-1])
    saved.write_text(json.dumps(result, indent=1) + "\n")
    return result


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
    lines += ["", f"## Training throughput (MLP 784-256-10, batch {t['batch']})", "",
              "| library | T | samples/s (best) | median | peak RSS MiB |", "|---|---|---|---|---|"]
    for row in t["rows"]:
        if "error" in row:
            lines.append(f"| {row['library']} | {row['timesteps']} | failed: {row['error']} | | |")
            continue
        lines.append(f"| {row['library']} | {row['timesteps']} | {row['samples_per_s']:.0f} | "
                     f"{row['samples_per_s_median']:.0f} | {row['peak_rss_mib']:.0f} |")
    for steps, ratio in t["ratio_snnc_over_fastest_other"].items():
        mine = ", ".join(f"{k} {v:.2f}" for k, v in ratio.items() if k != "fastest_other")
        lines.append(f"\nT={steps}: snnc / fastest other ({ratio['fastest_other']}): {mine}")
    if "recurrent_training" in r:
        import recurrent_training

        lines += ["", "## Recurrent training throughput (snnc rmlp vs snnTorch RLeaky / RSynaptic)", "",
                  "```", recurrent_training.table(r["recurrent_training"]), "```"]
    if "hwsim_recurrent" in r:
        lines += ["", "## hwsim on recurrent networks (T = 100, synthetic-speech input)", "",
                  "| network | numba samples/s | torch samples/s | numba / torch | Lava samples/s | mismatches |",
                  "|---|---|---|---|---|---|"]
        for e in r["hwsim_recurrent"]["engines"]:
            lines.append(f"| {e['network']} | {e['numba_samples_per_s']:.0f} | {e['torch_samples_per_s']:.0f} | "
                         f"{e['numba_over_torch']:.1f}x | {e.get('lava_samples_per_s', float('nan')):.2f} | "
                         f"{e['mismatches']} + {e.get('lava_mismatches', 0)} |")
    lines += ["", "## Compile time", "", "| arch | input | T | compile s | peak MiB | neurons | cores |",
              "|---|---|---|---|---|---|---|"]
    for c in r["compile_time"]["results"]:
        lines.append(f"| {c['arch']} | {c['input_shape']} | {c['timesteps']} | {c['compile_s']:.1f} | "
                     f"{c['peak_mib']:.0f} | {c['neurons']} | {c['cores']} |")
    if "startup" in r:
        import startup

        lines += ["", "## Start-up: what users wait for (each figure beside its goal)", "", startup.table(r["startup"])]
    lines += ["", "## Accuracy: every rule beside snnTorch and SpikingJelly (compiled, on hwsim)", "",
              accuracy.table(r["accuracy"])]
    if "memory_task" in r:
        import memory_task

        lines += ["", "## A task that needs memory: recurrent, delayed and feed-forward (synthetic-speech)", "",
                  memory_task.table(r["memory_task"]["rows"])]
    if "sanafe_energy" in r:
        import sanafe_energy

        lines += ["", "## Calibrated energy: snnc under SANA-FE's coefficients vs SANA-FE's own simulation", "",
                  "```", sanafe_energy.table(r["sanafe_energy"]["results"]), "```"]
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
        "hwsim_vs_lava": child(args.out, "hwsim_vs_lava.py", "--out", out, *quick_lava),
        "hwsim_scaling": child(args.out, "hwsim_scaling.py", "--out", out, *(["--quick"] if args.quick else [])),
        "hwsim_recurrent": child(args.out, "hwsim_recurrent.py", "--out", out, *(["--quick"] if args.quick else [])),
        "train_throughput": child(args.out, "train_throughput.py", *(["--steps", "3"] if args.quick else [])),
        "recurrent_training": child(args.out, "recurrent_training.py", *(["--quick"] if args.quick else [])),
        "compile_time": child(args.out, "compile_time.py", "--out", out,
                              *(["--archs", "mlp", "lenet"] if args.quick else [])),
        "startup": child(args.out, "startup.py", "--out", str(args.out / "startup"), *(["--quick"] if args.quick else [])),
        "accuracy": child(args.out, "accuracy.py", "--out", str(args.out / "accuracy"),
                          *(["--quick"] if args.quick else [])),
        "memory_task": child(args.out, "memory_task.py", "--out", str(args.out / "memory"),
                             *(["--quick"] if args.quick else ["--seeds", "0", "1", "2"])),
        "sanafe_energy": child(args.out, "sanafe_energy.py", "--out", out,
                               *(["--nets", "demo", "--samples", "4"] if args.quick else [])),
    }
    (args.out / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    print(summary(results))
    print(f"\nwritten: {args.out / 'results.json'}, {args.out / 'hwsim_scaling.png'}")


if __name__ == "__main__":
    main()
