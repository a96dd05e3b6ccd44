"""snnc's energy and latency under SANA-FE's calibrated Loihi model, beside SANA-FE's own simulation.

    python benchmarks/sanafe_energy.py [--out bench-out] [--nets demo mlp lenet] [--samples N] [--json]

Writes OUT/sanafe_energy.json (everything measured) and prints the tables docs/energy.md reproduces.

For each network (the demo's 64-128-10 MLP on digits, T = 20; the MNIST-format 784-256-10 MLP of
benchmarks/common.py, T = 100; a LeNet (20C5p2-P2-50C5p2-P2-FC200-10) on the 8x8 digits, T = 20),
trained briefly with snn-train and compiled with snn-compile:

1. snnc: hwsim's bit-exact counts (``snnc.hwsim.counts``) priced under ``loihi1-sanafe2025``: energy
   and latency per step (SANA-FE's ``simple`` timing model), as report.json gives them;
2. SANA-FE: the same network written as a plain file (``export_network``: populations, snnc's core
   placement, weights, the same input spikes) and run by ``bridges/sanafe_run.py`` in a child process
   (sanafe is GPL-3.0: never imported here) under its ``simple`` and ``detailed`` timing models;
3. the ratios, and each term beside its counterpart (synapse, soma and network energy; synaptic
   events, neurons updated and fired, messages, hops; the barrier), with the share of spikes on
   which SANA-FE's float LIF agrees with snnc's fixed point.

SANA-FE simulates its own LIF in floating point. The export makes it compute snnc's fixed-point
CUBA-LIF as closely as its model allows (potential in units of 2**-6 of snnc's state, which SANA-FE
truncates to 1/64 each step as snnc truncates; weights, threshold, bias and decays scaled alike);
what it cannot do is truncate the synaptic current, so spikes may differ where a current decays for
more than six steps. The ratios are of figures measured in this one run.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from common import BIN, artifact, machine, mnist_like  # noqa: E402

BRIDGE = HERE.parent / "bridges" / "sanafe_run.py"
#: SANA-FE's LIF truncates its potential to 1/64 every step (models.cpp loihi_quantize)
SANAFE_UNIT = 64.0

NETS: dict[str, dict[str, Any]] = {
    "demo": {"title": "demo MLP 64-128-10 (digits, T=20)", "samples": 32,
             "train": ["--dataset", "digits", "--arch", "mlp", "--rule", "stbp-rect", "--epochs", "5"]},
    "mlp": {"title": "MLP 784-256-10 (MNIST-format, T=100)", "samples": 8},
    "lenet": {"title": "LeNet 20C5p2-P2-50C5p2-P2-FC200-10 (digits 8x8, T=20)", "samples": 16,
              "train": ["--dataset", "digits", "--arch", "lenet", "--epochs", "1"]},
}


# --- the plain file bridges/sanafe_run.py reads --------------------------------------------------------

def conv_pairs(syn: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every synapse of a convolution node: (source index, destination index, integer weight), flat
    (C, H, W) order, PyTorch's cross-correlation with stride, padding, dilation and groups; the taps
    that fall in the padding have no synapse."""
    c_in, h, w = syn.in_shape
    c_out, ho, wo = syn.out_shape
    kh, kw = syn.kernel
    (sy, sx), (py, px), (dy, dx) = syn.stride, syn.padding, syn.dilation
    per_group = c_in // syn.groups
    o, c, ky, kx, oy, ox = np.meshgrid(np.arange(c_out), np.arange(per_group), np.arange(kh), np.arange(kw),
                                       np.arange(ho), np.arange(wo), indexing="ij")
    y, x = oy * sy - py + ky * dy, ox * sx - px + kx * dx
    ok = (y >= 0) & (y < h) & (x >= 0) & (x < w)
    o, c, ky, kx, oy, ox, y, x = (a[ok] for a in (o, c, ky, kx, oy, ox, y, x))
    src_c = (o // (c_out // syn.groups)) * per_group + c
    pre = (src_c * h + y) * w + x
    post = (o * ho + oy) * wo + ox
    return pre, post, np.asarray(syn.weight)[o, c, ky, kx].astype(np.int64)


def export_network(graph: Any, mapping: Any, inputs: np.ndarray, path: Path) -> dict[str, Any]:
    """Write ``graph`` as mapped and placed by snnc, with ``inputs`` (samples, T, n) as its spikes, to
    ``path`` in bridges/sanafe_run.py's protocol; returns the spec. SANA-FE's potential is snnc's
    v / 64 (its LIF truncates the potential to 1/64 each step, snnc to its integer), so a weight
    delivers ``W << weight_exp << act_shift`` / 64, the threshold is ``vth << vth_shift`` / 64, the bias
    ``bias_mant << bias_exp`` / 64 and the decays are (4096 - d) / 4096."""
    from snnc.compiler.ir import QConv
    from snnc.hwsim.counts import input_placement
    from snnc.hwsim.sim import lava_weights, shift_signed

    tgt = mapping.target
    ext = input_placement(graph, mapping)
    if int(ext.chip.max()) > 0:
        raise ValueError(f"{ext.cores} cores (input units included): SANA-FE's Loihi file is one chip of "
                         f"{tgt.cores_per_chip}")
    g = np.arange(ext.cores)
    arrays: dict[str, np.ndarray] = {"tile_x": ext.tile_x, "tile_y": ext.tile_y, "core_in_tile": g % tgt.cores_per_tile,
                                     "inputs": np.asarray(inputs) != 0}
    n_in = graph.input.size
    arrays["core/input"] = ext.offset[graph.input.name] + np.arange(n_in) // tgt.neurons_per_core
    pops: list[dict[str, Any]] = [{"name": graph.input.name, "kind": "input", "size": n_in, "core": "core/input"}]
    cons: list[dict[str, Any]] = []
    for p in graph.populations():
        n = p.neuron
        fmt = n.fmt
        arrays[f"core/{n.name}"] = ext.offset[n.name] + mapping.per_core[n.name].core_of
        arrays[f"bias/{n.name}"] = shift_signed(n.bias_mant.astype(np.int64), n.bias_exp) / SANAFE_UNIT
        unity = float(fmt.decay_unity)
        pops.append({"name": n.name, "kind": "lif", "size": n.size, "core": f"core/{n.name}", "bias": f"bias/{n.name}",
                     "threshold": (int(n.vth) << fmt.vth_shift) / SANAFE_UNIT,
                     "leak_decay": (unity - n.dv) / unity, "input_decay": (unity - n.du) / unity})
        scale = 2.0 ** fmt.act_shift / SANAFE_UNIT
        for syn, src in p.inputs:
            key = f"w/{syn.name}"
            if isinstance(syn, QConv):
                pre, post, w = conv_pairs(syn)
                arrays[f"pre/{syn.name}"], arrays[f"post/{syn.name}"] = pre, post
                arrays[key] = w * scale
                cons.append({"src": src, "dst": n.name, "kind": "conv", "pre": f"pre/{syn.name}",
                             "post": f"post/{syn.name}", "weight": key})
            else:
                w = lava_weights(syn.weight, fmt).astype(np.float64)     # what the chip uses (hwsim/sim.py)
                arrays[key] = w * 2.0 ** syn.weight_exp * scale
                cons.append({"src": src, "dst": n.name, "kind": "dense", "weight": key})
    spec = {"timesteps": int(np.asarray(inputs).shape[1]),
            "cores": {"tile_x": "tile_x", "tile_y": "tile_y", "core_in_tile": "core_in_tile"},
            "populations": pops, "connections": cons, "inputs": "inputs"}
    np.savez(path, spec=np.array(json.dumps(spec)), **arrays)
    return spec


def run_bridge(network: Path, out: Path, spikes: Path | None = None,
               timing_models: tuple[str, ...] = ("simple", "detailed")) -> dict[str, Any]:
    """bridges/sanafe_run.py in a child process (this process never imports sanafe)."""
    cmd = [sys.executable, str(BRIDGE), str(network), "--out", str(out), "--timing-models", *timing_models]
    if spikes is not None:
        cmd += ["--spikes", str(spikes)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(out.read_text())


# --- snnc's side -----------------------------------------------------------------------------------------

def snnc_side(graph: Any, mapping: Any, inputs: np.ndarray) -> dict[str, Any]:
    """snnc's counts priced under loihi1-sanafe2025: per-step means of energy by term and latency,
    and the counts under SANA-FE's definitions."""
    from snnc.compiler.placement import place
    from snnc.hwsim.counts import count
    from snnc.hwsim.energy import estimate, load_cost_model
    from snnc.models.readout import Readout

    placement = place(mapping, mapping.target)
    counts = count(graph, mapping, placement, inputs)
    est = estimate(counts, mapping, placement, load_cost_model("loihi1-sanafe2025"),
                   Readout.from_json(graph.meta.get("readout")), graph.output.name, mapping.target.cores_per_tile)
    e, lat = est["energy"], est["latency"]
    steps = counts.timesteps
    b = e["breakdown_j"]
    per_step = lambda x: float(x) / steps     # noqa: E731
    ev = [lc.events for lc in counts.layers]
    inp = counts.input_events
    tot = lambda f: float(sum(f(x).sum() for x in ev)) / (counts.batch * steps)   # noqa: E731
    return {
        "energy_j_per_step": per_step(e["dynamic_j"]),
        "synapse_j_per_step": per_step(b["synaptic_ops"]),
        "soma_j_per_step": per_step(b["neuron_updates"]),
        "network_j_per_step": per_step(b["spike_messages"] + b["tile_hops"]),
        "time_s_per_step": lat["per_step_s"], "barrier_s": lat["barrier_s"], "mapped_tiles": lat["mapped_tiles"],
        "counts_per_step": {
            "synaptic_events": tot(lambda x: x.events_dense + x.events_conv),
            "updated": tot(lambda x: x.updated), "fired": float(sum(lc.spikes.sum() for lc in counts.layers))
            / (counts.batch * steps),
            "messages": tot(lambda x: x.messages_out) + float(inp.messages_out.sum()) / (counts.batch * steps),
            "hops_ew": tot(lambda x: x.hops_ew) + float(inp.hops_ew.sum()) / (counts.batch * steps),
            "hops_ns": tot(lambda x: x.hops_ns) + float(inp.hops_ns.sum()) / (counts.batch * steps),
            "input_spikes": float((np.asarray(inputs) != 0).sum()) / (counts.batch * steps)},
        "spikes": counts.spikes,
    }


def sanafe_side(res: dict[str, Any], model: str, input_spikes: float) -> dict[str, Any]:
    """SANA-FE's per-step means under one timing model; its 'updated' and 'fired' include the input
    units that sent a spike (models.cpp InputModel: fired), taken out here to compare with snnc's."""
    runs = res["runs"][model]
    mean = lambda k: float(np.mean([r[k] for r in runs]))   # noqa: E731
    return {"energy_j_per_step": mean("energy_j"), "time_s_per_step": mean("time_s"),
            "network_delay_max_s": float(np.max([r["network_delay_max_s"] for r in runs])),
            "blocking_delay_s_per_step": mean("blocking_delay_total_s"),
            "synapse_j_per_step": mean("synapse_energy_j"), "soma_j_per_step": mean("soma_energy_j"),
            "network_j_per_step": mean("network_energy_j"),
            "counts_per_step": {"synaptic_events": mean("synaptic_events"), "updated": mean("updated") - input_spikes,
                                "fired": mean("fired") - input_spikes, "messages": mean("messages"),
                                "hops_ew": mean("hops_ew"), "hops_ns": mean("hops_ns")}}


def spike_agreement(snnc_spikes: dict[str, np.ndarray], rasters: Path) -> dict[str, Any]:
    """Per population: spikes in each engine and the share of (sample, step, neuron) where they agree."""
    out = {}
    with np.load(rasters) as f:
        for name, mine in snnc_spikes.items():
            theirs = f[name]
            out[name] = {"snnc_spikes": int(mine.sum()), "sanafe_spikes": int(theirs.sum()),
                         "agreement": float((mine == theirs).mean()),
                         "differing": int((mine != theirs).sum())}
    return out


def build_artifact(name: str, out: Path) -> Path:
    """The network's compiled artifact: benchmarks/common.py's MLP, or trained here with snn-train."""
    if name == "mlp":
        return artifact("mlp", out)
    build = out / f"sanafe-{name}.build"
    if (build / "manifest.json").is_file():
        return build
    model = out / f"sanafe-{name}.pt"
    if not model.is_file():
        subprocess.run([str(BIN / "snn-train"), *NETS[name]["train"], "--out", str(model)], check=True,
                       stdout=subprocess.DEVNULL)
    subprocess.run([str(BIN / "snn-compile"), str(model), "--target", "loihi", "--out", str(build)], check=True,
                   stdout=subprocess.DEVNULL)
    return build


def bench(name: str, out: Path, samples: int | None) -> dict[str, Any]:
    from snnc.compiler.artifact import load_artifact
    from snnc.compiler.mapping import map_cores
    from snnc.compiler.targets import get_target
    from snnc.inputs import sample_inputs

    art = build_artifact(name, out)
    a = load_artifact(art)
    spec = dict(a.manifest["input"])
    if spec.get("dataset") == "mnist":
        spec["data_dir"] = str(mnist_like(out / "data"))
    inputs, _ = sample_inputs(spec, a.graph.input, samples or NETS[name]["samples"])
    mapping = map_cores(a.graph, get_target(a.manifest.get("target", "loihi")))
    t0 = time.perf_counter()
    mine = snnc_side(a.graph, mapping, inputs)
    snnc_s = time.perf_counter() - t0
    network = out / f"sanafe-{name}.npz"
    export_network(a.graph, mapping, inputs, network)
    t1 = time.perf_counter()
    res = run_bridge(network, out / f"sanafe-{name}.json", out / f"sanafe-{name}-spikes.npz")
    bridge_s = time.perf_counter() - t1
    x_spk = mine["counts_per_step"]["input_spikes"]
    theirs = {m: sanafe_side(res, m, x_spk) for m in res["timing_models"]}
    agree = spike_agreement(mine.pop("spikes"), out / f"sanafe-{name}-spikes.npz")
    simple = theirs["simple"]
    ratios = {"energy": mine["energy_j_per_step"] / simple["energy_j_per_step"],
              "latency_simple": mine["time_s_per_step"] / simple["time_s_per_step"],
              "latency_detailed": mine["time_s_per_step"] / theirs["detailed"]["time_s_per_step"],
              **{f"{k}_energy": mine[f"{k}_j_per_step"] / simple[f"{k}_j_per_step"] if simple[f"{k}_j_per_step"] else None
                 for k in ("synapse", "soma", "network")},
              "detailed_over_simple": theirs["detailed"]["time_s_per_step"] / simple["time_s_per_step"]}
    return {"network": NETS[name]["title"], "artifact": str(art), "samples": int(len(inputs)),
            "timesteps": int(inputs.shape[1]), "cores": mapping.cores, "snnc": mine, "sanafe": theirs,
            "ratio_snnc_over_sanafe": ratios, "spike_agreement": agree,
            "seconds": {"snnc_counts_and_pricing": snnc_s, "bridge_total": bridge_s,
                        "sanafe_build": res["build_s"], "sanafe_sim": res["sim_s"]},
            "sanafe_version": res["sanafe"], "synapses": res["synapses"]}


def _si(x: float, unit: str) -> str:
    for f, p in ((1e-12, "p"), (1e-9, "n"), (1e-6, "µ"), (1e-3, "m")):
        if abs(x) < f * 1000:
            return f"{x / f:.3g} {p}{unit}"
    return f"{x:.3g} {unit}"


def table(results: list[dict[str, Any]]) -> str:
    """The markdown table docs/energy.md reproduces."""
    lines = ["| network | samples x T | energy / step snnc | SANA-FE | ratio | latency / step snnc (simple) | "
             "SANA-FE simple | ratio | SANA-FE detailed | ratio | spikes agreeing |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        s, t, q = r["snnc"], r["sanafe"], r["ratio_snnc_over_sanafe"]
        worst = min(v["agreement"] for v in r["spike_agreement"].values())
        lines.append(f"| {r['network']} | {r['samples']} x {r['timesteps']} | {_si(s['energy_j_per_step'], 'J')} | "
                     f"{_si(t['simple']['energy_j_per_step'], 'J')} | {q['energy']:.4f} | "
                     f"{_si(s['time_s_per_step'], 's')} | {_si(t['simple']['time_s_per_step'], 's')} | "
                     f"{q['latency_simple']:.4f} | {_si(t['detailed']['time_s_per_step'], 's')} | "
                     f"{q['latency_detailed']:.3f} | {worst:.4%} (worst layer) |")
    return "\n".join(lines)


def terms(r: dict[str, Any]) -> str:
    """Each term per step, snnc beside SANA-FE (simple)."""
    s, t = r["snnc"], r["sanafe"]["simple"]
    rows = [f"{r['network']}: per step, snnc | SANA-FE"]
    for k in ("synapse", "soma", "network"):
        rows.append(f"  {k:8s} energy {_si(s[f'{k}_j_per_step'], 'J'):>10s} | {_si(t[f'{k}_j_per_step'], 'J')}")
    for k, v in s["counts_per_step"].items():
        if k in t["counts_per_step"]:
            rows.append(f"  {k:16s} {v:12.2f} | {t['counts_per_step'][k]:.2f}")
    d = r["sanafe"]["detailed"]
    rows.append(f"  barrier {_si(s['barrier_s'], 's')} ({s['mapped_tiles']} tiles); SANA-FE detailed / simple "
                f"latency {r['ratio_snnc_over_sanafe']['detailed_over_simple']:.3f} (detailed: largest network delay "
                f"of a message {_si(d['network_delay_max_s'], 's')}, blocking {_si(d['blocking_delay_s_per_step'], 's')} "
                f"summed over a step's messages)")
    return "\n".join(rows)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("bench-out"))
    p.add_argument("--nets", nargs="+", default=list(NETS), choices=list(NETS))
    p.add_argument("--samples", type=int, default=None, help="default: per network")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    results = [bench(n, args.out.resolve(), args.samples) for n in args.nets]
    report = {"benchmark": "sanafe_energy", "machine": machine(), "results": results,
              "seconds": time.perf_counter() - t,
              "command": "python benchmarks/sanafe_energy.py " + " ".join(sys.argv[1:])}
    (args.out / "sanafe_energy.json").write_text(json.dumps(report, indent=1) + "\n")
    if args.json:
        print(json.dumps(report))
        return
    print(f"machine: {report['machine']}")
    print(table(results))
    for r in results:
        print(terms(r))
    print(f"total {report['seconds']:.0f} s")


if __name__ == "__main__":
    main()
