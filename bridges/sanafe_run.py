"""Run a compiled, mapped spiking network on SANA-FE's Loihi model, at arm's length from snnc.

    python bridges/sanafe_run.py NETWORK.npz --out RESULT.json [--timing-models simple detailed]
                                 [--spikes SPIKES.npz] [--arch loihi.yaml] [--threads 1]

SANA-FE (Boyle et al., IEEE TCAD 44(8):3165-3178, 2025; PyPI ``sanafe``) is GPL-3.0. This program
is a separate process that imports only numpy, the standard library and sanafe; snnc never imports
it, nor sanafe, and nothing of SANA-FE is copied here: snnc writes a plain file, this program reads
it, and snnc reads back plain JSON (docs/energy.md, "Calibrated energy: SANA-FE").

Protocol: NETWORK.npz (``numpy.savez``, no pickles) holds the array ``spec``, a JSON text, and the
arrays it names by key:

    {"timesteps": T,
     "cores": {"tile_x": KEY, "tile_y": KEY, "core_in_tile": KEY},   # per global core index
     "populations": [                                                # in mapping order
        {"name": "input", "kind": "input", "size": n, "core": KEY},
        {"name": "lif1", "kind": "lif", "size": n, "core": KEY, "bias": KEY,
         "threshold": th, "leak_decay": dv, "input_decay": du}, ...],
     "connections": [
        {"src": "input", "dst": "lif1", "kind": "dense", "weight": KEY},          # (n_dst, n_src)
        {"src": "lif1", "dst": "lif2", "kind": "conv" | "sparse",
         "pre": KEY, "post": KEY, "weight": KEY}, ...],                            # one entry per synapse
     "inputs": KEY}                                                 # (samples, T, n_input) spikes

``core`` gives each neuron's global core; ``cores`` places each global core on the mesh as snnc's
placement did: tile (tile_x east-west, tile_y north-south) and core within the tile. SANA-FE numbers
its tiles column by column (tile id = x * height + y), so the tile is found by its coordinates and
hops are counted on the same grid. A ``lif`` population is SANA-FE's ``leaky_integrate_fire`` soma
(``loihi_lif``) with the given threshold, decays, per-neuron bias and a hard reset to 0; an
``input`` population is one ``input`` soma unit per neuron (``loihi_inputs[k]``), fed each sample's
spike train. Dense connections use ``loihi_dense_synapse``, conv ``loihi_conv_synapse``, sparse
``loihi_sparse_synapse``: SANA-FE prices each kind with its own figures.

Each sample runs on the same loaded chip after ``SpikingChip.reset()``, once per timing model, as
``chip.sim(T, timing_model=..., perf_trace=True, message_trace=True)``. RESULT.json has, per timing
model, per sample and per step: SANA-FE's energy (total and by unit) and simulated time, and its own
event counts (neurons updated and fired, synaptic events, messages, hops, east-west and north-south
hops; its "updated" and "fired" include input units that sent a spike), the largest network delay
of a message and the summed blocking delays (what the ``detailed`` model adds); and per population
the spikes per step. ``--spikes`` also writes every population's spike raster (samples, T, n) bool.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
import time
from importlib.resources import files
from pathlib import Path
from typing import Any

import numpy as np

SYNAPSE_HW = {"dense": "loihi_dense_synapse", "conv": "loihi_conv_synapse", "sparse": "loihi_sparse_synapse"}
LIF_HW = "loihi_lif"
INPUT_HW = re.compile(r"^loihi_inputs\[(\d+)\]$")


def default_arch() -> Path:
    """The Loihi architecture file shipped in the sanafe wheel (sanafe/examples/loihi.yaml)."""
    return Path(str(files("sanafe.examples") / "loihi.yaml"))


def mesh_height(arch_path: Path) -> int:
    """Tiles north-south: SANA-FE places tile id at (id // height, id % height) (arch.cpp)."""
    m = re.search(r"^\s*height:\s*(\d+)", arch_path.read_text(), re.M)
    if m is None:
        raise SystemExit(f"{arch_path}: no mesh height")
    return int(m.group(1))


def build(spec: dict[str, Any], arrays: Any, arch_path: Path) -> tuple[Any, Any, dict[str, Any]]:
    """The SANA-FE network of ``spec``, mapped core by core as snnc placed it."""
    import sanafe

    arch = sanafe.load_arch(str(arch_path))
    height = mesh_height(arch_path)
    tiles = arch.tiles
    per_tile = len(tiles[0].cores)
    c = spec["cores"]
    tile_x, tile_y, in_tile = (np.asarray(arrays[c[k]], dtype=np.int64) for k in ("tile_x", "tile_y", "core_in_tile"))
    if int(in_tile.max(initial=0)) >= per_tile:
        raise SystemExit(f"a core index within a tile >= {per_tile}, the architecture's cores per tile")
    flat = arch.cores()
    sanafe_core = (tile_x * height + tile_y) * per_tile + in_tile     # index into arch.cores()
    if int(sanafe_core.max(initial=0)) >= len(flat):
        raise SystemExit(f"the network needs {int(sanafe_core.max()) + 1} cores; the architecture has {len(flat)}")
    net = sanafe.Network()
    groups: dict[str, Any] = {}
    used_inputs: dict[int, int] = {}
    for pop in spec["populations"]:
        core = np.asarray(arrays[pop["core"]], dtype=np.int64)
        if pop["kind"] == "input":
            g = net.create_neuron_group(pop["name"], int(pop["size"]), log_spikes=True)
            for i, neuron in enumerate(g.neurons):
                target = int(sanafe_core[core[i]])
                units = [int(m.group(1)) for p in flat[target].pipeline_hw if (m := INPUT_HW.match(p.name))]
                k = used_inputs.get(target, 0)
                if k >= len(units):
                    raise SystemExit(f"core {target}: more input neurons than its {len(units)} input units")
                used_inputs[target] = k + 1
                neuron.set_attributes(soma_hw_name=f"loihi_inputs[{units[k]}]")
                neuron.map_to_core(flat[target])
        else:
            attrs = {"threshold": float(pop["threshold"]), "leak_decay": float(pop["leak_decay"]),
                     "input_decay": float(pop["input_decay"]), "reset": 0.0, "reset_mode": "hard"}
            g = net.create_neuron_group(pop["name"], int(pop["size"]), model_attributes=attrs, soma_hw_name=LIF_HW,
                                        log_spikes=True)
            bias = np.asarray(arrays[pop["bias"]], dtype=np.float64)
            for i, neuron in enumerate(g.neurons):
                if bias[i] != 0.0:
                    neuron.set_attributes(model_attributes={"bias": float(bias[i])})
                neuron.map_to_core(flat[int(sanafe_core[core[i]])])
        groups[pop["name"]] = g
    synapses = 0
    for con in spec["connections"]:
        src, dst = groups[con["src"]], groups[con["dst"]]
        for neuron in dst.neurons:     # a connection takes its destination's default synapse unit now
            neuron.set_attributes(default_synapse_hw_name=SYNAPSE_HW[con["kind"]])
        w = np.asarray(arrays[con["weight"]], dtype=np.float64)
        if con["kind"] == "dense":     # SANA-FE's list is source-major: index = src * n_dst + dst
            src.connect_neurons_dense(dst, {"weight": w.T.ravel().tolist()})
            synapses += w.size
        else:
            pre = np.asarray(arrays[con["pre"]], dtype=np.int64).tolist()
            post = np.asarray(arrays[con["post"]], dtype=np.int64).tolist()
            src.connect_neurons_sparse(dst, {"weight": w.tolist()}, list(zip(pre, post)))
            synapses += w.size
    chip = sanafe.SpikingChip(arch)
    chip.load(net)
    return chip, net, {"synapses": synapses, "sanafe_cores": sorted(set(sanafe_core.tolist()))}


def run_sample(chip: Any, spec: dict[str, Any], x: np.ndarray, timing_model: str, threads: int) -> dict[str, Any]:
    """One sample: reset, feed the input units, simulate T steps; per-step figures and spikes."""
    steps = int(spec["timesteps"])
    chip.reset()
    names = [p["name"] for p in spec["populations"]]
    inputs = [p for p in spec["populations"] if p["kind"] == "input"]
    col = 0
    for pop in inputs:
        for i, neuron in enumerate(chip.mapped_neuron_groups[pop["name"]]):
            neuron.set_attributes(model_attributes={"spikes": [bool(v) for v in x[:, col + i]]})
        col += int(pop["size"])
    r = chip.sim(steps, timing_model=timing_model, processing_threads=threads, perf_trace=True,
                 message_trace=True, spike_trace=True)
    perf = r["perf_trace"]
    messages, ew, ns, network, blocking = [], [], [], [], []
    for step in r["message_trace"]:
        real = [m for m in step if not m["placeholder"]]
        messages.append(len(real))
        ew.append(int(sum(abs(m["src_x"] - m["dest_x"]) for m in real)))
        ns.append(int(sum(abs(m["src_y"] - m["dest_y"]) for m in real)))
        network.append(max((m["network_delay"] for m in real), default=0.0))   # detailed: hops or congestion
        blocking.append(float(sum(m["blocking_delay"] for m in real)))          # detailed: full routes
    sizes = {p["name"]: int(p["size"]) for p in spec["populations"]}
    raster = {n: np.zeros((steps, sizes[n]), dtype=bool) for n in names}
    for t, step in enumerate(r["spike_trace"]):
        for a in step:
            raster[a.group_name][t, a.neuron_offset] = True
    return {"energy_j": list(perf["total_energy"]), "time_s": list(perf["sim_time"]),
            "synapse_energy_j": list(perf["synapse_energy"]), "soma_energy_j": list(perf["soma_energy"]),
            "network_energy_j": list(perf["network_energy"]), "dendrite_energy_j": list(perf["dendrite_energy"]),
            "updated": list(perf["updated"]), "fired": list(perf["fired"]), "synaptic_events": list(perf["spikes"]),
            "hops": list(perf["hops"]), "messages": messages, "hops_ew": ew, "hops_ns": ns,
            "network_delay_max_s": network, "blocking_delay_total_s": blocking,
            "spikes_per_step": {n: raster[n].sum(axis=1).tolist() for n in names}, "_raster": raster}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("network", type=Path)
    p.add_argument("--out", type=Path, required=True, help="RESULT.json")
    p.add_argument("--timing-models", nargs="+", default=["simple", "detailed"], choices=["simple", "detailed"])
    p.add_argument("--spikes", type=Path, help="also write every population's spikes (samples, T, n) here (.npz)")
    p.add_argument("--arch", type=Path, help="architecture file (default: the wheel's sanafe/examples/loihi.yaml)")
    p.add_argument("--threads", type=int, default=1, help="SANA-FE processing threads (0: all)")
    args = p.parse_args(argv)
    import sanafe

    arch_path = args.arch or default_arch()
    with np.load(args.network, allow_pickle=False) as f:
        arrays = {k: f[k] for k in f.files}
    spec = json.loads(str(arrays["spec"]))
    t0 = time.perf_counter()
    chip, _net, info = build(spec, arrays, arch_path)
    build_s = time.perf_counter() - t0
    x = np.asarray(arrays[spec["inputs"]]) != 0
    runs: dict[str, list[dict[str, Any]]] = {tm: [] for tm in args.timing_models}
    rasters: dict[str, list[np.ndarray]] = {}
    t1 = time.perf_counter()
    for s in range(x.shape[0]):
        for k, tm in enumerate(args.timing_models):
            res = run_sample(chip, spec, x[s], tm, args.threads)
            raster = res.pop("_raster")
            if k == 0:
                for name, r in raster.items():
                    rasters.setdefault(name, []).append(r)
            runs[tm].append(res)
    sim_s = time.perf_counter() - t1
    version = getattr(sanafe, "__version__", None)
    if version is None:
        from importlib.metadata import version as dist_version
        version = dist_version("sanafe")
    out = {"sanafe": version, "arch": str(arch_path), "samples": int(x.shape[0]), "timesteps": int(spec["timesteps"]),
           "timing_models": args.timing_models, "build_s": build_s, "sim_s": sim_s, **info, "runs": runs}
    args.out.write_text(json.dumps(out) + "\n")
    if args.spikes is not None:
        np.savez_compressed(args.spikes, **{n: np.stack(r) for n, r in rasters.items()})
    return 0


if __name__ == "__main__":
    sys.exit(main())
