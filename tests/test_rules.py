"""Every rule: autograd equals the paper's closed-form derivative, and a tiny network learns with it."""
from __future__ import annotations

import math

import pytest
import torch

from snnc.models.datasets import load_dataset
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
}


def test_every_rule_has_a_closed_form_test() -> None:
    assert set(CLOSED_FORM) == set(RULES)


@pytest.mark.parametrize("name", sorted(RULES))
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
    assert rate_ce_loss(out, torch.tensor([1])).item() == pytest.approx(expected)


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
    model = make_model((64, 32, 10), gain=1.0)
    model.rule = make_rule(name)
    logs = train(model, data, epochs=4, timesteps=8, max_steps=8, lr=5e-3, batch_size=64)
    assert logs[-1].loss < logs[0].loss, [log.loss for log in logs]
