"""Command-line entry points: snn-train, snn-compile, snn-run, snn-report.

Each is a thin shell over the Python API; a :class:`SnncError` becomes a one-paragraph message on
stderr and a non-zero exit, never a traceback. Each parser is built by a function (``train_parser``,
...) whose every option is checked while parsing by a :mod:`snnc.validate` checker (range, NaN/inf,
path kind), so that a bad value is refused before anything is loaded (tests/test_cli_validation.py
drives every option); progress goes to stderr through :mod:`snnc.progress`.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import signal
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Callable, NoReturn, Sequence

from snnc import validate as v
from snnc.errors import SnncError
from snnc.models.presets import PRESETS

if TYPE_CHECKING:
    from snnc.models.train import TrainState


class _Parser(argparse.ArgumentParser):
    """argparse with snnc's error format: one line, ``prog: error: --flag: what, allowed, fix``, exit 2."""

    def error(self, message: str) -> "NoReturn":  # type: ignore[override]
        message = message[len("argument "):] if message.startswith("argument ") else message
        raise v.UsageError(f"{message} (see {self.prog} --help)")


def _parse(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace | int:
    """The parsed command line, or the exit status after printing why it was refused."""
    try:
        return parser.parse_args(argv)
    except v.UsageError as e:
        print(f"{parser.prog}: error: {e}", file=sys.stderr)
        return e.exit_code


def _parser(prog: str, description: str, examples: str) -> argparse.ArgumentParser:
    return _Parser(prog=prog, description=description, epilog="examples:\n" + examples,
                   formatter_class=argparse.RawDescriptionHelpFormatter)


def _datasets() -> list[str]:
    from snnc.models.datasets import DATASETS
    return list(DATASETS)


def _archs() -> list[str]:
    from snnc.models.network import ARCHS
    return list(ARCHS)


def _rules() -> list[str]:
    from snnc.models.rules import RULES
    return list(RULES)


def _losses() -> list[str]:
    from snnc.models.rules import LOSSES
    return list(LOSSES)


def _targets() -> list[str]:
    from snnc.compiler.targets import TARGETS
    return list(TARGETS)


class _Terminated(KeyboardInterrupt):
    """SIGTERM, unwinding like Ctrl-C."""


def _terminated(signum: int, frame: object) -> None:
    """SIGTERM unwinds like Ctrl-C, so that every ``finally`` runs: Lava's worker is reaped and a
    staged artifact directory removed (the default action would kill us with neither)."""
    raise _Terminated


def _guard(prog: str, body: Callable[[], int]) -> int:
    signal.signal(signal.SIGTERM, _terminated)
    try:
        code = body()
        sys.stdout.flush()   # a closed pipe shows here, not in Python's shutdown ('Exception ignored')
        return code
    except BrokenPipeError:   # snn-report --json | head: the reader is gone; stop quietly, as Unix tools do
        _silence_stdout()
        return 141          # 128 + SIGPIPE, what a shell reports for a tool killed by the closed pipe
    except SnncError as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt as e:
        term = isinstance(e, _Terminated)
        print(f"{prog}: {'terminated' if term else 'interrupted'}", file=sys.stderr)
        return 143 if term else 130


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so that the interpreter's last flush does not fail a second time."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):   # no real file descriptor (a test's captured stdout)
        pass


def _data_arg(p: argparse.ArgumentParser, use: str) -> None:
    """--data FILE: the user's own samples (models.datasets.load_data_file), for ``use``."""
    p.add_argument("--data", type=v.existing_file("your data file (.npz or torch file with x and y)"), default=None,
                   metavar="FILE", help=f"{use} (an .npz or torch file with x and y; docs/datasets.md, 'Your own data')")


def _lava_timeout_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--lava-timeout", type=v.real(0, None, "the seconds a Lava run may take (0: no limit)",
                                                 example="600"), default=None, metavar="S",
                   help="seconds a Lava run may take before its processes are stopped (default: 300 s + 20x the "
                        "expected time; 0: no limit)")


def _lava_timeout(value: float | None) -> float | None:
    """--lava-timeout: None = Lava's default bound, 0 = none, else positive seconds."""
    if value is None:
        return None
    if value < 0:
        raise SnncError(f"--lava-timeout {value:g}: give positive seconds, or 0 for no limit.")
    return math.inf if value == 0 else value


#: snn-train's values for what neither a flag nor a --preset sets
TRAIN_DEFAULTS = {"dataset": "digits", "arch": "mlp", "rule": "stbp-rect", "hidden": [128], "epochs": 5,
                  "timesteps": 20, "batch_size": 32, "lr_scaling": "fan-in"}


def train_parser() -> argparse.ArgumentParser:
    p = _parser("snn-train", "Train a spiking network with a surrogate-gradient rule and save a checkpoint.",
                "  snn-train --dataset digits --arch mlp --rule stbp-rect --epochs 5 --out model.pt\n"
                "  snn-train --dataset digits --arch mlp --rule arctan --loss rate-ce --out model.pt\n"
                "  snn-train --dataset digits --arch mlp --hidden 64 --float --out float.pt\n"
                "  snn-train --dataset digits --arch lenet --epochs 2 --out lenet.pt\n"
                "  snn-train --epochs 10 --out model.pt --resume     # continue a run to epoch 10")
    p.add_argument("--preset", type=v.name(lambda: PRESETS, "--preset"), default=None, metavar="NAME",
                   help="a seed paper's configuration (dataset, network, rule, T, epochs, batch, optimiser, "
                        "schedule): " + ", ".join(PRESETS) + "; flags given beside it override it")
    p.add_argument("--dataset", type=v.name(_datasets, "--dataset"), default=None,
                   help="training data (default: digits, scikit-learn's 8x8 digits); also mnist, synthetic-events, "
                        "synthetic-speech, nmnist, dvsgesture, cifar10dvs, shd (docs/datasets.md)")
    p.add_argument("--data-dir", type=v.data_dir, default=None,
                   help="where datasets live (default: $SNNC_DATA_DIR, else $XDG_CACHE_HOME/snnc/datasets); "
                        "see docs/datasets.md")
    _data_arg(p, "your own data instead of --dataset: x (samples), y (integer labels), optionally x_test/y_test "
                 "(else 10%% of each class is held out for testing)")
    p.add_argument("--data-layout", choices=("static", "frames"), default=None,
                   help="how --data's x is read: static samples in [0, 1] or event frames (default: the file's "
                        "'layout' entry, else by shape: (N, F), (N, C, H, W) static; (N, T, F), (N, T, C, H, W) frames)")
    p.add_argument("--arch", type=v.name(_archs, "--arch"), default=None, help="architecture (default: mlp; rmlp: its hidden layers recurrent; the model "
                                                 "zoo's convolutional lenet, cifarnet, vgg9, resnet11 take the dataset's "
                                                 "input shape, docs/models.md)")
    p.add_argument("--rule", type=v.name(_rules, "--rule"), default=None, help="training rule (default: stbp-rect; see docs/rules.md)")
    p.add_argument("--loss", type=v.name(_losses, "--loss"), default=None, help="rate-mse or rate-ce (default: the rule's own)")
    p.add_argument("--hidden", type=v.integer(1, 1_000_000, "each hidden layer's size", 128), nargs="*", default=None, help="hidden layer sizes (default: 128)")
    p.add_argument("--delays", type=v.integer(0, 62, "the longest synaptic delay in steps", 20), default=0,
                   metavar="MAX",
                   help="fixed synaptic delays: every hidden layer's input synapse gets its own delay, drawn "
                        "uniformly from 0..MAX steps (on top of the synapse's one step) with --seed; mlp and rmlp "
                        "only; deployed as Lava's DelayDense (default 0: none; docs/models.md, 'Synaptic delays')")
    p.add_argument("--current-decay", type=v.real(0, 1, "the current decay per step", example="0.5"), default=None, metavar="D",
                   help="CUBA-LIF synaptic current decay per step, 0..1 (default 0.5; 1: no current memory, "
                        "plain LIF as snnTorch's Leaky and SpikingJelly's LIFNode)")
    p.add_argument("--voltage-decay", type=v.real(0, 1, "the voltage decay per step", example="0.2"), default=None, metavar="D",
                   help="membrane decay per step, 0..1 (default 0.2; SpikingJelly's tau=2 LIF is 0.5)")
    p.add_argument("--readout", choices=("rate", "voting", "membrane"), default=None,
                   help="output layer: one spiking neuron per class, 10 voters per class, or a non-spiking "
                        "leaky integrator read at the last step (default: the rule's own)")
    p.add_argument("--encoding", choices=("rate", "signed", "analog"), default=None,
                   help="input code of static datasets: Bernoulli spikes, signed spikes (two input lines per "
                        "feature), or the analog value into an encoding layer (default: the rule's own; "
                        "event datasets always bring their own spikes)")
    p.add_argument("--epochs", type=v.integer(1, 100_000, "the number of epochs", 5), default=None, help="default: 5")
    p.add_argument("--timesteps", type=v.integer(1, v.max_timesteps, "the timesteps per sample", 20), default=None,
                   help="timesteps per sample (= time bins of event datasets; default: 20)")
    p.add_argument("--batch-size", type=v.integer(1, 1_000_000, "the batch size", 32), default=None,
                   help="default: 32")
    p.add_argument("--lr", type=v.real(0, 100, "the learning rate", lo_open=True, example="0.005"), default=None,
                   help="Adam's learning rate (default: the rule's own, 5e-3 for most; docs/rules.md)")
    p.add_argument("--lr-scaling", choices=("fan-in", "none"), default=None,
                   help="fan-in (default): each layer trains at lr*min(1, sqrt(64/fan_in)), so that wide "
                        "inputs (784, 2312) move no faster than 64; none: one lr for every layer")
    p.add_argument("--seed", type=v.integer(0, v.MAX_SEED, "the seed", 0), default=0,
                   help="seed of the initial weights, data order and input spikes (default 0)")
    p.add_argument("--max-steps", type=v.integer(1, 1_000_000_000, "the optimiser steps per epoch", 10), default=None, help="cap optimiser steps per epoch (smoke tests)")
    p.add_argument("--float", dest="hardware_exact", action="store_false",
                   help="train in float arithmetic (default: hardware-exact, the chip's integers)")
    p.add_argument("--device", type=v.device, default="auto", help="auto (CUDA when available), cpu, cuda, cuda:1, ...")
    p.add_argument("--out", type=v.output_file("the checkpoint"), default=Path("model.pt"),
                   help="checkpoint, rewritten after every epoch; OUT.state.pt and OUT.log.json beside it "
                        "(default: model.pt; an existing one is never replaced without --overwrite)")
    p.add_argument("--resume", action="store_true",
                   help="continue the run saved at --out (same settings) up to --epochs")
    p.add_argument("--overwrite", action="store_true",
                   help="replace the checkpoint at --out (and its state and log) with a new run")
    return p


def check_train_edge(args: argparse.Namespace, explicit: dict[str, object]) -> None:
    """What snn-train refuses before loading anything: replacing another run's checkpoint, resuming
    with other settings, a device that is not usable here."""
    v.check_train_out(args.out, resume=args.resume, overwrite=args.overwrite)
    if args.resume:
        state_path = args.out.with_suffix(".state.pt")
        if not state_path.is_file():
            raise SnncError(f"--resume: no training state at {state_path}; start without --resume.")
        flags = {a.dest: ("--float" if a.dest == "hardware_exact" else a.option_strings[0])
                 for a in train_parser()._actions if a.option_strings}
        v.check_resume_settings(args.out, explicit, flags)
    v.check_device("--device", args.device, allow_auto=True)


def train_main(argv: Sequence[str] | None = None) -> int:
    args = _parse(train_parser(), argv)
    if isinstance(args, int):
        return args
    explicit = v.explicit(train_parser(), list(sys.argv[1:] if argv is None else argv))

    def body() -> int:
        check_train_edge(args, explicit)
        from snnc.models.presets import ADAM, CONSTANT, get_preset
        preset = get_preset(args.preset) if args.preset else None
        given = {"dataset": args.dataset, "arch": args.arch, "rule": args.rule, "hidden": args.hidden,
                 "epochs": args.epochs, "timesteps": args.timesteps, "batch_size": args.batch_size,
                 "lr": args.lr, "lr_scaling": args.lr_scaling, "encoding": args.encoding}
        if preset is not None:
            print(preset.describe())
            for key, value in given.items():
                if value is None and not (key == "encoding" and preset.dataset != args.dataset):
                    setattr(args, key, list(getattr(preset, key)) if key == "hidden" else getattr(preset, key))
        for key, value in TRAIN_DEFAULTS.items():
            if getattr(args, key) is None:
                setattr(args, key, value)
        optimizer = preset.optimizer if preset else ADAM
        schedule = preset.schedule if preset else CONSTANT
        rule_params = dict(preset.rule_params) if preset and args.rule == preset.rule else {}
        if args.arch == "rmlp":      # refused before any data loads
            from snnc.models.network import rmlp_rule_problem
            from snnc.models.rules import RULES

            if RULES[args.rule].custom_layer_backward:
                raise SnncError(rmlp_rule_problem(args.rule))
        if args.delays:              # refused before any data loads
            from snnc.models.network import delays_problem
            if (why := delays_problem(args.arch)) is not None:
                raise SnncError(why)
        from snnc.models.checkpoint import atomic_torch_save, load, save
        from snnc.models.datasets import load_dataset
        from snnc.models.network import ARCHS
        from snnc.models.readout import Readout
        from snnc.models.rules import make_rule
        from snnc.models.train import resolve_device, seed_everything, train

        state_path, log_path = args.out.with_suffix(".state.pt"), args.out.with_suffix(".log.json")
        where = {"timesteps": args.timesteps, "data_dir": args.data_dir}
        data_meta: dict[str, object] = {}
        if args.data is not None:
            from snnc.models.datasets import DATA_FILE_DATASET, file_sha256, load_data_file_splits
            if given["dataset"] is not None:
                raise SnncError(f"--dataset {given['dataset']} and --data {args.data}: give one of them.")
            train_data, test_data, about = load_data_file_splits(args.data, seed=args.seed, layout=args.data_layout,
                                                                 timesteps=given["timesteps"])
            args.dataset, args.timesteps = DATA_FILE_DATASET, train_data.timesteps or args.timesteps
            data_meta = {"data_file": str(args.data.expanduser().resolve()), "data_sha256": file_sha256(args.data),
                         "data_layout": "frames" if train_data.encoding == "events" else "static"}
            print(about)
        elif args.data_layout is not None:
            raise SnncError(f"--data-layout {args.data_layout}: applies to --data FILE only; give --data too.")
        else:
            train_data = load_dataset(args.dataset, "train", args.seed, **where)
            test_data = load_dataset(args.dataset, "test", args.seed, **where)
        resume = None
        if args.resume:
            ckpt = load(args.out)
            was = {k: ckpt.metadata.get(k) for k in ("dataset", "seed", "timesteps", "preset")}
            now = {"dataset": args.dataset, "seed": args.seed, "timesteps": args.timesteps, "preset": args.preset}
            if was != now:
                raise SnncError(f"--resume: {args.out} was trained with {was}; resume with the same "
                                f"--dataset, --seed, --timesteps and --preset (got {now}).")
            if ckpt.metadata.get("data_sha256") and ckpt.metadata["data_sha256"] != data_meta.get("data_sha256"):
                raise SnncError(f"--resume: {args.out} was trained on {ckpt.metadata.get('data_file')} (sha256 "
                                f"{str(ckpt.metadata['data_sha256'])[:12]}...), and --data "
                                f"{args.data} holds other samples; resume on the same data file, or train "
                                f"with another --out.")
            model = ckpt.build()
            resume = read_train_state(state_path)
            args.delays = args.delays or int(ckpt.metadata.get("delays") or 0)
        else:
            if args.arch not in ARCHS:
                raise SnncError(f"unknown --arch '{args.arch}'. Supported: {', '.join(sorted(ARCHS))}.")
            seed_everything(args.seed)
            arch: dict[str, object] = {}
            if args.readout:
                arch["readout"] = Readout(args.readout, 10 if args.readout == "voting" else 1)
            if train_data.encoding == "events":
                if args.encoding not in (None, "rate"):
                    raise SnncError(f"--encoding {args.encoding}: dataset '{args.dataset}' is event data and "
                                    f"brings its own spikes; leave --encoding out.")
                arch["encoding"] = "rate"   # binary frames straight into the first layer
            elif args.encoding:
                arch["encoding"] = args.encoding
            neuron = {k: v for k, v in (("current_decay", args.current_decay), ("voltage_decay", args.voltage_decay))
                      if v is not None}
            for name, value in neuron.items():
                if not 0.0 <= value <= 1.0:
                    raise SnncError(f"--{name.replace('_', '-')} {value:g}: a decay is a fraction of the state "
                                    f"lost per step, between 0 and 1.")
            model = ARCHS[args.arch](train_data.input_size, train_data.num_classes, hidden=tuple(args.hidden),
                                     input_shape=train_data.input_shape,
                                     hardware_exact=args.hardware_exact,
                                     rule=make_rule(args.rule, **{**rule_params,
                                                                  **({"loss": args.loss} if args.loss else {})}),
                                     **arch, **neuron)
            if args.delays:
                from snnc.models.network import random_delays
                random_delays(model, args.delays, args.seed)
        device = resolve_device(args.device)
        from snnc.health import model_timesteps_warning
        if (short := model_timesteps_warning(model, args.timesteps)) is not None:
            print(f"snn-train: warning: {short}", file=sys.stderr, flush=True)
        mode = "hardware-exact" if model.hardware_exact else "float"
        sizes = [model.input_shape, *[getattr(pop, "out_shape", pop.out_features) for _, pop in model.named_populations()]]
        code = model.input_encoding or train_data.encoding
        say = print if int(os.environ.get("RANK", "0")) == 0 else (lambda *_a, **_k: None)  # torchrun: rank 0 speaks
        say(f"training {sizes} on {args.dataset} ({len(train_data.y)} samples), rule {model.rule.name} "
              f"({model.rule.loss} loss), {code} input, {model.readout.kind} readout, {mode}, "
              f"T={args.timesteps}, {device}"
              + (f", synaptic delays 0..{args.delays} steps" if args.delays else "")
              + (f", resuming after epoch {resume.epoch}" if resume else ""))
        config = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}

        def checkpoint(log, state) -> None:  # type: ignore[no-untyped-def]
            print(f"epoch {log.epoch}: loss {log.loss:.4f}  train acc {log.train_accuracy:.1%}  "
                  f"test acc {log.test_accuracy:.1%}  {log.samples_per_s:.0f} samples/s", flush=True)
            save(model, args.out, metadata={
                "dataset": args.dataset, "timesteps": args.timesteps, "rule": model.rule.name, "seed": args.seed,
                "epochs": log.epoch, "test_accuracy": log.test_accuracy, "encoding": train_data.encoding,
                **({"preset": args.preset} if args.preset else {}), **data_meta,
                **({"delays": args.delays} if args.delays else {}),
                **({"data_dir": str(args.data_dir.expanduser().resolve())} if args.data_dir else {})})
            atomic_torch_save(state.to_dict(), state_path)
            log_path.write_text(json.dumps({"config": config, "epochs": state.logs}, indent=2) + "\n")

        from snnc.progress import Progress

        with Progress(plain_skip={"epochs"}) as progress:   # each epoch ends with its summary line
            train(model, train_data, epochs=args.epochs, timesteps=args.timesteps, batch_size=args.batch_size,
                  lr=args.lr if args.lr is not None else model.rule.default_lr, lr_scaling=args.lr_scaling,
                  optimizer=optimizer, schedule=schedule, seed=args.seed, test_data=test_data, max_steps=args.max_steps, device=device,
                  resume=resume, on_epoch=checkpoint,
                  on_warning=lambda _kind, msg: print(f"snn-train: warning: {msg}", file=sys.stderr, flush=True),
                  progress=progress)
        say(f"saved {args.out} (training state {state_path}, log {log_path})")
        return 0

    return _guard("snn-train", body)


def read_train_state(path: Path) -> "TrainState":
    """The --resume state: a plain-data torch file, read without unpickling code (weights_only);
    anything else in it is refused with the file's name, never a library traceback."""
    import pickle

    import torch

    import warnings

    from snnc.models.checkpoint import pickled_class, sniff_content, torch_reason
    from snnc.models.train import TrainState

    try:
        content = sniff_content(path)
    except OSError as e:
        raise SnncError(f"--resume: {path} cannot be read ({e.strerror or type(e).__name__}). Start without "
                        f"--resume.") from None
    if content.kind != "torch":
        raise SnncError(f"--resume: {path} is not a training state (snn-train writes OUT.state.pt with torch.save): "
                        f"{content.clause}. Start without --resume.")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        cls = pickled_class(e)
        held = f"a pickled {cls}" if cls else "pickled Python objects beyond tensors and plain data"
        raise SnncError(f"--resume: {path} holds {held}; loading it would run code stored in the file, so snnc "
                        f"refuses. Start without --resume.") from None
    except Exception as e:  # the weights-only reader runs no file code: any error means a damaged file
        raise SnncError(f"--resume: {path} is not a readable training state ({type(e).__name__}: "
                        f"{torch_reason(str(e), 120) or 'no message'}). Start without --resume.") from None
    try:
        return TrainState.from_dict(obj)
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise SnncError(f"--resume: {path} is not a valid training state ({e}). Start without --resume.") from None


def compile_parser() -> argparse.ArgumentParser:
    p = _parser("snn-compile", "Compile a trained model into a Loihi artifact directory (graph.h5, graph.nir, "
                "netx HDF5, manifest, report), optionally verifying spike for spike against Lava's simulator.",
                "  snn-compile model.pt --target loihi --verify 32\n"
                "  snn-compile model.pt --target loihi --out build/ --verify 32\n"
                "  snn-compile model.pt --target loihi2 --verify 8        # Loihi 2's compiler budgets (docs/mapping.md)\n"
                "  snn-compile graph.nir --target loihi --verify 8        # snnTorch, Norse, ... via NIR\n"
                "  snn-compile network.net --target loihi --verify 8      # lava-dl SLAYER export_hdf5")
    p.add_argument("model", type=v.model_file(), help="snnc checkpoint (snn-train, snnc.save), NIR graph (.nir), lava-dl "
                   "netx HDF5 (.net), or snnc's graph.onnx / graph.h5; recognised by content")
    p.add_argument("--target", type=v.name(_targets, "--target"), default="loihi",
                   help="target chip: loihi (Loihi 1) or loihi2 (Loihi 2: Intel's compiler budgets per core, graded "
                        "spikes up to 24 bits, no emulator or silicon-divergence check, energy counted but not "
                        "priced); default: loihi. docs/mapping.md lists every limit and its source")
    p.add_argument("--out", type=v.output_dir("the artifact"), default=None, help="artifact directory (default: MODEL_STEM.TARGET beside the model)")
    p.add_argument("--verify", type=v.integer(0, 100_000, "the number of samples to verify (0: none)", 32),
                   default=0, metavar="N",
                   help="run N test samples through PyTorch (hardware-exact), hwsim, Lava and nengo-loihi's Loihi "
                        "emulator (when installed: pip install 'snnc[emulator]'); any mismatch fails")
    p.add_argument("--timesteps", type=v.integer(1, v.max_timesteps, "the timesteps per sample", 20), default=None,
                   help="override the timesteps recorded in the model")
    p.add_argument("--allow-pickle-code-execution", action="store_true",
                   help="allow loading a whole pickled module: this EXECUTES code stored in the file")
    p.add_argument("--nir-convention", choices=("auto", "euler", "norse"), default="auto",
                   help="how a NIR file's continuous-time parameters are discretised: 'euler' (snnTorch, NIR's "
                        "Lava script: r = tau/dt), 'norse' (Norse 1.1's exporter); default: detected, see docs/nir.md")
    p.add_argument("--nir-dt", type=v.real(0, None, "the NIR time step", lo_open=True, example="1e-3"), default=None,
                   help="time step of a NIR file in its own units (default: tau/r for 'euler', 1e-3 for 'norse')")
    p.add_argument("--cost-model", type=v.cost_model, default=None, metavar="NAME|FILE",
                   help="price the report with a shipped cost model (loihi1-davies2018, loihi1-sanafe2025, "
                        "loihi2-counts-only) or a JSON/YAML file (docs/energy.md); default: the target's "
                        "(loihi1-davies2018 for loihi, loihi2-counts-only for loihi2: no public Loihi 2 table, so "
                        "counts only; a Loihi 1 table given for loihi2 is labelled as such); snn-report can re-price later")
    _lava_timeout_arg(p)
    p.add_argument("--no-emulator", action="store_true",
                   help="verify without nengo-loihi's Loihi emulator (the second reference engine, docs/emulator.md)")
    p.add_argument("--strict", action="store_true",
                   help="fail (writing nothing) if quantization or the chip's arithmetic changes what the network "
                        "computes: weights clipped or rounded, thresholds, decays or biases rounded, state leaving "
                        "24 bits on the observed inputs, spikes differing from a float model; or if the network does not "
                        "work: a silent layer, most outputs undecided, T too short for its depth (docs/reliability.md)")
    _data_arg(p, "report, numerics and --verify on this file's samples (x_test/y_test if it has them) instead of "
                 "the recorded dataset or random spikes")
    p.add_argument("--input-shape", type=v.input_shape, default=None, metavar="C,H,W|F",
                   help="the input shape of a netx file without an input layer (a SLAYER conv export; netx itself "
                        "asks for Network(input_shape=...)) or of a NIR file whose Input has no shape, e.g. 2,34,34")
    return p


def compile_main(argv: Sequence[str] | None = None) -> int:
    args = _parse(compile_parser(), argv)
    if isinstance(args, int):
        return args

    def body() -> int:
        from snnc.background import Helper

        with Helper() as helper:      # started first: it imports onnx and matplotlib while we import the rest
            from snnc.pipeline import compile_model
            from snnc.progress import Progress
            from snnc.report import render

            with Progress() as progress:   # the bars end before the report is drawn
                res = compile_model(args.model, target=args.target, out=args.out, verify=args.verify,
                                    allow_pickle_code_execution=args.allow_pickle_code_execution,
                                    timesteps=args.timesteps,
                                    on_stage=lambda m: print(m, flush=True), nir_convention=args.nir_convention,
                                    nir_dt=args.nir_dt, cost_model=args.cost_model, strict=args.strict,
                                    lava_timeout=_lava_timeout(args.lava_timeout), data_file=args.data,
                                    input_shape=args.input_shape,
                                    progress=progress, emulator=not args.no_emulator, background=helper)
        render(res.report)
        print(f"artifact: {res.out}")
        return 0

    return _guard("snn-compile", body)


def run_parser() -> argparse.ArgumentParser:
    p = _parser("snn-run", "Run test samples through a compiled artifact on hwsim or Lava's simulator.",
                "  snn-run build/ --backend hwsim --dataset digits --samples 100\n"
                "  snn-run build/ --backend lava --samples 20 --json")
    p.add_argument("artifact", type=v.artifact_dir())
    p.add_argument("--backend", choices=("hwsim", "lava"), default="hwsim")
    p.add_argument("--dataset", type=v.name(_datasets, "--dataset"), default=None,
                   help="default: the dataset recorded in the artifact")
    _data_arg(p, "run this file's samples (x_test/y_test if it has them), accuracy from its labels")
    p.add_argument("--samples", type=v.integer(1, v.MAX_SAMPLES, "the number of test samples", 100), default=100,
                   help="test samples to run (default 100)")
    p.add_argument("--data-dir", type=v.data_dir, default=None,
                   help="where datasets live (default: $SNNC_DATA_DIR, else $XDG_CACHE_HOME/snnc/datasets); "
                        "see docs/datasets.md")
    _lava_timeout_arg(p)
    p.add_argument("--workers", type=v.integer(1, v.MAX_WORKERS, "the number of worker processes", 1), default=1,
                   help="hwsim: split the samples over this many processes (default 1)")
    p.add_argument("--device", type=v.device, default="cpu",
                   help="hwsim: cpu (the numba engine) or a torch device such as cuda, cuda:1 (the torch engine)")
    p.add_argument("--shard", type=v.shard, default=None, metavar="K/N",
                   help="run only the K-th of N equal parts of the samples (K from 0), e.g. one per machine; "
                        "add the 'correct' and 'samples' of the parts")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    return p


def run_main(argv: Sequence[str] | None = None) -> int:
    from snnc.progress import command_started

    started = command_started() if argv is None else time.perf_counter()   # the user's wait, imports included
    args = _parse(run_parser(), argv)
    if isinstance(args, int):
        return args

    def body() -> int:
        shard = args.shard
        if args.backend == "lava" and (args.workers != 1 or args.device != "cpu"):
            raise SnncError("--workers and --device apply to --backend hwsim; Lava's simulator runs on the CPU "
                            "in its own processes.")
        if args.device == "auto":
            raise SnncError("--device auto: snn-run takes cpu (the numba engine) or a torch device such as cuda.")
        v.check_device("--device", args.device)
        from snnc.pipeline import run_artifact

        from snnc.progress import Progress

        with Progress() as progress:
            res = run_artifact(args.artifact, backend=args.backend, dataset=args.dataset, samples=args.samples,
                               data_dir=args.data_dir, workers=args.workers, device=args.device, shard=shard,
                               lava_timeout=_lava_timeout(args.lava_timeout), data_file=args.data,
                               progress=progress, started=started)
        if args.json:
            print(json.dumps(res))
        else:
            acc = "n/a" if res["accuracy"] is None else f"{res['accuracy']:.1%}"
            print(f"{res['backend']}: {res['samples']} samples x {res['timesteps']} steps, accuracy {acc}, "
                  f"{res['samples_per_s']:.1f} samples/s (start-up {res['startup_s']:.2f} s, "
                  f"total {res['wall_s']:.2f} s)")
        return 0

    return _guard("snn-run", body)


def report_parser() -> argparse.ArgumentParser:
    p = _parser("snn-report", "Show an artifact's activity, energy, latency, mapping and verification report and "
                "write it as one self-contained page, ARTIFACT/report.html.",
                "  snn-report build/\n"
                "  snn-report build/ --json\n"
                "  snn-report build/ --cost-model loihi2-counts-only\n"
                "  snn-report build/ --cost-model my_chip.yaml --samples 100 --html /tmp/mine.html")
    p.add_argument("artifact", type=v.artifact_dir())
    p.add_argument("--json", action="store_true", help="print the report as JSON instead of tables")
    p.add_argument("--cost-model", type=v.cost_model, default=None, metavar="NAME|FILE",
                   help="price the counts with a shipped cost model (loihi1-davies2018, loihi2-counts-only) or "
                        "a JSON/YAML file (docs/energy.md); default: the report as compiled")
    p.add_argument("--samples", type=v.integer(1, v.MAX_SAMPLES, "the number of test samples", 32), default=None,
                   help="count activity on this many test samples (default: as many as report.json had)")
    p.add_argument("--html", type=v.output_file("the report page"), default=None, metavar="PATH",
                   help="where to write the page (default: ARTIFACT/report.html)")
    p.add_argument("--no-html", action="store_true", help="write no page")
    return p


def report_main(argv: Sequence[str] | None = None) -> int:
    args = _parse(report_parser(), argv)
    if isinstance(args, int):
        return args

    def body() -> int:
        from snnc.compiler.artifact import HTML_REPORT_FILE, load_artifact
        from snnc.pipeline import rebuild_report
        from snnc.report import render

        if args.cost_model is not None:   # a file's keys are checked before any sample is counted
            from snnc.hwsim.energy import load_cost_model
            load_cost_model(args.cost_model)
        art = load_artifact(args.artifact)
        if not art.report():
            raise SnncError(f"{args.artifact}: has no report.json; recompile it with snn-compile.")
        html = None if args.no_html else (args.html or art.path / HTML_REPORT_FILE)
        if html is not None and not html.parent.is_dir():
            raise SnncError(f"--html {html}: the folder {html.parent} does not exist.")
        report = rebuild_report(art.path, cost_model=args.cost_model, samples=args.samples, html=html)
        if args.json:
            print(json.dumps(report, indent=2))
        else:
            render(report)
            if html is not None:
                print(f"report page: {html}")
        return 0

    return _guard("snn-report", body)


# --- the console scripts (pyproject.toml [project.scripts]) -----------------------------------------

def _exit(code: int) -> NoReturn:
    """How a command ends: atexit's handlers run (every clean-up registered there still happens), the
    standard streams are flushed, and the process exits without tearing the interpreter down: torch's
    teardown alone took ~0.5 s here, after the command's work was done (docs/performance.md,
    "Start-up"). The ``*_main`` functions return their code instead (tests and the Python API)."""
    import atexit

    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)


def train_command() -> NoReturn:
    _exit(train_main())


def compile_command() -> NoReturn:
    _exit(compile_main())


def run_command() -> NoReturn:
    _exit(run_main())


def report_command() -> NoReturn:
    _exit(report_main())
