"""What the chip is fed: the input spec an artifact records (dataset or data file, code, seed, T) and
the samples it rebuilds from it, for the report, verification, snn-run and snn-report; and the user's
own arrays coded the same way (snnc.run).

Static samples are coded with one fixed seed (:data:`ENCODING_SEED`) by ``engine_spikes`` (numpy's
PCG64, recorded as the spec's ``generator``), so every engine and every command sees the same spikes for
the same sample; event frames are fed as they are. Artifacts compiled before the generator was recorded
were coded with torch's generator (``batch_spikes``) and still are, so that their figures reproduce.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from snnc.compiler.ir import Input
from snnc.errors import SnncError
from snnc.models.datasets import (DATA_FILE_DATASET, DEFAULT_TIMESTEPS, ENGINE_CODE_GENERATOR, Dataset, batch_spikes,
                                  engine_spikes, is_event_dataset, load_data_file, load_dataset, to_engine_input)

#: the seed of the rate code of every static sample the compiler, snn-run and snnc.run feed the chip
ENCODING_SEED = 2024
#: the static rate code as an input spec records it
RATE_CODE = {"kind": "rate", "distribution": "bernoulli", "seed": ENCODING_SEED, "generator": ENGINE_CODE_GENERATOR}


def input_spec(metadata: dict[str, Any], timesteps: int | None, encoding: str | None = None,
               data_file: str | Path | None = None) -> dict[str, Any]:
    """How to feed the network (the caller adds the shape): enough to rebuild the same test inputs.

    Static datasets are coded with a fixed seed ('rate' Bernoulli spikes, 'signed' two-channel
    spikes) or sent as 8-bit graded values ('analog', an encoding layer); event datasets are tonic
    frames with T time bins. ``split_seed`` is the training seed (it fixes digits' split);
    ``data_dir`` only if one was given. ``data_file`` (``--data FILE``) feeds the file's 'eval' samples
    instead of the recorded dataset; a model trained on a data file feeds that file's test part.
    """
    t = int(timesteps or metadata.get("timesteps") or DEFAULT_TIMESTEPS)
    if metadata.get("encoding") == "events" or is_event_dataset(metadata.get("dataset")):
        code: dict[str, Any] = {"kind": "events", "frames": f"tonic ToFrame(n_time_bins={t})", "binarised": True}
    elif encoding == "analog":
        code = {"kind": "analog", "bits": 8, "values": "round(255 x), x in [0, 1], every step"}
    elif encoding == "signed":
        code = {"kind": "signed", "channels": "[x > 0, x < 0]: 2 lines per feature",
                "distribution": "sign(2x - 1) with probability |2x - 1|", "seed": ENCODING_SEED,
                "generator": ENGINE_CODE_GENERATOR}
    else:
        code = dict(RATE_CODE)
    spec: dict[str, Any] = {"timesteps": t, "encoding": code, "dataset": metadata.get("dataset"),
                            "split_seed": int(metadata.get("seed") or 0)}
    if metadata.get("data_dir"):
        spec["data_dir"] = metadata["data_dir"]
    if data_file is not None:
        spec.update(dataset=DATA_FILE_DATASET, data_file=str(Path(data_file).expanduser().resolve()),
                    data_split="eval")
        spec.pop("data_dir", None)
    elif metadata.get("dataset") == DATA_FILE_DATASET:
        spec.update({"data_file": metadata["data_file"], "data_split": "test",
                     **{k: metadata[k] for k in ("data_sha256", "data_layout") if metadata.get(k)}})
    if spec.get("data_file") and code["kind"] == "events":
        code["frames"] = "the data file's frames"
    return spec


def data_file_spec(spec: dict[str, Any], graph_input: Input, network: str,
                   adopt_timesteps: bool = False) -> dict[str, Any]:
    """``spec`` for its data file (checked against ``network``'s input): the layout recorded, frames fed
    as they are ('events'), static samples rate-coded where the network was trained on frames; with
    ``adopt_timesteps`` (nothing else fixed the sample length) the frames' T becomes the timesteps."""
    code = input_code(spec)
    data = load_data_file(spec["data_file"], spec.get("data_split", "eval"), seed=int(spec.get("split_seed") or 0),
                          layout=spec.get("data_layout"), input_size=graph_input.size // (2 if code == "signed" else 1),
                          network=network, limit=1, sha256=spec.get("data_sha256"))
    spec = {**spec, "data_layout": "frames" if data.encoding == "events" else "static"}
    if data.encoding == "events":
        if code in ("signed", "analog"):
            raise SnncError(f"{spec['data_file']}: holds event frames, but the network in {network} takes "
                            f"'{code}'-coded static input; give static samples (N, F) or (N, C, H, W) in [0, 1].")
        if adopt_timesteps:
            spec["timesteps"] = data.timesteps
        spec["encoding"] = {"kind": "events", "frames": "the data file's frames", "binarised": True}
    elif code == "events":
        spec["encoding"] = dict(RATE_CODE)
    return spec


def coded(spec: dict[str, Any], data: Dataset, n: int, code: str, seed: int = ENCODING_SEED) -> np.ndarray:
    """The first ``n`` samples of ``data`` as the chip receives them, coded with ``code`` by the generator
    ``spec`` records (numpy's; an artifact compiled before it was recorded: torch's, as it was coded then)."""
    generator = spec.get("encoding", {}).get("generator")
    if generator == ENGINE_CODE_GENERATOR or code in ("events", "analog"):     # the last two draw nothing
        return engine_spikes(data, slice(0, n), spec["timesteps"], seed, code)
    if generator is not None:
        raise SnncError(f"the input code's generator '{str(generator)[:60]}' is not one this snnc has "
                        f"({ENGINE_CODE_GENERATOR}); recompile the model with this snnc.")
    import torch

    x = batch_spikes(data, slice(0, n), spec["timesteps"], torch.Generator().manual_seed(seed), code)
    return to_engine_input(x.numpy(), code)


def input_code(spec: dict[str, Any]) -> str:
    return str(spec.get("encoding", {}).get("kind", "rate"))


def sample_inputs(spec: dict[str, Any], graph_input: Input, n: int,
                  network: str | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """The first ``n`` test samples of the model's dataset (or data file, checked against ``network``'s
    input) as the chip receives them (binary spikes or graded values, ``Input.check_values`` accepts
    them); random ones if the model has no dataset."""
    code = input_code(spec)
    if spec.get("data_file"):
        data = load_data_file(spec["data_file"], spec.get("data_split", "eval"), seed=int(spec.get("split_seed") or 0),
                              layout=spec.get("data_layout"), input_size=graph_input.size // (2 if code == "signed" else 1),
                              network=network, timesteps=spec["timesteps"],
                              timesteps_from=f"{network or 'the network'} runs {spec['timesteps']} steps", limit=n,
                              sha256=spec.get("data_sha256"))
        code = "events" if data.encoding == "events" else ("rate" if code == "events" else code)
        n = min(n, len(data.y))
        return coded(spec, data, n, code), data.y[:n]
    if spec.get("dataset"):
        data = load_dataset(spec["dataset"], "test", int(spec.get("split_seed") or 0),
                            timesteps=spec["timesteps"], data_dir=spec.get("data_dir"), limit=n)
        lines = data.input_size * (2 if code == "signed" else 1)
        if lines != graph_input.size:
            raise SnncError(f"dataset '{spec['dataset']}' has {data.input_size} features ({lines} input lines "
                            f"with the '{code}' code) but the network takes {graph_input.size}.")
        n = min(n, len(data.y))
        return coded(spec, data, n, code), data.y[:n]
    rng = np.random.default_rng(ENCODING_SEED)
    shape = (n, spec["timesteps"], graph_input.size)
    if graph_input.bits:
        return rng.integers(0, 2 ** graph_input.bits, shape), None
    return rng.random(shape) < 0.2, None


def chip_inputs(artifact: Any, data: Any, *, seed: int | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """The user's data as the chip receives it for ``artifact``: static samples coded with the
    artifact's input code (the compiler's seed unless ``seed``), event frames binarised; (inputs, labels)."""
    import torch

    from snnc.api import as_dataset

    spec = artifact.manifest["input"]
    code = str(spec.get("encoding", {}).get("kind", "rate"))
    shape = tuple(spec.get("shape") or (artifact.graph.input.size,))
    t = int(spec["timesteps"])
    if code == "signed":  # two input lines per feature on the chip; the model's shape is half
        shape = (artifact.graph.input.size // 2,)
    labels_given = not isinstance(data, (np.ndarray, torch.Tensor))
    ds = as_dataset(data, shape, what="data", timesteps=t, labels_needed=False)
    if ds.encoding == "events":
        code = "events"
    x = coded(spec, ds, len(ds.y), code, ENCODING_SEED if seed is None else seed)
    return x, (ds.y if labels_given else None)
