"""Recurrent against feed-forward on a task that needs memory, snnc beside snnTorch, same work.

    python benchmarks/memory_task.py [--out bench-out/memory] [--seeds 0 1 2] [--hidden 128]
        [--timesteps 50] [--epochs 5] [--batch-size 32] [--verify 2] [--quick] [--only ROW ...] [--json]

The task: ``synthetic-speech`` (models/datasets.py), SHD-layout recordings of 700 channels holding two
syllables separated by a silence; the class is their order (12 ordered pairs of 4 syllables). Both
orders of a pair carry the same syllables, so a network that has forgotten the first syllable when
the second arrives is right at most half of the time.

Rows, each at the same sizes (700-H-12), T, epochs, batch and seed, on the very same input spikes:

* snnc ``--arch mlp`` and ``--arch rmlp`` (hidden layer recurrent), hardware-exact and ``--float``
  (rmlp), with the user's own commands: ``snn-train``, ``snn-compile --verify N`` (torch, hwsim and
  Lava compared spike for spike; a mismatch fails the benchmark), ``snn-run --backend hwsim`` on the
  360 test recordings: the accuracy reported is the compiled network's;
* snnTorch 1.0.0 (benchmarks/peers.py): ``Leaky`` layers, and ``RLeaky`` hidden layers with an
  all-to-all recurrent ``nn.Linear``; Adam at 1e-3 and 5e-3, the better is its figure.

And synaptic delays as the memory (issue 21): snnc ``--arch mlp --delays 30`` (every hidden synapse a
fixed delay drawn from 0..30 steps, so the first syllable can arrive together with the second),
compiled for ``--target loihi2``, whose delays reach 62 steps (Lava's DelayDense in the verification).

Each at two membrane time constants, because a leaky membrane is memory too: snnc's default (current
decay 0.5, voltage decay 0.2: v keeps 0.8 per step, 0.8^25 = 0.4% across the silence) beside
snnTorch's tutorial ``beta`` 0.95 (v keeps 0.95 per step, 28% across it), i.e. snnTorch at
``beta`` 0.8 and snnc at ``--current-decay 1 --voltage-decay 0.05`` (docs/from-snntorch.md).

Prints a markdown table (docs/results.md reproduces it) and, with ``--json``, one JSON object.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from accuracy import peer_row, snnc_row  # noqa: E402
from common import machine  # noqa: E402

DATASET = "synthetic-speech"
TEST_SAMPLES = 360
#: snnTorch's Leaky(beta=0.95) in snnc's terms (docs/from-snntorch.md)
SLOW = ("--current-decay", "1.0", "--voltage-decay", "0.05")
#: the longest synaptic delay of the delay rows (snn-train --delays)
DELAYS = 30
#: row groups --only selects
ROWS = ("snnc", "delays", "snntorch")


def rows(a: argparse.Namespace, data_dir: Path) -> list[dict[str, Any]]:
    out = []
    for seed in a.seeds:
        a.seed = seed
        if "delays" in a.only:
            r = snnc_row("stbp-rect", True, DATASET, data_dir, a.out, a, TEST_SAMPLES, arch="mlp",
                         extra=("--delays", str(DELAYS)), tag=f"-d{DELAYS}", target="loihi2")
            if not r["verification_passed"] or r["mismatches"]:
                raise SystemExit(f"verification failed for mlp --delays seed {seed}: {r['mismatches']} mismatches")
            out.append({"who": f"snnc mlp --delays {DELAYS} (hardware-exact, loihi2), v keeps 0.8", "seed": seed,
                        "accuracy": r["chip_accuracy"], "per_epoch": r["per_epoch_test_accuracy"],
                        "seconds": r["train_seconds"]})
        for arch, hardware_exact, slow in (("mlp", True, False), ("rmlp", True, False), ("rmlp", False, False),
                                           ("mlp", True, True), ("rmlp", True, True)):
            if "snnc" not in a.only:
                break
            r = snnc_row("stbp-rect", hardware_exact, DATASET, data_dir, a.out, a, TEST_SAMPLES, arch=arch,
                         extra=SLOW if slow else (), tag="-slow" if slow else "")
            if not r["verification_passed"] or r["mismatches"]:
                raise SystemExit(f"verification failed for {arch} seed {seed}: {r['mismatches']} mismatches")
            out.append({"who": f"snnc {arch} ({r['mode']}), {'v keeps 0.95' if slow else 'v keeps 0.8'}",
                        "seed": seed, "accuracy": r["chip_accuracy"],
                        "per_epoch": r["per_epoch_test_accuracy"], "seconds": r["train_seconds"]})
        for beta in (0.8, 0.95) if "snntorch" in a.only else ():
            for recurrent in (False, True):
                r = peer_row("snntorch", DATASET, data_dir, a, recurrent=recurrent, extra=("--beta", str(beta)))
                out.append({"who": f"snnTorch {'RLeaky' if recurrent else 'Leaky'}, v keeps {beta:g} "
                                   f"(lr {r['lr']:g})", "seed": seed,
                            "accuracy": r["test_accuracy"], "seconds": [x["seconds"] for x in r["runs"]]})
    return out


def table(result: list[dict[str, Any]]) -> str:
    lines = ["| network | memory beyond the membrane | test accuracy per seed | mean |", "|---|---|---|---|"]
    names = list(dict.fromkeys(r["who"].split(" (lr")[0] for r in result))
    for name in names:
        accs = [r["accuracy"] for r in result if r["who"].split(" (lr")[0] == name]
        rec = "yes" if "rmlp" in name or "RLeaky" in name else "delays" if "--delays" in name else "no"
        lines.append(f"| {name} | {rec} | {', '.join(f'{100 * x:.1f}%' for x in accs)} | "
                     f"{100 * statistics.mean(accs):.1f}% |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=None, help="where models and artifacts go (default: a temp dir)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--timesteps", type=int, default=50)
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--verify", type=int, default=2)
    p.add_argument("--quick", action="store_true", help="1 epoch, 32 hidden, T=50: a smoke run")
    p.add_argument("--only", nargs="+", choices=ROWS, default=list(ROWS),
                   help="row groups to run: snnc (mlp/rmlp), delays (mlp --delays on loihi2), snntorch")
    p.add_argument("--json", action="store_true")
    a = p.parse_args(argv)
    if a.quick:
        a.epochs, a.hidden = 1, 32
    with tempfile.TemporaryDirectory() as tmp:
        a.out = a.out or Path(tmp)
        a.out.mkdir(parents=True, exist_ok=True)
        result = rows(a, a.out / "data")
    print(table(result))
    if a.json:
        print(json.dumps({"machine": machine(), "config": {k: (str(v) if isinstance(v, Path) else v)
                                                          for k, v in vars(a).items()}, "rows": result}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
