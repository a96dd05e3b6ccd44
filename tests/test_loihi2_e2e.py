"""Issue 21's end-to-end claims for ``--target loihi2``: the rules' architectures and the conv zoo compile
and verify with 0 mismatches; a network trained with graded input and one trained with synaptic delays
train, compile, verify, and read back from the artifact's NIR (and, where netx can hold the graph, netx)
files to the graph that was compiled; lava-dl's own netx runs the delayed network to hwsim's spikes."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from snnc.cli import train_main
from snnc.compiler.graph_file import read_graph
from snnc.compiler.netx_hdf5 import netx_limitation, read_netx
from snnc.compiler.nir_io import read_nir
from snnc.hwsim.sim import HwSim
from snnc.models.checkpoint import save
from snnc.models.network import ARCHS
from snnc.models.rules import make_rule
from snnc.compiler.ir import same_synapse as _same_synapse
from snnc.pipeline import compile_model
from conftest import make_model
from netx_helpers import run_netx


def _same_graph(a, b) -> None:  # type: ignore[no-untyped-def]
    """Every population's integers and every synapse's weights, exponent and delays are equal."""
    pa, pb = a.populations(), b.populations()
    assert [p.name for p in pa] == [p.name for p in pb]
    for p1, p2 in zip(pa, pb):
        n1, n2 = p1.neuron, p2.neuron
        assert (n1.du, n1.dv, n1.vth) == (n2.du, n2.dv, n2.vth) and np.array_equal(n1.bias_mant, n2.bias_mant)
        assert len(p1.inputs) == len(p2.inputs)
        for (s1, _), (s2, _) in zip(p1.inputs, p2.inputs):
            assert _same_synapse(s1, s2), (p1.name, s1.name)


def _verified(report: dict, lava_spikes: bool = True) -> dict:  # type: ignore[type-arg]
    ver = report["verification"]
    assert ver["passed"], ver
    assert all(n == 0 for pair in ver["mismatches"].values() for n in pair.values()), ver["mismatches"]
    assert "lava" in ver["engines"] and "emulator" not in ver["engines"]
    assert "Loihi 1" in ver["not_run"]["emulator"]
    if lava_spikes:
        assert sum(ver["spikes"]["lava"].values()) > 0, "no spikes: the comparison would be vacuous"
    return ver


@pytest.mark.slow
@pytest.mark.parametrize("rule", ["stbp-rect", "neunorm", "lee", "bpsta"])
def test_rule_architectures_compile_for_loihi2_and_verify(rule: str, tmp_path: Path) -> None:
    model = make_model((64, 24, 10), rule=make_rule(rule), gain=2.0)
    path = tmp_path / "m.pt"
    save(model, path, metadata={"dataset": "digits", "timesteps": 10})
    res = compile_model(path, target="loihi2", out=tmp_path / "a", verify=3, report_samples=8)
    ver = _verified(res.report)
    assert ver["engines"] == ["torch", "hwsim", "lava"]
    assert res.report["target"] == "loihi2" and res.report["target_limits"]["name"] == "loihi2"


@pytest.mark.slow
@pytest.mark.parametrize("arch", ["lenet", "cifarnet", "vgg9", "resnet11"])
def test_zoo_compiles_for_loihi2_and_verifies(arch: str, tmp_path: Path) -> None:
    model = ARCHS[arch](64, 10, input_shape=(1, 8, 8))
    path = tmp_path / "m.pt"
    save(model, path, metadata={"dataset": "digits", "timesteps": 8})
    res = compile_model(path, target="loihi2", out=tmp_path / "a", verify=2, report_samples=2)
    _verified(res.report, lava_spikes=False)
    cores = res.report["mapping"]["cores"]
    assert 1 <= cores <= 120, cores        # an 8x8 net fits one Loihi 2 chip (Lava maps 120 cores per chip)


def _train(tmp_path: Path, *extra: str) -> Path:
    out = tmp_path / "m.pt"
    assert train_main(["--dataset", "digits", "--epochs", "1", "--max-steps", "4", "--hidden", "24",
                       "--timesteps", "12", "--out", str(out), *extra]) == 0
    return out


def _round_trips(art: Path, *, netx: bool) -> None:
    graph = read_graph(art / "graph.h5")
    _same_graph(graph, read_nir(art / "graph.nir").graph)
    assert (art / "network.net").exists() == netx
    if netx:
        _same_graph(graph, read_netx(art / "network.net"))


@pytest.mark.slow
def test_graded_input_network_trains_compiles_verifies_and_round_trips(tmp_path: Path) -> None:
    path = _train(tmp_path, "--encoding", "analog")
    res = compile_model(path, target="loihi2", out=tmp_path / "a", verify=3, report_samples=8)
    _verified(res.report)
    graph = read_graph(res.out / "graph.h5")
    assert graph.input.bits == 8
    findings = " ".join(f["message"] for f in res.report["findings"])
    assert "binary spikes only" not in findings          # graded spikes are native on Loihi 2
    # netx derives each layer's weight exponent from its integer weights (lava-dl netx/utils.py
    # optimize_weight_bits), so the encoding layer's weight_exp = -8 has no place in a netx file
    assert netx_limitation(graph) is not None
    _round_trips(res.out, netx=False)


@pytest.mark.slow
def test_delayed_network_trains_compiles_verifies_and_round_trips(tmp_path: Path) -> None:
    path = _train(tmp_path, "--delays", "6", "--seed", "3")
    res = compile_model(path, target="loihi2", out=tmp_path / "a", verify=3, report_samples=8)
    _verified(res.report)
    graph = read_graph(res.out / "graph.h5")
    assert graph.has_delays and max(s.max_delay for s in graph.nodes.values() if hasattr(s, "max_delay")) > 0
    _round_trips(res.out, netx=True)
    # lava-dl's own netx loader runs the artifact's network.net to hwsim's spikes, every block
    rng = np.random.default_rng(0)
    x = rng.random((2, 12, graph.input.size)) < 0.3
    ours = HwSim.from_graph(graph).run(x)
    theirs = run_netx(res.out / "network.net", x, tuple(graph.input.shape))
    pops = [p.name for p in graph.populations()]
    assert len(theirs) == len(pops)
    for name, spikes in zip(pops, theirs):
        assert np.array_equal(ours.spikes[name], spikes), name
    assert any(ours.spikes[n].any() for n in pops)
