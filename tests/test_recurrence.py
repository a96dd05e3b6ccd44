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


# --- the numba kernels of the hardware-exact hot path (recurrence.USE_KERNELS) against the torch code ---

def _run_fused(a0: torch.Tensor, b0: torch.Tensor | float, c: CubaConstants, rule_name: str, kernels: bool,
               monkeypatch: pytest.MonkeyPatch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    monkeypatch.setattr(recurrence, "USE_KERNELS", kernels)
    a = a0.clone().requires_grad_()
    b = b0.clone().requires_grad_() if isinstance(b0, torch.Tensor) else b0
    out = cuba_recurrence(a, b, c, make_rule(rule_name))
    upstream = torch.randn(out.shape, generator=torch.Generator().manual_seed(2), dtype=out.dtype)
    (out * upstream).sum().backward()
    return out.detach(), a.grad, (b.grad if isinstance(b, torch.Tensor) else None)


@pytest.mark.parametrize("rule_name", STEP_RULES)
@pytest.mark.parametrize("regime", ["normal", "extreme"])
@pytest.mark.parametrize("spiking", [True, False])
def test_kernels_equal_the_torch_recurrence(rule_name: str, regime: str, spiking: bool,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """Forward bit for bit (spikes or v, and what the backward keeps: v before the reset, the clip mask),
    gradients within float64 rounding, for every rule (STBPRect's surrogate inside the kernel, the
    others' from their torch code; rules with a temporal term keep the torch backward)."""
    assert recurrence._kernels() is not None, "numba is a dependency of snnc: its training kernels must load"
    a0, b0, du, dv, vth, unit = _case(regime, True, seed=len(rule_name) + 7)
    c = _constants(rule_name, True, spiking, du, dv, vth, unit)
    calls: list[str] = []
    forward_kernel, backward_kernel = recurrence._forward_kernel, recurrence._backward_kernel
    monkeypatch.setattr(recurrence, "_forward_kernel", lambda *a: calls.append("f") or forward_kernel(*a))
    monkeypatch.setattr(recurrence, "_backward_kernel", lambda *a: calls.append("b") or backward_kernel(*a))
    got = _run_fused(a0, b0, c, rule_name, True, monkeypatch)
    assert calls[0] == "f" and (("b" in calls) == recurrence._no_temporal_term(make_rule(rule_name)))
    want = _run_fused(a0, b0, c, rule_name, False, monkeypatch)
    assert torch.equal(got[0], want[0])
    for new, ref in zip(got[1:], want[1:]):
        assert torch.allclose(new, ref, rtol=1e-12, atol=1e-13 * float(ref.abs().max()) + 1e-300)
    monkeypatch.setattr(recurrence, "USE_KERNELS", True)
    k = recurrence._kernels()
    vpre, spikes = a0.new_empty(a0.shape), torch.empty(a0.shape, dtype=torch.bool)
    kept = recurrence._forward_kernel(k, a0, recurrence._bias_vector(b0 * c.b_scale, a0.shape[2], a0), b0, c,
                                      LOIHI_FIXED_POINT, vpre, spikes)
    monkeypatch.setattr(recurrence, "USE_KERNELS", False)
    ref = recurrence._forward(a0, b0, c, LOIHI_FIXED_POINT)
    for x, y in zip(kept, ref):
        assert (x is None and y is None) or torch.equal(x, y)
    assert (ref[3] is not None) == (regime == "extreme")       # the clip mask, where the clip can trigger


@pytest.mark.parametrize("bias", ["none", "scalar", "vector"])
def test_kernels_take_every_bias_form(bias: str, monkeypatch: pytest.MonkeyPatch) -> None:
    a0, b0, du, dv, vth, unit = _case("normal", True, seed=11)
    c = _constants("stbp-rect", True, True, du, dv, vth, unit)
    b: torch.Tensor | float = {"none": 0.0, "scalar": 3.0, "vector": b0}[bias]
    got, want = (_run_fused(a0, b, c, "stbp-rect", k, monkeypatch) for k in (True, False))
    assert torch.equal(got[0], want[0]) and torch.allclose(got[1], want[1], rtol=1e-12)
    if bias == "vector":
        assert torch.allclose(got[2], want[2], rtol=1e-12)


def test_unit_not_a_power_of_two_divides(monkeypatch: pytest.MonkeyPatch) -> None:
    """The backward kernel multiplies by 1/unit only where that is exact (unit a power of two)."""
    a0, b0, du, dv, vth, _ = _case("normal", True, seed=5)
    for unit in (4096.0, 3000.0, 4096.0 * 3):
        c = _constants("stbp-rect", True, True, du, dv, vth, unit)
        got, want = (_run_fused(a0, b0, c, "stbp-rect", k, monkeypatch) for k in (True, False))
        assert torch.equal(got[0], want[0])
        assert torch.allclose(got[1], want[1], rtol=1e-12) and torch.allclose(got[2], want[2], rtol=1e-12)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("kind", ["binary", "signed", "graded", "out-of-range", "nan", "fractional"])
def test_integer_synapses_kernels_equal_the_torch_code(dtype: torch.dtype, kind: str,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """The int8 path with the kernels (one-pass delay + int8 check, widening; weight gradient from the
    int8 inputs a block of rows at a time; input gradient written in place) against the torch code and
    the float64 matmul; inputs that are not int8 integers (128, -129, NaN, fractions) fall back."""
    g = torch.Generator().manual_seed(1)
    r = torch.rand(6, 13, 40, generator=g, dtype=torch.float64)
    x = {"binary": (r < 0.3).double(), "signed": (r < 0.2).double() - (r > 0.8).double(),
         "graded": torch.round(r * 255) - 128, "out-of-range": torch.round(r * 255) - 128,
         "nan": (r < 0.3).double(), "fractional": r}[kind]
    if kind == "out-of-range":
        x[2, 5, 7], x[4, 1, 3] = 128.0, -129.0
    if kind == "nan":
        x[3, 4, 5] = float("nan")
    x = x.to(dtype)
    w = (torch.randint(-128, 128, (9, 40), generator=g) * 2).double()
    upstream = torch.randn(6, 13, 9, generator=g, dtype=torch.float64)
    monkeypatch.setattr(recurrence, "_WGRAD_CHUNK_ELEMENTS", 3 * 40)      # several row blocks
    results = []
    for kernels in (True, False):
        monkeypatch.setattr(recurrence, "USE_KERNELS", kernels)
        xa, wa = x.clone().requires_grad_(), w.clone().requires_grad_()
        out = integer_synapses(xa, wa)
        (out * upstream).sum().backward()
        results.append((out.detach(), xa.grad, wa.grad))
        if kind in ("binary", "signed", "graded"):
            assert recurrence._delayed_integer_matmul(x, w, keep_int8=True)[1] is not None   # the int8 GEMM ran
    (got, gx, gw), (want, wx, ww) = results
    ref = delay_one_step(x.double()) @ w.t()
    assert torch.equal(got.isnan(), want.isnan()) and torch.equal(got.nan_to_num(), want.nan_to_num())
    if kind == "nan":
        assert bool(got.isnan().any())
    else:
        assert torch.allclose(got, ref, rtol=1e-12) if kind == "fractional" else torch.equal(got, ref)
        assert gx.dtype == dtype and torch.allclose(gx, wx, rtol=1e-12) and torch.allclose(gw, ww, rtol=1e-12)


def test_integer_synapses_without_gradient_and_for_one_step() -> None:
    x = (torch.rand(3, 1, 20) < 0.5).float()
    w = (torch.randint(-128, 128, (4, 20)) * 2).double()
    assert torch.equal(integer_synapses(x, w), torch.zeros(3, 1, 4, dtype=torch.float64))
    x = (torch.rand(3, 6, 20) < 0.5).float()
    assert torch.equal(integer_synapses(x, w), delay_one_step(x.double()) @ w.t())


@pytest.mark.parametrize("params", [torch.float32, torch.float64])
@pytest.mark.parametrize("case", ["spikes", "strided", "grouped", "sums", "too-large", "fractional"])
def test_exact_float32_conv_equals_the_float64_conv(case: str, params: torch.dtype,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """CubaConv's hardware-exact synapses: the float32 convolution (taken where the integer sums provably
    stay below 2**23, so exact and never wrapped at 24 bits) gives the float64 convolution's values bit for
    bit, and autograd's gradients of the float64 one: within float64 rounding for float64 parameters,
    within float32 rounding for float32 ones (their backward runs in float32); where the bound fails or
    inputs are not integers, the float64 convolution with the wrap runs as before."""
    from snnc.models import conv

    shape, kw = {"strided": ((4, 9, 9), dict(stride=2, padding=1)), "grouped": ((4, 8, 8), dict(groups=2))}.get(
        case, ((3, 10, 10), dict(padding=2)))
    g = torch.Generator().manual_seed(3)
    torch.manual_seed(3)
    layer = conv.CubaConv(shape, 6, 3, **kw).to(params)
    r = torch.rand(3, 7, shape[0] * shape[1] * shape[2], generator=g, dtype=torch.float64)
    x = {"sums": torch.round(r * 4), "too-large": torch.round(r * 255) * 64, "fractional": r}.get(case, (r < 0.3).double())
    fast = conv._exact_in_float32(x, conv.weight_to_int(layer.weight.double(), layer.weight_scale), layer.geom)
    assert fast == (case not in ("too-large", "fractional"))
    results = []
    for allow in (True, False):
        if not allow:
            monkeypatch.setattr(conv, "_exact_in_float32", lambda *a: False)
        xa = x.clone().requires_grad_()
        layer.zero_grad()
        out = layer.synaptic_input(xa, layer.geom, layer.weight, True)
        upstream = torch.randn(out.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
        (out * upstream).sum().backward()
        results.append((out.detach(), xa.grad, layer.weight.grad.clone()))
    (got, gx, gw), (want, wx, ww) = results
    assert torch.equal(got, want) and got.dtype == torch.float64
    if params == torch.float64 or not fast:
        assert torch.allclose(gx, wx, rtol=1e-12) and torch.allclose(gw, ww, rtol=1e-12)
    else:
        for a, b in ((gx, wx), (gw, ww)):
            err = float((a.double() - b.double()).abs().max() / b.double().abs().max())
            assert 0 < err < 1e-5


@pytest.mark.parametrize("x_dtype", [torch.float32, torch.float64])
def test_float32_weights_get_a_float32_weight_gradient_within_its_rounding(x_dtype: torch.dtype) -> None:
    """Float32 weights (what snn-train trains) get their int8-path weight gradient from a float32 GEMM
    (float32 inputs read as they are, others from the int8 copy): equal to the float64 reference within
    float32 rounding of the sums, and the forward unchanged; float64 weights keep float64 sums
    (test_integer_synapses_kernels_equal_the_torch_code)."""
    g = torch.Generator().manual_seed(3)
    x = (torch.rand(8, 30, 200, generator=g) < 0.3).to(x_dtype)
    w = (torch.randint(-128, 128, (16, 200), generator=g) * 2).float()
    upstream = torch.randn(8, 30, 16, generator=g, dtype=torch.float64)
    wa = w.clone().requires_grad_()
    out = integer_synapses(x, wa.double(), grad_dtype=torch.float32)    # as CubaDense calls it
    (out * upstream).sum().backward()
    ref = upstream[:, 1:].reshape(-1, 16).t() @ x[:, :-1].double().reshape(-1, 200)
    assert torch.equal(out, delay_one_step(x.double()) @ w.double().t())
    assert wa.grad.dtype == torch.float32
    err = (wa.grad.double() - ref).abs().max() / ref.abs().max()
    assert 0 < err < 1e-5 or torch.equal(wa.grad.double(), ref.float().double())


@pytest.mark.parametrize("rule_name", ["stbp-rect", "bpsta"])
@pytest.mark.parametrize("regime", ["normal", "extreme"])
def test_kernels_split_over_threads_give_the_one_call_results(rule_name: str, regime: str,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """Large kernel calls run as one part of the samples per torch thread (recurrence._by_samples):
    forward bit-identical, gradients identical to the one serial call (the same code per sample)."""
    a0, b0, du, dv, vth, unit = _case(regime, True, seed=11)
    c = _constants(rule_name, True, True, du, dv, vth, unit)
    monkeypatch.setattr(torch, "get_num_threads", lambda: 3)            # 5 samples: parts of 1, 2, 2
    one = _run_fused(a0, b0, c, rule_name, True, monkeypatch)
    monkeypatch.setattr(recurrence, "KERNEL_SPLIT_UPDATES", 0)
    split = _run_fused(a0, b0, c, rule_name, True, monkeypatch)
    assert recurrence._THREADS is not None
    for x, y in zip(one, split):
        assert torch.equal(x, y)


def test_integer_bound_kernel_equals_the_torch_check() -> None:
    from snnc.models.recurrence import integer_bound

    r = torch.rand(4, 9, 33, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    cases = {"spikes": (r < 0.3).double(), "signed": torch.round(r * 8) - 4, "fraction": r * 10,
             "nan": (r < 0.3).double().index_put_((torch.tensor([1]),) * 3, torch.tensor([float("nan")], dtype=torch.float64)),
             "inf": (r < 0.3).double().index_put_((torch.tensor([2]),) * 3, torch.tensor([float("-inf")], dtype=torch.float64))}
    for name, x in cases.items():
        for dtype in (torch.float64, torch.float32):
            xs = x.to(dtype)
            got = integer_bound(xs)
            lo, hi = torch.aminmax(xs)
            want = (max(-float(lo), float(hi)), bool((xs == xs.trunc()).all()))
            assert got[1] == want[1], name
            assert got[0] == want[0] or (name == "nan" and not got[1]), name
