"""Every rule: autograd equals the paper's closed-form derivative, and a tiny network learns with it."""
from __future__ import annotations

import math

import pytest
import torch

from snnc.models.datasets import load_dataset
from snnc.models.neurons import CubaDense, cuba_float_step
from snnc.models.rules import RULES, make_rule, rate_ce_loss
from snnc.models.train import train

from conftest import make_model

XS = torch.tensor([-2.0, -1.2, -0.7, -0.3, -0.05, 0.0, 0.05, 0.3, 0.7, 1.2, 2.0], dtype=torch.float64)

# closed forms written from the papers, independently of models/rules.py
CLOSED_FORM = {
    "stbp-rect": lambda x, a=2.0: (x.abs() < a / 2).double() / a,
    "stbp-poly": lambda x, a=2.0: torch.where(x.abs() < 2 / math.sqrt(a), math.sqrt(a) / 2 - a / 4 * x.abs(),
                                              torch.zeros_like(x)),
    "stbp-sigmoid": lambda x, a=1 / math.pi: (1 / a) * torch.exp(-x / a) / (1 + torch.exp(-x / a)) ** 2,
    "stbp-gauss": lambda x, a=1 / 3: torch.exp(-x**2 / (2 * a)) / math.sqrt(2 * math.pi * a),
    "fast-sigmoid": lambda x, k=25.0: 1 / (1 + k * x.abs()) ** 2,
    "arctan": lambda x, alpha=2.0: (alpha / 2) / (1 + (math.pi / 2 * alpha * x) ** 2),
    "triangle": lambda x, w=1.0: torch.clamp(1 - x.abs() / w, min=0) / w,
    "bpsta": lambda x: torch.where(x > 0, 1 / (1 + x), torch.zeros_like(x)),   # 1/u on fired neurons
    "lee": lambda x: (x > 0).double(),                                         # 1/V_th where fired
    "neunorm": lambda x, a=2.0: (x.abs() < a / 2).double() / a,                # STBP's h1 (Wu et al. 2019)
}
#: rules whose gradient is not a per-step surrogate; their closed forms are tested in their own files
LAYER_RULES = {"hm2bp"}   # tests/test_hm2bp.py


def test_every_rule_has_a_closed_form_test() -> None:
    assert set(CLOSED_FORM) | LAYER_RULES == set(RULES)
    assert all(RULES[n].custom_layer_backward for n in LAYER_RULES)


@pytest.mark.parametrize("name", sorted(CLOSED_FORM))
def test_autograd_equals_closed_form(name: str) -> None:
    rule = make_rule(name)
    x = XS.clone().requires_grad_(True)
    spikes = rule.spike(x)
    assert spikes.tolist() == (XS > 0).double().tolist()  # forward is the strict Heaviside for every rule
    upstream = torch.linspace(0.5, 1.5, len(XS), dtype=torch.float64)
    (spikes * upstream).sum().backward()
    torch.testing.assert_close(x.grad, upstream * CLOSED_FORM[name](XS), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", ["stbp-rect", "stbp-poly", "stbp-sigmoid", "stbp-gauss", "arctan", "triangle"])
def test_normalised_curves_integrate_to_one(name: str) -> None:
    x = torch.linspace(-400, 400, 2_000_001, dtype=torch.float64)
    h = make_rule(name).surrogate(x)
    area = torch.trapezoid(h, x).item()
    assert area == pytest.approx(1.0, abs=2e-3)  # arctan's heavy tails converge slowly
    if name.startswith("stbp-"):  # the four STBP defaults share the variance of the rect curve (1/3)
        assert torch.trapezoid(h * x * x, x).item() == pytest.approx(1 / 3, rel=1e-3)


def test_rule_parameters_change_the_curve_and_bad_ones_are_named() -> None:
    assert make_rule("fast-sigmoid", slope=1.0).surrogate(torch.tensor(1.0)).item() == pytest.approx(0.25)
    with pytest.raises(Exception, match="bad parameters .* 'arctan'"):
        make_rule("arctan", slope=3.0)


def test_rate_ce_loss_closed_form() -> None:
    out = torch.zeros(1, 4, 2)
    out[0, :3, 0] = 1  # rates (0.75, 0) -> logits (7.5, 0)
    expected = -math.log(1 / (math.exp(7.5) + 1))
    assert rate_ce_loss(out.mean(dim=1), torch.tensor([1])).item() == pytest.approx(expected)


def test_loss_is_a_rule_parameter_that_round_trips() -> None:
    rule = make_rule("triangle", loss="rate-ce")
    assert rule.describe() == {"name": "triangle", "params": {"loss": "rate-ce", "width": 1.0}}
    assert make_rule(rule.name, **rule.describe()["params"]) == rule
    assert make_rule("fast-sigmoid").loss == "rate-ce" and make_rule("stbp-gauss").loss == "rate-mse"
    with pytest.raises(Exception, match="unknown loss 'l1'"):
        make_rule("arctan", loss="l1")


@pytest.mark.parametrize("name", sorted(RULES))
def test_tiny_network_loss_decreases(name: str) -> None:
    data = load_dataset("digits", "train")
    model = make_model((64, 32, 10), gain=1.0, rule=make_rule(name))  # with the rule's architecture
    logs = train(model, data, epochs=4, timesteps=8, max_steps=8, lr=5e-3, batch_size=64)
    assert logs[-1].loss < logs[0].loss, [log.loss for log in logs]


def _two_steps(rule_name: str, a1: float) -> tuple[float, float]:
    """One float neuron (du = 1 so u = a, dv = 0.5, threshold 1): input a1 then 0; returns
    (v after step 2, d v2 / d a1)."""
    rule = make_rule(rule_name)
    a = torch.tensor([[a1]], dtype=torch.float64, requires_grad=True)
    zero = torch.zeros(1, 1, dtype=torch.float64)
    _, u, v = cuba_float_step(a, zero, zero, 0.0, 1.0, 0.5, 1.0, rule)
    _, _, v2 = cuba_float_step(zero, u, v, 0.0, 1.0, 0.5, 1.0, rule)
    v2.sum().backward()
    return float(v2.detach()), float(a.grad)


def test_bpsta_temporal_adjustment_and_undifferentiated_reset() -> None:
    """a1 = 1.5 fires at step 1 (x = 0.5), v is reset to 0, v2 = 0.5 * 0 = 0.
    BPSTA: dv2/da1 = (1 - dv) * alpha * h(x) = 0.5 * 0.2 / 1.5; the reset passes no gradient.
    STBP:  dv2/da1 = (1 - dv) * (1 - s - v1 h(x)) = 0.5 * (0 - 1.5 * 0.5) = -0.375."""
    v2, g = _two_steps("bpsta", 1.5)
    assert v2 == 0.0 and g == pytest.approx(0.5 * 0.2 / 1.5)
    assert _two_steps("stbp-rect", 1.5) == (0.0, pytest.approx(-0.375))


def test_lee_leak_is_identity_in_the_gradient() -> None:
    """a1 = 0.4 does not fire; v2 = 0.5 * 0.4 = 0.2 (returned after step 2's reset, which is a no-op).
    STBP: the leak passes 0.5, and each reset v (1 - s) passes 1 - v h(x) with h = 0.5 inside the +-1
    window: 0.5 * (1 - 0.4 * 0.5) * (1 - 0.2 * 0.5) = 0.36.
    Lee: leak = identity and the reset passes no gradient through s: exactly 1."""
    assert _two_steps("stbp-rect", 0.4) == (pytest.approx(0.2), pytest.approx(0.36))
    assert _two_steps("lee", 0.4) == (pytest.approx(0.2), pytest.approx(1.0))


def test_lee_leak_correction_factor_closed_form() -> None:
    """Neuron 0 fires at steps 2 and 4 of T = 4, lambda = 0.9: LF = 0.9^2 + 0.9^0, gamma = 2,
    NG = 1 + ln(0.9) LF / 2. Neuron 1 is silent: NG = 0 (no gradient through its spikes)."""
    s = torch.zeros(1, 4, 2)
    s[0, 1, 0] = s[0, 3, 0] = 1
    ng = make_rule("lee").spike_gradient_scale(s, 0.9)
    assert ng[0, 0].item() == pytest.approx(1 + math.log(0.9) * (0.81 + 1) / 2)
    assert ng[0, 1].item() == 0.0


def test_lee_scales_each_neurons_spike_gradient_without_changing_spikes() -> None:
    torch.manual_seed(0)
    layer = CubaDense(6, 4, bias=False, current_decay=1.0, voltage_decay=0.1)
    with torch.no_grad():
        layer.weight.mul_(8)
    x = (torch.rand(3, 10, 6, generator=torch.Generator().manual_seed(1)) < 0.5).float()
    lee, plain = make_rule("lee"), make_rule("lee")
    out = layer(x, lee, True)
    object.__setattr__(plain, "spike_gradient_scale", lambda s, keep: None)  # same rule without NG
    ref = layer(x, plain, True)
    assert torch.equal(out, ref) and out.sum() > 0
    upstream = torch.rand(out.shape, dtype=out.dtype)
    g_out, = torch.autograd.grad((out * upstream).sum(), layer.weight)
    ng = lee.spike_gradient_scale(ref, 0.9)
    g_ref, = torch.autograd.grad((ref * upstream * ng[:, None, :]).sum(), layer.weight)
    torch.testing.assert_close(g_out, g_ref)


def test_lee_dropout_is_time_shared_and_off_at_inference() -> None:
    rule = make_rule("lee", dropout=0.5)
    mask = rule.input_mask(torch.Size([4, 7, 100]), torch.Generator().manual_seed(0))
    assert mask.shape == (4, 1, 100) and set(mask.unique().tolist()) == {0.0, 2.0}
    model = make_model((64, 16, 10), gain=1.0)
    model.rule = rule
    x = (torch.rand(2, 6, 64) < 0.5).float()
    model.eval()
    eval_out = [o.clone() for o in model(x)]
    model.rule = make_rule("lee")
    assert all(torch.equal(a, b) for a, b in zip(eval_out, model(x)))
    with pytest.raises(Exception, match="dropout must be in"):
        make_rule("lee", dropout=1.0)
