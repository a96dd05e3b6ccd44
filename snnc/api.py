"""The Python API beside ``save`` / ``load`` / ``compile``: train any SpikingNet on any data, and run
a compiled artifact on the user's own arrays or DataLoader, on hwsim or Lava.

Data given as arrays is read exactly as ``--data FILE`` is (``snnc.models.datasets.dataset_from_arrays``)
and coded by the same function as the built-in datasets (``batch_spikes``), so a model trained here,
verified by ``snn-compile`` and run by ``snn-run`` sees the same inputs everywhere.
"""
from __future__ import annotations

import math
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np
import torch

from snnc.errors import SnncError
from snnc.models.datasets import Dataset, dataset_from_arrays, load_dataset
from snnc.models.network import SpikingNet
from snnc.models.train import EpochLog

#: What ``data`` may be, in one line for errors.
DATA_KINDS = ("a built-in dataset name (digits, mnist, synthetic-events, ...)",
              "an (x, y) pair of arrays or tensors (or a dict with 'x' and 'y')",
              "a torch DataLoader or Dataset yielding (x, y)", "an snnc.models.Dataset")


def _arrays(data: Any, what: str) -> tuple[np.ndarray, np.ndarray | None]:
    """(x, y) as numpy from a pair, a torch Dataset or an iterable of (x, y) batches (a DataLoader)."""
    if isinstance(data, dict) and "x" in data:      # as a --data torch file holds them
        data = (data["x"], data.get("y"))
    if isinstance(data, (tuple, list)) and len(data) == 2 and not isinstance(data[0], (tuple, list)):
        x, y = data
        return _numpy(x, f"{what} x"), None if y is None else _numpy(y, f"{what} y")
    if isinstance(data, (np.ndarray, torch.Tensor)):
        return _numpy(data, f"{what} x"), None
    if isinstance(data, torch.utils.data.DataLoader) or hasattr(data, "__iter__") or hasattr(data, "__getitem__"):
        xs, ys = [], []
        batched = isinstance(data, torch.utils.data.DataLoader)
        items = data if batched or hasattr(data, "__iter__") else (data[i] for i in range(len(data)))
        for item in items:
            if not isinstance(item, (tuple, list)) or len(item) != 2:
                raise SnncError(f"{what}: each item must be an (x, y) pair, got a {type(item).__name__}; "
                                f"give {' or '.join(DATA_KINDS)}.")
            bx, by = _numpy(item[0], f"{what} x"), _numpy(item[1], f"{what} y")
            xs.append(bx if batched else bx[None])
            ys.append(by.reshape(-1) if batched else by.reshape(1))
        if not xs:
            raise SnncError(f"{what}: is empty.")
        return np.concatenate(xs), np.concatenate(ys)
    raise SnncError(f"{what}: a {type(data).__name__} is not data snnc reads; give {' or '.join(DATA_KINDS)}.")


def _numpy(v: Any, what: str) -> np.ndarray:
    if isinstance(v, torch.Tensor):
        return v.detach().cpu().numpy()
    try:
        return np.asarray(v)
    except (TypeError, ValueError) as e:
        raise SnncError(f"{what}: not an array ({e}).") from None


def as_dataset(data: Any, input_shape: tuple[int, ...], *, what: str = "data", split: str = "train",
               timesteps: int | None = None, seed: int = 0, labels_needed: bool = True) -> Dataset:
    """``data`` (any of :data:`DATA_KINDS`) as an snnc Dataset for a network taking ``input_shape``."""
    if isinstance(data, Dataset):
        return data
    if isinstance(data, str):
        return load_dataset(data, split, seed, timesteps=timesteps)
    x, y = _arrays(data, what)
    if y is None:
        if labels_needed:
            raise SnncError(f"{what}: has no labels; training needs (x, y).")
        y = np.zeros(len(x), dtype=np.int64)
    return dataset_from_arrays(x, y, name=what, input_size=math.prod(input_shape), network="the network",
                               timesteps=timesteps, timesteps_from="timesteps=")


def train(model: SpikingNet, data: Any, *, test_data: Any = None, epochs: int = 5, timesteps: int = 20,
          batch_size: int = 32, lr: float | None = None, seed: int = 0, device: str = "auto",
          out: str | os.PathLike | None = None, on_epoch: Callable[[EpochLog], None] | None = None,
          **options: Any) -> list[EpochLog]:
    """Train ``model`` with its rule (``model.rule``) on ``data``; returns one log per epoch.

    ``data`` / ``test_data``: a built-in dataset name (its test split is the default test data), an
    (x, y) pair of arrays or tensors, a torch DataLoader / Dataset of (x, y), or an snnc Dataset.
    x holds static samples in [0, 1] (N, *input_shape), coded by the model's input encoding each
    step (Bernoulli spikes by default), or event frames (N, T, *input_shape) of 0/1 spikes with
    T = ``timesteps``. ``lr`` defaults to the rule's own. ``out``: save an snnc checkpoint there after
    every epoch, with the metadata ``snn-compile`` reads. ``options`` go to
    :func:`snnc.models.train.train` (lr_scaling, optimizer, schedule, max_steps, min_rate).
    """
    from snnc.models.checkpoint import save
    from snnc.models.train import resolve_device, train as _train

    if not isinstance(model, SpikingNet):
        raise SnncError(f"snnc.train: the model is a {type(model).__name__}; build it as an "
                        f"snnc.models.SpikingNet([...layers...]) (docs/your-own-model.md).")
    for name, value, ok in (("epochs", epochs, epochs >= 1), ("timesteps", timesteps, timesteps >= 1),
                            ("batch_size", batch_size, batch_size >= 1),
                            ("lr", lr, lr is None or (lr > 0 and math.isfinite(lr)))):
        if not ok:
            raise SnncError(f"snnc.train: {name}={value}: must be positive (epochs, timesteps and batch_size "
                            f"at least 1).")
    train_set = as_dataset(data, model.input_shape, what="data", timesteps=timesteps, seed=seed)
    if test_data is None and isinstance(data, str):
        test_data = data
    test_set = None if test_data is None else as_dataset(test_data, model.input_shape, what="test_data",
                                                         split="test", timesteps=timesteps, seed=seed)
    for what, ds in (("data", train_set), ("test_data", test_set)):
        if ds is not None and ds.input_size != model.input_size:
            raise SnncError(f"snnc.train: {what} has {ds.input_size} input values per step but the network's first "
                            f"layer takes {model.input_size}.")
        if ds is not None and int(ds.y.max()) >= model.num_outputs:
            raise SnncError(f"snnc.train: {what} has label {int(ds.y.max())} but the network's readout has "
                            f"{model.num_outputs} classes.")
    from snnc.health import model_timesteps_warning
    from snnc.models.train import TrainingWarning

    if (short := model_timesteps_warning(model, timesteps)) is not None:
        warnings.warn(short.replace("--timesteps ", "timesteps="), TrainingWarning, stacklevel=3)
    metadata = {"dataset": data if isinstance(data, str) else None, "timesteps": timesteps,
                "rule": model.rule.name, "seed": seed, "encoding": train_set.encoding}

    def each_epoch(log: EpochLog, _state: Any) -> None:
        if out is not None:
            save(model, out, metadata={**{k: v for k, v in metadata.items() if v is not None},
                                       "epochs": log.epoch, "test_accuracy": log.test_accuracy})
        if on_epoch is not None:
            on_epoch(log)

    return _train(model, train_set, epochs=epochs, timesteps=timesteps, batch_size=batch_size,
                  lr=model.rule.default_lr if lr is None else lr, seed=seed, test_data=test_set,
                  device=resolve_device(device), on_epoch=each_epoch, **options)


@dataclass
class RunResult:
    """What :func:`run` returns: per sample the class decided by the artifact's readout, the labels
    (when given) and accuracy, and the recorded spikes (batch, T, neurons) by population name."""

    backend: str
    predictions: np.ndarray
    labels: np.ndarray | None
    spikes: dict[str, np.ndarray] = field(repr=False)
    final_v: dict[str, np.ndarray] = field(repr=False)
    inputs: np.ndarray = field(repr=False)

    @property
    def accuracy(self) -> float | None:
        return None if self.labels is None else float((self.predictions == self.labels).mean())


def run(artifact: str | os.PathLike, data: Any, *, backend: str = "hwsim", device: str = "cpu",
        record: Iterable[str] | None = None, lava_timeout: float | None = None) -> RunResult:
    """Run ``data`` through a compiled artifact directory on ``backend`` ('hwsim' or 'lava').

    ``data``: static samples (N, *input_shape) in [0, 1], coded as the artifact's inputs are (same
    seed as ``snn-compile`` and ``snn-run``), or event frames (N, T, *input_shape) with the
    artifact's T; as an array (no labels), an (x, y) pair, a torch DataLoader / Dataset of (x, y) or
    an snnc Dataset. ``record``: the populations whose spikes to keep (default: all on hwsim, the
    output on Lava). hwsim runs on ``device`` (cpu: the numba engine; cuda: the torch engine).
    """
    from snnc.compiler.artifact import load_artifact
    from snnc.hwsim.sim import HwSim
    from snnc.inputs import chip_inputs
    from snnc.pipeline import decisions, readout_v_name

    art = load_artifact(Path(artifact))
    inputs, labels = chip_inputs(art, data)
    if backend == "hwsim":
        keep = set(record) if record is not None else None
        engine = "numba" if device == "cpu" else "torch"
        res = HwSim.from_graph(art.graph).run(inputs, engine=engine, device=device, keep=keep)
        spikes, final_v = res.spikes, res.final_v
    elif backend == "lava":
        from snnc.runtime.lava_backend import run_on_lava_full

        v_name = readout_v_name(art.graph)
        lava = run_on_lava_full(art.graph, inputs, read_v=(v_name,) if v_name else (),
                                record=tuple(record) if record is not None else (art.graph.output.name,),
                                timeout_s=lava_timeout)
        spikes, final_v = lava.spikes, lava.final_v
    else:
        raise SnncError(f"backend '{backend}': use 'hwsim' or 'lava'.")
    return RunResult(backend, decisions(art.graph, spikes, final_v), labels, spikes, final_v, inputs)
