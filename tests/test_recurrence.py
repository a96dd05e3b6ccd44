"""The fused CUBA-LIF recurrence and synapses (models/recurrence.py) against their definitions: the
step functions run step by step under autograd, and plain float64 matmuls. Hardware-exact forward
must be bit-identical, in the common regime and where the wraps and the clip trigger."""
from __future__ import annotations

import pytest
import torch

from snnc.models.neurons import cuba_float_step, cuba_hw_step, delay_one_step
from snnc.models import recurrence
from snnc.models.quant import LOIHI_FIXED_POINT
from snnc.models.recurrence import (CubaConstants, _hardware_guards, cuba_recurrence, float_synapses,
                                    integer_synapses)
from snnc.models.rules import RULES, make_rule

STEP_RULES = sorted(name for name in RULES if name != "hm2bp")   # HM2-BP has no per-step gradient


def _reference(a: torch.Tensor, bias: torch.Tensor, rule_name: str, hw: bool, spiking: bool,
               du: int, dv: int, vth: int, unit: float) -> torch.Tensor:
    """What the neurons computed before the fused recurrence: the step function, step by step."""
    rule = make_rule(rule_name)
    u = v = torch.zeros(a.shape[0], a.shape[2], dtype=a.dtype)
    out = []
    for t in range(a.shape[1]):
        if hw:
            s, u, v = cuba_hw_step(a[:, t], u, v, bias, du, dv, vth, unit, rule)
        else:
            s, u, v = cuba_float_step(a[:, t], u, v, bias, du / 4096, dv / 4096, unit if spiking else float("inf"), rule)
        out.append(s if spiking else v)
    return torch.stack(out, dim=1)


def _constants(rule_name: str, hw: bool, spiking: bool, du: int, dv: int, vth: int, unit: float) -> CubaConstants:
    rule = make_rule(rule_name)
    if hw:
        return CubaConstants.hardware_mode(du, dv, vth, unit, rule, spiking)
    return CubaConstants.float_mode(du / 4096, dv / 4096, unit if spiking else float("inf"), rule, spiking)


def _case(regime: str, hw: bool, seed: int) -> tuple[torch.Tensor, torch.Tensor, int, int, int, float]:
    """(a, bias, du, dv, vth, unit): 'normal' (spiking a fair amount), or 'extreme' (hardware only:
    no current decay and inputs large enough to wrap u at 32 and 24 bits and clip v)."""
    g = torch.Generator().manual_seed(seed)
    if not hw:
        a = torch.randn(5, 30, 7, generator=g, dtype=torch.float64) * 0.8
        return a, torch.randn(7, generator=g, dtype=torch.float64) * 0.1, 1024, 819, 0, 1.0
    if regime == "normal":
        a = torch.randint(-300, 900, (5, 30, 7), generator=g).double()
        return a, torch.randint(-40, 40, (7,), generator=g).double(), 2048, 819, 64, 4096.0
    a = torch.randint(-2**23, 2**23, (5, 40, 7), generator=g).double()
    a[:, ::3] = 2.0**23 - 1                                     # push u up until it wraps
    return a, torch.randint(-4096, 4095, (7,), generator=g).double(), 0, 0, 131071, 4096.0


@pytest.mark.parametrize("rule_name", STEP_RULES)
@pytest.mark.parametrize("hw,regime", [(True, "normal"), (True, "extreme"), (False, "normal")])
@pytest.mark.parametrize("spiking", [True, False])
@pytest.mark.parametrize("chunk_steps", [None, 3])
def test_fused_recurrence_equals_the_step_functions(rule_name: str, hw: bool, regime: str, spiking: bool,
                                                    chunk_steps: int | None, monkeypatch: pytest.MonkeyPatch) -> None:
    """``chunk_steps``: the backward's time chunks (None: one chunk; 3: ten and more, the last partial)."""
    a0, b0, du, dv, vth, unit = _case(regime, hw, seed=len(rule_name))
    if chunk_steps is not None:
        monkeypatch.setattr(recurrence, "_CHUNK_ELEMENTS", chunk_steps * a0.shape[0] * a0.shape[2])
    a_ref, b_ref = a0.clone().requires_grad_(), b0.clone().requires_grad_()
    a_new, b_new = a0.clone().requires_grad_(), b0.clone().requires_grad_()
    want = _reference(a_ref, b_ref, rule_name, hw, spiking, du, dv, vth, unit)
    got = cuba_recurrence(a_new, b_new, _constants(rule_name, hw, spiking, du, dv, vth, unit), make_rule(rule_name))
    if not hw and not spiking and make_rule(rule_name).temporal_term(torch.zeros(1)) is not None:
        # the step function adds the forward-zero term times threshold = inf (NaN); the fused one leaves it out
        assert bool(want.isnan().all()) and bool(got.isfinite().all())
        return
    assert torch.equal(got, want)                      # value for value (spikes, or v after the reset)
    if spiking:
        assert 0 < float(want.detach().sum()) < want.numel()    # the case exercises spikes and silence
    upstream = torch.randn(want.shape, generator=torch.Generator().manual_seed(1), dtype=want.dtype)
    (want * upstream).sum().backward()
    (got * upstream).sum().backward()
    for new, ref in ((a_new.grad, a_ref.grad), (b_new.grad, b_ref.grad)):
        assert torch.allclose(new, ref, rtol=1e-10, atol=1e-12 * float(ref.abs().max()) + 1e-300)
    if regime == "normal":                             # (saturated by the clip: no gradient at all)
        assert float(a_ref.grad.abs().max()) > 0


def test_extreme_case_really_wraps_and_clips_and_normal_case_skips_them() -> None:
    """The guards decide which operations can trigger; both paths must be covered above."""
    for regime, expected in (("extreme", (True, True, True)), ("normal", (False, False, False))):
        a, b, du, dv, vth, unit = _case(regime, True, seed=0)
        c = _constants("stbp-rect", True, True, du, dv, vth, unit)
        guards = _hardware_guards(float(a.abs().max()), float(b.abs().max()), c, a.shape[1], LOIHI_FIXED_POINT)
        assert guards == expected
    a, b, du, dv, vth, unit = _case("extreme", True, seed=0)
    v = _reference(a, b, "stbp-rect", True, False, du, dv, vth, unit)
    assert float(v.abs().max()) == LOIHI_FIXED_POINT.state_max - 1     # the clip is reached


def test_recurrence_without_gradient_gives_the_same_values() -> None:
    a, b, du, dv, vth, unit = _case("normal", True, seed=3)
    c = _constants("stbp-rect", True, True, du, dv, vth, unit)
    with torch.no_grad():
        plain = cuba_recurrence(a, b, c, make_rule("stbp-rect"))
    assert torch.equal(plain, cuba_recurrence(a.requires_grad_(), b, c, make_rule("stbp-rect")).detach())


@pytest.mark.parametrize("kind", ["binary", "signed", "graded", "fractional", "large"])
def test_integer_synapses_equal_float64_matmul(kind: str) -> None:
    """Whichever GEMM is picked (int8, float32 or float64), the result is the float64 one, bit for bit;
    the gradient is autograd's of the float64 expression."""
    g = torch.Generator().manual_seed(0)
    r = torch.rand(4, 9, 70, generator=g, dtype=torch.float64)
    x = {"binary": (r < 0.3).double(), "signed": (r < 0.2).double() - (r > 0.8).double(),
         "graded": torch.round(r * 255), "fractional": r, "large": torch.round(r * 255) * 1000}[kind]
    w = (torch.randint(-128, 128, (11, 70), generator=g) * 2).double()
    xa, wa = x.clone().requires_grad_(), w.clone().requires_grad_()
    xb, wb = x.clone().requires_grad_(), w.clone().requires_grad_()
    want = delay_one_step(xa) @ wa.t()
    got = integer_synapses(xb, wb)
    if kind != "fractional":
        assert torch.equal(got, want)
    else:
        assert torch.allclose(got, want, rtol=1e-12)
    upstream = torch.randn(want.shape, generator=g, dtype=torch.float64)
    (want * upstream).sum().backward()
    (got * upstream).sum().backward()
    assert torch.allclose(xb.grad, xa.grad, rtol=1e-12) and torch.allclose(wb.grad, wa.grad, rtol=1e-12)


def test_float_synapses_equal_delayed_matmul() -> None:
    g = torch.Generator().manual_seed(0)
    x = (torch.rand(3, 8, 20, generator=g) < 0.4).float()
    w = torch.randn(5, 20, generator=g)
    assert torch.allclose(float_synapses(x, w), delay_one_step(x) @ w.t(), rtol=1e-6, atol=1e-6)
    assert torch.equal(float_synapses(x, w)[:, 0], torch.zeros(3, 5))
