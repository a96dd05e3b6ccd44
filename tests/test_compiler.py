"""compiler/ and hwsim/ without Lava: quantization, design rules, mapping, netx files, artifacts,
and hwsim against the hardware-exact PyTorch model (two independent implementations)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from snnc.compiler.artifact import load_artifact, staged_directory
from snnc.compiler.frontend import as_spiking_net, graph_from_checkpoint, graph_from_module
from snnc.compiler.ir import Graph, Input, Output, QCubaLIF, QDense
from snnc.compiler.mapping import map_cores, synapse_words
from snnc.compiler.netx_hdf5 import read_netx, write_netx
from snnc.compiler.passes import check, quantize
from snnc.compiler.targets import LOIHI, get_target
from snnc.errors import GraphError, InputFileError, SnncError, TargetLimitError, UnsupportedLayerError
from snnc.hwsim.sim import HwSim
from snnc.models.checkpoint import load, save
from snnc.pipeline import compile_model, hardware_exact_model, run_torch

from conftest import make_model


def test_quantize_uses_exactly_the_trained_integers() -> None:
    model = make_model()
    q = quantize(graph_from_module(model), LOIHI)
    for (syn, neu), layer in zip(q.layers(), model.layers):
        ints = layer.integer_params()
        assert np.array_equal(syn.weight, ints["weight"].numpy())
        assert np.array_equal(neu.bias_mant, ints["bias"].numpy())
        assert (neu.du, neu.dv, neu.vth) == (ints["du"], ints["dv"], ints["vth"])
        assert syn.weight.max() <= 254 and syn.weight.min() >= -256 and (syn.weight % 2 == 0).all()


def test_float_model_is_calibrated_to_fill_the_weight_range() -> None:
    model = make_model(hardware_exact=False)
    q = quantize(graph_from_module(model), LOIHI)
    for syn, _ in q.layers():
        assert np.abs(syn.weight).max() >= 252  # largest |w| lands at the top of the 8-bit range
    assert sum(q.meta["weights_clipped"].values()) == 0


def test_threshold_too_large_names_layer_and_factor() -> None:
    model = make_model(threshold=5000.0, weight_scale=64.0)  # x 64 = 320000 > 131071
    with pytest.raises(TargetLimitError, match=r"lif1.*320000.*131071.*2\.4x"):
        quantize(graph_from_module(model), LOIHI)


def test_decay_outside_unit_interval_is_rejected() -> None:
    model = make_model(current_decay=1.5)
    with pytest.raises(TargetLimitError, match=r"current_decay 1.5 is outside \[0, 1\]"):
        quantize(graph_from_module(model), LOIHI)


def test_design_rule_warnings() -> None:
    lif = lambda n: QCubaLIF("lif1", n, 0, 0, 1, np.zeros(n, np.int64))  # noqa: E731
    big = Graph.chain([Input("in", (1100,)), QDense("fc1", np.full((2, 1100), 254, np.int64)), lif(2), Output("out")])
    assert [f.rule for f in check(big, LOIHI)] == ["current_cannot_wrap"]   # 1100 x 254 > 2**18
    ok = Graph.chain([Input("in", (1000,)), QDense("fc1", np.full((2, 1000), 254, np.int64)), lif(2), Output("out")])
    assert check(ok, LOIHI) == []
    neg = Graph.chain([Input("in", (3,)), QDense("fc1", -2 * np.ones((2, 3), np.int64)), lif(2), Output("out")])
    assert [f.rule for f in check(neg, LOIHI)] == ["netx_sign_mode"]
    odd = Graph.chain([Input("in", (3,)), QDense("fc1", np.array([[3, 2, 300], [2, 2, 2]])), lif(2), Output("out")])
    found = check(odd, LOIHI)
    assert [f.rule for f in found] == ["weights_representable"] and "2 weights" in found[0].message


def test_hwsim_applies_the_chips_weight_format() -> None:
    """Odd and out-of-range weights are clipped and floored as Lava's Dense does: 3 -> 2, 300 -> 254."""
    g = Graph.chain([Input("in", (2,)), QDense("fc1", np.array([[3, 300]])),
                     QCubaLIF("lif1", 1, 4096, 4096, 0, np.zeros(1, np.int64)), Output("out")])
    x = np.zeros((1, 3, 2), dtype=bool)
    x[0, 0, 0] = True
    sim = HwSim.from_graph(g)
    assert sim.run(x).output[0, 1, 0]  # 2 > 0 fires (a raw 3 would too)
    g2 = Graph.chain([Input("in", (2,)), QDense("fc1", np.array([[3, 300]])),
                      QCubaLIF("lif1", 1, 4096, 4096, 2, np.zeros(1, np.int64)), Output("out")])
    assert not HwSim.from_graph(g2).run(x).output.any()  # 2 << 6 = 128 is not > 2 << 6; a raw 3 would fire


def test_mapping_matches_loihi_synaptic_memory_arithmetic() -> None:
    # nengo-loihi's dense format: 784 inputs fit 142 neurons per core, not 143
    assert synapse_words(784, 142, LOIHI) <= 16384 < synapse_words(784, 143, LOIHI)
    w = np.zeros((300, 784), dtype=np.int64)
    g = Graph.chain([Input("in", (784,)), QDense("fc1", w), QCubaLIF("lif1", 300, 0, 0, 1, np.zeros(300, np.int64)),
                     Output("out")])
    m = map_cores(g, LOIHI)
    assert m.layers[0].cores == 3 and m.layers[0].neurons_per_core == 100 and m.chips == 1
    wide = Graph.chain([Input("in", (5000,)), QDense("fc1", np.zeros((4, 5000), np.int64)),
                        QCubaLIF("lif1", 4, 0, 0, 1, np.zeros(4, np.int64)), Output("out")])
    with pytest.raises(TargetLimitError, match="fan-in 5000 exceeds loihi's 4096"):
        map_cores(wide, LOIHI)


def test_graph_rejects_shape_mismatch_with_edge_names() -> None:
    with pytest.raises(GraphError, match=r"type mismatch: fc1.output \(4,\) -> lif1.input \(5,\)"):
        Graph.chain([Input("in", (3,)), QDense("fc1", np.zeros((4, 3), np.int64)),
                     QCubaLIF("lif1", 5, 0, 0, 1, np.zeros(5, np.int64)), Output("out")])


def test_netx_file_round_trips(tmp_path: Path) -> None:
    q = quantize(graph_from_module(make_model()), LOIHI)
    write_netx(q, tmp_path / "n.net", 20)
    back = read_netx(tmp_path / "n.net")
    assert back.meta["timesteps"] == 20
    for (s1, n1), (s2, n2) in zip(q.layers(), back.layers()):
        assert np.array_equal(s1.weight, s2.weight) and np.array_equal(n1.bias_mant, n2.bias_mant)
        assert (n1.du, n1.dv, n1.vth, n1.lava_du) == (n2.du, n2.dv, n2.vth, n2.lava_du)


def test_unknown_target_and_unsupported_module(tmp_path: Path) -> None:
    with pytest.raises(SnncError, match="Supported targets: loihi"):
        get_target("truenorth")
    seq = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.ReLU())
    with pytest.raises(UnsupportedLayerError, match=r"layer '0' is a Conv2d.*Supported layers: CubaDense"):
        as_spiking_net(seq, "x.pt")
    path = tmp_path / "pickled.pt"
    torch.save(seq, path)
    with pytest.raises(InputFileError, match="--allow-pickle-code-execution"):
        load(path)
    with pytest.raises(UnsupportedLayerError, match="Conv2d"):
        graph_from_checkpoint(load(path, allow_pickle_code_execution=True))


def test_failed_compile_leaves_no_artifact(tmp_path: Path) -> None:
    path = save(make_model(threshold=5000.0, weight_scale=64.0), tmp_path / "m.pt")
    out = tmp_path / "build"
    with pytest.raises(TargetLimitError):
        compile_model(path, out=out)
    assert not out.exists() and not any(p.name.startswith(".build") for p in tmp_path.iterdir())
    with pytest.raises(RuntimeError):
        with staged_directory(out) as tmp:
            (tmp / "half.txt").write_text("x")
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == [path]


def test_compile_without_verify_writes_complete_artifact(model_path: Path, tmp_path: Path) -> None:
    res = compile_model(model_path, out=tmp_path / "build")
    art = load_artifact(res.out)
    assert art.timesteps == 12 and art.manifest["input"]["dataset"] == "digits"
    rep = json.loads((res.out / "report.json").read_text())
    for key in ("synops", "spikes"):
        assert rep["activity"][key] > 0
    assert rep["energy"]["total_j"] > 0 and rep["energy"]["model"] == "loihi1-davies2018"
    assert rep["latency"]["per_step_s"] > 0 and rep["verification"]["samples"] == 0
    # a modified network file is detected
    data = bytearray((res.out / "network.net").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (res.out / "network.net").write_bytes(bytes(data))
    with pytest.raises(InputFileError, match="sha256 mismatch"):
        load_artifact(res.out)
    # a directory that is not an artifact is never overwritten
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "thesis.tex").write_text("!")
    with pytest.raises(InputFileError, match="refusing to overwrite"):
        compile_model(model_path, out=precious)
    assert (precious / "thesis.tex").read_text() == "!"


def _random_model(seed: int, hw: bool, sizes: tuple[int, ...], cd: float, vd: float, thr: float, gain: float):
    return make_model(sizes, hardware_exact=hw, seed=seed, gain=gain, current_decay=cd, voltage_decay=vd,
                      threshold=thr)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), hw=st.booleans(),
       sizes=st.sampled_from([(5, 3), (8, 6, 4), (16, 12, 8, 3)]),
       cd=st.sampled_from([0.0, 0.1, 0.5, 1.0]), vd=st.sampled_from([0.0, 0.03, 0.2, 1.0]),
       thr=st.sampled_from([0.25, 1.0, 3.0]), gain=st.sampled_from([1.0, 4.0, 20.0]),
       steps=st.integers(1, 15), rate=st.floats(0.05, 0.9))
def test_hwsim_equals_hardware_exact_torch(seed, hw, sizes, cd, vd, thr, gain, steps, rate) -> None:
    """Two independent implementations of the same integer semantics agree spike for spike."""
    model = _random_model(seed, hw, sizes, cd, vd, thr, gain)
    q = quantize(graph_from_module(model), LOIHI)
    x = np.random.default_rng(seed).random((3, steps, sizes[0])) < rate
    ref = run_torch(hardware_exact_model(model, q), q, x, "rate")
    got = HwSim.from_graph(q).run(x).spikes
    for name in ref:
        assert np.array_equal(ref[name], got[name]), name


def test_hwsim_counts() -> None:
    w = np.array([[2, 4, 0], [-2, 0, 6]], dtype=np.int64)
    g = Graph.chain([Input("in", (3,)), QDense("fc1", w), QCubaLIF("lif1", 2, 4096, 4096, 0, np.zeros(2, np.int64)),
                     Output("out")])
    x = np.zeros((2, 4, 3), dtype=bool)
    x[0, 0, :] = True   # 3 spikes at step 1 -> delivered at step 2
    x[1, 2, 1] = True   # 1 spike at step 3 -> delivered at step 4
    r = HwSim.from_graph(g).run(x)
    act = r.activity[0]
    assert act.synops.tolist() == [0, 6, 0, 2]            # spikes x fan-out of 2
    assert act.updates.tolist() == [4, 4, 4, 4]
    # vth=0, no memory (du=dv=4096): neuron 0 fires on 2+4+0 > 0, neuron 1 on -2+0+6 > 0; at step 4 only n0 (4>0)
    assert r.spikes["lif1"][0, 1].tolist() == [True, True] and r.spikes["lif1"][1, 3].tolist() == [True, False]
    assert act.spikes.tolist() == [0, 2, 0, 1]


def test_public_api_round_trip(tmp_path: Path) -> None:
    import snnc

    path = snnc.save(make_model(), tmp_path / "m.pt", metadata={"dataset": "digits", "timesteps": 8})
    assert snnc.load(path).metadata["timesteps"] == 8
    res = snnc.compile(path, target="loihi", out=tmp_path / "b")
    assert res.out == (tmp_path / "b").resolve() and res.report["accuracy"]["samples"] == 32
