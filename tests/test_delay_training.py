"""Training with fixed synaptic delays (issue 21): CubaDense's ``delay`` against a step-by-step
definition (forward bit for bit in hardware-exact mode, the graded encoding layer's floor per delay
group included), gradients against finite differences and autograd through the definition, the
compiled graph's ``Dense.delay`` run by hwsim against the model, checkpoints, and
``snn-train --delays``."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from snnc.compiler.frontend import graph_from_checkpoint, graph_from_module
from snnc.compiler.ir import MAX_DELAY as IR_MAX_DELAY
from snnc.compiler.passes import quantize
from snnc.compiler.targets import get_target
from snnc.errors import InputFileError, UnsupportedLayerError
from snnc.hwsim.sim import HwSim
from snnc.models.checkpoint import load, save
from snnc.models.network import ARCHS, SpikingNet, random_delays
from snnc.models.neurons import MAX_DELAY, CubaDense, CubaRecurrentDense, cuba_float_step, cuba_hw_step
from snnc.models.quant import bias_to_int, decay_to_int
from snnc.models import recurrence
from snnc.models.recurrence import delayed_synapses, float_synapses, integer_synapses
from snnc.models.rules import make_rule
from snnc.pipeline import hardware_exact_model, run_torch

T = 14


def _delays(kind: str, out: int, inp: int, g: torch.Generator) -> torch.Tensor | int:
    """Delays of each supported layout (some longer than the window, whose spikes never arrive)."""
    if kind == "synapse":
        return torch.randint(0, 6, (out, inp), generator=g)
    if kind == "neuron":
        return torch.randint(0, 6, (out, 1), generator=g)
    if kind == "input":
        return torch.randint(0, 6, (inp,), generator=g)
    if kind == "scalar":
        return 3
    if kind == "long":   # beyond the window: T - 1 is the first delay that delivers nothing
        return torch.tensor([[0, T - 2, T - 1, MAX_DELAY]]).repeat(out, (inp + 3) // 4)[:, :inp]
    raise AssertionError(kind)


def _naive_input(x: torch.Tensor, w: torch.Tensor, delay: torch.Tensor, bits: int) -> torch.Tensor:
    """The definition, step by step: a[t] = sum_d shift(W_d @ x[t-1-d]), W_d the weights of delay d,
    shift = floor(./2**bits) per delay group for graded input (straight-through gradient), none else."""
    full = delay.expand(w.shape)
    steps = []
    for t in range(x.shape[1]):
        a = x.new_zeros(x.shape[0], w.shape[0], dtype=w.dtype)
        for d in range(MAX_DELAY + 1):
            if t - 1 - d < 0 or not bool((full == d).any()):
                continue
            part = x[:, t - 1 - d].to(w.dtype) @ (w * (full == d).to(w.dtype)).t()
            if bits:
                part = part / 2 ** bits
                part = part + (torch.floor(part) - part).detach()
            a = a + part
        steps.append(a)
    return torch.stack(steps, dim=1)


def _naive_layer(layer: CubaDense, x: torch.Tensor, hw: bool, rule_name: str = "stbp-rect") -> torch.Tensor:
    """The layer's spikes, step by step with the step functions on the naive synaptic input."""
    rule = make_rule(rule_name)
    assert layer.delay is not None
    if hw:
        w = layer._quantized(layer.weight)
        xe = layer._encode(x, True)
        a = _naive_input(xe, w, layer.delay.long(), layer.input_bits)
        bias = bias_to_int(layer.bias.double(), layer.weight_scale)
    else:
        a = _naive_input(x, layer.weight, layer.delay.long(), 0)
        bias = layer.bias
    u = v = torch.zeros(x.shape[0], layer.out_features, dtype=a.dtype)
    out = []
    for t in range(x.shape[1]):
        if hw:
            s, u, v = cuba_hw_step(a[:, t], u, v, bias, decay_to_int(layer.current_decay),
                                   decay_to_int(layer.voltage_decay), layer.chip_threshold(), layer.state_unit, rule)
        else:
            s, u, v = cuba_float_step(a[:, t], u, v, bias, layer.current_decay, layer.voltage_decay,
                                      layer.threshold, rule)
        out.append(s)
    spikes = torch.stack(out, dim=1)
    scale = rule.spike_gradient_scale(spikes, 1.0 - layer.voltage_decay)   # Lee et al.'s spike-train factor
    return spikes if scale is None else spikes.detach() + (spikes - spikes.detach()) * scale[:, None, :]


def _input(kind: str, batch: int, n: int, g: torch.Generator) -> torch.Tensor:
    if kind == "analog":
        return torch.rand(batch, T, n, generator=g, dtype=torch.float64)
    if kind == "signed":
        return (torch.randint(-1, 2, (batch, T, n), generator=g) * (torch.rand(batch, T, n, generator=g) < 0.5)).float()
    return (torch.rand(batch, T, n, generator=g) < 0.3).float()


def test_max_delay_is_the_graphs() -> None:
    assert MAX_DELAY == IR_MAX_DELAY == 62


@pytest.mark.parametrize("kind", ["synapse", "neuron", "input", "scalar", "long"])
@pytest.mark.parametrize("hw,code", [(True, "rate"), (True, "analog"), (True, "signed"), (False, "rate")])
@pytest.mark.parametrize("one_group_per_gemm", [False, True])
def test_delayed_synaptic_input_and_layer_equal_the_step_by_step_definition(kind: str, hw: bool, code: str,
                                                                           one_group_per_gemm: bool,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """The synaptic input (the delay groups' weights stacked into GEMMs over batch x time, each group's
    sums shifted in time) and the layer's spikes equal the definition evaluated step by step: bit for
    bit in hardware-exact mode (graded input: floor of each delay group's sum), to rounding in float
    mode (float64, so the spikes are equal too); with every group stacked, or one GEMM per group."""
    if one_group_per_gemm:
        monkeypatch.setattr(recurrence, "_DELAY_STACK_ELEMENTS", 1)
    g = torch.Generator().manual_seed(len(kind) * 7 + hw)
    n_in, n_out = 13, 7
    layer = CubaDense(n_in, n_out, delay=_delays(kind, n_out, n_in, g), input_bits=8 if code == "analog" else 0,
                      signed_input=code == "signed")
    with torch.no_grad():
        layer.weight.uniform_(-1.5, 1.5, generator=g)
        layer.bias.uniform_(-0.1, 0.2, generator=g)
    layer.refit_format()
    if not hw:
        layer.double()
    x = _input(code, 5, n_in, g)
    want = _naive_layer(layer, x if hw else x.double(), hw)
    got = layer(x if hw else x.double(), make_rule("stbp-rect"), hw)
    assert 0 < float(want.detach().sum()) < want.numel()
    if hw:
        w = layer._quantized(layer.weight)
        xe = layer._encode(x, True)
        a_want = _naive_input(xe, w, layer.delay.long(), layer.input_bits)
        a_got = layer._synaptic_input(xe, w, True)
        assert torch.equal(a_got, a_want)
        assert torch.equal(got, want)
    else:
        a_want = _naive_input(x.double(), layer.weight, layer.delay.long(), 0)
        assert torch.allclose(layer._synaptic_input(x.double(), layer.weight, False), a_want, rtol=0, atol=1e-12)
        assert torch.equal(got, want)
    # the delays matter: the same layer without them gives other spikes
    plain = CubaDense(n_in, n_out, input_bits=layer.input_bits, signed_input=layer.signed_input)
    plain.load_state_dict({k: v for k, v in layer.state_dict().items() if k != "delay"})
    plain.weight_scale = layer.weight_scale
    if not hw:
        plain.double()
    if kind != "long":
        assert not torch.equal(plain(x if hw else x.double(), make_rule("stbp-rect"), hw), got)


@pytest.mark.parametrize("hw,bits", [(True, 0), (True, 8), (False, 0)])
def test_delays_beyond_the_window_deliver_nothing(hw: bool, bits: int) -> None:
    """A delay of T - 1 or more never arrives: the input is zero there, of the right shape, and
    backward still runs (zero gradient for those synapses)."""
    for delay in (T - 1, MAX_DELAY, torch.tensor([[T], [MAX_DELAY], [T + 5]]), torch.tensor([[0], [T - 1], [2]])):
        layer = CubaDense(5, 3, delay=delay, input_bits=bits)
        x = torch.rand(2, T, 5, dtype=torch.float64) if bits else (torch.rand(2, T, 5) < 0.5).float()
        xe = layer._encode(x, hw) if hw else x
        w = layer._quantized(layer.weight) if hw else layer.weight
        a = layer._synaptic_input(xe, w, hw)
        assert a.shape == (2, T, 3)
        want = _naive_input(xe, w.detach(), layer.delay.long(), bits if hw else 0).to(a.dtype)
        assert torch.equal(a.detach(), want) if hw else torch.allclose(a.detach(), want, rtol=0, atol=1e-6)
        a.sum().backward()
        far = (layer.delay.expand(3, 5) >= T - 1)
        assert float(layer.weight.grad[far].abs().sum()) == 0.0
        layer.zero_grad()


def test_graded_floor_is_taken_per_delay_group() -> None:
    """With graded input the chip floors each delay group's sum separately: the example where the
    floor of the total differs (two groups of 1.5 each: floor 1 + floor 1 = 2, not floor(3) = 3)."""
    layer = CubaDense(2, 1, bias=False, input_bits=8, delay=torch.tensor([[0, 0]]), weight_scale=64.0)
    x = torch.full((1, 4, 2), 3 / 255, dtype=torch.float64)           # x_q = 3 on both inputs
    w = torch.tensor([[128.0, 128.0]], dtype=torch.float64)           # 3 * 128 / 256 = 1.5 per synapse
    same = layer._synaptic_input(layer._encode(x, True), w, True)
    layer.set_delay(torch.tensor([[0, 1]]))
    split = layer._synaptic_input(layer._encode(x, True), w, True)
    assert same[0, 1:, 0].tolist() == [3.0, 3.0, 3.0]                # floor(768 / 256)
    assert split[0, 1:, 0].tolist() == [1.0, 2.0, 2.0]               # floor(1.5) + floor(1.5) once both arrive


def test_delayed_synapses_gradient_equals_finite_differences() -> None:
    """The delayed GEMM is linear in x and W: torch.autograd.gradcheck (finite differences, float64)."""
    g = torch.Generator().manual_seed(3)
    x = torch.randn(2, 9, 5, generator=g, dtype=torch.float64, requires_grad=True)
    w = torch.randn(4, 5, generator=g, dtype=torch.float64, requires_grad=True)
    for delay in (torch.randint(0, 4, (4, 5), generator=g), torch.randint(0, 4, (4, 1), generator=g),
                  torch.randint(0, 12, (1, 5), generator=g)):
        assert torch.autograd.gradcheck(lambda a, b: delayed_synapses(a, b, delay, float_synapses), (x, w))


def test_each_delay_group_gets_only_its_own_gradient() -> None:
    """A loss on step t only: a synapse of delay d gets gradient from x[t-1-d], the value it delivered."""
    x = torch.arange(1.0, 1 + 6 * 3, dtype=torch.float64).reshape(1, 6, 3)
    w = torch.ones(2, 3, dtype=torch.float64, requires_grad=True)
    delay = torch.tensor([[0, 1, 2], [2, 0, 1]])
    a = delayed_synapses(x, w, delay, float_synapses)
    a[0, 5].sum().backward()
    want = torch.stack([x[0, 4 - delay[o], torch.arange(3)] for o in range(2)])
    assert torch.equal(w.grad, want)


@pytest.mark.parametrize("hw", [True, False])
@pytest.mark.parametrize("rule_name", ["stbp-rect", "arctan", "lee"])
def test_layer_gradients_equal_autograd_through_the_definition(hw: bool, rule_name: str) -> None:
    """Weight, bias and input gradients of a delayed layer (GEMM per delay + fused recurrence) equal
    autograd through the step-by-step definition (float64)."""
    g = torch.Generator().manual_seed(11)
    layer = CubaDense(10, 6, delay=torch.randint(0, 5, (6, 10), generator=g))
    with torch.no_grad():
        layer.weight.uniform_(-1.2, 1.2, generator=g)
        layer.bias.uniform_(-0.1, 0.2, generator=g)
    layer.refit_format()
    layer.double()
    x0 = (torch.rand(4, T, 10, generator=g) < 0.35).double()
    upstream = torch.randn(4, T, 6, generator=g, dtype=torch.float64)
    grads = []
    for fn in (lambda x: layer(x, make_rule(rule_name), hw), lambda x: _naive_layer(layer, x, hw, rule_name)):
        layer.zero_grad()
        x = x0.clone().requires_grad_()
        out = fn(x)
        (out * upstream).sum().backward()
        grads.append((out.detach(), layer.weight.grad.clone(), layer.bias.grad.clone(), x.grad.clone()))
    (o1, *g1), (o2, *g2) = grads
    assert torch.equal(o1, o2) and 0 < float(o1.sum()) < o1.numel()
    for a, b in zip(g1, g2):
        assert float(b.abs().max()) > 0
        assert torch.allclose(a, b, rtol=1e-9, atol=1e-12 * float(b.abs().max()))


def _net(arch: str, hw: bool, encoding: str, seed: int = 0) -> SpikingNet:
    torch.manual_seed(seed)
    model = ARCHS[arch](12, 3, hidden=(10, 8), hardware_exact=hw, encoding=encoding)
    with torch.no_grad():
        for layer in model.layers:
            layer.weight.mul_(3.0)
            layer.bias.uniform_(-0.05, 0.1)
    assert random_delays(model, 5, seed) == ["lif1", "lif2"]
    model.refit_formats()
    return model


@pytest.mark.parametrize("arch,hw,encoding", [("mlp", True, "rate"), ("mlp", True, "analog"), ("mlp", True, "signed"),
                                              ("mlp", False, "rate"), ("rmlp", True, "rate"), ("rmlp", True, "analog")])
@pytest.mark.parametrize("engine", ["torch", "numba"])
def test_compiled_delays_run_on_hwsim_equal_the_model_every_layer_every_step(arch: str, hw: bool, encoding: str,
                                                                            engine: str) -> None:
    """The frontend writes each layer's delays into fc{k} (signed input: [D, D] beside [W, -W]); the
    quantized graph carries them into QDense.delay; hwsim's spikes equal the hardware-exact model's on
    every population and step (graded input: floor per delay group on both sides)."""
    model = _net(arch, hw, encoding)
    q = quantize(graph_from_module(model), get_target("loihi"))
    assert q.delayed_synapses() == ["fc1", "fc2"]
    fc1 = q.nodes["fc1"]
    want_delay = model.layers[0].delay.numpy()
    assert np.array_equal(fc1.delay, np.concatenate([want_delay, want_delay], 1) if encoding == "signed" else want_delay)
    assert q.nodes["fc3"].delay is None
    g = np.random.default_rng(0)
    n_in = q.input.size
    x = (g.integers(0, 256, (6, 24, n_in)).astype(np.uint8) if encoding == "analog"
         else g.random((6, 24, n_in)) < 0.3)
    if encoding == "signed":
        x[..., n_in // 2:] &= ~x[..., :n_in // 2]      # a feature is +1, -1 or 0
    want = run_torch(hardware_exact_model(model, q), q, x, encoding)
    got = HwSim.from_graph(q).run(x, engine=engine)
    for pop in q.populations():
        assert np.array_equal(want[pop.name], got.spikes[pop.name]), pop.name
    assert all(int(want[name].sum()) > 0 for name in ("lif1", "lif2"))


def test_checkpoint_round_trip_keeps_delays_and_old_checkpoints_load(tmp_path: Path) -> None:
    model = _net("rmlp", True, "rate")
    path = save(model, tmp_path / "m.pt", metadata={"timesteps": T, "delays": 5})
    back = load(path).build()
    assert isinstance(back.layers[0], CubaRecurrentDense)
    for a, b in zip(model.layers, back.layers):
        assert (a.delay is None and b.delay is None) or torch.equal(a.delay, b.delay)
    x = (torch.rand(3, T, 12) < 0.4).float()
    with torch.no_grad():
        assert all(torch.equal(a, b) for a, b in zip(model(x), back(x)))
    # a checkpoint written before delays existed (no delay buffer, no delay_shape) still loads
    old = ARCHS["mlp"](12, 3, hidden=(10,))
    assert "layers.0.delay" not in old.state_dict() and "delay_shape" not in old.spec()["layers"][0]
    assert load(save(old, tmp_path / "old.pt")).build().layers[0].delay is None
    # delays past 62 in a hand-edited file are refused with the file's name
    obj = torch.load(path, weights_only=True)
    obj["state_dict"]["layers.0.delay"][0, 0] = 63
    torch.save(obj, tmp_path / "bad.pt")
    with pytest.raises(InputFileError, match="bad.pt.*delays up to 63"):
        load(tmp_path / "bad.pt").build()


def test_bad_delays_are_refused() -> None:
    for bad, why in ((-1, r"\[0, 62\]"), (63, r"\[0, 62\]"), (1.5, "whole"), (torch.ones(3, 3, dtype=torch.long), "fit"),
                     (np.array([True]), "integer")):
        with pytest.raises(ValueError, match=why):
            CubaDense(4, 2, delay=bad)
    with pytest.raises(UnsupportedLayerError, match="Dense synapses only"):
        random_delays(ARCHS["lenet"](64, 10, input_shape=(1, 8, 8)), 3, 0)
    with pytest.raises(UnsupportedLayerError, match="cannot train"):
        SpikingNet([CubaDense(4, 2, delay=1)], rule=make_rule("hm2bp"))


def test_hidden_layers_only_and_seeded() -> None:
    a, b = _net("mlp", True, "rate", seed=4), _net("mlp", True, "rate", seed=4)
    assert torch.equal(a.layers[0].delay, b.layers[0].delay) and a.layers[-1].delay is None
    assert int(a.layers[0].delay.max()) == 5 and int(a.layers[0].delay.min()) == 0
    torch.manual_seed(0)
    plain = ARCHS["mlp"](12, 3, hidden=(10, 8))
    torch.manual_seed(0)
    delayed = ARCHS["mlp"](12, 3, hidden=(10, 8))
    random_delays(delayed, 7, 0)   # its own generator: the initial weights are the run's without delays
    assert all(torch.equal(p, q) for p, q in zip(plain.parameters(), delayed.parameters()))


def test_snn_train_delays_trains_saves_and_compiles_with_the_delays(tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    from snnc.cli import train_main
    from snnc.pipeline import compile_model

    out = tmp_path / "m.pt"
    assert train_main(["--dataset", "digits", "--arch", "mlp", "--hidden", "16", "--delays", "4", "--epochs", "1",
                       "--max-steps", "3", "--timesteps", "16", "--out", str(out)]) == 0
    assert "synaptic delays 0..4 steps" in capsys.readouterr().out
    ckpt = load(out)
    assert ckpt.metadata["delays"] == 4
    assert json.loads(out.with_suffix(".log.json").read_text())["config"]["delays"] == 4
    graph, model = graph_from_checkpoint(ckpt)
    assert graph.delayed_synapses() == ["fc1"] and graph.nodes["fc1"].max_delay == 4
    assert np.array_equal(graph.nodes["fc1"].delay, model.layers[0].delay.numpy())
    result = compile_model(out, out=tmp_path / "build", report_samples=4)
    from snnc.compiler.graph_file import read_graph
    q = read_graph(result.out / "graph.h5")
    assert q.delayed_synapses() == ["fc1"] and np.array_equal(q.nodes["fc1"].delay, model.layers[0].delay.numpy())


@pytest.mark.parametrize("argv,code,says", [
    (["--delays", "63"], 2, "--delays: 63 is out of range"),
    (["--delays", "-1"], 2, "--delays: -1 is out of range"),
    (["--delays", "x"], 2, "--delays: 'x' is not a whole number"),
    (["--delays", "1.5"], 2, "--delays: '1.5' is not a whole number"),
    (["--delays", "3", "--arch", "lenet"], 2, "--delays: --arch lenet is convolutional"),
])
def test_snn_train_refuses_bad_delays_in_one_line(argv: list[str], code: int, says: str, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    from snnc.cli import train_main

    assert train_main([*argv, "--out", str(tmp_path / "m.pt")]) == code
    err = capsys.readouterr().err
    assert says in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "m.pt").exists()


def test_integer_synapses_path_is_used_for_each_group() -> None:
    """Hardware-exact delayed input from integer spikes is exact (the int8/float32 GEMM paths per group)."""
    g = torch.Generator().manual_seed(5)
    x = (torch.rand(3, T, 40, generator=g) < 0.5).float()
    w = (torch.randint(-128, 128, (9, 40), generator=g) * 2).double()
    delay = torch.randint(0, 7, (9, 40), generator=g)
    got = delayed_synapses(x, w, delay, integer_synapses)
    assert got.dtype == torch.float64
    assert torch.equal(got, _naive_input(x.double(), w, delay, 0))
