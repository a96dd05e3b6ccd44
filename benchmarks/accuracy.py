"""Every training rule against snnTorch and SpikingJelly on the same work, at real input sizes.

    python benchmarks/accuracy.py [--out bench-out/accuracy] [--datasets mnist nmnist] [--rules R ...]
        [--hidden 128] [--timesteps 20] [--epochs 5] [--batch-size 32] [--verify 4] [--quick] [--json]

The work: an MLP input-128-classes, T = 20, 5 epochs, batch 32, seed 0, on two made datasets that
these machines can build without a download (benchmarks/common.py): MNIST-format 28x28 digits (784
inputs; 1,437 training images, 2,000 test images: the 360 held-out digits shifted by up to 2 px) and
N-MNIST-format events (34x34x2 = 2,312 channels, recorded from the same digits by a simulated DVS
over three saccades). Every row is made with the user's own commands:

* snnc, each rule hardware-exact and ``--float``: ``snn-train`` (the rule's defaults), then
  ``snn-compile --verify N`` (torch, hwsim and Lava compared spike for spike on N test samples; any
  mismatch fails the benchmark), then ``snn-run --backend hwsim`` over the whole test set: the
  accuracy reported is the compiled network's;
* snnTorch 1.0.0 and SpikingJelly 2.0.0 (benchmarks/peers.py): the same layer sizes, T, epochs,
  batch, seed and the very same input spikes, each library's own neuron, surrogate and loss, at Adam
  1e-3 and 5e-3; the better of the two is the peer's figure (the comparison is against the peer at
  its best, not at one learning rate chosen for it).

Prints a markdown table (docs/results.md reproduces it) and, with ``--json``, one JSON object.
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

from common import BIN, machine, mnist_like, nmnist_like  # noqa: E402

RULES = ("stbp-rect", "stbp-poly", "stbp-sigmoid", "stbp-gauss", "fast-sigmoid", "arctan", "triangle",
         "neunorm", "bpsta", "lee", "hm2bp")
PEERS = ("snntorch", "spikingjelly")
PEER_LRS = (1e-3, 5e-3)
DATASETS = {"mnist": "MNIST-format digits, 28x28 (784 inputs)",
            "nmnist": "N-MNIST-format events, 34x34x2 (2,312 channels)"}


def _run(cmd: list[str]) -> str:
    """Run a command; its stdout, or a RuntimeError with the tail of its stderr."""
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return proc.stdout


def snnc_row(rule: str, hardware_exact: bool, dataset: str, data_dir: Path, out: Path, a: argparse.Namespace,
             test_samples: int, arch: str = "mlp", extra: tuple[str, ...] = (), tag: str = "",
             target: str = "loihi") -> dict[str, Any]:
    """snn-train -> snn-compile --verify -> snn-run over the test set, for one rule and mode (``extra``:
    more snn-train flags, ``tag`` names them in the file names; ``target``: snn-compile's)."""
    stem = out / f"{dataset}-{arch}{tag}-{rule}-{'hw' if hardware_exact else 'float'}-s{a.seed}"
    model, build = stem.with_suffix(".pt"), stem.with_suffix(".loihi")
    t = time.perf_counter()
    _run([str(BIN / "snn-train"), "--dataset", dataset, "--data-dir", str(data_dir), "--arch", arch,
          "--hidden", str(a.hidden), "--rule", rule, "--epochs", str(a.epochs), "--timesteps", str(a.timesteps),
          "--batch-size", str(a.batch_size), "--seed", str(a.seed), "--out", str(model), "--overwrite",
          *([] if hardware_exact else ["--float"]), *extra])
    train_s = time.perf_counter() - t
    log = json.loads(model.with_suffix(".log.json").read_text())["epochs"]
    _run([str(BIN / "snn-compile"), str(model), "--target", target, "--out", str(build), "--verify", str(a.verify)])
    report = json.loads((build / "report.json").read_text())
    ran = json.loads(_run([str(BIN / "snn-run"), str(build), "--backend", "hwsim", "--dataset", dataset,
                           "--data-dir", str(data_dir), "--samples", str(test_samples), "--json"]).strip().splitlines()[-1])
    verification = report["verification"]
    mismatches = sum(n for pair in (verification.get("mismatches") or {}).values() for n in pair.values())
    return {"rule": rule, "mode": "hardware-exact" if hardware_exact else "float", "dataset": dataset,
            "chip_accuracy": ran["accuracy"], "test_samples": ran["samples"],
            "training_test_accuracy": log[-1]["test_accuracy"], "train_accuracy": log[-1]["train_accuracy"],
            "per_epoch_test_accuracy": [e["test_accuracy"] for e in log], "train_seconds": train_s,
            "verified_samples": a.verify, "verification_passed": verification.get("passed"),
            "mismatches": mismatches, "weight_scales": report["quantization"]["weight_scales"]}


def peer_row(library: str, dataset: str, data_dir: Path, a: argparse.Namespace,
             recurrent: bool = False, extra: tuple[str, ...] = ()) -> dict[str, Any]:
    """The peer at each learning rate of PEER_LRS; the best test accuracy is its figure."""
    runs = []
    for lr in PEER_LRS:
        got = json.loads(_run([sys.executable, str(HERE / "peers.py"), library, "--dataset", dataset,
                               "--data-dir", str(data_dir), "--hidden", str(a.hidden), "--timesteps",
                               str(a.timesteps), "--epochs", str(a.epochs), "--batch-size", str(a.batch_size),
                               "--lr", str(lr), "--seed", str(a.seed), *(["--recurrent"] if recurrent else []), *extra]
                              ).strip().splitlines()[-1])
        runs.append({**got, "lr": lr})
    best = max(runs, key=lambda r: r["test_accuracy"])
    return {"library": library, "dataset": dataset, "test_accuracy": best["test_accuracy"], "lr": best["lr"],
            "runs": [{k: r[k] for k in ("lr", "test_accuracy", "train_accuracy", "seconds")} for r in runs],
            "config": best["config"]}


def table(result: dict[str, Any]) -> str:
    """The markdown tables of docs/results.md."""
    lines = []
    for dataset, title in DATASETS.items():
        rows = [r for r in result["snnc"] if r["dataset"] == dataset]
        if not rows:
            continue
        peers = [p for p in result["peers"] if p["dataset"] == dataset]
        best = max((p["test_accuracy"] for p in peers), default=None)
        lines += [f"### {title}", "", "| peer | test accuracy | Adam lr (best of 1e-3, 5e-3) |", "|---|---|---|"]
        lines += [f"| {p['library']} | {p['test_accuracy']:.1%} | {p['lr']:g} |" for p in peers]
        lines += ["", "| rule | hardware-exact (chip) | float (chip) | hw - float | hw - best peer | "
                  "verified, mismatches | formats (weight_scale per layer) |", "|---|---|---|---|---|---|---|"]
        for rule in dict.fromkeys(r["rule"] for r in rows):
            hw = next((r for r in rows if r["rule"] == rule and r["mode"] == "hardware-exact"), None)
            fl = next((r for r in rows if r["rule"] == rule and r["mode"] == "float"), None)

            def acc(r: dict[str, Any] | None) -> str:
                return "—" if r is None else f"{r['chip_accuracy']:.1%}"

            diff = f"{(hw['chip_accuracy'] - fl['chip_accuracy']) * 100:+.1f}" if hw and fl else "—"
            vs = f"{(hw['chip_accuracy'] - best) * 100:+.1f}" if hw and best is not None else "—"
            mism = "; ".join(f"{r['verified_samples']}, {r['mismatches']}" for r in (hw, fl) if r)
            scales = " ".join(f"{v:g}" for v in (hw or {}).get("weight_scales", {}).values())
            lines.append(f"| {rule} | {acc(hw)} | {acc(fl)} | {diff} | {vs} | {mism} | {scales} |")
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=Path("bench-out/accuracy"))
    p.add_argument("--datasets", nargs="+", choices=tuple(DATASETS), default=list(DATASETS))
    p.add_argument("--rules", nargs="+", choices=RULES, default=list(RULES))
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--timesteps", type=int, default=20)
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--verify", type=int, default=4, help="test samples compared on torch, hwsim and Lava per model")
    p.add_argument("--test-samples", type=int, default=2000, help="test samples the compiled network runs")
    p.add_argument("--quick", action="store_true", help="one epoch, two rules, 200 test samples (a smoke test)")
    p.add_argument("--json", action="store_true")
    a = p.parse_args(argv)
    if a.quick:
        a.epochs, a.rules, a.test_samples, a.verify = 1, ["stbp-rect", "lee"], 200, 2
    a.out.mkdir(parents=True, exist_ok=True)
    data_dir = a.out / "data"
    mnist_like(data_dir, test_size=2000)
    nmnist_like(data_dir, test_size=2000)
    result: dict[str, Any] = {"machine": machine(), "config": {k: (str(v) if isinstance(v, Path) else v)
                                                               for k, v in vars(a).items()},
                              "snnc": [], "peers": []}
    for dataset in a.datasets:
        for library in PEERS:
            result["peers"].append(peer_row(library, dataset, data_dir, a))
            print(f"{dataset} {library}: {result['peers'][-1]['test_accuracy']:.1%}", file=sys.stderr, flush=True)
        for rule in a.rules:
            for hardware_exact in (True, False):
                row = snnc_row(rule, hardware_exact, dataset, data_dir, a.out, a, a.test_samples)
                if not row["verification_passed"]:
                    raise RuntimeError(f"{dataset} {rule}: verification failed: {row['mismatches']}")
                result["snnc"].append(row)
                print(f"{dataset} {rule} {row['mode']}: chip {row['chip_accuracy']:.1%} (training "
                      f"{row['training_test_accuracy']:.1%}), {row['train_seconds']:.0f} s", file=sys.stderr, flush=True)
    (a.out / "accuracy.json").write_text(json.dumps(result, indent=1) + "\n")
    print(table(result))
    if a.json:
        print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
