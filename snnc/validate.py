"""Checks of command-line values at the edge, shared by snn-train, snn-compile, snn-run and snn-report.

Two kinds:

* argparse ``type=`` checkers (:func:`integer`, :func:`real`, :func:`existing_file`, ...): run while the
  command line is parsed, before anything is imported, loaded, trained or started. A bad value is
  answered with one line naming the option, the value, what is allowed and what to do; argparse
  exits with status 2. Every checker carries ``checks`` (a short description) so that a test can
  assert that every option of every parser is checked (tests/test_cli_validation.py).
* checks that need more than one value or a registry (names of datasets, architectures, rules,
  targets, cost models; devices; --out and --resume of snn-train): functions raising SnncError,
  called by the commands first thing, still before any dataset load or compile.
"""
from __future__ import annotations

import argparse
import math
import os
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

from snnc.errors import SnncError

class UsageError(SnncError):
    """A command-line value refused while parsing (exit status 2, as argparse's own usage errors)."""


#: the most worker processes snn-run starts (more only adds start-up time and memory)
MAX_WORKERS = max(64, 4 * (os.cpu_count() or 1))
#: the most samples one command runs or counts
MAX_SAMPLES = 1_000_000
#: the largest seed numpy accepts (np.random.seed: 0 .. 2**32 - 1)
MAX_SEED = 2 ** 32 - 1


def max_timesteps() -> int:
    """models.datasets.MAX_TIMESTEPS, read when first needed (the module imports torch)."""
    from snnc.models.datasets import MAX_TIMESTEPS

    return int(MAX_TIMESTEPS)


def _checker(fn: Callable[[str], Any], checks: str) -> Callable[[str], Any]:
    fn.checks = checks  # type: ignore[attr-defined]
    fn.__name__ = checks   # argparse names the type in some of its own messages
    return fn


def integer(lo: int, hi: int | Callable[[], int] | None, what: str, example: int | None = None
            ) -> Callable[[str], int]:
    """A whole number in ``lo .. hi`` (``hi`` None: no upper bound; a callable: read at parse time)."""
    def check(text: str) -> int:
        top = hi() if callable(hi) else hi
        allowed = f"from {lo:,} to {top:,}" if top is not None else f"of at least {lo:,}"
        fix = f", e.g. {example}" if example is not None else ""
        try:
            value = int(text.strip().replace("_", ""))
        except ValueError:
            raise argparse.ArgumentTypeError(f"'{text}' is not a whole number; give {what} as a whole number "
                                             f"{allowed}{fix}.") from None
        if value < lo or (top is not None and value > top):
            raise argparse.ArgumentTypeError(f"{value} is out of range; give {what} as a whole number "
                                             f"{allowed}{fix}.")
        return value
    return _checker(check, f"integer {lo}..{'' if hi is None else ('max' if callable(hi) else hi)}")


def real(lo: float, hi: float | None, what: str, *, lo_open: bool = False, example: str | None = None
         ) -> Callable[[str], float]:
    """A finite number in ``lo .. hi`` (``lo_open``: ``lo`` itself is not allowed); NaN and inf refused."""
    lo_text = f"> {lo:g}" if lo_open else f">= {lo:g}"
    allowed = f"{lo_text} and <= {hi:g}" if hi is not None else f"{lo_text} and finite"
    fix = f", e.g. {example}" if example else ""

    def check(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"'{text}' is not a number; give {what}, a number {allowed}{fix}.") \
                from None
        if not math.isfinite(value) or value < lo or (lo_open and value == lo) or (hi is not None and value > hi):
            raise argparse.ArgumentTypeError(f"{text} is out of range; give {what}, a number {allowed}{fix}.")
        return value
    return _checker(check, f"real {lo_text} {'' if hi is None else hi}")


def name(allowed: Callable[[], Iterable[str]], what: str) -> Callable[[str], str]:
    """One of ``allowed()`` (read at parse time, so that a registry is not imported for --help)."""
    def check(text: str) -> str:
        names = sorted(allowed())
        if text not in names:
            raise argparse.ArgumentTypeError(f"unknown {what} '{text}'. Supported: {', '.join(names)}.")
        return text
    return _checker(check, f"name of {what}")


def existing_file(what: str) -> Callable[[str], Path]:
    """An input file: it must exist and not be a directory."""
    def check(text: str) -> Path:
        path = Path(text).expanduser()
        if not path.exists():
            raise argparse.ArgumentTypeError(f"{text}: no such file; give the path of {what}.")
        if path.is_dir():
            raise argparse.ArgumentTypeError(f"{text}: is a directory; give the path of {what} (a file).")
        return path
    return _checker(check, "existing file")


def artifact_dir() -> Callable[[str], Path]:
    """snn-run's and snn-report's artifact: a directory; anything else is answered with what it is and
    what to pass instead (a model file: the snn-compile command that makes its artifact)."""
    def check(text: str) -> Path:
        path = Path(text).expanduser()
        if not path.is_dir():
            from snnc.compiler.artifact import not_an_artifact

            raise argparse.ArgumentTypeError(not_an_artifact(path))
        return path
    return _checker(check, "existing directory")


def model_file() -> Callable[[str], Path]:
    """snn-compile's model: an existing file; an artifact directory is sent to snn-run / snn-report."""
    def check(text: str) -> Path:
        path = Path(text).expanduser()
        if path.is_dir() and (path / "manifest.json").is_file():
            raise argparse.ArgumentTypeError(f"{text}: is a compiled artifact directory, not a model; run it with "
                                             f"snn-run {text} or show its report with snn-report {text}.")
        return existing_file("a model file (snnc checkpoint, .nir, .net, graph.onnx or graph.h5)")(text)
    return _checker(check, "existing file")


def output_file(what: str) -> Callable[[str], Path]:
    """A file to write: its folder must exist, and it must not be a directory."""
    def check(text: str) -> Path:
        path = Path(text).expanduser()
        if path.is_dir():
            raise argparse.ArgumentTypeError(f"{text}: is a directory; give a file name for {what}, "
                                             f"e.g. {Path(text) / 'model.pt'}.")
        if not path.parent.is_dir():
            raise argparse.ArgumentTypeError(f"{text}: the folder {path.parent} does not exist; create it "
                                             f"first or write {what} elsewhere.")
        return path
    return _checker(check, "output file")


def output_dir(what: str) -> Callable[[str], Path]:
    """A directory to write: it must not be a file, and its parent folder must exist."""
    def check(text: str) -> Path:
        path = Path(text).expanduser()
        if path.exists() and not path.is_dir():
            raise argparse.ArgumentTypeError(f"{text}: is a file; give a directory for {what}.")
        if not path.parent.is_dir():
            raise argparse.ArgumentTypeError(f"{text}: the folder {path.parent} does not exist; create it "
                                             f"first or write {what} elsewhere.")
        return path
    return _checker(check, "output directory")


def shard(text: str) -> tuple[int, int]:
    """--shard K/N with 0 <= K < N."""
    try:
        k, n = (int(v) for v in text.split("/"))
        if not 0 <= k < n <= MAX_SAMPLES:
            raise ValueError
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text}: expected K/N with 0 <= K < N; give e.g. 0/4 for the first "
                                         f"of 4 parts.") from None
    return k, n


_checker(shard, "K/N")


def device(text: str) -> str:
    """A device name; whether torch can use it here is :func:`check_device`'s question, asked by the
    command before it loads anything (it needs torch, which --help should not wait for)."""
    if not text.strip():
        raise argparse.ArgumentTypeError("'' is not a device name; give cpu, cuda or cuda:N.")
    return text.strip()


_checker(device, "device name (usable: check_device)")


def is_checked(action: argparse.Action) -> bool:
    """Whether an option's values go through one of these checkers (or argparse's own choices)."""
    return bool(action.choices) or hasattr(action.type, "checks")


# ------------------------------------------------------------------------------ after parsing

def check_device(flag: str, value: str, *, allow_auto: bool = False) -> None:
    """SnncError naming ``flag`` unless ``value`` is a torch device usable here (one tiny tensor)."""
    if value == "cpu" or (allow_auto and value == "auto"):
        return
    import torch

    try:
        dev = torch.device(value)
        torch.zeros(1, device=dev).cpu()
    except (RuntimeError, AssertionError, NotImplementedError, ValueError) as e:
        why = (str(e).splitlines() or [type(e).__name__])[0]
        raise SnncError(f"{flag} {value}: not usable here ({why}); use {flag} cpu"
                        f"{' or auto' if allow_auto else ''}.") from None


def describe_checkpoint(path: Path) -> str:
    """What a checkpoint holds, in a few words (its metadata), for messages about overwriting it."""
    try:
        from snnc.models.checkpoint import load

        meta = load(path).metadata
    except Exception:   # not a checkpoint we can read: say so, never fail here
        return "a file that is not a readable snnc checkpoint"
    acc = meta.get("test_accuracy")
    parts = [f"dataset {meta.get('dataset', '?')}", f"{meta.get('epochs', '?')} epoch(s)",
             f"test accuracy {acc:.1%}" if isinstance(acc, (int, float)) else "no test accuracy"]
    if meta.get("preset"):
        parts.append(f"preset {meta['preset']}")
    return "a trained model (" + ", ".join(parts) + ")"


def check_train_out(out: Path, *, resume: bool, overwrite: bool) -> None:
    """snn-train --out: never replace another run's checkpoint without being asked to."""
    if resume and overwrite:
        raise SnncError("--resume and --overwrite contradict each other: --resume continues the run saved at "
                        f"--out {out}, --overwrite starts a new one in its place; give one of them.")
    if resume or overwrite:
        return
    state, log = out.with_suffix(".state.pt"), out.with_suffix(".log.json")
    if out.exists():
        raise SnncError(f"--out {out}: exists and holds {describe_checkpoint(out)}; refusing to overwrite it. "
                        f"Give --resume to continue that run, another --out, or --overwrite to replace it.")
    for other in (state, log):
        if other.exists():
            raise SnncError(f"--out {out}: {other} exists (another run's training state or log); refusing to "
                            f"overwrite it. Give another --out, or --overwrite to replace it.")


#: snn-train options that may differ from the saved run's on --resume (not settings of the run)
RESUME_MAY_CHANGE = {"epochs", "out", "resume", "overwrite", "device", "data_dir"}


def check_resume_settings(out: Path, given: Mapping[str, Any], flags: Mapping[str, str]) -> None:
    """snn-train --resume: every setting given explicitly must equal the saved run's (OUT.log.json's
    'config', else the checkpoint's metadata); SnncError listing each difference."""
    import json

    saved: dict[str, Any] = {}
    log = out.with_suffix(".log.json")
    try:
        saved.update(json.loads(log.read_text()).get("config") or {})
    except (OSError, ValueError, AttributeError):
        pass
    if out.is_file():
        try:
            from snnc.models.checkpoint import load

            meta = load(out).metadata
            for key in ("dataset", "timesteps", "seed", "rule", "preset"):
                if key in meta:
                    saved.setdefault(key, meta[key])
        except Exception:   # a damaged checkpoint is reported by the resume itself
            pass
    diffs = []
    for key, value in given.items():
        if key in RESUME_MAY_CHANGE or key not in saved:
            continue
        now = str(value) if isinstance(value, Path) else value
        was = saved[key]
        if isinstance(value, Path) and isinstance(was, str) and value.expanduser().resolve() == Path(was).expanduser().resolve():
            continue
        if isinstance(now, (list, tuple)):
            now = list(now)
        if isinstance(now, float) and isinstance(was, (int, float)) and math.isclose(now, was, rel_tol=1e-12):
            continue
        if now != was and key == "hardware_exact":
            diffs.append("--float (saved run: hardware-exact)" if not now else "hardware-exact (saved run: --float)")
        elif now != was:
            diffs.append(f"{flags.get(key, '--' + key)} {_show(now)} (saved run: {_show(was)})")
    if diffs:
        raise SnncError(f"--resume: {out} was trained with other settings: {'; '.join(diffs)}. Resume with the "
                        f"same --dataset, --seed, --timesteps and --preset and the same value of every other "
                        f"setting (or leave them out): only --epochs (the new end) may change, besides where it runs "
                        f"(--device, --data-dir). To train with new settings, give another --out.")


def _show(value: Any) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, list):
        return " ".join(map(str, value)) or "(none)"
    return "(default)" if value is None else str(value)


def explicit(parser: argparse.ArgumentParser, argv: list[str]) -> dict[str, Any]:
    """The options given on the command line (dest -> value), whatever their defaults."""
    for action in parser._actions:
        action.default = argparse.SUPPRESS
    ns, _ = parser.parse_known_args(argv)
    return vars(ns)


def _shipped_cost_models() -> list[str]:
    """hwsim/cost_models/*.json by name, without importing the energy model (snnc.hwsim.energy)."""
    from importlib.util import find_spec

    spec = find_spec("snnc.hwsim")   # imports snnc only, not snnc.hwsim (and torch)
    roots = [Path(d) / "cost_models" for d in (spec.submodule_search_locations or [])] if spec else []
    return sorted(p.name[:-5].replace("_", "-") for root in roots if root.is_dir() for p in root.iterdir()
                  if p.name.endswith(".json"))


def cost_model(text: str) -> str:
    """--cost-model: a shipped name or an existing file (its keys are checked when it is read)."""
    if text in _shipped_cost_models():
        return text
    path = Path(text).expanduser()
    if path.is_file():
        return str(path)
    why = "is a directory" if path.is_dir() else "is no such file"
    raise argparse.ArgumentTypeError(f"'{text}' is not a shipped cost model ({', '.join(_shipped_cost_models())}) "
                                     f"and {why}; give a shipped name or a JSON/YAML file (docs/energy.md).")


_checker(cost_model, "cost model name or file")


def data_dir(text: str) -> Path:
    """--data-dir: a folder (it may not exist yet: each dataset's loader says what belongs there)."""
    path = Path(text).expanduser()
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(f"{text}: is a file, not a directory; give the folder that holds the "
                                         f"datasets (docs/datasets.md).")
    return path


_checker(data_dir, "data directory")


def input_shape(text: str) -> tuple[int, ...]:
    """--input-shape C,H,W or F (commas, or an 'x'): a tuple of positive whole numbers."""
    parts = [p.strip() for p in str(text).replace("x", ",").split(",")]
    try:
        shape = tuple(int(p) for p in parts)
    except ValueError:
        shape = ()
    if len(shape) not in (1, 3) or any(not 1 <= d <= 10_000_000 for d in shape):
        raise argparse.ArgumentTypeError(f"'{text}' is not C,H,W or F; give positive whole numbers, e.g. 2,34,34 "
                                         f"or 784.")
    return shape


_checker(input_shape, "C,H,W or F")
