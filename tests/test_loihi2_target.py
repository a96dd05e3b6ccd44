"""--target loihi2: the target's limits as cited data (unknown ones None and unchecked), the mapper
under Loihi 2's compiler budgets and its design-rule messages, board placement, graded input and
delays per target, the emulator and the silicon check left out for Loihi 2 with their reasons, and an
end-to-end compile whose engines agree."""
from __future__ import annotations

import io
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console

from snnc.compiler.ir import Graph, Input, Output, QCubaLIF, QDense
from snnc.compiler.mapping import map_cores, target_findings, words_for
from snnc.compiler.placement import board_for, place
from snnc.compiler.targets import LOIHI, LOIHI2, TARGETS, get_target
from snnc.errors import SnncError, TargetLimitError
from snnc.hwsim.divergence import silicon_summary
from snnc.pipeline import compile_model, verify_engines
from snnc.report import render
from snnc.runtime.emulator import emulator_support_problem


def lif(name: str, n: int) -> QCubaLIF:
    return QCubaLIF(name, n, 1024, 128, 100, np.zeros(n, np.int64))


def chain(n_in: int, sizes: list[int], bits: int = 0, delay: int | None = None) -> Graph:
    """in -> fc1 -> l1 -> fc2 -> l2 ...; zero int8 weights (the mapper only reads shapes)."""
    nodes: list = [Input("in", (n_in,), bits=bits)]
    prev = n_in
    for k, n in enumerate(sizes, 1):
        d = None if delay is None or k > 1 else np.full((n, prev), delay, np.uint8)
        nodes += [QDense(f"fc{k}", np.zeros((n, prev), np.int8), -bits if k == 1 else 0, d), lif(f"l{k}", n)]
        prev = n
    return Graph.chain([*nodes, Output("out")])


# --- the target as data ------------------------------------------------------------------------------

def test_loihi2_is_registered_and_the_error_lists_both() -> None:
    assert TARGETS["loihi2"] is LOIHI2 and get_target("loihi2") is LOIHI2
    with pytest.raises(SnncError) as e:
        get_target("loihi3")
    assert "loihi (Loihi 1)" in str(e.value) and "loihi2 (Loihi 2)" in str(e.value) and "planned" not in str(e.value)


def test_loihi2_numbers_are_the_cited_budgets() -> None:
    t = LOIHI2
    assert (t.neurons_per_core, t.input_axons_per_core, t.output_axons_per_core) == (4095, 16000, 16000)
    assert (t.cores_per_chip, t.max_chips, t.neuron_groups_per_core) == (120, 8, 8)
    assert (t.graded_spike_bits, t.max_delay, t.stored_weight_bits) == (24, 62, 8)
    assert t.synapses_per_core_headline == 937_500
    assert t.fixed_point == LOIHI.fixed_point      # Lava's Loihi2SimCfg runs the same bit-accurate models
    assert [b.name for b in t.boards] == ["Oheo Gulch", "Kapoho Point", "Hala Point"]
    assert "4-8 is uncertain" in t.system and "8,192" in t.sources["neurons_per_core"]
    assert "AxonIn" in t.sources["input_axons_per_core"] and "AxonMap" in t.sources["output_axons_per_core"]
    assert "NUM_VIRTUAL_CORES_L3" in t.sources["cores_per_chip"]


@pytest.mark.parametrize("target", [LOIHI, LOIHI2], ids=lambda t: t.name)
def test_every_known_limit_has_a_source_and_unknown_ones_are_none_and_unchecked(target) -> None:
    rows = target.limit_table()
    assert rows and len({r["name"] for r in rows}) == len(rows)
    for r in rows:
        assert r["source"].strip(), r["name"]
        if r["value"] is None:
            assert not r["checked"] and r["status"].startswith("not public"), r
        else:
            assert r["name"] not in target.unknown, r
    json.dumps(rows)    # plain data


def test_loihi2_synaptic_memory_is_not_public_and_not_invented() -> None:
    assert not LOIHI2.synapse_memory_known and LOIHI.synapse_memory_known
    assert LOIHI2.synapse_words_per_core is None and LOIHI2.limits()["synapse_words_per_core"] is None
    row = {r["name"]: r for r in LOIHI2.limit_table()}["synapse_words_per_core"]
    assert row["value"] is None and row["checked"] is False and row["status"] == "not public: not checked"
    assert "SynMem" in row["source"] and "12,000" in row["source"]
    mesh = {r["name"]: r for r in LOIHI2.limit_table()}["mesh_tiles"]
    assert mesh["value"] is None and mesh["assumed"] == [8, 4] and not mesh["checked"]
    assert words_for(np.array([64, 640]), LOIHI2).tolist() == [0, 0]


# --- mapping under the Loihi 2 budgets -----------------------------------------------------------------

def test_4095_neurons_per_core() -> None:
    assert map_cores(chain(4, [4095]), LOIHI2).layers[0].cores == 1
    m = map_cores(chain(4, [4096]), LOIHI2)
    assert m.layers[0].cores == 2 and m.layers[0].neurons_per_core == 2048
    assert map_cores(chain(4, [4096]), LOIHI).layers[0].cores == 4      # Loihi 1: 1,024 per core


def test_synaptic_memory_does_not_bind_on_loihi2_but_synapses_are_counted() -> None:
    g = chain(784, [300])
    assert map_cores(g, LOIHI).layers[0].cores == 3               # 128 KiB of 64-bit words binds on Loihi 1
    m = map_cores(g, LOIHI2)
    assert m.layers[0].cores == 1 and m.layers[0].synapse_words_per_core is None
    use = m.per_core["l1"]
    assert use.synapses.tolist() == [784 * 300]
    doc = m.to_json()
    assert set(doc["layers"][0]["use"]) == {"neurons", "input_axons", "output_axons", "synapses"}
    assert "limit" not in doc["layers"][0]["use"]["synapses"] and doc["layers"][0]["use"]["neurons"]["limit"] == 4095
    assert "synapse_words_per_core" in doc["target"]["unknown"]


def test_16000_input_axons_and_the_error_names_the_budget() -> None:
    assert map_cores(chain(16000, [2]), LOIHI2).layers[0].input_axons_per_core == 16000
    with pytest.raises(TargetLimitError) as e:
        map_cores(chain(16001, [2]), LOIHI2)
    msg = str(e.value)
    assert "does not fit loihi2" in msg and "fan-in 16001" in msg
    assert "16,000 (AxonIn, Intel's Loihi 2 compiler budget" in msg and "lava-dl" in msg
    assert "Use fewer input channels or inputs" in msg


def test_output_axon_budget_refines_the_producer_and_names_axonmap() -> None:
    small = replace(LOIHI2, neurons_per_core=8, output_axons_per_core=20)
    m = map_cores(chain(2, [8, 40]), small)         # 8 neurons x 5 consumer cores = 40 > 20 slots
    lm = {x.name: x for x in m.layers}
    assert lm["l2"].cores == 5 and lm["l1"].cores == 2 and lm["l1"].output_axons_per_core <= 20
    tiny = replace(LOIHI2, neurons_per_core=8, output_axons_per_core=4)
    with pytest.raises(TargetLimitError, match=r"over loihi2's 4 \(AxonMap, Intel's Loihi 2 compiler budget"):
        map_cores(chain(2, [8, 40]), tiny)        # one neuron reaches 5 cores: no split helps


def test_chip_budget_names_the_system_and_the_larger_board() -> None:
    one = replace(LOIHI2, max_chips=1, system="Oheo Gulch, 1 Loihi 2 chip")
    with pytest.raises(TargetLimitError) as e:
        map_cores(chain(1, [4095 * 121]), one)
    msg = str(e.value)
    assert "121 cores = 2 chips of 120 cores" in msg and "Oheo Gulch, 1 Loihi 2 chip" in msg
    assert "Kapoho Point, 8 chips" in msg


def test_neuron_groups_one_population_per_core() -> None:
    """snnc never shares a core between populations: each core holds one neuron group (<= 8)."""
    m = map_cores(chain(8, [5000, 3000, 10]), LOIHI2)
    p = place(m, LOIHI2)
    owner = np.concatenate([np.full(lm.cores, i) for i, lm in enumerate(m.layers)])
    assert owner.size == p.cores and m.cores == 2 + 1 + 1


# --- placement: which board ----------------------------------------------------------------------------

def test_board_for_the_mapped_chips() -> None:
    m = map_cores(chain(64, [128, 10]), LOIHI2)
    assert m.chips == 1 and board_for(m.chips, LOIHI2)["name"] == "Oheo Gulch"
    assert board_for(2, LOIHI2)["name"] == "Kapoho Point" and "uncertain" in board_for(2, LOIHI2)["note"]
    assert board_for(9, LOIHI2)["name"] == "Hala Point"
    assert board_for(2000, LOIHI2)["fits"] is False
    assert board_for(1, LOIHI)["name"] == "Kapoho Bay" and board_for(20, LOIHI)["name"] == "Nahuku"
    big = map_cores(chain(1, [4095 * 121]), LOIHI2)      # 121 cores: 2 chips of 120
    assert big.chips == 2 and board_for(big.chips, LOIHI2)["name"] == "Kapoho Point"
    assert int(place(big, LOIHI2).chip.max()) == 1


# --- graded input and delays per target --------------------------------------------------------------

def test_graded_input_is_a_warning_on_loihi_and_native_on_loihi2() -> None:
    g = chain(16, [8], bits=8)
    found = target_findings(g, map_cores(g, LOIHI), LOIHI)
    assert [f.rule for f in found] == ["graded_input_binary_chip"]
    f = found[0]
    assert f.severity == "warning" and not f.numerical and not f.health      # --strict does not refuse it
    assert "--target loihi2" in f.message and "binary spikes only" in f.message
    assert target_findings(g, map_cores(g, LOIHI2), LOIHI2) == []
    assert target_findings(chain(16, [8]), None, LOIHI) == []


def test_graded_input_wider_than_the_payload_is_a_design_rule_error() -> None:
    narrow = replace(LOIHI2, graded_spike_bits=8)
    map_cores(chain(16, [8], bits=8), narrow)
    with pytest.raises(TargetLimitError, match=r"graded 12-bit values, over loihi2's 8-bit graded spike payload"):
        map_cores(chain(16, [8], bits=12), narrow)


def test_delays_on_loihi_cost_delay_bits_and_warn_beyond_8_slots() -> None:
    plain, short, long = chain(784, [300]), chain(784, [300], delay=7), chain(784, [300], delay=40)
    words = [map_cores(g, LOIHI).layers[0].synapse_words_per_core for g in (plain, short, long)]
    cores = [map_cores(g, LOIHI).layers[0].cores for g in (plain, short, long)]
    assert words[0] < words[1] and cores[0] <= cores[1] <= cores[2] and cores[2] > cores[0]
    assert words_for(64, LOIHI, 3).item() == -(-(64 * 11 + 10) // 64)       # 8 weight + 3 delay bits
    assert target_findings(short, None, LOIHI) == []
    (f,) = target_findings(long, None, LOIHI)
    assert f.rule == "delay_slots" and "8 delay slots" in f.message and "delayBits=3" in f.message
    assert not f.numerical and target_findings(long, None, LOIHI2) == []
    assert map_cores(long, LOIHI2).layers[0].cores == 1
    with pytest.raises(TargetLimitError, match="synaptic delay 40 steps exceeds loihi2's 30"):
        map_cores(long, replace(LOIHI2, max_delay=30))


def test_synapses_above_intels_headline_are_a_warning_not_a_limit() -> None:
    g = chain(300, [4095])                          # 1,228,500 synapses on one core
    m = map_cores(g, LOIHI2)
    assert m.layers[0].cores == 1
    (f,) = target_findings(g, m, LOIHI2)
    assert f.rule == "synapses_per_core_headline" and "1,228,500" in f.message and "937,500" in f.message
    assert "not public" in f.message and f.severity == "warning"
    assert target_findings(chain(300, [3000]), map_cores(chain(300, [3000]), LOIHI2), LOIHI2) == []


# --- engines and checks that are Loihi 1 evidence ---------------------------------------------------------

def test_emulator_reason_for_delays() -> None:
    why = emulator_support_problem(chain(8, [4], delay=3))
    assert why is not None and "MAX_DELAY = 1" in why and "fc1" in why and "\n" not in why
    assert emulator_support_problem(chain(8, [4])) is None


def test_emulator_is_not_run_for_loihi2() -> None:
    g = chain(8, [4])
    x = np.zeros((1, 3, 8), bool)
    res = verify_engines(None, g, x, target="loihi2")
    assert "emulator" in res.not_run and "models Loihi 1" in res.not_run["emulator"]
    assert "no public silicon-tested Loihi 2 reference" in res.not_run["emulator"] and res.passed


def test_silicon_summary_unchecked() -> None:
    s = silicon_summary({}, LOIHI2.no_silicon_reason)
    assert s["verdict"] == "unchecked" and "Loihi 2" in s["reason"] and s["layers_diverging"] == []
    assert silicon_summary({})["verdict"] == "agrees"


# --- end to end ----------------------------------------------------------------------------------------

def test_compile_loihi2_end_to_end(model_path: Path, tmp_path: Path) -> None:
    res = compile_model(model_path, target="loihi2", out=tmp_path / "a", verify=2, report_samples=8)
    r = json.loads((res.out / "report.json").read_text())
    v = r["verification"]
    assert v["passed"] and v["engines"] == ["torch", "hwsim", "lava"]
    assert all(sum(per.values()) == 0 for per in v["mismatches"].values())
    assert "models Loihi 1" in v["not_run"]["emulator"]
    assert r["target"] == "loihi2" and r["mapping"]["target"]["name"] == "loihi2"
    tl = r["target_limits"]
    assert tl["board"]["name"] == "Oheo Gulch" and tl["neuron_groups_per_core"] == 1
    assert {x["name"]: x["value"] for x in tl["limits"]}["synapse_words_per_core"] is None
    sil = r["numerics"]["silicon"]
    assert sil["verdict"] == "unchecked" and "Loihi 2" in sil["reason"]
    assert all(layer["silicon"]["verdict"] == "unchecked" for layer in r["numerics"]["layers"].values())
    assert not [f for f in r["findings"] if f["rule"] == "silicon_divergence"]
    e = r["energy"]
    assert e["model"] == "loihi2-counts-only" and e["total_j"] is None and "not priced for Loihi 2" in e["not_priced_for_target"]
    assert any("measured" in m["source"] for m in e["measured_context"])
    assert list(r["energy_models"]["models"]) == ["loihi2-counts-only"]
    assert r["activity"]["synops"] > 0 and r["activity"]["spikes"] > 0        # the counts are all there
    assert json.loads((res.out / "manifest.json").read_text())["target"] == "loihi2"
    buf = io.StringIO()
    render(r, Console(file=buf, width=200, color_system=None))
    text = buf.getvalue()
    assert "Target limits: loihi2" in text and "not public: not checked" in text and "fits Oheo Gulch" in text
    assert "measured system-level context" in text and "Lava vs silicon: unchecked" in text
    html = (res.out / "report.html").read_text()
    assert 'id="target-limits"' in html and 'id="measured-context"' in html and "not public" in html


def test_a_loihi1_table_on_loihi2_is_labelled(model_path: Path, tmp_path: Path) -> None:
    res = compile_model(model_path, target="loihi2", out=tmp_path / "b", report_samples=4,
                        cost_model="loihi1-davies2018")
    e = res.report["energy"]
    assert e["model"] == "loihi1-davies2018" and e["total_j"] is not None
    assert "not a Loihi 2 estimate" in e["target_mismatch"] and e["caveats"][0] == e["target_mismatch"]
    # loihi's own report carries no such label, and its default model and comparison are unchanged
    res1 = compile_model(model_path, target="loihi", out=tmp_path / "c", report_samples=4)
    e1 = res1.report["energy"]
    assert e1["model"] == "loihi1-davies2018" and "target_mismatch" not in e1 and "measured_context" not in e1
    assert set(res1.report["energy_models"]["models"]) == {"loihi1-davies2018", "loihi1-sanafe2025"}
    assert res1.report["target_limits"]["board"]["name"] == "Kapoho Bay"
