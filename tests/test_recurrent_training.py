"""Recurrent spiking layers (issue 19): the fused recurrence with recurrent synapses
(models/recurrence.py ``cuba_recurrent_dense``) against the step functions run step by step under
autograd, the layer (``CubaRecurrentDense``) and ``--arch rmlp``, and the compiled graph's hwsim
spikes against the hardware-exact model's, every population and step."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from snnc.compiler.frontend import graph_from_checkpoint
from snnc.compiler.passes import quantize
from snnc.compiler.targets import get_target
from snnc.errors import UnsupportedLayerError
from snnc.hwsim.sim import HwSim
from snnc.models import recurrence
from snnc.models.checkpoint import load, save
from snnc.models.datasets import load_dataset
from snnc.models.network import ARCHS, SpikingNet
from snnc.models.neurons import CubaDense, CubaRecurrentDense, cuba_float_step, cuba_hw_step
from snnc.models.quant import weight_to_int
from snnc.models.recurrence import CubaConstants, cuba_recurrent_dense, integer_synapses
from snnc.models.rules import RULES, make_rule
from snnc.models.train import train
from snnc.pipeline import hardware_exact_model, run_torch

STEP_RULES = sorted(name for name in RULES if name != "hm2bp")   # HM2-BP has no per-step gradient


def _reference(a: torch.Tensor, bias: torch.Tensor, w: torch.Tensor, rule_name: str, hw: bool,
               du: int, dv: int, vth: int, unit: float) -> torch.Tensor:
    """The definition: step t's input is a[t] + W s[t-1], each step by the step function under
    autograd; a rule's spike-train gradient factor (Lee et al.) scales every use of the spikes."""
    rule = make_rule(rule_name)

    def run(scale: torch.Tensor | None) -> torch.Tensor:
        u = v = torch.zeros(a.shape[0], a.shape[2], dtype=a.dtype)
        s_prev = None
        out = []
        for t in range(a.shape[1]):
            at = a[:, t] if s_prev is None else a[:, t] + s_prev @ w.t()
            if hw:
                s, u, v = cuba_hw_step(at, u, v, bias, du, dv, vth, unit, rule)
            else:
                s, u, v = cuba_float_step(at, u, v, bias, du / 4096, dv / 4096, unit, rule)
            if scale is not None:
                s = s.detach() + (s - s.detach()) * scale
            out.append(s)
            s_prev = s
        return torch.stack(out, dim=1)

    with torch.no_grad():
        spikes = run(None)
    return run(rule.spike_gradient_scale(spikes, 1 - dv / 4096))


def _constants(rule_name: str, hw: bool, du: int, dv: int, vth: int, unit: float) -> CubaConstants:
    rule = make_rule(rule_name)
    if hw:
        return CubaConstants.hardware_mode(du, dv, vth, unit, rule, True)
    return CubaConstants.float_mode(du / 4096, dv / 4096, unit, rule, True)


def _case(regime: str, hw: bool, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, int, int, int, float]:
    """(a, bias, w_rec, du, dv, vth, unit): 'normal' (a fair amount of spiking, driven partly by the
    recurrent synapses), or 'extreme' (hardware only: inputs that wrap u and clip v)."""
    g = torch.Generator().manual_seed(seed)
    n = 9
    if not hw:
        a = torch.randn(5, 30, n, generator=g, dtype=torch.float64) * 0.6
        w = torch.randn(n, n, generator=g, dtype=torch.float64) * 0.5
        return a, torch.randn(n, generator=g, dtype=torch.float64) * 0.1, w, 1024, 819, 0, 1.0
    w = (torch.randint(-128, 128, (n, n), generator=g) * 2).double()
    if regime == "normal":
        a = torch.randint(-300, 700, (5, 30, n), generator=g).double()
        return a, torch.randint(-40, 40, (n,), generator=g).double(), w, 2048, 819, 64, 4096.0
    a = torch.randint(-2**23, 2**23, (5, 40, n), generator=g).double()
    a[:, ::3] = 2.0**23 - 1
    return a, torch.randint(-4096, 4095, (n,), generator=g).double(), w, 0, 0, 131071, 4096.0


@pytest.mark.parametrize("rule_name", STEP_RULES)
@pytest.mark.parametrize("hw,regime", [(True, "normal"), (True, "extreme"), (False, "normal")])
@pytest.mark.parametrize("chunk_steps", [None, 4])
def test_fused_recurrent_dense_equals_the_step_functions(rule_name: str, hw: bool, regime: str,
                                                         chunk_steps: int | None,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """Forward bit-identical (hardware mode; float mode too, the sums are formed in the same order),
    gradients of a, bias and W_rec equal to autograd's through the step functions within rounding."""
    a0, b0, w0, du, dv, vth, unit = _case(regime, hw, seed=len(rule_name))
    if chunk_steps is not None:
        monkeypatch.setattr(recurrence, "_CHUNK_ELEMENTS", chunk_steps * a0.shape[0] * a0.shape[2])
    ref = [t.clone().requires_grad_() for t in (a0, b0, w0)]
    new = [t.clone().requires_grad_() for t in (a0, b0, w0)]
    rule = make_rule(rule_name)
    want = _reference(*ref, rule_name, hw, du, dv, vth, unit)
    got = cuba_recurrent_dense(*new, _constants(rule_name, hw, du, dv, vth, unit), rule,
                               grad_scale=lambda s: rule.spike_gradient_scale(s, 1 - dv / 4096))
    assert torch.equal(got, want)
    assert 0 < float(want.detach().sum()) < want.numel()
    if regime == "normal":   # the recurrent synapses matter: without them the spikes differ
        with torch.no_grad():
            alone = cuba_recurrent_dense(a0, b0, torch.zeros_like(w0), _constants(rule_name, hw, du, dv, vth, unit),
                                         rule)
        assert not torch.equal(alone, want)
    upstream = torch.randn(want.shape, generator=torch.Generator().manual_seed(1), dtype=want.dtype)
    (want * upstream).sum().backward()
    (got * upstream).sum().backward()
    for x_new, x_ref in zip(new, ref):
        assert torch.allclose(x_new.grad, x_ref.grad, rtol=1e-9, atol=1e-11 * float(x_ref.grad.abs().max()) + 1e-300)
    if regime == "normal":
        assert float(ref[2].grad.abs().max()) > 0 and float(ref[0].grad.abs().max()) > 0


def test_recurrent_dense_guards_cover_the_recurrent_input() -> None:
    """The wrap and clip guards bound |a| by max|a_ff| plus the largest row sum of |W_rec|: input that
    alone cannot wrap u, with a recurrent weight that can, must still be exact."""
    n = 40
    a = torch.zeros(2, 30, n, dtype=torch.float64)
    a[:, 0] = 200.0                                  # start every neuron; the recurrence does the rest
    w = torch.full((n, n), 254.0, dtype=torch.float64)
    c = _constants("stbp-rect", True, 0, 0, 131071, 4096.0)
    got = cuba_recurrent_dense(a, 0.0, w, c, make_rule("stbp-rect"))
    want = _reference(a, torch.zeros(n, dtype=torch.float64), w, "stbp-rect", True, 0, 0, 131071, 4096.0)
    assert torch.equal(got, want)
    guards = recurrence._hardware_guards(200.0 + 254.0 * n, 0.0, c, 30, recurrence.LOIHI_FIXED_POINT)
    assert guards[1]                                 # u can wrap at 24 bits: the guard knew


def test_recurrent_dense_without_gradient_gives_the_same_values() -> None:
    a, b, w, du, dv, vth, unit = _case("normal", True, seed=3)
    c = _constants("stbp-rect", True, du, dv, vth, unit)
    with torch.no_grad():
        plain = cuba_recurrent_dense(a, b, w, c, make_rule("stbp-rect"))
    assert torch.equal(plain, cuba_recurrent_dense(a.requires_grad_(), b, w, c, make_rule("stbp-rect")).detach())


# ----------------------------------------------------------------------------- the layer and --arch rmlp

ROOT = Path(__file__).resolve().parents[1]


def test_layer_hardware_mode_is_the_definition_on_the_chip_integers() -> None:
    """CubaRecurrentDense in hardware-exact mode = the step functions on its own integers: the
    feed-forward and recurrent weights under one format, input at step t = W s_in[t-1] + W_rec s[t-1]."""
    torch.manual_seed(0)
    layer = CubaRecurrentDense(12, 10)
    with torch.no_grad():
        layer.weight.mul_(4)
        layer.recurrent_weight.mul_(6)
    layer.refit_format()
    x = (torch.rand(3, 20, 12) < 0.4).float()
    got = layer(x, make_rule("stbp-rect"), True)
    p = layer.integer_params()
    a = integer_synapses(x.double(), p["weight"].double())
    want = _reference(a, p["bias"].double(), p["recurrent_weight"].double(), "stbp-rect", True,
                      p["du"], p["dv"], p["vth"], layer.state_unit)
    assert torch.equal(got, want) and 0 < float(got.detach().sum()) < got.numel()


def test_recurrent_weight_shares_the_population_format() -> None:
    """A large recurrent weight lowers the population's weight scale so that it is not clipped: one
    format for both weights, and the integers written are the ones used."""
    torch.manual_seed(0)
    layer = CubaRecurrentDense(8, 6)
    plain = layer.weight_scale
    with torch.no_grad():
        layer.recurrent_weight.fill_(0.0)
        layer.recurrent_weight[0, 1] = 3.0
    layer.refit_format()
    assert layer.weight_scale < plain
    w = layer.integer_params()["recurrent_weight"]
    assert int(w[0, 1]) == round(3.0 * layer.weight_scale / 2) * 2 <= layer.fmt.weight_max
    assert torch.equal(w, weight_to_int(layer.recurrent_weight.double(), layer.weight_scale).long())


def test_a_recurrent_layer_must_spike() -> None:
    with pytest.raises(ValueError, match="must spike"):
        CubaRecurrentDense(4, 3, spiking=False)


TRAINABLE = [name for name in sorted(RULES) if name != "hm2bp"]


@pytest.mark.parametrize("rule_name", TRAINABLE)
@pytest.mark.parametrize("hardware_exact", [True, False])
def test_rmlp_trains_with_every_per_step_rule(rule_name: str, hardware_exact: bool) -> None:
    """--arch rmlp: recurrent hidden layers, a feed-forward output layer, the rule's architecture
    elements (encoding layer, signed input, NeuNorm, readouts); one step moves the recurrent weights."""
    torch.manual_seed(0)
    model = ARCHS["rmlp"](20, 3, hidden=(12, 8), rule=make_rule(rule_name), hardware_exact=hardware_exact)
    kinds = [type(layer) for layer in model.layers]
    assert kinds == [CubaRecurrentDense, CubaRecurrentDense, CubaDense]
    with torch.no_grad():
        for layer in model.layers:
            layer.weight.mul_(4)
    model.refit_formats()
    x = torch.rand(4, 15, 20) if model.input_encoding == "analog" else (torch.rand(4, 15, 20) < 0.4).float()
    if model.input_encoding == "signed":
        x = x - (torch.rand(4, 15, 20) < 0.2).float()
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    before = [layer.recurrent_weight.detach().clone() for layer in model.layers[:2]]
    loss = model.rule.objective(model.scores(model(x)[-1]), torch.tensor([0, 1, 2, 0]))
    loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    opt.step()
    moved = [not torch.equal(b, layer.recurrent_weight) for b, layer in zip(before, model.layers[:2])]
    assert any(moved), "no gradient reached the recurrent weights"


def test_rmlp_refuses_hm2bp_in_one_line() -> None:
    with pytest.raises(UnsupportedLayerError, match=r"^--arch rmlp: rule 'hm2bp' .* --rule stbp-rect.*--arch mlp\.$"):
        ARCHS["rmlp"](20, 3, hidden=(8,), rule=make_rule("hm2bp"))
    net = ARCHS["rmlp"](20, 3, hidden=(8,))
    with pytest.raises(UnsupportedLayerError, match="rule 'hm2bp'.*layer 0 \\(CubaRecurrentDense\\)"):
        SpikingNet(list(net.layers), rule=make_rule("hm2bp"))
    with pytest.raises(UnsupportedLayerError, match="at least one hidden layer"):
        ARCHS["rmlp"](20, 3, hidden=())


def test_snn_train_refuses_hm2bp_with_rmlp(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from snnc.cli import train_main

    # mnist in an empty directory: the refusal comes before any data is looked for
    code = train_main(["--dataset", "mnist", "--data-dir", str(tmp_path), "--arch", "rmlp", "--rule", "hm2bp",
                       "--epochs", "1", "--out", str(tmp_path / "m.pt")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code != 0 and not (tmp_path / "m.pt").exists()
    assert len(err) == 1 and err[0].startswith("snn-train: error: --arch rmlp: rule 'hm2bp'") and "--arch mlp" in err[0]


def test_rmlp_checkpoint_round_trip(tmp_path: Path) -> None:
    torch.manual_seed(1)
    model = ARCHS["rmlp"](20, 3, hidden=(10,), rule=make_rule("neunorm"))
    path = save(model, tmp_path / "m.pt", metadata={"timesteps": 12})
    back = load(path).build()
    assert back.spec() == model.spec() and back.spec()["layers"][0]["kind"] == "cuba_recurrent_dense"
    for (k, v), (k2, v2) in zip(model.state_dict().items(), back.state_dict().items()):
        assert k == k2 and torch.equal(v, v2)
    assert "layers.0.recurrent_weight" in back.state_dict()
    x = torch.rand(2, 12, 20)
    with torch.no_grad():
        assert all(torch.equal(a, b) for a, b in zip(model(x), back(x)))


# ----------------------------------------------------------------------------- trained, compiled, simulated

def _speech(timesteps: int, n: int):  # type: ignore[no-untyped-def]
    return load_dataset("synthetic-speech", "train", timesteps=timesteps, limit=n)


@pytest.mark.parametrize("rule_name,hardware_exact", [("stbp-rect", True), ("stbp-rect", False), ("lee", True),
                                                      ("neunorm", True)])
def test_trained_rmlp_compiles_and_hwsim_equals_the_model_every_layer_every_step(
        tmp_path: Path, rule_name: str, hardware_exact: bool) -> None:
    """Train a tiny rmlp a few steps on generated speech (events), save, compile the checkpoint to the
    fixed-point graph (recurrent Dense self-loops lif{k}.rec), and run hwsim (torch engine): every
    population's spikes (and the membrane readout's integer v[T]) equal the hardware-exact model's."""
    steps = 24
    data = _speech(steps, 24)
    torch.manual_seed(0)   # event data: the rule's readout and NeuNorm, but the recordings' own spikes
    model = ARCHS["rmlp"](data.input_size, data.num_classes, hidden=(24, 12), rule=make_rule(rule_name),
                          hardware_exact=hardware_exact, encoding="rate")
    train(model, data, epochs=1, timesteps=steps, batch_size=8, max_steps=2, lr=1e-2)
    path = save(model, tmp_path / "m.pt", metadata={"timesteps": steps, "dataset": "synthetic-speech"})
    graph, built = graph_from_checkpoint(load(path))
    assert graph.recurrent_synapses() == ["lif1.rec", "lif2.rec"]
    q = quantize(graph, get_target("loihi"))
    x = data.x[:6].astype(bool)
    want = run_torch(hardware_exact_model(built, q), q, x, "rate")
    got = HwSim.from_graph(q).run(x, engine="torch")
    pops = [p.name for p in q.populations()]
    for name in pops:
        assert np.array_equal(want[name], got.spikes[name]), name
    assert int(want["lif1"].sum()) > 0 and int(want["lif2"].sum()) > 0
    if model.readout.kind == "membrane":
        out = q.output.name
        assert np.array_equal(want[f"{out}.v[T]"][:, 0], got.final_v[out])


@pytest.mark.slow
def test_snn_train_rmlp_then_compile_verify_torch_hwsim_lava(tmp_path: Path) -> None:
    """The user's commands: snn-train --arch rmlp, then snn-compile --verify: torch, hwsim and Lava
    agree spike for spike on every population, and every artifact file is written."""
    import json

    from snnc.cli import compile_main, train_main

    assert train_main(["--dataset", "digits", "--arch", "rmlp", "--hidden", "16", "--epochs", "1",
                       "--max-steps", "3", "--timesteps", "12", "--out", str(tmp_path / "m.pt")]) == 0
    assert compile_main([str(tmp_path / "m.pt"), "--verify", "2", "--out", str(tmp_path / "build")]) == 0
    report = json.loads((tmp_path / "build" / "report.json").read_text())
    ver = report["verification"]
    assert ver["passed"] and set(ver["engines"]) == {"torch", "hwsim", "lava", "emulator"}
    assert set(ver["mismatches"]["torch-hwsim"]) == {"lif1", "lif2"}
    for name in ("graph.h5", "graph.nir", "graph.onnx"):
        assert (tmp_path / "build" / name).is_file()


def test_benchmark_quick_runs_and_reports_ratios() -> None:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import recurrent_training

    args = recurrent_training.argparse.Namespace(inputs=12, hidden=6, classes=3, timesteps=5, batch=4, warmup=0,
                                                 steps=1, repeats=1, threads=1, quick=False, json=False)
    result = recurrent_training.run(args)
    assert set(result["results"]) == set(recurrent_training.LIBRARIES)
    assert all(r["samples_per_s"] > 0 for r in result["results"].values())
    assert len(result["ratios"]) == 4 and "snntorch-rleaky/snnc-hw" in recurrent_training.table(result)


@pytest.mark.parametrize("rule_name", ["stbp-rect", "neunorm", "lee"])
def test_rmlp_graph_round_trips_through_every_file_format(tmp_path: Path, rule_name: str) -> None:
    """The compiled rmlp (recurrent Dense self-loops) written and read back by every artifact format
    (graph.h5, NIR, ONNX; netx when it can express the graph) is the same graph."""
    from snnc.compiler.frontend import graph_from_module
    from snnc.compiler.graph_file import read_graph, write_graph
    from snnc.compiler.nir_io import read_nir, write_nir
    from snnc.compiler.onnx_io import read_onnx, write_onnx

    sys.path.insert(0, str(ROOT / "tests"))
    from test_nir_io import assert_same_graph

    torch.manual_seed(0)
    q = quantize(graph_from_module(ARCHS["rmlp"](12, 3, (9, 7), rule=make_rule(rule_name))), get_target("loihi"))
    assert q.recurrent_synapses() == ["lif1.rec", "lif2.rec"]
    for name, write, read in (("graph.h5", write_graph, read_graph), ("graph.nir", write_nir, lambda p: read_nir(p).graph),
                              ("graph.onnx", write_onnx, read_onnx)):
        write(q, tmp_path / name)
        assert_same_graph(q, read(tmp_path / name))


def test_report_marks_recurrent_layers(tmp_path: Path) -> None:
    """report.json names each layer's recurrent synapses; the text table and report.html mark the layer."""
    import io

    from rich.console import Console

    from snnc.pipeline import compile_model
    from snnc.report import render

    torch.manual_seed(0)
    net = ARCHS["rmlp"](20, 3, hidden=(8,), rule=make_rule("stbp-rect"))
    save(net, tmp_path / "r.pt", metadata={"timesteps": 12})
    res = compile_model(tmp_path / "r.pt", out=tmp_path / "r.loihi", verify=0, report_samples=4)
    layers = res.report["activity"]["layers"]
    assert [x["recurrent"] for x in layers] == [["lif1.rec"], []]
    out = io.StringIO()
    render(res.report, Console(file=out, width=100))
    assert "lif1*" in out.getvalue() and "lif1 (lif1.rec)" in out.getvalue() and "lif2*" not in out.getvalue()
    assert '<span title="recurrent: lif1.rec">(recurrent)</span>' in (tmp_path / "r.loihi" / "report.html").read_text()
