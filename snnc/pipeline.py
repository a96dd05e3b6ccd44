"""The end-to-end flow behind the CLI: model -> graph -> fixed point -> artifact -> engines -> report."""
from __future__ import annotations

import copy
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from snnc.compiler.artifact import (MANIFEST_FILE, NETWORK_FILE, REPORT_FILE, Artifact, load_artifact,
                                    manifest, sha256, staged_directory, write_json)
from snnc.compiler.frontend import graph_from_checkpoint
from snnc.compiler.ir import Graph
from snnc.compiler.mapping import Mapping, map_cores
from snnc.compiler.netx_hdf5 import read_netx, write_netx
from snnc.compiler.passes import check, quantize
from snnc.compiler.targets import get_target
from snnc.errors import GraphError, SnncError, VerificationError
from snnc.hwsim.energy import activity_summary, estimate, load_cost_model
from snnc.hwsim.sim import HwSim
from snnc.models.checkpoint import load
from snnc.models.datasets import batch_spikes, load_dataset
from snnc.models.network import SpikingNet
from snnc.verify import VerificationResult, compare

DEFAULT_TIMESTEPS = 20
ENCODING_SEED = 2024


@dataclass(frozen=True)
class CompileResult:
    out: Path
    report: dict[str, Any]


def input_spec(metadata: dict[str, Any], timesteps: int | None) -> dict[str, Any]:
    """How to feed the network (the caller adds the shape): enough to rebuild the same test inputs.

    Rate-coded datasets use a fixed Bernoulli seed; event datasets are tonic frames with T time bins.
    ``split_seed`` is the training seed (it fixes digits' split); ``data_dir`` only if one was given.
    """
    t = int(timesteps or metadata.get("timesteps") or DEFAULT_TIMESTEPS)
    if metadata.get("encoding") == "events":
        encoding: dict[str, Any] = {"kind": "events", "frames": f"tonic ToFrame(n_time_bins={t})",
                                    "binarised": True}
    else:
        encoding = {"kind": "rate", "distribution": "bernoulli", "seed": ENCODING_SEED}
    spec: dict[str, Any] = {"timesteps": t, "encoding": encoding, "dataset": metadata.get("dataset"),
                            "split_seed": int(metadata.get("seed") or 0)}
    if metadata.get("data_dir"):
        spec["data_dir"] = metadata["data_dir"]
    return spec


def sample_inputs(spec: dict[str, Any], size: int, n: int) -> tuple[np.ndarray, np.ndarray | None]:
    """The first ``n`` test samples of the model's dataset as spikes; random spikes if it has none."""
    if spec.get("dataset"):
        data = load_dataset(spec["dataset"], "test", int(spec.get("split_seed") or 0),
                            timesteps=spec["timesteps"], data_dir=spec.get("data_dir"), limit=n)
        if data.input_size != size:
            raise SnncError(f"dataset '{spec['dataset']}' has {data.input_size} features but the network "
                            f"takes {size}.")
        n = min(n, len(data.y))
        g = torch.Generator().manual_seed(ENCODING_SEED)
        return batch_spikes(data, slice(0, n), spec["timesteps"], g).numpy().astype(bool), data.y[:n]
    rng = np.random.default_rng(ENCODING_SEED)
    return rng.random((n, spec["timesteps"], size)) < 0.2, None


def hardware_exact_model(model: SpikingNet, graph: Graph) -> SpikingNet:
    """The model as the chip computes it: hardware-exact mode at the scales the compiler used."""
    if model.hardware_exact:
        return model
    hw = copy.deepcopy(model)
    scales = graph.meta["weight_scales"]
    for i, layer in enumerate(hw.layers, start=1):
        layer.weight_scale = float(scales[f"lif{i}"])  # type: ignore[union-attr]
    hw.hardware_exact = True
    return hw


@torch.no_grad()
def run_torch(model: SpikingNet, inputs: np.ndarray) -> dict[str, np.ndarray]:
    model.eval()
    out = model(torch.from_numpy(inputs.astype(np.float32)))
    return {f"lif{i}": s.numpy() > 0.5 for i, s in enumerate(out, start=1)}


def verify_engines(model: SpikingNet | None, graph: Graph, inputs: np.ndarray) -> VerificationResult:
    """torch (if a model is given), hwsim and Lava on the same spikes, every layer and step."""
    from snnc.runtime.lava_backend import run_on_lava

    runs: dict[str, dict[str, np.ndarray]] = {}
    if model is not None:
        runs["torch"] = run_torch(hardware_exact_model(model, graph), inputs)
    runs["hwsim"] = HwSim.from_graph(graph).run(inputs).spikes
    runs["lava"] = run_on_lava(graph, inputs)
    return compare(runs, [neu.name for _, neu in graph.layers()])


def build_report(graph: Graph, mapping: Mapping, inputs: np.ndarray, labels: np.ndarray | None,
                 verification: VerificationResult | None, findings: list[Any]) -> dict[str, Any]:
    """report.json: activity, energy, latency and mapping from hwsim, plus the verification result."""
    result = HwSim.from_graph(graph).run(inputs)
    energy = estimate(result, mapping, load_cost_model())
    report: dict[str, Any] = {
        "target": graph.meta.get("target"),
        "activity": activity_summary(result),
        "energy": {k: v for k, v in energy.items() if k != "latency"},
        "latency": energy["latency"],
        "mapping": {"cores": mapping.cores, "chips": mapping.chips,
                    "layers": [asdict(m) for m in mapping.layers]},
        "quantization": {"weight_scales": graph.meta.get("weight_scales"),
                         "weights_clipped": graph.meta.get("weights_clipped"),
                         "hardware_exact_training": graph.meta.get("hardware_exact")},
        "findings": [asdict(f) for f in findings],
        "verification": (verification.to_json() if verification is not None
                         else {"samples": 0, "mismatches": {}, "passed": None}),
    }
    if labels is not None:
        pred = result.output.sum(axis=1).argmax(axis=-1)
        report["accuracy"] = {"engine": "hwsim", "samples": int(len(labels)),
                              "value": float((pred == labels).mean())}
    return report


def compile_model(model_path: str | Path, *, target: str = "loihi", out: str | Path | None = None,
                  verify: int = 0, trust_pickle: bool = False, timesteps: int | None = None,
                  report_samples: int = 32, on_stage: Callable[[str], None] | None = None) -> CompileResult:
    """Compile ``model_path`` to an artifact directory; with ``verify`` > 0, check engines agree."""
    say = on_stage or (lambda _msg: None)
    model_path = Path(model_path)
    tgt = get_target(target)
    ckpt = load(model_path, allow_unsafe_pickle=trust_pickle)
    graph, model = graph_from_checkpoint(ckpt)
    qgraph = quantize(graph, tgt)
    findings = check(qgraph, tgt)
    mapping = map_cores(qgraph, tgt)
    spec = {**input_spec(ckpt.metadata, timesteps), "shape": list(qgraph.input.shape)}
    out_dir = Path(out) if out is not None else model_path.with_name(f"{model_path.stem}.{tgt.name}")
    say(f"compiled {len(mapping.layers)} layers onto {mapping.cores} cores")
    with staged_directory(out_dir) as tmp:
        write_netx(qgraph, tmp / NETWORK_FILE, spec["timesteps"])
        _check_round_trip(qgraph, read_netx(tmp / NETWORK_FILE))
        verification = None
        if verify > 0:
            say(f"verifying {verify} samples on torch, hwsim and Lava")
            inputs, _ = sample_inputs(spec, qgraph.input.size, verify)
            verification = verify_engines(model, qgraph, inputs)
            if not verification.passed:
                raise VerificationError(verification.describe_failure())
        inputs, labels = sample_inputs(spec, qgraph.input.size, max(report_samples, verify))
        report = build_report(qgraph, mapping, inputs, labels, verification, findings)
        write_json(tmp / REPORT_FILE, report)
        files = {NETWORK_FILE: sha256(tmp / NETWORK_FILE)}
        source = {"path": str(model_path), "sha256": sha256(model_path), "metadata": ckpt.metadata}
        write_json(tmp / MANIFEST_FILE, manifest(qgraph, target=tgt.name, input_spec=spec, files=files,
                                                 source=source))
    return CompileResult(out_dir.resolve(), report)


def _check_round_trip(written: Graph, read: Graph) -> None:
    """The file we wrote must read back to the same integers (guards the writer and reader)."""
    for (s1, n1), (s2, n2) in zip(written.layers(), read.layers()):
        same = (np.array_equal(s1.weight, s2.weight) and np.array_equal(n1.bias_mant, n2.bias_mant)  # type: ignore[union-attr]
                and (n1.du, n1.dv, n1.vth) == (n2.du, n2.dv, n2.vth))  # type: ignore[union-attr]
        if not same:
            raise GraphError(f"internal error: layer '{n1.name}' did not survive the netx HDF5 round trip")


def run_artifact(path: str | Path, *, backend: str, dataset: str | None, samples: int,
                 data_dir: str | Path | None = None) -> dict[str, Any]:
    """Run ``samples`` test samples through an artifact on ``backend``; accuracy and throughput."""
    t0 = time.perf_counter()
    art: Artifact = load_artifact(path)
    spec = dict(art.manifest["input"])
    if dataset:
        spec["dataset"] = dataset
    if data_dir:
        spec["data_dir"] = str(data_dir)
    inputs, labels = sample_inputs(spec, art.graph.input.size, samples)
    startup = time.perf_counter() - t0
    t1 = time.perf_counter()
    if backend == "hwsim":
        out = HwSim.from_graph(art.graph).run(inputs).output
        elapsed = time.perf_counter() - t1
    elif backend == "lava":
        from snnc.runtime.lava_backend import run_on_lava_with_stats

        last = [neu.name for _, neu in art.graph.layers()][-1]
        spikes, stats = run_on_lava_with_stats(art.graph, inputs)
        out = spikes[last]
        elapsed = stats.run_s + stats.read_s          # simulation and read-back of every sample
        startup += time.perf_counter() - t1 - elapsed  # building, compiling, spawning and stopping Lava
    else:
        raise SnncError(f"unknown backend '{backend}': use hwsim or lava.")
    result: dict[str, Any] = {"backend": backend, "samples": int(len(inputs)), "timesteps": art.timesteps,
                              "samples_per_s": len(inputs) / elapsed if elapsed > 0 else None,
                              "startup_s": startup, "run_s": elapsed, "accuracy": None}
    if labels is not None:
        result["accuracy"] = float((out.sum(axis=1).argmax(axis=-1) == labels).mean())
        result["dataset"] = spec["dataset"]
    return result
