"""The CUBA-LIF recurrence over all timesteps as one autograd node (the training hot path).

``cuba_float_step`` / ``cuba_hw_step`` in :mod:`snnc.models.neurons` define one step; run step by
step under autograd they record ~40 small ops per timestep and layer and replay them backwards.
:func:`cuba_recurrence` computes the same forward with a few in-place ops per step (no graph), and
the same gradient with a hand-written backward: everything that does not depend on the time order
(surrogate, reset and clamp factors) is computed for all steps at once, leaving two fused ops per
step in the reverse loop. Hardware-exact mode stays bit-identical (integer-valued float64, every
rounding, wrap and clip as in ``cuba_hw_step``); wraps and clips that provably cannot trigger for
the given input (bounded from ``max |a|`` and the decays) are skipped, which changes no value.
tests/test_recurrence.py checks both against the step functions, forward and backward.

Recurrent synapses (:func:`cuba_recurrent_dense`, a population's own spikes fed back through a
Dense ``W_rec``): the feed-forward input stays one GEMM over all timesteps; only ``W_rec s[t-1]``
is added inside the step loop (one small GEMM per step), and the backward adds ``W_rec^T grad_a[t+1]``
to the gradient of ``s[t]`` per step; ``grad W_rec = sum_t grad_a[t]^T s[t-1]`` is one GEMM after
the loop. tests/test_recurrent_training.py checks it against the step functions run step by step.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch

from snnc.models.fixed_point import LOIHI_FIXED_POINT, FixedPointFormat
from snnc.models.rules import Rule


@dataclass(frozen=True)
class CubaConstants:
    """One population's recurrence in numbers (all plain floats, so the autograd node is cheap).

    Forward: ``u = D(u, ku) + a_scale a``; ``v = D(v, kv) + u + b_scale b``; ``x = (v - offset) / unit``
    (float mode: ``v / unit - 1``); spike if ``x > 0``, then ``v := 0``. ``D`` rounds toward zero and
    the state wraps/clips in hardware mode. ``kv_grad`` is the leak's factor in the gradient (1 when
    the rule keeps the leak out of it).
    """

    ku: float
    kv: float
    kv_grad: float
    unit: float
    offset: float = 0.0
    a_scale: float = 1.0
    b_scale: float = 1.0
    hardware: bool = False
    spiking: bool = True

    @classmethod
    def float_mode(cls, current_decay: float, voltage_decay: float, threshold: float, rule: Rule,
                   spiking: bool) -> "CubaConstants":
        kv = 1.0 - voltage_decay
        return cls(1.0 - current_decay, kv, kv if rule.leak_gradient else 1.0, threshold, spiking=spiking)

    @classmethod
    def hardware_mode(cls, du: int, dv: int, vth: int, unit: float, rule: Rule, spiking: bool,
                      fmt: FixedPointFormat = LOIHI_FIXED_POINT) -> "CubaConstants":
        one = float(fmt.decay_unity)
        kv = (one - dv) / one
        return cls((one - du) / one, kv, kv if rule.leak_gradient else 1.0, unit,
                   offset=float(vth * 2 ** fmt.vth_shift), a_scale=float(2 ** fmt.act_shift),
                   b_scale=float(2 ** fmt.bias_exp), hardware=True, spiking=spiking)


def _wrap_int32_(x: torch.Tensor) -> torch.Tensor:
    """In-place two's-complement int32 wrap (as ``neurons.wrap_int32``)."""
    return x.sub_(torch.floor((x + 2.0**31) / 2.0**32) * 2.0**32)


def _geometric(k: float, steps: int) -> float:
    """sum_{i<steps} k^i, the most a decaying state can accumulate of a bounded input."""
    return float(steps) if k >= 1.0 else min(float(steps), 1.0 / (1.0 - k))


def _hardware_guards(a_max: float, b_max: float, c: CubaConstants, steps: int,
                     fmt: FixedPointFormat) -> tuple[bool, bool, bool]:
    """Which of (int32 wrap, 24-bit wrap of u, clip of v) can trigger. Rounding toward zero, the
    wraps and the reset never grow |state|, so |u| <= a_max * sum k_u^i and |v| <= (that + b_max) *
    sum k_v^i; where these bounds stay inside a range, the operation is the identity there."""
    top = float(fmt.state_max)
    u_max = a_max * c.a_scale * _geometric(c.ku, steps) * (1 + 1e-9) + 1.0
    v_max = (u_max + b_max * c.b_scale) * _geometric(c.kv, steps) * (1 + 1e-9) + 1.0
    need_int32 = u_max + top + b_max * c.b_scale >= 2.0**31
    return need_int32, u_max >= top, v_max >= top - 1


class _RecurrentInput:
    """``s @ w_rec.T`` for one step's spikes ``s`` (batch, n), in ``a``'s dtype; :meth:`add_scaled_`
    adds ``scale * s @ w_rec.T`` into a state in place (one GEMM, ``addmm_``)."""

    def __init__(self, w_rec: torch.Tensor, a: torch.Tensor, scale: float = 1.0):
        w = w_rec.detach()
        self.dtype = a.dtype
        self.max_row_sum = float(w.abs().sum(dim=1).max()) if w.numel() else 0.0
        self.wt = w.to(a.dtype).t()
        self.wt_scaled = (w.to(a.dtype) * scale).t().contiguous() if scale != 1.0 else self.wt

    def __call__(self, s: torch.Tensor) -> torch.Tensor:
        return s.to(self.dtype) @ self.wt

    def add_scaled_(self, x: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        return x.addmm_(s.to(self.dtype), self.wt_scaled)


def _forward(a: torch.Tensor, bias: torch.Tensor | float, c: CubaConstants, fmt: FixedPointFormat,
             w_rec: torch.Tensor | None = None
             ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """-> (output (batch, T, n): spikes or v after the reset; v before the reset; spikes (bool);
    clip mask (hardware mode, only where the clip can trigger)).

    ``w_rec`` (n, n): recurrent synapses, step t's input is ``a[t] + w_rec @ s[t-1]`` (spiking only;
    in hardware mode integer-valued: every sum is an integer below 2**53, exact in any order)."""
    batch, steps, n = a.shape
    rec = _RecurrentInput(w_rec, a, c.a_scale) if w_rec is not None else None
    vpre = a.new_empty(batch, steps, n)                    # step t: the strided view [:, t]
    spikes = torch.empty(batch, steps, n, dtype=torch.bool, device=a.device)
    vout = None if c.spiking else a.new_empty(batch, steps, n)
    u = a.new_zeros(batch, n)
    v = a.new_zeros(batch, n)
    zero = a.new_zeros(())                                 # the reset value
    b = bias * c.b_scale if isinstance(bias, torch.Tensor) else float(bias) * c.b_scale
    mask = None
    if c.hardware and rec is None and a.dtype == torch.float64 and (k := _use_kernels(a)) is not None:
        b_vec = _bias_vector(b, n, a)
        if b_vec is not None:
            return _forward_kernel(k, a, b_vec, bias, c, fmt, vpre, spikes)
    if c.hardware:
        top = float(fmt.state_max)
        a_max = float(a.abs().max()) if a.numel() else 0.0
        if rec is not None:
            a_max += rec.max_row_sum
        b_max = float(bias.abs().max()) if isinstance(bias, torch.Tensor) and bias.numel() else abs(float(bias))
        need_int32, need_wrap24, need_clip = _hardware_guards(a_max, b_max, c, steps, fmt)
        drive = a * c.a_scale
        if need_int32:
            _wrap_int32_(drive)
        if need_clip:
            mask = torch.empty(batch, steps, n, dtype=torch.bool, device=a.device)
        for t in range(steps):
            u.mul_(c.ku).trunc_()
            if rec is not None and t > 0 and need_int32:  # wrap32((a + W_rec s) << 6), as the step function
                d = rec(spikes[:, t - 1]).add_(a[:, t]).mul_(c.a_scale)
                u.add_(_wrap_int32_(d))
            elif rec is not None and t > 0:               # integers below 2**53 without a wrap: any order is exact
                rec.add_scaled_(u.add_(drive[:, t]), spikes[:, t - 1])
            else:
                u.add_(drive[:, t])
            if need_int32:
                _wrap_int32_(u)
            if need_wrap24:                               # wrap once: '>' then '<=' as Lava does
                u.sub_((u > top).to(u.dtype) * (2 * top))
                u.add_((u <= -top).to(u.dtype) * (2 * top))
            vt = torch.mul(v, c.kv, out=vpre[:, t]).trunc_().add_(u).add_(b)
            if need_int32:
                _wrap_int32_(vt)
            if mask is not None:
                torch.logical_and(vt >= -(top - 1), vt <= top - 1, out=mask[:, t])
                vt.clamp_(-(top - 1), top - 1)
            st = torch.gt(vt, c.offset, out=spikes[:, t])  # (v - offset) / unit > 0, exactly
            v = torch.where(st, zero, vt, out=v if vout is None else vout[:, t])
    else:
        exact_leak = c.kv_grad == c.kv
        for t in range(steps):
            if rec is not None and t > 0:
                u.mul_(c.ku).add_(rec(spikes[:, t - 1]).add_(a[:, t]))   # u k + (W_rec s + a), as the step function
            else:
                u.mul_(c.ku).add_(a[:, t])
            vt = vpre[:, t]
            if exact_leak:
                torch.mul(v, c.kv, out=vt)
            else:                                          # x + (x k - x): the value neurons._decay gives
                torch.add(v, torch.mul(v, c.kv).sub_(v), out=vt)
            vt.add_(u).add_(b)
            st = torch.gt(vt / c.unit - 1.0, 0.0, out=spikes[:, t])
            v = torch.where(st, zero, vt, out=v if vout is None else vout[:, t])
    out = spikes.to(a.dtype) if vout is None else vout
    return out, vpre, spikes, mask


def _bias_vector(b: torch.Tensor | float, n: int, a: torch.Tensor) -> torch.Tensor | None:
    """The scaled bias as a contiguous float64 (n,) vector, or None where it is not one per neuron."""
    if not isinstance(b, torch.Tensor):
        return a.new_full((n,), b)
    if b.dim() > 1 and b.shape[:-1].numel() != 1:
        return None
    try:
        return torch.broadcast_to(b.detach().to(torch.float64).reshape(-1), (n,)).contiguous()
    except RuntimeError:
        return None


def _forward_kernel(k: dict[str, Any], a: torch.Tensor, b_vec: torch.Tensor, bias: torch.Tensor | float,
                    c: CubaConstants, fmt: FixedPointFormat, vpre: torch.Tensor, spikes: torch.Tensor
                    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """:func:`_forward`'s hardware branch (no recurrent synapses) as one numba kernel, same values."""
    batch, steps, n = a.shape
    a = a.detach().contiguous()
    a_max = 0.0
    if a.numel():                                  # max |a| in one pass, no |a| tensor
        lo, hi = torch.aminmax(a)
        a_max = max(-float(lo), float(hi))
    b_max = float(bias.abs().max()) if isinstance(bias, torch.Tensor) and bias.numel() else abs(float(bias))
    need_int32, need_wrap24, need_clip = _hardware_guards(a_max, b_max, c, steps, fmt)
    mask = torch.empty(batch, steps, n, dtype=torch.bool) if need_clip else torch.empty(1, 1, 1, dtype=torch.bool)
    out = a.new_empty(batch, steps, n)
    _by_samples(k["forward"], batch, (0, 11, 12, 13, 14),
                _np(a), _np(b_vec), c.a_scale, c.ku, c.kv, c.offset, float(fmt.state_max), need_int32,
                need_wrap24, need_clip, c.spiking, _np(vpre), _np(spikes), _np(mask), _np(out))
    return out, vpre, spikes, (mask if need_clip else None)


def _no_temporal_term(rule: Rule) -> bool:
    return rule.temporal_term(torch.zeros(1, dtype=torch.float64)) is None


def _backward_kernel(k: dict[str, Any], grad_out: torch.Tensor, vpre: torch.Tensor, spikes: torch.Tensor,
                     mask: torch.Tensor | None, c: CubaConstants, rule: Rule
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """:class:`_CubaRecurrence`'s backward loop (hardware mode, no temporal term) as one numba kernel
    -> (grad of a, per-sample grad of the scaled bias before ``b_scale``). STBPRect's surrogate is
    computed inside; any other rule's once for all steps with its own torch code."""
    from snnc.models.rules import STBPRect

    batch, steps, n = vpre.shape
    g_out = grad_out.detach().to(torch.float64).contiguous()
    if type(rule) is STBPRect:
        rect, h = float(rule.width), vpre.new_empty(1, 1, 1)
    else:
        rect, h = 0.0, rule.surrogate((vpre - c.offset) / c.unit).to(torch.float64).contiguous()
    g_a = torch.empty_like(vpre)
    g_b = vpre.new_empty(batch, n)
    m = mask if mask is not None else torch.empty(1, 1, 1, dtype=torch.bool)
    mant, _ = math.frexp(c.unit)
    inv_unit = 1.0 / c.unit if mant == 0.5 and math.isfinite(1.0 / c.unit) and 1.0 / c.unit > 2.0**-1000 else 0.0
    _by_samples(k["backward"], batch, (0, 1, 2, 4, 5, 15, 16),
                _np(vpre), _np(spikes), _np(m), mask is not None, _np(g_out), _np(h), rect, c.offset, c.unit,
                inv_unit, c.ku, c.kv_grad, bool(rule.reset_gradient), c.spiking, c.a_scale, _np(g_a), _np(g_b))
    return g_a, g_b


class _CubaRecurrence(torch.autograd.Function):
    """Forward: :func:`_forward`. Backward: the chain rule of the step functions, vectorised over
    time where it can be (see the module docstring)."""

    @staticmethod
    def forward(ctx: Any, a: torch.Tensor, bias: torch.Tensor | float, c: CubaConstants, rule: Rule,
                fmt: FixedPointFormat) -> torch.Tensor:  # type: ignore[override]
        out, vpre, spikes, mask = _forward(a, bias, c, fmt)
        ctx.save_for_backward(vpre, spikes, *(() if mask is None else (mask,)))
        ctx.c, ctx.rule = c, rule
        ctx.bias_shape = bias.shape if isinstance(bias, torch.Tensor) else None
        return out

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor) -> tuple[Any, ...]:  # type: ignore[override]
        vpre, spikes, *rest = ctx.saved_tensors
        mask = rest[0] if rest else None
        c, rule = ctx.c, ctx.rule
        batch, steps, n = vpre.shape
        want_b = ctx.needs_input_grad[1] and ctx.bias_shape is not None
        if (c.hardware and vpre.dtype == torch.float64 and _no_temporal_term(rule)
                and (k := _use_kernels(vpre, grad_out)) is not None):
            grad_a, g_b_all = _backward_kernel(k, grad_out, vpre, spikes, mask, c, rule)
            grad_b = g_b_all.mul_(c.b_scale).sum_to_size(ctx.bias_shape) if want_b else None
            return (grad_a if ctx.needs_input_grad[0] else None), grad_b, None, None, None
        g_out = grad_out.to(vpre.dtype)
        g_u = torch.empty_like(vpre)                 # grad of u[t] (a's grad up to a_scale)
        g_b = vpre.new_zeros(batch, n) if want_b else None
        g_vc = [vpre.new_zeros(batch, n), vpre.new_empty(batch, n)]   # grad of v before the clip: t+1, t
        g_u_next = vpre.new_zeros(batch, n)
        width = max(1, _CHUNK_ELEMENTS // max(1, batch * n))
        for stop in range(steps, 0, -width):         # time chunks, last first: coefficients stay in cache
            start = max(0, stop - width)
            through, direct, _ = _chunk_coefficients(vpre[:, start:stop], spikes[:, start:stop],
                                                     None if mask is None else mask[:, start:stop],
                                                     g_out[:, start:stop], c, rule)
            for t in range(stop - 1, start - 1, -1):
                k = t - start
                if c.spiking:                        # Gvc[t] = Gvc[t+1] kv_grad through[t] + direct[t]
                    torch.addcmul(direct[:, k], g_vc[0], through[:, k], out=g_vc[1])
                else:                                # Gvc[t] = (Gvc[t+1] kv_grad + g_out[t]) through[t]
                    torch.add(g_out[:, t], g_vc[0], alpha=c.kv_grad, out=g_vc[1]).mul_(through[:, k])
                g_u_next = torch.add(g_vc[1], g_u_next, alpha=c.ku, out=g_u[:, t])   # Gu[t] = Gvc[t] + ku Gu[t+1]
                if g_b is not None:
                    g_b.add_(g_vc[1])
                g_vc.reverse()
        grad_a = grad_b = None
        if ctx.needs_input_grad[0]:
            grad_a = g_u.mul_(c.a_scale) if c.a_scale != 1.0 else g_u
        if g_b is not None:
            grad_b = g_b.mul_(c.b_scale).sum_to_size(ctx.bias_shape)
        return grad_a, grad_b, None, None, None


#: elements per time chunk of the backward's coefficients (1 MiB of float64)
_CHUNK_ELEMENTS = 2**17


def _chunk_coefficients(vpre: torch.Tensor, spikes: torch.Tensor, mask: torch.Tensor | None,
                        g_out: torch.Tensor, c: CubaConstants, rule: Rule, scale: torch.Tensor | None = None,
                        want_h: bool = False) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """For steps of one chunk: ``through`` = dGvc[t] / dGvc[t+1] (spiking: times kv_grad); for
    spiking output ``direct`` = what the output spikes' gradient adds to Gvc[t]; with ``want_h``,
    ``hs`` = dGvc[t] / dG_s[t], what any gradient of the spikes adds per unit (recurrent synapses).

    v = vpre (1 - s) + term(s) unit with s = H(x), ds/dx = h (the surrogate), dx/dvpre = 1 / unit;
    the clip passes gradient only where it did not clip. ``scale`` (batch, n): the rule's factor on the
    gradient of each neuron's spike train (``Rule.spike_gradient_scale``).
    """
    x = (vpre - c.offset) / c.unit if c.hardware else vpre / c.unit - 1.0
    h = rule.surrogate(x)
    s = spikes.to(vpre.dtype)
    dv_ds = -vpre / c.unit if rule.reset_gradient else torch.zeros_like(vpre)
    term_grad = _temporal_term_grad(rule, s)
    if term_grad is not None:
        dv_ds = dv_ds + term_grad
    through = (1.0 - s).addcmul_(h, dv_ds)
    if mask is not None:
        through.mul_(mask)
    if not c.spiking:
        return through, None, None
    if want_h:
        hs = h / c.unit
        if mask is not None:
            hs.mul_(mask)
        if scale is not None:
            hs.mul_(scale[:, None, :])
        return through.mul_(c.kv_grad), g_out * hs, hs
    direct = g_out * h / c.unit
    if mask is not None:
        direct.mul_(mask)
    return through.mul_(c.kv_grad), direct, None


def _temporal_term_grad(rule: Rule, s: torch.Tensor) -> torch.Tensor | None:
    """d temporal_term(s) / ds, elementwise (the term is a forward-zero function of s alone)."""
    s_req = s.detach().requires_grad_(True)
    with torch.enable_grad():
        term = rule.temporal_term(s_req)
        if term is None:
            return None
        (grad,) = torch.autograd.grad(term, s_req, torch.ones_like(term), allow_unused=True)
    return grad if grad is not None else torch.zeros_like(s)


def cuba_recurrence(a: torch.Tensor, bias: torch.Tensor | float, c: CubaConstants, rule: Rule,
                    fmt: FixedPointFormat = LOIHI_FIXED_POINT) -> torch.Tensor:
    """Run CUBA-LIF neurons over synaptic input ``a`` (batch, T, n) -> spikes, or for a non-spiking
    population v after every step (state units), with the rule's surrogate gradient."""
    if torch.is_grad_enabled() and (a.requires_grad or (isinstance(bias, torch.Tensor) and bias.requires_grad)):
        return _CubaRecurrence.apply(a, bias, c, rule, fmt)
    with torch.no_grad():
        return _forward(a, bias, c, fmt)[0]


class _CubaRecurrentDense(torch.autograd.Function):
    """:class:`_CubaRecurrence` with recurrent Dense synapses ``w_rec`` from the population onto itself.

    Backward, per step from the last: ``G_s[t] = g_out[t] + (a_scale Gu[t+1]) @ W_rec`` (the spikes
    of step t fed u[t+1]); everything else as :class:`_CubaRecurrence`, the time-independent factors
    computed for whole chunks; ``grad W_rec = sum_t (a_scale Gu[t])^T s[t-1]``, one GEMM after the loop.
    """

    @staticmethod
    def forward(ctx: Any, a: torch.Tensor, bias: torch.Tensor | float, w_rec: torch.Tensor, c: CubaConstants,
                rule: Rule, fmt: FixedPointFormat,
                grad_scale: "Callable[[torch.Tensor], torch.Tensor | None] | None") -> torch.Tensor:  # type: ignore[override]
        out, vpre, spikes, mask = _forward(a, bias, c, fmt, w_rec)
        scale = grad_scale(out) if grad_scale is not None else None
        ctx.save_for_backward(vpre, spikes, w_rec, mask, scale)
        ctx.c, ctx.rule = c, rule
        ctx.bias_shape = bias.shape if isinstance(bias, torch.Tensor) else None
        return out

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor) -> tuple[Any, ...]:  # type: ignore[override]
        vpre, spikes, w_rec, mask, scale = ctx.saved_tensors
        c, rule = ctx.c, ctx.rule
        batch, steps, n = vpre.shape
        g_out = grad_out.to(vpre.dtype)
        w = w_rec.detach().to(vpre.dtype) * c.a_scale
        g_u = torch.empty_like(vpre)
        want_b = ctx.needs_input_grad[1] and ctx.bias_shape is not None
        g_b = vpre.new_zeros(batch, n) if want_b else None
        g_vc = [vpre.new_zeros(batch, n), vpre.new_empty(batch, n)]
        g_u_next = vpre.new_zeros(batch, n)
        g_s = vpre.new_empty(batch, n)
        width = max(1, _CHUNK_ELEMENTS // max(1, batch * n))
        for stop in range(steps, 0, -width):
            start = max(0, stop - width)
            through, direct, hs = _chunk_coefficients(vpre[:, start:stop], spikes[:, start:stop],
                                                      None if mask is None else mask[:, start:stop],
                                                      g_out[:, start:stop], c, rule, scale, want_h=True)
            assert direct is not None and hs is not None
            for t in range(stop - 1, start - 1, -1):
                k = t - start
                if t < steps - 1:                    # G_s[t] h / unit = (g_out[t] + a_scale Gu[t+1] W_rec) hs[t]
                    torch.mm(g_u_next, w, out=g_s).mul_(hs[:, k]).add_(direct[:, k])
                    torch.addcmul(g_s, g_vc[0], through[:, k], out=g_vc[1])
                else:
                    torch.addcmul(direct[:, k], g_vc[0], through[:, k], out=g_vc[1])
                g_u_next = torch.add(g_vc[1], g_u_next, alpha=c.ku, out=g_u[:, t])
                if g_b is not None:
                    g_b.add_(g_vc[1])
                g_vc.reverse()
        grad_a = g_u.mul_(c.a_scale) if c.a_scale != 1.0 else g_u
        grad_w = grad_b = None
        if ctx.needs_input_grad[2]:
            ga = grad_a[:, 1:].reshape(-1, n)
            grad_w = (ga.t() @ spikes[:, :-1].reshape(-1, n).to(ga.dtype)).to(w_rec.dtype)
        if g_b is not None:
            grad_b = g_b.mul_(c.b_scale).sum_to_size(ctx.bias_shape)
        return (grad_a if ctx.needs_input_grad[0] else None), grad_b, grad_w, None, None, None, None


def cuba_recurrent_dense(a: torch.Tensor, bias: torch.Tensor | float, w_rec: torch.Tensor, c: CubaConstants,
                         rule: Rule, fmt: FixedPointFormat = LOIHI_FIXED_POINT,
                         grad_scale: "Callable[[torch.Tensor], torch.Tensor | None] | None" = None) -> torch.Tensor:
    """Spiking CUBA-LIF neurons with recurrent Dense synapses ``w_rec`` (n, n) onto themselves over the
    feed-forward input ``a`` (batch, T, n): step t's input is ``a[t] + w_rec @ s[t-1]`` (the chip's
    one-step delay) -> spikes (batch, T, n). ``grad_scale(spikes)``: the rule's per-(sample, neuron)
    factor on the gradient of the spike trains (``Rule.spike_gradient_scale``), applied to all of it,
    the recurrent synapses' share included."""
    if not c.spiking:
        raise ValueError("recurrent synapses need a spiking population (a readout integrator has none)")
    if torch.is_grad_enabled() and any(isinstance(x, torch.Tensor) and x.requires_grad for x in (a, bias, w_rec)):
        return _CubaRecurrentDense.apply(a, bias, w_rec, c, rule, fmt, grad_scale)
    with torch.no_grad():
        return _forward(a, bias, c, fmt, w_rec)[0]


class _ExactIntegerMatmul(torch.autograd.Function):
    """``delay(x) @ w.T`` for integer-valued ``x`` and ``w`` (see :func:`_delayed_integer_matmul`);
    float64 backward as autograd computes it, except the weight gradient of the int8 path, whose sums are
    in the trained parameters' precision ``grad_dtype`` (:func:`_weight_grad_int8`)."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, w: torch.Tensor, grad_dtype: torch.dtype) -> torch.Tensor:  # type: ignore[override]
        a, x8 = _delayed_integer_matmul(x, w, keep_int8=True)
        # the int8 copy of the delayed inputs (when the GEMM used one) is all the weight gradient needs;
        # float32 inputs of float32 weights (the first layer's spikes in snn-train) are kept as they are
        # instead: the float32 weight gradient reads them with no conversion (:func:`_weight_grad_float32`)
        direct = x8 is not None and x.dtype == grad_dtype == torch.float32 and x.is_contiguous()
        ctx.save_for_backward(x if x8 is None or direct else None, None if direct else x8, w)
        ctx.x_dtype, ctx.x_shape, ctx.grad_dtype = x.dtype, x.shape, grad_dtype
        return a

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None, None]:  # type: ignore[override]
        x, x8, w = ctx.saved_tensors
        grad_x = grad_w = None
        if x8 is not None or x.dtype == ctx.grad_dtype == torch.float32:   # the int8 GEMM ran; step t = x[t - 1]
            g2 = grad.to(torch.float64).contiguous().reshape(-1, grad.shape[-1])
            batch, steps, n_in = ctx.x_shape
            if ctx.needs_input_grad[0]:                           # grad x[t] = grad[t + 1] @ w, x[T-1]: 0
                gx = g2.new_empty(batch, steps, n_in)
                flat = gx.view(-1, n_in)
                torch.mm(g2[1:], w.to(g2.dtype), out=flat[:-1])
                gx[:, -1].zero_()
                grad_x = gx.to(ctx.x_dtype)
            if ctx.needs_input_grad[1]:
                grad_w = (_weight_grad_int8(g2, x8.view(-1, n_in), ctx.grad_dtype) if x8 is not None
                          else _weight_grad_float32(grad, x)).to(w.dtype)
            return grad_x, grad_w, None
        g = grad[:, 1:]                                           # step t reads x[t - 1]
        if ctx.needs_input_grad[0]:
            grad_x = torch.nn.functional.pad(g @ w.to(g.dtype), (0, 0, 0, 1)).to(ctx.x_dtype)
        if ctx.needs_input_grad[1]:
            xs = x[:, :-1].to(g.dtype)
            grad_w = (g.reshape(-1, g.shape[-1]).t() @ xs.reshape(-1, xs.shape[-1])).to(w.dtype)
        return grad_x, grad_w, None


#: elements of the inputs converted at a time for the weight gradient (4 MiB of float64: stays in cache)
_WGRAD_CHUNK_ELEMENTS = 2**19


def _weight_grad_int8(g: torch.Tensor, x8: torch.Tensor, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """``g^T x`` for float64 ``g`` (rows, out) and int8 ``x8`` (rows, in), a block of rows at a time (the
    float copy of the inputs is never made whole), in the weight's precision ``dtype``: float32 weights
    (what snn-train trains) get a float32 GEMM, as snnTorch's and SpikingJelly's weight gradients are,
    at half the float64 GEMM's cost (the largest part of a hardware-exact step, docs/performance.md);
    the gradient was rounded to float32 anyway, the float32 sums add rounding of ~sqrt(rows) float32
    ulps. float64 weights keep float64 sums (only their order differs from one GEMM's)."""
    dt = torch.float32 if dtype == torch.float32 else torch.float64
    g = g.to(dt)
    rows, n_in = x8.shape
    per = max(1, _WGRAD_CHUNK_ELEMENTS // max(1, n_in))
    gw: torch.Tensor | None = None
    for r0 in range(0, rows, per):
        gc, xc = g[r0:r0 + per], x8[r0:r0 + per].to(dt)
        gw = gc.t() @ xc if gw is None else gw.addmm_(gc.t(), xc)
    assert gw is not None
    return gw


def _weight_grad_float32(grad: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``sum_t grad[t + 1]^T x[t]`` in float32 for float32 ``x`` (batch, T, in) as the forward read it
    (undelayed, contiguous: no copy) and ``grad`` (batch, T, out): the gradient is shifted one step
    instead of the inputs (its step 0 reads nothing; the inputs' last step feeds nothing)."""
    batch, steps, n_out = grad.shape
    gs = torch.zeros(batch, steps, n_out, dtype=torch.float32)
    gs[:, :-1] = grad[:, 1:]
    return gs.view(-1, n_out).t() @ x.view(-1, x.shape[-1])


def _as_int8(t: torch.Tensor) -> torch.Tensor | None:
    """``t`` as int8 if every value is an integer in [-128, 127] (checked by a round trip), else None."""
    t8 = t.to(torch.int8)
    return t8 if torch.equal(t8.to(t.dtype), t) else None


def _inputs_as_int8_delayed(x: torch.Tensor) -> torch.Tensor | None:
    """(batch, T, in) inputs delayed one step as a contiguous int8 (batch, T, in) tensor (step 0 zero),
    if every value is an integer in [-128, 127]; else None."""
    k = _use_kernels(x) if x.dtype in (torch.float32, torch.float64) else None
    if k is None:
        x8 = _as_int8(x[:, :-1])
        return None if x8 is None else torch.nn.functional.pad(x8, (0, 0, 1, 0))
    x8 = torch.empty(x.shape, dtype=torch.int8)
    bad = torch.empty(x.shape[0], dtype=torch.int64)
    k["to_int8_delayed"](_np(x), _np(x8), _np(bad))       # one pass: delay, convert and check
    return None if bool(bad.any()) else x8


def _delayed_integer_matmul(x: torch.Tensor, w: torch.Tensor, keep_int8: bool = False
                            ) -> "torch.Tensor | tuple[torch.Tensor, torch.Tensor | None]":
    """(batch, T, in) x (out, in) -> float64 (batch, T, out), step t = x[t - 1] @ w.T, step 0 = 0
    (with ``keep_int8``: and the delayed int8 inputs (batch, T, in) if the int8 GEMM ran, else None).

    The sums are integers, so every exact method gives the same bits; the fastest that applies is
    used: int8 GEMM with int32 accumulation (CPU; spikes and signed spikes times Loihi's even 8-bit
    weights, halved), float32 where every partial sum stays below 2**24, else float64.
    """
    x = x.detach()
    batch, steps, n_in = x.shape
    xs = x[:, :-1]
    a: torch.Tensor | None = None
    if x.device.type == "cpu" and xs.numel() and n_in * 128 * 128 < 2**31:
        w8 = _as_int8(w.detach() / 2)
        x8 = _inputs_as_int8_delayed(x) if w8 is not None else None
        if x8 is not None and w8 is not None:   # the delayed layout: row (b, 0) is zero, so is its sum
            r = torch._int_mm(x8.view(-1, n_in), w8.t().contiguous())
            out = torch.empty(batch, steps, w.shape[0], dtype=torch.float64)
            k = _use_kernels(r)
            if k is not None:                       # widened and doubled in one pass
                k["widen"](_np(r), 2.0, _np(out.view(-1, w.shape[0])))
            else:
                out.view(-1, w.shape[0]).copy_(r).mul_(2.0)
            return (out, x8) if keep_int8 else out
    if exact_float32(xs, w):
        a = (xs.to(torch.float32) @ w.to(torch.float32).t()).to(torch.float64)
    else:
        a = xs.to(torch.float64) @ w.to(torch.float64).t()
    a = torch.nn.functional.pad(a.reshape(batch, xs.shape[1], w.shape[0]), (0, 0, 1, 0))
    return (a, None) if keep_int8 else a


def exact_float32(x: torch.Tensor, w: torch.Tensor) -> bool:
    """Whether float32 computes ``x @ w.T`` exactly: both integer-valued, and every product and
    partial sum of magnitude below 2**24."""
    if x.numel() == 0 or w.numel() == 0:
        return True
    bound = float(x.abs().max()) * float(w.abs().max()) * x.shape[-1]
    return bound < 2.0**24 and bool((x == x.trunc()).all()) and bool((w == w.trunc()).all())


def integer_synapses(x: torch.Tensor, w: torch.Tensor, grad_dtype: torch.dtype | None = None) -> torch.Tensor:
    """Hardware-exact dense synapses: float64 ``delay(x) @ w.T`` for integer-valued spikes (or graded
    values) and integer weights, exact in any summation order, as fast as the values allow.
    ``grad_dtype``: the precision of the weight gradient's sums (the trained parameters', default
    ``w``'s; :func:`_weight_grad_int8`)."""
    if torch.is_grad_enabled() and (x.requires_grad or w.requires_grad):
        return _ExactIntegerMatmul.apply(x, w, grad_dtype or w.dtype)
    return _delayed_integer_matmul(x, w)


def float_synapses(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Float dense synapses ``delay(x) @ w.T``: the GEMM skips the last step, which no one reads."""
    return torch.nn.functional.pad(x[:, :-1] @ w.t(), (0, 0, 1, 0))


#: the most (batch x time x stacked output) values one GEMM of :func:`delayed_synapses` produces at a
#: time; delay groups beyond it go into further GEMMs
_DELAY_STACK_ELEMENTS = 2**25


def delayed_synapses(x: torch.Tensor, w: torch.Tensor, delay: torch.Tensor,
                     synapses: "Callable[[torch.Tensor, torch.Tensor], torch.Tensor]",
                     post: "Callable[[torch.Tensor], torch.Tensor] | None" = None) -> torch.Tensor:
    """Dense synapses with per-synapse delays: ``a[t] = sum_d post(W_d @ x[t-1-d])`` (batch, T, out).

    ``delay`` (integers, broadcastable to ``w``'s (out, in)) adds ``d`` steps to the synapse's one;
    ``W_d`` keeps the weights of delay ``d`` (zero elsewhere); ``synapses(x, W)`` is the undelayed kernel
    (:func:`integer_synapses` or :func:`float_synapses`: step t = ``W @ x[t-1]``), ``post`` what the chip
    does to each delay group's sum on its own (the graded encoding layer's floor of ``/ 2**bits``: Lava's
    DelayDense shifts each slot of its buffer separately, compiler/ir.py).

    Over (batch x time) at once, never a loop over steps: the groups' weights (each on the rows that
    hold synapses of its delay) are stacked into one GEMM, whose output slices are shifted ``d`` steps
    and added; per-neuron delays thus cost one ordinary GEMM, per-synapse delays one GEMM ``groups``
    times as tall. Per-input delays without ``post`` shift the inputs instead (one ordinary GEMM).
    Groups whose spikes would arrive after the last step are left out. Linear in ``x`` and ``w``:
    each group's weights get the gradient of their own group only."""
    batch, steps, _ = x.shape
    n_out, n_in = w.shape
    delay = delay.to(w.device)
    values = [int(v) for v in torch.unique(delay).tolist()]
    values = [d for d in values if d <= steps - 2] or values[:1]       # the rest never arrives
    if len(values) == 1 and int(delay.min()) == int(delay.max()):       # one delay for every synapse
        return _shift(synapses(x, w), values[0], post)
    if post is None and delay.shape[0] == 1:    # per input: shift each input's spikes, then one GEMM
        t = torch.arange(steps, device=x.device)[:, None] - delay[0].to(x.device).long()[None, :]   # (T, in)
        xd = torch.gather(x, 1, t.clamp(min=0).expand(batch, steps, n_in))
        return synapses(xd * (t >= 0).to(x.dtype), w)
    full = delay.expand(n_out, n_in)
    groups: list[tuple[int, torch.Tensor | None, torch.Tensor]] = []    # (d, rows or None: all, W_d there)
    for d in values:
        mask = full == d
        r = mask.any(1)
        if bool(r.all()):
            groups.append((d, None, torch.where(mask, w, w.new_zeros(()))))
        else:
            rows = r.nonzero().squeeze(1)
            groups.append((d, rows, torch.where(mask[rows], w[rows], w.new_zeros(()))))
    total: torch.Tensor | None = None
    budget = max(1, _DELAY_STACK_ELEMENTS // max(1, batch * steps))
    start = 0
    while start < len(groups):
        stop, height = start, 0
        while stop < len(groups) and (stop == start or height + groups[stop][2].shape[0] <= budget):
            height += groups[stop][2].shape[0]
            stop += 1
        chunk = groups[start:stop]
        a_all = synapses(x, torch.cat([g[2] for g in chunk]) if len(chunk) > 1 else chunk[0][2])
        parts = a_all.split([g[2].shape[0] for g in chunk], dim=-1)    # backward: one cat, not a sum of pads
        for (d, rows, _), part in zip(chunk, parts):
            a = _shift(part, d, post)
            if rows is not None:
                a = a.new_zeros(batch, steps, n_out).index_add(2, rows, a)
            total = a if total is None else total + a
        start = stop
    assert total is not None
    return total


def _shift(a: torch.Tensor, d: int, post: "Callable[[torch.Tensor], torch.Tensor] | None") -> torch.Tensor:
    """One delay group's sums ``post``-processed and delivered ``d`` steps later (what would arrive after
    the last step dropped)."""
    if post is not None:
        a = post(a)
    if not d:
        return a
    keep = max(a.shape[1] - d, 0)
    return torch.nn.functional.pad(a[:, :keep], (0, 0, a.shape[1] - keep, 0))


# --- fused CPU kernels (numba) for the hardware-exact hot path -------------------------------------
#
# The per-step loops above issue ~10 small torch ops per step and layer; on a CPU each is a separate
# pass over (batch, n) and, with more than one thread, a separate parallel region (on a shared machine
# a region waits for a descheduled thread: ~15 ms measured for one 128 x 256 trunc_ with 2 threads under
# load). The kernels below run a layer's whole time loop in one call, sample by sample, with the same
# float64 operations in the same order as the torch code above, so the forward is bit-identical and the
# gradient equal within float64 rounding (tests/test_recurrence.py checks both, against the torch path
# and the step functions). They are plain Python functions compiled on first use (numba, cached on
# disk), serial (see :func:`_kernels`). Without numba, or off the CPU, the torch code runs.

_prange = range
_KERNELS: "dict[str, Any] | None" = None
#: set False to force the torch code (tests compare the two)
USE_KERNELS = True


def _hw_forward_py(a, b, a_scale, ku, kv, offset, top, need_int32, need_wrap24, need_clip, spiking,
                   vpre, spikes, mask, out):  # pragma: no cover - compiled by numba
    batch, steps, n = a.shape
    two31 = 2.0**31
    two32 = 2.0**32
    for bi in _prange(batch):
        u = np.zeros(n)
        v = np.zeros(n)
        for t in range(steps):
            for i in range(n):
                d = a[bi, t, i] * a_scale
                if need_int32:
                    d = d - np.floor((d + two31) / two32) * two32
                ut = np.trunc(u[i] * ku) + d
                if need_int32:
                    ut = ut - np.floor((ut + two31) / two32) * two32
                if need_wrap24:                       # wrap once: '>' then '<=' as Lava does
                    if ut > top:
                        ut = ut - 2 * top
                    if ut <= -top:
                        ut = ut + 2 * top
                u[i] = ut
                vt = np.trunc(v[i] * kv) + ut + b[i]
                if need_int32:
                    vt = vt - np.floor((vt + two31) / two32) * two32
                if need_clip:
                    mask[bi, t, i] = vt >= -(top - 1) and vt <= top - 1
                    vt = min(max(vt, -(top - 1)), top - 1)
                vpre[bi, t, i] = vt
                st = vt > offset
                spikes[bi, t, i] = st
                vn = 0.0 if st else vt
                v[i] = vn
                if spiking:
                    out[bi, t, i] = 1.0 if st else 0.0
                else:
                    out[bi, t, i] = vn


def _hw_backward_py(vpre, spikes, mask, use_mask, g_out, h, rect_width, offset, unit, inv_unit, ku, kv_grad,
                    reset_gradient, spiking, a_scale, g_a, g_b):  # pragma: no cover - compiled by numba
    """``inv_unit`` > 0: ``1 / unit``, exact (``unit`` a power of two), so that ``y * inv_unit`` is
    ``y / unit`` bit for bit without a division."""
    batch, steps, n = vpre.shape
    for bi in _prange(batch):
        gvc = np.zeros(n)
        gun = np.zeros(n)
        gb = np.zeros(n)
        for t in range(steps - 1, -1, -1):
            for i in range(n):
                vp = vpre[bi, t, i]
                if rect_width > 0:                    # STBPRect's surrogate, as its torch code
                    x = (vp - offset) * inv_unit if inv_unit > 0 else (vp - offset) / unit
                    hh = (1.0 if abs(x) < rect_width / 2 else 0.0) / rect_width
                else:
                    hh = h[bi, t, i]
                s = 1.0 if spikes[bi, t, i] else 0.0
                dv = 0.0
                if reset_gradient:
                    dv = -vp * inv_unit if inv_unit > 0 else -vp / unit
                through = (1.0 - s) + hh * dv
                m = 1.0
                if use_mask:
                    m = 1.0 if mask[bi, t, i] else 0.0
                    through = through * m
                if spiking:
                    gh = g_out[bi, t, i] * hh
                    gh = gh * inv_unit if inv_unit > 0 else gh / unit
                    g = gh * m + gvc[i] * (through * kv_grad)
                else:
                    g = (g_out[bi, t, i] + kv_grad * gvc[i]) * through
                gvc[i] = g
                gu = g + ku * gun[i]
                gun[i] = gu
                g_a[bi, t, i] = gu * a_scale
                gb[i] += g
        for i in range(n):
            g_b[bi, i] = gb[i]


def _to_int8_delayed_py(x, out, bad):  # pragma: no cover - compiled by numba
    """out[b, 0] = 0, out[b, t] = int8(x[b, t - 1]); bad[b] counts the values that are not an integer
    in [-128, 127] (NaN included). Branch-free, so the inner loop vectorises."""
    batch, steps, n = out.shape
    for bi in _prange(batch):
        nbad = 0
        for i in range(n):
            out[bi, 0, i] = 0
        for t in range(1, steps):
            for i in range(n):
                v = np.float64(x[bi, t - 1, i])
                c = min(max(v if v == v else 0.0, -128.0), 127.0)
                q = np.int8(c)
                out[bi, t, i] = q
                nbad += np.float64(q) != v
        bad[bi] = nbad


def _integer_bound_py(x):  # pragma: no cover - compiled by numba
    """(max |x|, whether every value is an integer) of a flat array in one pass (NaN: not an integer)."""
    m = 0.0
    bad = 0
    for i in range(x.size):
        v = x[i]
        m = max(m, abs(v))
        bad += v != np.trunc(v)
    return m, bad == 0


def integer_bound(x: torch.Tensor) -> tuple[float, bool]:
    """(max |x|, whether every value of ``x`` is an integer): one kernel pass where it can, else torch's."""
    k = _use_kernels(x) if x.dtype in (torch.float32, torch.float64) and x.is_contiguous() else None
    if k is not None and x.numel():
        m, ok = k["integer_bound"](_np(x).reshape(-1))
        return float(m), bool(ok)
    if x.numel() == 0:
        return 0.0, True
    lo, hi = torch.aminmax(x)
    return max(-float(lo), float(hi)), bool((x == x.trunc()).all())


def _widen_py(r, scale, a):  # pragma: no cover - compiled by numba
    """a = float64(r) * scale (exact: |r| < 2**31, scale a power of two), r and a (rows, n)."""
    rows, n = a.shape
    for j in _prange(rows):
        for i in range(n):
            a[j, i] = r[j, i] * scale


def _kernels() -> "dict[str, Any] | None":
    """The compiled kernels, or None where numba is missing (the torch code runs then)."""
    global _KERNELS
    if _KERNELS is None:
        try:
            import numba
        except ImportError:  # pragma: no cover
            _KERNELS = {}
            return None
        # serial kernels: with numba's thread pool beside torch's OpenMP threads on the same cores, a
        # training step ran 3.3x slower (430 vs 131 ms, MLP T=25, 2 cores: the pools wait on each other)
        jit = numba.njit(nogil=True, cache=True, error_model="numpy")
        _KERNELS = {"forward": jit(_hw_forward_py), "backward": jit(_hw_backward_py),
                    "to_int8_delayed": jit(_to_int8_delayed_py), "widen": jit(_widen_py),
                    "integer_bound": jit(_integer_bound_py)}
    return _KERNELS or None


def _use_kernels(*tensors: torch.Tensor) -> "dict[str, Any] | None":
    if not USE_KERNELS or any(t.device.type != "cpu" for t in tensors):
        return None
    return _kernels()


def _np(t: torch.Tensor) -> Any:
    return t.detach().numpy()


_THREADS: Any = None      # the kernels' threads (concurrent.futures), made on first use
#: neuron updates (samples x steps x neurons) from which a kernel call is split over torch's threads:
#: LeNet's layers (50M per call, ~200 ms) gained; the MLP's (3M, ~10 ms) lost to the threads' start-up
#: and to torch's OpenMP workers still spinning from the op before (measured slower, docs/performance.md)
KERNEL_SPLIT_UPDATES = 2**24


def _by_samples(kernel: Any, batch: int, split: tuple[int, ...], *args: Any) -> None:
    """``kernel(*args)``, where the call is large (:data:`KERNEL_SPLIT_UPDATES`) with the arrays at
    positions ``split`` whose leading dimension is ``batch`` (placeholders of shape (1, 1, 1) stay whole)
    cut into one contiguous part of the samples per torch thread, the parts run at once in Python threads
    (the kernels release the GIL). Every sample is computed by the same serial code, so the results are
    those of one call."""
    global _THREADS
    parts = min(torch.get_num_threads(), batch)
    if parts <= 1 or args[split[0]].size < KERNEL_SPLIT_UPDATES:
        kernel(*args)
        return
    if _THREADS is None or _THREADS._max_workers < parts - 1:
        from concurrent.futures import ThreadPoolExecutor

        _THREADS = ThreadPoolExecutor(max_workers=parts - 1, thread_name_prefix="snnc-kernel")
    bounds = [batch * p // parts for p in range(parts + 1)]

    def run(p: int) -> None:
        lo, hi = bounds[p], bounds[p + 1]
        kernel(*(a[lo:hi] if i in split and a.shape[0] == batch else a for i, a in enumerate(args)))

    pending = [_THREADS.submit(run, p) for p in range(1, parts)]
    run(0)
    for f in pending:
        f.result()

