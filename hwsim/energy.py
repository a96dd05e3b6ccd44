"""Activity counts -> energy and latency per inference, under a named, cited cost model."""
from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from math import ceil
from typing import Any

import numpy as np

from snnc.compiler.mapping import Mapping
from snnc.errors import SnncError
from snnc.hwsim.sim import HwSimResult

DEFAULT_COST_MODEL = "loihi1-davies2018"


@dataclass(frozen=True)
class CostModel:
    name: str
    title: str
    source: str
    energy_j: dict[str, float]
    time_s: dict[str, float]
    cores_per_tile: int
    caveats: list[str]


def load_cost_model(name: str = DEFAULT_COST_MODEL) -> CostModel:
    """A cost model shipped with snnc, by name."""
    fname = name.replace("-", "_") + ".json"
    ref = resources.files("snnc.hwsim") / "cost_models" / fname
    if not ref.is_file():
        raise SnncError(f"unknown cost model '{name}' (shipped: {DEFAULT_COST_MODEL}).")
    return CostModel(**json.loads(ref.read_text()))


def barrier_time(cm: CostModel, cores: int) -> float:
    """Mesh barrier time, linear between the 1-tile and 32-tile figures."""
    tiles = min(max(1, ceil(cores / cm.cores_per_tile)), 32)
    lo, hi = cm.time_s["barrier_1_tile"], cm.time_s["barrier_32_tiles"]
    return lo + (hi - lo) * (tiles - 1) / 31


def estimate(result: HwSimResult, mapping: Mapping, cm: CostModel) -> dict[str, Any]:
    """Per-layer and total energy per inference, and latency per timestep, averaged over the batch."""
    e, ts = cm.energy_j, cm.time_s
    batch, steps = result.batch, result.timesteps
    layers, step_time = [], np.zeros(steps)
    for act, lm in zip(result.activity, mapping.layers):
        # a spike is one message per destination core it reaches (the mapping counts them exactly);
        # the output layer's spikes leave the mesh as one message each
        dest_cores = lm.fanout_cores if lm.fanout_cores > 0 else 1.0
        inactive = act.updates - act.active_updates
        energy = {
            "synaptic_ops": float(act.synops.sum()) * e["synaptic_op"],
            "neuron_updates": float(act.active_updates.sum()) * e["neuron_update_active"]
            + float(inactive.sum()) * e["neuron_update_inactive"],
            "spike_messages": float(act.spikes.sum()) * dest_cores * e["spike_within_tile"],
        }
        energy = {k: v / batch for k, v in energy.items()}
        # cores of a layer work in parallel; the slowest layer bounds each step
        per_core = (act.synops * ts["synaptic_op"] + act.active_updates * ts["neuron_update_active"]
                    + inactive * ts["neuron_update_inactive"]) / (batch * lm.cores)
        step_time = np.maximum(step_time, per_core)
        layers.append({"name": act.name, "energy_j": energy, "total_j": sum(energy.values())})
    per_step = step_time + barrier_time(cm, mapping.cores)
    return {"model": cm.name, "source": cm.source, "caveats": cm.caveats, "layers": layers,
            "total_j": sum(layer["total_j"] for layer in layers),
            "latency": {"per_step_s": float(per_step.mean()), "per_inference_s": float(per_step.sum()),
                        "timesteps": steps}}


def activity_summary(result: HwSimResult) -> dict[str, Any]:
    """Counts per inference (averaged over the batch), per layer and in total."""
    b = result.batch
    layers = [{"name": a.name, "neurons": a.neurons, "synapses": a.synapses,
               "synops": float(a.synops.sum()) / b, "spikes": float(a.spikes.sum()) / b,
               "neuron_updates": float(a.updates.sum()) / b,
               "active_neuron_updates": float(a.active_updates.sum()) / b,
               "spikes_per_step": (a.spikes / b).tolist()} for a in result.activity]
    return {"samples": b, "timesteps": result.timesteps, "layers": layers,
            "synops": sum(x["synops"] for x in layers), "spikes": sum(x["spikes"] for x in layers),
            "neuron_updates": sum(x["neuron_updates"] for x in layers)}
