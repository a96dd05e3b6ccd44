"""Architecture elements the rules bring (NeuNorm's auxiliary neurons, the encoding layer, signed
input, voting and leaky-integrator readouts): real graph nodes, gradients as the papers write them,
and spike-for-spike (and v-for-v) equality of torch, hwsim and Lava."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from snnc.compiler.frontend import graph_from_module
from snnc.compiler.graph_file import read_graph, write_graph
from snnc.compiler.ir import QCubaLIF, QDense
from snnc.compiler.netx_hdf5 import netx_limitation
from snnc.compiler.passes import quantize
from snnc.compiler.targets import LOIHI
from snnc.hwsim.sim import HwSim
from snnc.models.checkpoint import save
from snnc.models.datasets import from_engine_input, signed_rate_encode, to_engine_input
from snnc.models.network import mlp
from snnc.models.neurons import CubaDense
from snnc.models.readout import Readout
from snnc.models.rules import STBPRect, make_rule
from snnc.pipeline import compile_model, hardware_exact_model, observables, run_torch
from conftest import make_model


# --------------------------------------------------------------------------------- readouts

def test_voting_decides_by_the_voters_sum_and_membrane_by_v() -> None:
    r = Readout("voting", 2)
    spikes = np.zeros((1, 3, 6), dtype=bool)
    spikes[0, :, 0] = True          # class 0: voter 0 fires 3 times
    spikes[0, :2, 2] = spikes[0, :2, 3] = True  # class 1: both voters twice -> 4 > 3
    assert r.decide(spikes).tolist() == [1]
    assert torch.allclose(r.scores(torch.from_numpy(spikes).float()), torch.tensor([[0.5, 2 / 3, 0.0]]))
    assert Readout("membrane").decide(np.array([[-5, 7, 7]])).tolist() == [1]  # ties -> lowest index
    with pytest.raises(ValueError, match="voters"):
        Readout("rate", 3)


def test_each_rule_brings_its_architecture() -> None:
    lee, nn_, bpsta = (mlp(8, 3, (6,), rule=make_rule(n)) for n in ("lee", "neunorm", "bpsta"))
    assert lee.readout.kind == "membrane" and not lee.layers[-1].spiking and lee.input_encoding == "signed"
    assert lee.layers[-1].voltage_decay == 0.01 and lee.layers[0].voltage_decay == 0.2  # lambda = 0.99 readout
    assert nn_.readout == Readout("voting", 10) and nn_.layers[-1].out_features == 30
    assert nn_.input_encoding == "analog" and nn_.layers[1].aux is not None and nn_.layers[0].aux is None
    assert bpsta.readout.kind == "voting" and bpsta.num_outputs == 3
    plain = mlp(8, 3, (6,), rule=make_rule("neunorm"), readout=Readout(), encoding="rate")
    assert plain.layers[-1].out_features == 3 and plain.input_encoding is None


# --------------------------------------------------------------------------------- NeuNorm

def test_neunorm_deploys_as_real_auxiliary_neurons() -> None:
    model = mlp(6, 2, (5,), rule=make_rule("neunorm"), readout=Readout())
    g = quantize(graph_from_module(model), LOIHI)
    pops = {p.name: p for p in g.populations()}
    assert set(pops) == {"lif1", "aux2", "lif2"}
    assert [(s.name, src) for s, src in pops["aux2"].inputs] == [("nn2.in", "lif1")]
    assert sorted(src for _, src in pops["lif2"].inputs) == ["aux2", "lif1"]
    aux_in = g.nodes["nn2.in"]
    assert isinstance(aux_in, QDense) and aux_in.weight.tolist() == [[2] * 5]   # 1/F at scale 2F
    inh = g.nodes["nn2.inh"].weight[:, 0]  # type: ignore[union-attr]
    layer = model.layers[1]
    expected = torch.round(-(layer.weight @ layer.alpha).detach().double() * layer.weight_scale / 2) * 2
    assert inh.tolist() == expected.clamp(-256, 254).long().tolist()
    assert netx_limitation(g) is not None


def test_neunorm_alpha_gradient_is_the_papers_closed_form() -> None:
    """With no memory (current and voltage decay 1) and a readout layer, out[t] = a[t] / theta with
    a[t] = W (o[t-1] - alpha x[t-1]): dL/dalpha_f = -sum_t sum_i c_i[t] W_if x[t-1] / theta."""
    torch.manual_seed(0)
    layer = CubaDense(4, 3, bias=False, current_decay=1.0, voltage_decay=1.0, threshold=2.0,
                      spiking=False, neunorm_decay=0.0)
    with torch.no_grad():
        layer.alpha.copy_(torch.tensor([0.3, -0.2, 0.5, 0.1]))
    s = (torch.rand(1, 7, 4) < 0.8).float()
    aux, out = layer.traces(s, STBPRect(), hardware_exact=False)
    assert aux.sum() > 0
    c = torch.randn_like(out)
    (out * c).sum().backward()
    x_prev = torch.nn.functional.pad(aux, (0, 0, 1, 0))[:, :-1, 0]  # (1, T)
    expected = -torch.einsum("bt i,if,bt->f".replace(" ", ""), c, layer.weight.detach(), x_prev) / 2.0
    assert torch.allclose(layer.alpha.grad, expected, atol=1e-6)


def test_neunorm_auxiliary_neuron_integrates_its_layers_input() -> None:
    """aux: v <- (1 - decay) v + (1/F) sum_f o_f[t-1]; spike and reset when v > 1."""
    layer = CubaDense(4, 2, current_decay=1.0, neunorm_decay=0.5)
    s = torch.zeros(1, 6, 4)
    s[0, 0] = 1.0          # 4 of 4 inputs at step 0 -> aux input 1.0 at step 1: v = 1.0, not > 1
    s[0, 1, :2] = 1.0      # 2 of 4 at step 1 -> step 2: v = 0.5 + 0.5 = 1.0, not > 1
    s[0, 2, :3] = 1.0      # 3 of 4 at step 2 -> step 3: v = 0.5 + 0.75 > 1: spike
    aux, _ = layer.traces(s, STBPRect(), hardware_exact=True)
    assert aux[0, :, 0].tolist() == [0, 0, 0, 1, 0, 0]


# --------------------------------------------------------------------------------- encodings

def test_signed_input_is_two_channels_with_negated_weights() -> None:
    g = torch.Generator().manual_seed(0)
    x = signed_rate_encode(torch.tensor([[0.0, 0.5, 1.0, 0.9]]), 50, g)
    assert set(x.unique().tolist()) <= {-1.0, 0.0, 1.0}
    assert (x[0, :, 0] == -1).all() and (x[0, :, 1] == 0).all() and (x[0, :, 2] == 1).all()
    chip = to_engine_input(x.numpy(), "signed")
    assert chip.shape == (1, 50, 8) and chip.dtype == bool
    assert torch.equal(from_engine_input(chip, "signed"), x)
    model = mlp(4, 2, (3,), rule=make_rule("lee"))
    with torch.no_grad():
        model.layers[0].weight[0, 0] = -10.0       # would be -256, must stay symmetric
    q = quantize(graph_from_module(model), LOIHI)
    w = q.nodes["fc1"].weight  # type: ignore[union-attr]
    assert q.input.size == 8 and np.array_equal(w[:, 4:], -w[:, :4]) and w[0, 0] == -254


def test_analog_encoding_is_8_bit_graded_input() -> None:
    x = torch.tensor([[[0.0, 0.5, 1.0]]])
    chip = to_engine_input(x.numpy(), "analog")
    assert chip.tolist() == [[[0, 128, 255]]]
    model = mlp(3, 2, (4,), rule=make_rule("neunorm"))
    q = quantize(graph_from_module(model), LOIHI)
    assert q.input.bits == 8 and q.nodes["fc1"].weight_exp == -8  # type: ignore[union-attr]
    with pytest.raises(ValueError, match="graded 8-bit"):
        HwSim.from_graph(q).run(np.full((1, 2, 3), 256))


# --------------------------------------------------------------------------------- engines agree

@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 10_000), hw=st.booleans(), rule=st.sampled_from(["neunorm", "lee", "bpsta"]),
       hidden=st.sampled_from([(7,), (9, 5)]), steps=st.integers(1, 12), gain=st.sampled_from([1.0, 3.0, 8.0]))
def test_hwsim_equals_torch_for_every_architecture(seed, hw, rule, hidden, steps, gain) -> None:
    torch.manual_seed(seed)
    model = make_model((6, *hidden, 3), hardware_exact=hw, seed=seed, gain=gain, rule=make_rule(rule))
    q = quantize(graph_from_module(model), LOIHI)
    rng = np.random.default_rng(seed)
    code = model.input_encoding or "rate"
    x = {"analog": lambda: rng.integers(0, 256, (3, steps, 6)),
         "signed": lambda: rng.random((3, steps, 12)) < 0.3}.get(code, lambda: rng.random((3, steps, 6)) < 0.4)()
    ref = run_torch(hardware_exact_model(model, q), q, x, code)
    res = HwSim.from_graph(q).run(x)
    got = observables(q, res.spikes, res.final_v)
    assert ref.keys() == got.keys()
    for name in ref:
        assert np.array_equal(ref[name], got[name]), name


def test_graph_file_round_trips_a_neunorm_graph(tmp_path: Path) -> None:
    q = quantize(graph_from_module(make_model((5, 6, 4, 2), rule=make_rule("neunorm"))), LOIHI)
    write_graph(q, tmp_path / "g.h5")
    back = read_graph(tmp_path / "g.h5")
    assert back.edges == q.edges and dict(back.meta) == dict(q.meta)
    for a, b in zip(q.ordered(), back.ordered()):
        assert type(a) is type(b) and a.name == b.name
        if isinstance(a, QDense):
            assert np.array_equal(a.weight, b.weight) and a.weight_exp == b.weight_exp  # type: ignore[union-attr]
        if isinstance(a, QCubaLIF):
            assert (a.du, a.dv, a.vth) == (b.du, b.dv, b.vth) and np.array_equal(a.bias_mant, b.bias_mant)  # type: ignore[union-attr]


@pytest.mark.slow
@pytest.mark.parametrize("rule", ["neunorm", "lee", "bpsta"])
def test_rule_architectures_compile_and_verify_on_lava(rule: str, tmp_path: Path) -> None:
    """torch, hwsim and Lava agree on every population, step and (membrane readout) final v."""
    model = make_model((64, 24, 10), rule=make_rule(rule), gain=2.0)
    path = tmp_path / "m.pt"
    save(model, path, metadata={"dataset": "digits", "timesteps": 10})
    res = compile_model(path, out=tmp_path / "a", verify=3, report_samples=8)
    ver = res.report["verification"]
    # NeuNorm and BPSTA feed the first layer graded (analog) input, which Loihi 1 and its emulator cannot take
    graded = rule in ("neunorm", "bpsta")
    assert ver["passed"] and ver["engines"] == ["torch", "hwsim", "lava"] + ([] if graded else ["emulator"])
    assert ("graded" in ver["not_run"].get("emulator", "")) == graded
    names = set(ver["mismatches"]["hwsim-lava"])
    expected = {"neunorm": {"lif1", "aux2", "lif2"}, "lee": {"lif1", "lif2", "lif2.v[T]"},
                "bpsta": {"lif1", "lif2"}}[rule]
    assert names == expected
    assert sum(ver["spikes"]["lava"].values()) > 0


def test_graph_file_refuses_damaged_files_with_one_clear_line(tmp_path: Path) -> None:
    from snnc.errors import InputFileError

    q = quantize(graph_from_module(make_model((5, 4, 2), rule=make_rule("neunorm"))), LOIHI)
    good = tmp_path / "g.h5"
    write_graph(q, good)
    cut = tmp_path / "cut.h5"
    cut.write_bytes(good.read_bytes()[:300])
    with pytest.raises(InputFileError, match="cut.h5: not a readable HDF5 file"):
        read_graph(cut)
    import h5py
    with h5py.File(good, "a") as f:
        del f["nodes/3"]      # a population vanishes: its edges now name a missing node
    with pytest.raises(InputFileError, match="g.h5: the stored graph is invalid"):
        read_graph(good)
