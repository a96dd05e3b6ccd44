"""The energy/latency report: counts per core equal the engines' layer counts; spike traffic per
route equals a brute-force count over explicit connectivity; prices are linear in the cost model's
coefficients and unknown ones are never taken as zero; latency and time to decision follow their
definitions; cost model files are checked with clear errors; report.html is complete, offline and
deterministic, and renders in headless Chromium.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from snnc.cli import report_main
from snnc.compiler.ir import Graph, QConv
from snnc.compiler.mapping import map_cores
from snnc.compiler.placement import place
from snnc.compiler.targets import LOIHI
from snnc.errors import SnncError, TargetLimitError
from snnc.hwsim.counts import count
from snnc.hwsim.energy import (barrier_time, decision_steps, estimate, load_cost_model, shipped_cost_models)
from snnc.hwsim.sim import HwSim
from snnc.models.checkpoint import save
from snnc.models.readout import Readout
from snnc.pipeline import compile_model

from conftest import make_model
from html_helpers import Page
from test_mapping import connectivity
from test_onnx_io import fixed_point_graphs, spikes_of

#: A small mesh so random graphs spread over many cores, tiles and chips.
SMALL = replace(LOIHI, neurons_per_core=5, cores_per_chip=4, cores_per_tile=2, mesh_tiles=(2, 1), max_chips=10**6)


def _mapped(graph: Graph, target=SMALL):
    try:
        mapping = map_cores(graph, target)
    except TargetLimitError:
        assume(False)
    return mapping, place(mapping, target)


def _connections(syn: object) -> np.ndarray:
    """(out, in) bool: which source neuron has a synapse on which destination neuron."""
    if isinstance(syn, QConv):
        return connectivity(syn) > 0
    return np.ones((syn.out_size, syn.in_size), dtype=bool)  # type: ignore[attr-defined]


def expected_traffic(spk: np.ndarray, dest: list[list[int]], core_of: np.ndarray,
                     routes: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Messages by route, by brute force: each neuron's spike counts ``spk`` (batch, n) times the route
    from its core ``core_of[i]`` to each of its destination cores ``dest[i]``."""
    want = {k: np.zeros(len(spk), np.int64) for k in ("within_tile", "ew_hops", "ns_hops", "cross_chip")}
    for i, cores in enumerate(dest):
        for g in cores:
            s = core_of[i]
            want["within_tile"] += spk[:, i] * int(routes["same_tile"][s, g])
            want["ew_hops"] += spk[:, i] * int(routes["ew_hops"][s, g])
            want["ns_hops"] += spk[:, i] * int(routes["ns_hops"][s, g])
            want["cross_chip"] += spk[:, i] * int(routes["cross_chip"][s, g])
    return want


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(fixed_point_graphs(), st.integers(0, 2**32 - 1), st.integers(1, 3), st.integers(1, 8))
def test_per_core_counts_and_traffic_equal_brute_force(graph: Graph, seed: int, batch: int, steps: int) -> None:
    mapping, placement = _mapped(graph)
    x = spikes_of(graph, np.random.default_rng(seed), batch, steps)
    counts = count(graph, mapping, placement, x)
    engine = HwSim.from_graph(graph).run(x, engine="numba")
    routes = placement.routes()
    # the destination cores of every source neuron, from explicit connectivity: one message per
    # synapse node reaching a core (each its own output-axon slot, as the mapper counts them)
    dest: dict[str, list[list[int]]] = {graph.input.name: [[] for _ in range(graph.input.size)]}
    for p in graph.populations():
        dest[p.name] = [[] for _ in range(p.neuron.size)]
    for p in graph.populations():
        core_of = placement.offset[p.name] + mapping.per_core[p.name].core_of
        for syn, src in p.inputs:
            conn = _connections(syn)
            for i in range(conn.shape[1]):
                dest[src][i] += sorted(set(core_of[conn[:, i]].tolist()))
    for lc, act in zip(counts.layers, engine.activity):
        assert lc.name == act.name
        assert lc.neurons_per_core.sum() == act.neurons
        assert lc.synops.sum(axis=(0, 2)).tolist() == act.synops.tolist()
        assert lc.active.sum(axis=(0, 2)).tolist() == act.active_updates.tolist()
        assert lc.spikes.sum(axis=(0, 2)).tolist() == act.spikes.tolist()
        spk = engine.spikes[lc.name].sum(axis=1)             # (batch, n)
        core_of = placement.offset[lc.name] + mapping.per_core[lc.name].core_of
        want = expected_traffic(spk, dest[lc.name], core_of, routes)
        for k, v in want.items():
            assert lc.traffic[k].tolist() == v.tolist(), (lc.name, k)
        is_out = lc.name == graph.output.name
        assert lc.traffic["to_host"].tolist() == (spk.sum(axis=1) if is_out else np.zeros(batch)).tolist()
        # messages sent = spikes x destination cores (+1 to the host for the output)
        fan = np.array([len(c) + int(is_out) for c in dest[lc.name]])
        assert lc.messages.sum() == int((spk * fan).sum())
        # the mapper's output-axon slots are the same destination sets
        if not is_out:
            assert int(mapping.per_core[lc.name].output_axons.sum()) == int(fan.sum())
    x_msgs = (x != 0).sum(axis=1) @ np.array([len(c) for c in dest[graph.input.name]])
    assert counts.input_traffic["within_tile"].tolist() == x_msgs.tolist()


def _artifact(tmp: Path, sizes=(64, 32, 10), **kw) -> Path:
    path = tmp / "model.pt"
    save(make_model(sizes), path, metadata={"dataset": "digits", "timesteps": 10})
    return compile_model(path, out=tmp / "build", report_samples=8, **kw).out


@pytest.fixture(scope="module")
def artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _artifact(tmp_path_factory.mktemp("energy"))


def _model_file(tmp: Path, name: str, energy: dict, time: dict, static=None, suffix=".yaml") -> Path:
    import yaml

    body = {"name": name, "source": "test coefficients", "kind": "neuromorphic", "energy_j": energy,
            "time_s": time, "static_w_per_chip": static}
    path = tmp / f"{name}{suffix}"
    path.write_text(yaml.safe_dump(body) if suffix != ".json" else json.dumps(body))
    return path


ENERGY_KEYS = ("synaptic_op", "neuron_update_active", "neuron_update_inactive", "spike_within_tile",
               "tile_hop_ew", "tile_hop_ns", "spike_cross_chip")
TIME_KEYS = ("synaptic_op", "neuron_update_active", "neuron_update_inactive", "spike_within_tile",
             "tile_hop_ew", "tile_hop_ns", "barrier_1_tile", "barrier_32_tiles", "barrier_multi_chip")


def _report_json(artifact: Path, capsys: pytest.CaptureFixture[str], *args: str) -> dict:
    assert report_main([str(artifact), "--json", "--no-html", *args]) == 0
    return json.loads(capsys.readouterr().out)


def test_energy_is_the_counts_times_each_coefficient(artifact: Path, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    base = _report_json(artifact, capsys)
    act = base["activity"]
    traffic = base["energy"]["traffic"]
    want = {"synaptic_op": ("synaptic_ops", act["synops"]),
            "neuron_update_active": ("neuron_updates", sum(x["active_neuron_updates"] for x in act["layers"])),
            "neuron_update_inactive": ("neuron_updates", sum(x["neuron_updates"] - x["active_neuron_updates"]
                                                             for x in act["layers"])),
            "spike_within_tile": ("spike_messages", traffic["within_tile"] + traffic["to_host"]
                                  + base["energy"]["input_messages"])}
    for key, (cat, expected) in want.items():
        coeffs = {k: (1.0 if k == key else 0.0) for k in ENERGY_KEYS}
        rep = _report_json(artifact, capsys, "--cost-model",
                           str(_model_file(tmp_path, key, coeffs, {k: 0.0 for k in TIME_KEYS})))
        assert rep["energy"]["breakdown_j"][cat] == pytest.approx(expected, rel=1e-12)
        assert rep["energy"]["dynamic_j"] == pytest.approx(expected, rel=1e-12)
        assert rep["energy"]["unpriced"] == ["static_w_per_chip"]
    # the shipped model is the same linear combination of the same counts
    cm = load_cost_model("loihi1-davies2018")
    dyn = sum(cm.energy_j[k] * want[k][1] for k in want)
    assert base["energy"]["dynamic_j"] == pytest.approx(dyn, rel=1e-9)
    assert base["energy"]["static_j"] == pytest.approx(0.104 * base["mapping"]["chips"]
                                                       * base["latency"]["per_inference_s"], rel=1e-12)
    assert sum(c["energy_j"] for c in base["energy"]["cores"]) == pytest.approx(
        base["energy"]["breakdown_j"]["synaptic_ops"] + base["energy"]["breakdown_j"]["neuron_updates"], rel=1e-9)


def test_unknown_coefficients_are_reported_never_zero(artifact: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rep = _report_json(artifact, capsys, "--cost-model", "loihi2-counts-only")
    e = rep["energy"]
    assert e["total_j"] is None and e["dynamic_j"] is None and rep["latency"]["per_step_s"] is None
    assert {"synaptic_op", "neuron_update_active", "time:synaptic_op", "time:barrier_1_tile"} <= set(e["unpriced"])
    assert "spike_cross_chip" not in e["unpriced"]        # one chip: nothing crosses, nothing is missing
    assert rep["activity"]["synops"] > 0 and rep["latency"]["time_to_decision"]["steps"]["mean"] >= 1
    assert report_main([str(artifact), "--cost-model", "loihi2-counts-only", "--no-html"]) == 0
    assert "Not priced" in capsys.readouterr().out


def test_step_time_is_the_slowest_core_plus_route_and_barrier(tmp_path: Path) -> None:
    art = _artifact(tmp_path, sizes=(64, 1500, 600, 10))   # memory-bound: tens of cores, many tiles
    from snnc.compiler.artifact import load_artifact

    graph = load_artifact(art).graph
    mapping = map_cores(graph, LOIHI)
    placement = place(mapping, LOIHI)
    assert mapping.cores > LOIHI.cores_per_tile
    x = spikes_of(graph, np.random.default_rng(1), 4, 10)
    counts = count(graph, mapping, placement, x)
    only = {k: 0.0 for k in TIME_KEYS}
    cm = replace(load_cost_model("loihi1-davies2018"), time_s={**only, "synaptic_op": 1.0})
    lat = estimate(counts, mapping, placement, cm, Readout(), graph.output.name, 4)["latency"]
    busiest = np.max(np.concatenate([lc.synops for lc in counts.layers], axis=2), axis=2)
    assert lat["per_step_mean_s"] == pytest.approx(busiest.mean(axis=0).tolist())
    cm = replace(cm, time_s={**only, "tile_hop_ew": 1.0})
    lat = estimate(counts, mapping, placement, cm, Readout(), graph.output.name, 4)["latency"]
    routes = placement.routes()["ew_hops"]
    longest = 0
    for lc in counts.layers:            # in a step where every core sends, the longest route counts
        lo = placement.offset[lc.name]
        longest = max(longest, int(np.where(lc.reach, routes[lo:lo + lc.cores], 0).max()))
    assert longest >= 1 and lat["per_step_max_s"] <= longest and lat["per_step_max_s"] >= 1
    cm1 = load_cost_model("loihi1-davies2018")
    assert barrier_time(cm1, 1, 1, 4) == pytest.approx(113e-9)
    assert barrier_time(cm1, 128, 1, 4) == pytest.approx(465e-9)
    assert barrier_time(cm1, 200, 2, 4) == pytest.approx(465e-9)   # no multi-chip figure: the chip's


def test_time_to_decision_is_the_first_step_after_the_last_change() -> None:
    from snnc.hwsim.counts import DetailedCounts

    out = np.zeros((3, 6, 2), dtype=bool)
    out[0, 0, 1] = True                             # class 1 from step 1, never changes: 1
    out[1, 0, 0] = True
    out[1, 2, 1] = out[1, 3, 1] = True              # 0 at steps 1-2, tied at 3 (none), 1 from step 4: 4
    # sample 2 never spikes: tied (undecided) to the end: counted as all 6 steps
    counts = DetailedCounts(layers=[], input_traffic={}, spikes={"o": out}, output_v=np.zeros((3, 6, 2)),
                            batch=3, timesteps=6)
    steps, undecided = decision_steps(Readout(), counts, "o")
    assert steps.tolist() == [1, 4, 6] and undecided.tolist() == [False, False, True]
    out[1, 4:, 0] = True                            # class 0 catches up: tie at 5, 0 leads at 6: 6
    assert decision_steps(Readout(), counts, "o")[0].tolist() == [1, 6, 6]
    v = np.zeros((1, 5, 3), dtype=np.int64)
    v[0, :, 2] = [5, 5, 1, 1, 1]
    v[0, :, 0] = [0, 0, 3, 0, 9]                    # membrane: 2, 2, 0, 2, 0 -> final from step 5
    counts = DetailedCounts(layers=[], input_traffic={}, spikes={}, output_v=v, batch=1, timesteps=5)
    assert decision_steps(Readout(kind="membrane"), counts, "o")[0].tolist() == [5]


@pytest.mark.parametrize("body, message", [
    ({"name": "x", "source": "s", "energy_j": {"synop": 1}}, "unknown coefficients ['synop']"),
    ({"name": "x", "source": "s", "energy_j": {"synaptic_op": -1}}, "'energy_j.synaptic_op' must be a non-negative"),
    ({"name": "x", "energy_j": {}}, "'source' is required"),
    ({"name": "x", "source": "s", "kind": "gpu"}, "kind 'gpu' is not one of"),
    ({"name": "x", "source": "s", "colour": 1}, "unknown keys ['colour']"),
    ([1, 2], "a cost model is a mapping"),
])
def test_bad_cost_model_files_are_refused_clearly(tmp_path: Path, body: object, message: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(body))
    with pytest.raises(SnncError) as err:
        load_cost_model(path)
    assert message in str(err.value) and str(path) in str(err.value)


def test_unreadable_cost_models_name_the_file(tmp_path: Path, artifact: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "m.yaml"
    bad.write_text("name: [unclosed\n")
    assert report_main([str(artifact), "--cost-model", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("snn-report: error:") and "m.yaml: not a readable YAML" in err and "Traceback" not in err
    assert report_main([str(artifact), "--cost-model", "loihi9"]) == 2
    assert "loihi1-davies2018" in capsys.readouterr().err
    assert set(shipped_cost_models()) >= {"loihi1-davies2018", "loihi2-counts-only", "ann-horowitz2014-45nm"}


def test_report_html_is_complete_offline_and_matches_report_json(artifact: Path) -> None:
    from snnc.html_report import si

    page = Page()
    page.feed((artifact / "report.html").read_text())
    rep = json.loads((artifact / "report.json").read_text())
    text = " ".join(page.text)
    assert {"summary", "layers", "raster", "activity", "energy", "latency-section", "cores", "comparison",
            "verification-section", "caveats"} <= page.ids
    assert page.tags.get("svg", 0) >= 5 and "script" not in page.tags and page.external == []
    for layer in rep["activity"]["layers"]:
        assert layer["name"] in text
    assert si(rep["energy"]["dynamic_j"], "J") in text and si(rep["latency"]["per_inference_s"], "s") in text
    assert rep["energy"]["caveats"][0] in text and "timestep" in text     # chart labels are real text
    assert "not run" in text            # compiled without --verify


def test_same_artifact_gives_the_same_report_bytes(tmp_path: Path, artifact: Path) -> None:
    again = _artifact(tmp_path)
    for name in ("report.html", "report.json"):
        assert (again / name).read_bytes() == (artifact / name).read_bytes(), name


def _chromium() -> str | None:
    return shutil.which("chromium-headless-shell") or shutil.which("chromium")


def test_report_renders_in_headless_chromium(artifact: Path, tmp_path: Path) -> None:
    exe = _chromium()
    if exe is None:
        if os.environ.get("CI"):
            pytest.fail("CI must render report.html: `make test` installs chromium-headless-shell")
        pytest.skip("no headless Chromium here (make test installs it)")
    url = (artifact / "report.html").resolve().as_uri()
    flags = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"]
    dom = subprocess.run([*flags, "--dump-dom", url], capture_output=True, text=True, timeout=120).stdout
    page = Page()
    page.feed(dom)
    rep = json.loads((artifact / "report.json").read_text())
    assert "summary" in page.ids and rep["energy"]["model"] in " ".join(page.text)
    shot = tmp_path / "report.png"
    subprocess.run([*flags, f"--screenshot={shot}", "--window-size=1200,2400", url], capture_output=True,
                   timeout=120, check=True)
    png = shot.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
    assert (width, height) == (1200, 2400) and len(png) > 50_000     # a drawn page, not a blank one
    keep = os.environ.get("SNNC_KEEP_SCREENSHOT")
    if keep:
        shutil.copy(shot, keep)


def test_compile_prices_with_a_user_model_and_report_keeps_it(tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    coeffs = {k: 1e-12 for k in ENERGY_KEYS}
    model = _model_file(tmp_path, "mine", coeffs, {k: 1e-9 for k in TIME_KEYS}, static=0.5, suffix=".json")
    art = _artifact(tmp_path, cost_model=str(model))
    rep = json.loads((art / "report.json").read_text())
    assert rep["energy"]["model"] == "mine" and rep["energy"]["file"] == str(model) and rep["energy"]["unpriced"] == []
    again = _report_json(art, capsys)                     # no --cost-model: the one it was compiled with
    assert again["energy"]["model"] == "mine" and again["energy"]["total_j"] == pytest.approx(rep["energy"]["total_j"])


def test_a_bad_cost_model_fails_the_compile_before_anything_is_written(tmp_path: Path) -> None:
    with pytest.raises(SnncError, match="cost model 'nope.yaml'"):
        _artifact(tmp_path, cost_model="nope.yaml")
    assert not (tmp_path / "build").exists()
