"""Command-line entry points: snn-train, snn-compile, snn-run, snn-report.

Each is a thin shell over the Python API; a :class:`SnncError` becomes a one-paragraph message on
stderr and a non-zero exit, never a traceback.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Callable, Sequence

from snnc.errors import SnncError


def _parser(prog: str, description: str, examples: str) -> argparse.ArgumentParser:
    return argparse.ArgumentParser(prog=prog, description=description,
                                   epilog="examples:\n" + examples,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)


def _guard(prog: str, body: Callable[[], int]) -> int:
    try:
        return body()
    except SnncError as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130


def train_main(argv: Sequence[str] | None = None) -> int:
    p = _parser("snn-train", "Train a spiking network with a surrogate-gradient rule and save a checkpoint.",
                "  snn-train --dataset digits --arch mlp --rule stbp-rect --epochs 5 --out model.pt\n"
                "  snn-train --dataset digits --arch mlp --rule arctan --loss rate-ce --out model.pt\n"
                "  snn-train --dataset digits --arch mlp --hidden 64 --float --out float.pt")
    p.add_argument("--dataset", default="digits", help="training data (default: digits, scikit-learn's 8x8 digits)")
    p.add_argument("--arch", default="mlp", help="architecture (default: mlp)")
    p.add_argument("--rule", default="stbp-rect", help="training rule (default: stbp-rect; see docs/rules.md)")
    p.add_argument("--loss", default=None, help="rate-mse or rate-ce (default: the rule's own)")
    p.add_argument("--hidden", type=int, nargs="*", default=[128], help="hidden layer sizes (default: 128)")
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--timesteps", type=int, default=20)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=5e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-steps", type=int, default=None, help="cap optimiser steps per epoch (smoke tests)")
    p.add_argument("--float", dest="hardware_exact", action="store_false",
                   help="train in float arithmetic (default: hardware-exact, the chip's integers)")
    p.add_argument("--out", type=Path, default=Path("model.pt"))
    args = p.parse_args(argv)

    def body() -> int:
        from snnc.models.checkpoint import save
        from snnc.models.datasets import load_dataset
        from snnc.models.network import ARCHS
        from snnc.models.rules import make_rule
        from snnc.models.train import seed_everything, train

        if args.arch not in ARCHS:
            raise SnncError(f"unknown --arch '{args.arch}'. Supported: {', '.join(sorted(ARCHS))}.")
        train_data, test_data = load_dataset(args.dataset, "train", args.seed), load_dataset(args.dataset, "test", args.seed)
        seed_everything(args.seed)
        model = ARCHS[args.arch](train_data.input_size, train_data.num_classes, hidden=tuple(args.hidden),
                                 hardware_exact=args.hardware_exact,
                                 rule=make_rule(args.rule, **({"loss": args.loss} if args.loss else {})))
        mode = "hardware-exact" if args.hardware_exact else "float"
        print(f"training {args.arch} {[train_data.input_size, *args.hidden, train_data.num_classes]} on "
              f"{args.dataset} ({len(train_data.y)} samples), rule {args.rule} ({model.rule.loss} loss), "
              f"{mode}, T={args.timesteps}")
        logs = train(model, train_data, epochs=args.epochs, timesteps=args.timesteps, batch_size=args.batch_size,
                     lr=args.lr, seed=args.seed, test_data=test_data, max_steps=args.max_steps,
                     on_epoch=lambda log: print(
                         f"epoch {log.epoch}: loss {log.loss:.4f}  train acc {log.train_accuracy:.1%}  "
                         f"test acc {log.test_accuracy:.1%}  {log.samples_per_s:.0f} samples/s", flush=True))
        save(model, args.out, metadata={
            "dataset": args.dataset, "timesteps": args.timesteps, "rule": args.rule, "seed": args.seed,
            "epochs": args.epochs, "test_accuracy": logs[-1].test_accuracy if logs else None,
            "encoding": "rate"})
        print(f"saved {args.out}")
        return 0

    return _guard("snn-train", body)


def compile_main(argv: Sequence[str] | None = None) -> int:
    p = _parser("snn-compile", "Compile a trained model into a Loihi artifact directory (netx HDF5 + manifest + "
                "report), optionally verifying spike for spike against Lava's simulator.",
                "  snn-compile model.pt --target loihi --verify 32\n"
                "  snn-compile model.pt --target loihi --out build/ --verify 32")
    p.add_argument("model", type=Path, help="checkpoint written by snn-train or snnc.save()")
    p.add_argument("--target", default="loihi", help="target chip (default: loihi)")
    p.add_argument("--out", type=Path, default=None, help="artifact directory (default: MODEL_STEM.TARGET beside the model)")
    p.add_argument("--verify", type=int, default=0, metavar="N",
                   help="run N test samples through PyTorch (hardware-exact), hwsim and Lava; any mismatch fails")
    p.add_argument("--timesteps", type=int, default=None, help="override the timesteps recorded in the model")
    p.add_argument("--trust-pickle", action="store_true",
                   help="allow loading a whole pickled module: this EXECUTES code stored in the file")
    args = p.parse_args(argv)

    def body() -> int:
        from snnc.pipeline import compile_model
        from snnc.report import render

        res = compile_model(args.model, target=args.target, out=args.out, verify=args.verify,
                            trust_pickle=args.trust_pickle, timesteps=args.timesteps,
                            on_stage=lambda m: print(m, flush=True))
        render(res.report)
        print(f"artifact: {res.out}")
        return 0

    return _guard("snn-compile", body)


def run_main(argv: Sequence[str] | None = None) -> int:
    p = _parser("snn-run", "Run test samples through a compiled artifact on hwsim or Lava's simulator.",
                "  snn-run build/ --backend hwsim --dataset digits --samples 100\n"
                "  snn-run build/ --backend lava --samples 20 --json")
    p.add_argument("artifact", type=Path)
    p.add_argument("--backend", choices=("hwsim", "lava"), default="hwsim")
    p.add_argument("--dataset", default=None, help="default: the dataset recorded in the artifact")
    p.add_argument("--samples", type=int, default=100)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    args = p.parse_args(argv)

    def body() -> int:
        from snnc.pipeline import run_artifact

        res = run_artifact(args.artifact, backend=args.backend, dataset=args.dataset, samples=args.samples)
        if args.json:
            print(json.dumps(res))
        else:
            acc = "n/a" if res["accuracy"] is None else f"{res['accuracy']:.1%}"
            print(f"{res['backend']}: {res['samples']} samples x {res['timesteps']} steps, accuracy {acc}, "
                  f"{res['samples_per_s']:.1f} samples/s (start-up {res['startup_s']:.2f} s)")
        return 0

    return _guard("snn-run", body)


def report_main(argv: Sequence[str] | None = None) -> int:
    p = _parser("snn-report", "Show the activity, energy, latency and verification report of an artifact.",
                "  snn-report build/\n  snn-report build/ --json")
    p.add_argument("artifact", type=Path)
    p.add_argument("--json", action="store_true", help="print report.json")
    args = p.parse_args(argv)

    def body() -> int:
        from snnc.compiler.artifact import load_artifact
        from snnc.report import render

        report = load_artifact(args.artifact).report()
        if not report:
            raise SnncError(f"{args.artifact}: has no report.json; recompile it with snn-compile.")
        if args.json:
            print(json.dumps(report, indent=2))
        else:
            render(report)
        return 0

    return _guard("snn-report", body)
