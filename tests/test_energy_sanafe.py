"""SANA-FE's calibrated Loihi model (loihi1-sanafe2025): the shipped file carries the figures of SANA-FE's
Loihi architecture file; snnc's pricing equals a hand computation of SANA-FE's formula over counts made
by brute force (explicit connectivity, a naive neuron model, SANA-FE's definitions of an updated neuron
and a spike message, its simple timing model); report.json shows both Loihi 1 models side by side; and
bridges/sanafe_run.py, run in a child process, gives the same energy and latency per step.

No test imports sanafe (GPL-3.0): the bridge runs under ``sys.executable`` in its own process.
"""
from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from snnc.cli import report_main
from snnc.compiler.ir import Graph, QConv
from snnc.compiler.mapping import map_cores
from snnc.compiler.placement import place
from snnc.compiler.targets import LOIHI
from snnc.errors import InputFileError, TargetLimitError
from snnc.hwsim.counts import count
from snnc.hwsim.energy import estimate, load_cost_model
from snnc.hwsim.sim import HwSim
from snnc.models.checkpoint import save
from snnc.models.readout import Readout
from snnc.pipeline import compile_model

from conftest import make_model
from test_onnx_io import fixed_point_graphs, spikes_of

ROOT = Path(__file__).resolve().parents[1]
#: small cores, one chip of 8 x 4 tiles of 2 cores: random graphs spread over many cores and tiles
SMALL = replace(LOIHI, neurons_per_core=5, cores_per_chip=64, cores_per_tile=2, mesh_tiles=(8, 4), max_chips=1)

#: SANA-FE 2.2.9's sanafe/examples/loihi.yaml, read by hand (docs/energy.md gives each line)
LOIHI_YAML = {
    "energy_j": {"synaptic_event_dense": 35.5e-12, "synaptic_event_sparse": 33.6e-12, "synaptic_event_conv": 24.0e-12,
                 "neuron_step": 51.2e-12, "neuron_updated": 21.6e-12, "neuron_fired": 69.3e-12,
                 "message_out": 111.0e-12, "message_in": 0.0, "tile_hop_ew": 3.0e-12, "tile_hop_ns": 4.2e-12,
                 "spike_cross_chip": None},
    "time_s": {"synaptic_event_dense": 3.8e-9, "synaptic_event_sparse": 4.7e-9, "synaptic_event_conv": 3.1e-9,
               "neuron_step": 6.0e-9, "neuron_updated": 3.7e-9, "neuron_fired": 30.0e-9, "message_out": 5.1e-9,
               "message_in": 16.0e-9, "tile_hop_ew": 4.1e-9, "tile_hop_ns": 6.5e-9, "barrier_multi_chip": None},
    "barrier": {1: 0.6e-6, 2: 1.0e-6, 4: 1.4e-6, 29: 1.8e-6},
}


def test_calibrated_model_is_shipped_with_sanafes_loihi_figures() -> None:
    cm = load_cost_model("loihi1-sanafe2025")
    assert cm.kind == "neuromorphic-sanafe" and cm.timing_model == "simple" and cm.static_w_per_chip == 0.0
    assert cm.energy_j == LOIHI_YAML["energy_j"] and cm.time_s == LOIHI_YAML["time_s"]
    assert cm.barrier_by_tiles == LOIHI_YAML["barrier"]
    assert "Boyle" in cm.source and "loihi.yaml" in cm.source and "2.2.9" in cm.source
    # the calibrated dense synaptic event costs 1.5x Davies' pre-silicon synaptic op
    assert cm.e("synaptic_event_dense") / load_cost_model("loihi1-davies2018").e("synaptic_op") == pytest.approx(1.504, abs=1e-3)


def _write(tmp: Path, body: dict, suffix: str = ".json") -> Path:
    import yaml

    path = tmp / f"model{suffix}"
    path.write_text(json.dumps(body) if suffix == ".json" else yaml.safe_dump(body))
    return path


def test_a_users_file_of_either_shape_is_loaded_and_checked(tmp_path: Path) -> None:
    mine = {"name": "my-sanafe", "source": "fitted on our chip", "kind": "neuromorphic-sanafe",
            "energy_j": {"neuron_step": 1e-12, "message_out": 2e-12}, "time_s": {"neuron_step": 1e-9},
            "barrier_s_by_tiles": {4: 2e-6, 1: 1e-6}}
    cm = load_cost_model(_write(tmp_path, mine, ".yaml"))
    assert cm.barrier_by_tiles == {1: 1e-6, 4: 2e-6} and cm.timing_model == "simple"
    assert cm.e("synaptic_event_dense") is None          # missing: unknown, never zero
    davies = {"name": "d", "source": "s", "kind": "neuromorphic", "energy_j": {"synaptic_op": 1e-12}}
    assert load_cost_model(_write(tmp_path, davies)).e("synaptic_op") == 1e-12
    bad = [({**mine, "timing_model": "cycle"}, "timing_model 'cycle'"),
           ({**mine, "barrier_s_by_tiles": {"two": 1e-6}}, "not a tile count"),
           ({**mine, "barrier_s_by_tiles": {"0": 1e-6}}, "not a tile count"),
           ({**mine, "barrier_s_by_tiles": {"1": -1.0}}, "barrier_s_by_tiles.1"),
           ({**mine, "barrier_s_by_tiles": [1e-6]}, "must map a tile count"),
           ({**davies, "barrier_s_by_tiles": {"1": 1e-6}}, "belong to kind 'neuromorphic-sanafe'"),
           ({**mine, "energy_j": {"synaptic_op": 1e-12}}, "unknown coefficients ['synaptic_op']"),
           ({**davies, "energy_j": {"neuron_step": 1e-12}}, "unknown coefficients ['neuron_step']")]
    for body, words in bad:
        with pytest.raises(InputFileError, match=words.replace("[", r"\[").replace("]", r"\]").replace(".", r"\.")):
            load_cost_model(_write(tmp_path, body))


# ------------------------------------------------------------------------------ brute force

def _explicit(syn: object) -> tuple[np.ndarray, np.ndarray]:
    """(out, in) integer weights as a matrix, and (out, in) synapse counts, of a Dense or Conv node."""
    if isinstance(syn, QConv):
        eye = torch.eye(syn.in_size, dtype=torch.float64).reshape(syn.in_size, *syn.in_shape)
        run = lambda w: torch.nn.functional.conv2d(eye, w, stride=syn.stride, padding=syn.padding,  # noqa: E731
                                                   dilation=syn.dilation, groups=syn.groups).reshape(syn.in_size, -1).T
        w = run(torch.from_numpy(syn.weight.astype(np.float64))).round().numpy().astype(np.int64)
        n = run(torch.ones(syn.weight.shape, dtype=torch.float64)).round().numpy().astype(np.int64)
        return w, n
    # Lava's mixed-sign dense weights: clipped to [-256, 255], floored to even (compiler/ir.py's format)
    w = np.clip(syn.weight.astype(np.int64), -256, 255) // 2 * 2  # type: ignore[attr-defined]
    return w, np.ones_like(w)


def naive(graph: Graph, x: np.ndarray) -> dict[str, dict[str, np.ndarray]]:
    """Per population (batch, T, n): spikes, v non-zero before the step, and whether any synapse
    delivered a spike in the step (compiler/ir.py's equations, one sample and step at a time)."""
    x = np.asarray(x).astype(np.int64)
    batch, steps, _ = x.shape
    out: dict[str, dict[str, np.ndarray]] = {}
    trains = {graph.input.name: x}
    for p in graph.populations():           # feed-forward graphs: every source is done before
        neu = p.neuron
        explicit = [(_explicit(syn), syn, src) for syn, src in p.inputs]
        rec = {k: np.zeros((batch, steps, neu.size), bool) for k in ("spikes", "v_before", "received")}
        bias = neu.bias_mant.astype(np.int64) << neu.bias_exp if neu.bias_exp >= 0 else \
            neu.bias_mant.astype(np.int64) >> -neu.bias_exp
        for b in range(batch):
            u = np.zeros(neu.size, np.int64)
            v = np.zeros(neu.size, np.int64)
            for t in range(steps):
                a = np.zeros(neu.size, np.int64)
                for (w, n), syn, src in explicit:
                    prev = trains[src][b, t - 1].astype(np.int64) if t else np.zeros(syn.in_size, np.int64)
                    s = w @ prev
                    if isinstance(syn, QConv):
                        s = ((s + 2**23) % 2**24) - 2**23
                    else:
                        s = s << syn.weight_exp if syn.weight_exp >= 0 else s >> -syn.weight_exp
                    a += s
                    rec["received"][b, t] |= (n @ (prev != 0)) > 0
                rec["v_before"][b, t] = v != 0
                du = u * (4096 - neu.du)
                u = np.sign(du) * (np.abs(du) >> 12) + (a << 6)
                u = np.where(u > 2**23, u - 2**24, np.where(u <= -(2**23), u + 2**24, u))
                dv = v * (4096 - neu.dv)
                v = np.clip(np.sign(dv) * (np.abs(dv) >> 12) + u + bias, -(2**23 - 1), 2**23 - 1)
                s = v > (int(neu.vth) << 6)
                rec["spikes"][b, t] = s
                v = np.where(s, 0, v)
        trains[neu.name] = rec["spikes"]
        out[neu.name] = rec
    return out


def hand_priced(graph: Graph, mapping, placement, x: np.ndarray, cm) -> tuple[np.ndarray, np.ndarray]:
    """(batch,) joules per inference and (batch, T) seconds per step by SANA-FE's formula, every count
    made by brute force: explicit connections, each neuron's core, the input units on the cores after
    the network's (the placement policy written out again), one message per (spike, distinct core)."""
    run = naive(graph, x)
    for p in graph.populations():           # the naive model is the engines' model
        assert np.array_equal(run[p.name]["spikes"], HwSim.from_graph(graph).run(x).spikes[p.name])
    tgt = mapping.target
    x_nz = np.asarray(x) != 0
    batch, steps, n_in = x_nz.shape
    core_of = {p.name: placement.offset[p.name] + mapping.per_core[p.name].core_of for p in graph.populations()}
    g0 = placement.cores
    core_of[graph.input.name] = g0 + np.arange(n_in) // tgt.neurons_per_core
    total = int(core_of[graph.input.name].max()) + 1
    g = np.arange(total)
    tile = (g % tgt.cores_per_chip) // tgt.cores_per_tile
    chip, tx, ty = g // tgt.cores_per_chip, tile % tgt.mesh_tiles[0], tile // tgt.mesh_tiles[0]
    spikes = {graph.input.name: x_nz, **{k: v["spikes"] for k, v in run.items()}}
    # every connection (source, source neuron) -> (destination population, neuron, count, kind)
    dests: dict[str, list[tuple[str, np.ndarray, str]]] = {k: [] for k in spikes}
    for p in graph.populations():
        for syn, src in p.inputs:
            dests[src].append((p.name, _explicit(syn)[1], "conv" if isinstance(syn, QConv) else "dense"))
    e = np.zeros(batch)
    neuron_t = np.zeros((batch, steps, total))
    message_t = np.zeros((batch, steps, total))
    E, T = cm.energy_j, cm.time_s
    for name, spk in spikes.items():
        for i in range(spk.shape[2]):
            cores: set[int] = set()
            for dst, n, kind in dests[name]:
                hit = np.flatnonzero(n[:, i])
                cores |= set(core_of[dst][hit].tolist())
                # synaptic events: one per synapse, on its destination's core, in the step the spike is sent
                e += spk[:, :, i].sum(axis=1) * n[hit, i].sum() * E[f"synaptic_event_{kind}"]
                per_core = np.bincount(core_of[dst][hit], weights=n[hit, i], minlength=total)
                message_t += spk[:, :, i, None] * per_core * T[f"synaptic_event_{kind}"]
            s = core_of[name][i]
            for k in cores:                          # one message per distinct destination core
                e += spk[:, :, i].sum(axis=1) * (E["message_out"] + E["message_in"] + abs(tx[s] - tx[k]) * E["tile_hop_ew"]
                                                 + abs(ty[s] - ty[k]) * E["tile_hop_ns"])
                neuron_t[:, :, s] += spk[:, :, i] * T["message_out"]
                message_t[:, :, k] += spk[:, :, i] * T["message_in"]
    for p in graph.populations():
        r = run[p.name]
        bias = (p.neuron.bias_mant.astype(np.int64) << p.neuron.bias_exp if p.neuron.bias_exp >= 0
                else p.neuron.bias_mant.astype(np.int64) >> -p.neuron.bias_exp) != 0
        updated = r["v_before"] | r["received"] | bias[None, None, :] | r["spikes"]
        for i in range(p.neuron.size):
            k = core_of[p.name][i]
            e += steps * E["neuron_step"] + updated[:, :, i].sum(axis=1) * E["neuron_updated"] \
                + r["spikes"][:, :, i].sum(axis=1) * E["neuron_fired"]
            neuron_t[:, :, k] += T["neuron_step"] + updated[:, :, i] * T["neuron_updated"] \
                + r["spikes"][:, :, i] * T["neuron_fired"]
    tiles = len(set(zip(chip.tolist(), tile.tolist())))
    barrier = cm.barrier_by_tiles[max(k for k in cm.barrier_by_tiles if k <= tiles)]
    return e, np.maximum(neuron_t, message_t).max(axis=2) + barrier


def _check_against_hand(graph: Graph, mapping, placement, x: np.ndarray):
    cm = load_cost_model("loihi1-sanafe2025")
    want_e, want_t = hand_priced(graph, mapping, placement, x, cm)
    counts = count(graph, mapping, placement, x)
    est = estimate(counts, mapping, placement, cm, Readout(), graph.output.name, mapping.target.cores_per_tile)
    assert est["energy"]["dynamic_j"] == pytest.approx(float(want_e.mean()), rel=1e-9, abs=1e-21)
    assert est["energy"]["total_j"] == est["energy"]["dynamic_j"] and est["energy"]["unpriced"] == []
    assert est["latency"]["per_step_mean_s"] == pytest.approx(want_t.mean(axis=0).tolist(), rel=1e-9)
    assert est["latency"]["per_step_max_s"] == pytest.approx(float(want_t.max()), rel=1e-9)
    return counts


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(fixed_point_graphs(), st.integers(0, 2**32 - 1), st.integers(1, 3), st.integers(1, 6))
def test_pricing_equals_sanafes_formula_over_brute_force_counts(graph: Graph, seed: int, batch: int,
                                                               steps: int) -> None:
    assume(not graph.is_recurrent)
    try:
        mapping = map_cores(graph, SMALL)
    except TargetLimitError:
        assume(False)
    placement = place(mapping, SMALL)
    assume(placement.cores + -(-graph.input.size // SMALL.neurons_per_core) <= SMALL.cores_per_chip)
    _check_against_hand(graph, mapping, placement, spikes_of(graph, np.random.default_rng(seed), batch, steps))


@pytest.mark.parametrize("kind,seed", [("conv", 1), ("conv", 2), ("conv", 5), ("residual", 0)])
def test_pricing_equals_sanafes_formula_on_convolutions(kind: str, seed: int) -> None:
    """Conv synapses (their own coefficients, taps inside the map) and two synapse nodes from one
    source into one population (one message per destination core, not per node)."""
    from test_onnx_io import conv_graph, residual_dag

    rng = np.random.default_rng(seed)
    graph = conv_graph(rng) if kind == "conv" else residual_dag(rng)
    target = replace(SMALL, neurons_per_core=16)
    mapping = map_cores(graph, target)
    placement = place(mapping, target)
    counts = _check_against_hand(graph, mapping, placement, spikes_of(graph, rng, 2, 5))
    assert sum(float(lc.events.events_conv.sum()) for lc in counts.layers) > 0


def test_every_coefficient_moves_the_price() -> None:
    """The comparison above can fail: a model with one coefficient changed prices differently."""
    from test_onnx_io import dense_chain

    graph = dense_chain(np.random.default_rng(3))
    mapping = map_cores(graph, SMALL)
    placement = place(mapping, SMALL)
    x = np.ones((2, 5, graph.input.size), bool)
    cm = load_cost_model("loihi1-sanafe2025")
    counts = count(graph, mapping, placement, x)
    base = estimate(counts, mapping, placement, cm, Readout(), graph.output.name, 2)
    for key in ("neuron_step", "message_out", "synaptic_event_dense"):
        other = replace(cm, energy_j={**cm.energy_j, key: cm.energy_j[key] * 2})
        assert estimate(counts, mapping, placement, other, Readout(), graph.output.name, 2)["energy"]["dynamic_j"] \
            > base["energy"]["dynamic_j"], key


# ------------------------------------------------------------------------------ the report

@pytest.fixture(scope="module")
def artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("sanafe")
    save(make_model((64, 32, 10)), tmp / "model.pt", metadata={"dataset": "digits", "timesteps": 10})
    return compile_model(tmp / "model.pt", out=tmp / "build", report_samples=8).out


def test_report_prices_the_same_counts_under_both_loihi1_models(artifact: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    rep = json.loads((artifact / "report.json").read_text())
    em = rep["energy_models"]
    assert em["primary"] == "loihi1-davies2018" == rep["energy"]["model"]
    d, s = em["models"]["loihi1-davies2018"], em["models"]["loihi1-sanafe2025"]
    assert d["energy_j"] == rep["energy"]["total_j"] and d["latency_per_step_s"] == rep["latency"]["per_step_s"]
    assert s["static_j"] == 0.0 and s["energy_j"] == s["dynamic_j"] > d["dynamic_j"]     # calibrated: dearer ops
    assert em["ratio"]["dynamic_j"] == pytest.approx(s["dynamic_j"] / d["dynamic_j"])
    assert em["ratio"]["latency_per_step_s"] == pytest.approx(s["latency_per_step_s"] / d["latency_per_step_s"])
    assert s["barrier_s"] == 0.6e-6 and s["unpriced"] == [] and "simple" in s["timing"]
    # priced under the calibrated model itself, snn-report's figures are the ones listed beside
    assert report_main([str(artifact), "--json", "--no-html", "--cost-model", "loihi1-sanafe2025"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["energy"]["model"] == again["energy_models"]["primary"] == "loihi1-sanafe2025"
    assert again["energy"]["dynamic_j"] == pytest.approx(s["dynamic_j"], rel=1e-12)
    assert again["latency"]["timing_model"] == "simple" and again["energy"]["input_cores"]
    assert set(again["energy_models"]["models"]) == {"loihi1-davies2018", "loihi1-sanafe2025"}


# ------------------------------------------------------------------------------ SANA-FE itself

def test_bridge_gives_snnc_figures_within_5_percent(tmp_path: Path) -> None:
    """A tiny mapped conv + dense network over several tiles, run by bridges/sanafe_run.py in a child
    process (about 5 s: SANA-FE builds its 128-core chip first)."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import sanafe_energy

    rng = np.random.default_rng(0)
    graph = Graph.chain(_tiny(rng))
    target = replace(LOIHI, neurons_per_core=8)
    mapping = map_cores(graph, target)
    placement = place(mapping, target)
    x = rng.random((2, 12, graph.input.size)) < 0.3
    network = tmp_path / "net.npz"
    sanafe_energy.export_network(graph, mapping, x, network)
    res = sanafe_energy.run_bridge(network, tmp_path / "out.json", tmp_path / "spikes.npz")
    assert "sanafe" not in sys.modules
    counts = count(graph, mapping, placement, x)
    est = estimate(counts, mapping, placement, load_cost_model("loihi1-sanafe2025"), Readout(), graph.output.name, 4)
    theirs = res["runs"]["simple"]
    assert est["energy"]["dynamic_j"] / x.shape[1] == pytest.approx(np.mean([r["energy_j"] for r in theirs]), rel=0.05)
    assert est["latency"]["per_step_s"] == pytest.approx(np.mean([r["time_s"] for r in theirs]), rel=0.05)
    with np.load(tmp_path / "spikes.npz") as f:       # the same activity: SANA-FE computed snnc's spikes
        for p in graph.populations():
            assert np.array_equal(f[p.name], counts.spikes[p.name])
    # 19 cores and 5 of input units on 6 tiles in a row: hops and the barrier's table are exercised
    assert est["energy"]["mapped_tiles"] == 6 and est["latency"]["barrier_s"] == 1.4e-6
    assert est["energy"]["traffic"]["ew_hops"] > 0 and est["energy"]["traffic"]["ns_hops"] == 0
    assert est["energy"]["breakdown_j"]["synaptic_ops"] > 0 and np.mean([r["synaptic_events"] for r in theirs]) > 0


def _tiny(rng: np.random.Generator) -> list:
    """Input 1x6x6 -> conv 3x3 (3 channels, padding 1) -> LIF 3x6x6 -> dense -> LIF 6."""
    from snnc.compiler.ir import Input, Output, QCubaLIF, QDense

    def lif(name: str, n: int, shape: tuple[int, ...] | None = None) -> QCubaLIF:
        return QCubaLIF(name, n, 4096, 512, 60, rng.integers(-3, 4, n), bias_exp=6, shape=shape)

    return [Input("input", (1, 6, 6)), QConv("conv1", rng.integers(-20, 60, (3, 1, 3, 3)), (1, 6, 6), padding=1),
            lif("lif1", 108, (3, 6, 6)), QDense("fc2", rng.integers(-10, 40, (6, 108)) * 2, 0), lif("lif2", 6),
            Output("output")]
