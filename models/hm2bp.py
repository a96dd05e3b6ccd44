"""HM2-BP (Jin, Zhang, Li, NeurIPS 2018, arXiv:1805.07866): backpropagation at the spike-train level.

No per-step surrogate and no BPTT: after the whole (deployable, unchanged) forward pass, each layer's
gradient is formed from its recorded spike trains alone (docs/rules-hm2bp.md has every equation and
the source of each choice; the official code is jinyyy666/mm-bp-snn):

* S-PSP e_{i|j}: the paper's dual-exponential kernel eps(t, s) with reset, summed over every post
  spike of i and every earlier spike of pre neuron j;
* macro level: delta_i = (dE/do_i) / nu, dE/dw_ij = delta_i e_{i|j} (1 + S_i), S_i the side effect;
* micro level: dE/do_j = sum_i delta_i w_ij e_{i|j} / o_j, sent to the previous layer.

Our neuron (``snnc.compiler.ir``): u[t] = k_u u[t-1] + W s_in[t-1]; v[t] = k_v v[t-1] + u[t] + b;
spike if v > nu, then v := 0. With k_u = 1 - current_decay = e^(-1/tau_s) and
k_v = 1 - voltage_decay = e^(-1/tau_m), the paper's eps(t, s) is *exactly* this neuron's potential
per unit weight (float mode), once its amplitude 1/(1 - tau_s/tau_m) (the paper's neuron adds
eps/tau_s to v) is replaced by ours, 1/(k_v - k_u) (ours adds u). Then sum_j w_ij e_{i|j} + b_i e_{i|b}
is the sum of v_i over i's spike times, so o_i ~ a_i / nu holds as the paper assumes.

Layers without :meth:`layer_backward` (a membrane readout, an encoding or NeuNorm layer) would need
the per-step surrogate, which HM2-BP does not have: their backward raises.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from snnc.models.rules import Rule

#: e_{i|j}/o_i used in the side effect of a silent post neuron (official code: ``ratio = 0.5``)
SILENT_SIDE_RATIO = 0.5


def voltage_kernel(m: torch.Tensor, ku: float, kv: float) -> torch.Tensor:
    """Potential at step m >= 1 after a unit current injection (reset-free): (k_v^m - k_u^m)/(k_v - k_u).

    The paper's (e^(-m/tau_m) - e^(-m/tau_s)) / (1 - tau_s/tau_m), with our neuron's amplitude; the
    limit m k^(m-1) when the two decays are equal.
    """
    if abs(kv - ku) < 1e-6:
        return m * kv ** (m - 1)
    return (kv**m - ku**m) / (kv - ku)


def psp_kernel(t: torch.Tensor, s: torch.Tensor, ku: float, kv: float) -> torch.Tensor:
    """Paper's eps(t, s) = e^(-max(t-s, 0)/tau_s) * K(min(s, t)), T_refrac = 0.

    ``t`` >= 1: steps from the pre spike (as emitted, before the synaptic delay) to the post spike;
    ``s`` >= 1: steps from the post neuron's previous reset to that post spike. A pre spike older
    than the reset left only its synaptic current, decayed by k_u^(t - s), to charge v again.
    """
    return ku ** (t - s).clamp(min=0) * voltage_kernel(torch.minimum(t, s), ku, kv)


def steps_since_reset(post: torch.Tensor) -> torch.Tensor:
    """(batch, T, n) spikes -> s[b, t, i] = t - (i's last spike before t), or t + 1 if none.

    The state starts at zero, i.e. as if just reset at step -1.
    """
    steps = post.shape[1]
    t = torch.arange(steps, device=post.device).view(1, steps, 1)
    marked = torch.where(post > 0, t, torch.full_like(t, -1)).expand_as(post)
    last = torch.cummax(marked, dim=1).values                       # last spike at or before t
    before = torch.cat([torch.full_like(last[:, :1], -1), last[:, :-1]], dim=1)
    return (t - before).to(post.dtype)


def spike_train_psp(s_in: torch.Tensor, post: torch.Tensor, ku: float, kv: float,
                    silent_effect: float) -> tuple[torch.Tensor, torch.Tensor]:
    """S-PSPs of a layer: e (batch, out, in) for the synapses and e_b (batch, out) for the bias.

    ``s_in`` are the pre spikes as the previous layer emitted them (batch, T, in): the one-step delay
    is in the kernel (t = t_post - t_pre >= 1, so s_in[T-1] never counts). The bias is an input that
    enters v directly at every step: sum over post spikes of sum_{m=0}^{s-1} k_v^m. A post neuron that
    never fired gets ``silent_effect`` from every pre neuron that the layer saw fire (and the bias).
    """
    steps = s_in.shape[1]
    s = steps_since_reset(post)                                      # (batch, T, out)
    # e_{i|j} = sum_t k_i[t] s_j[t]: k_i[t_pre] = sum over i's later spikes of eps(t_post - t_pre, s)
    k = post.new_zeros(post.shape[0], post.shape[2], steps)          # (batch, out, T_pre)
    for tf in range(1, steps):
        t = (tf - torch.arange(tf, device=post.device, dtype=post.dtype)).view(1, 1, tf)
        k[:, :, :tf] += psp_kernel(t, s[:, tf, :, None], ku, kv) * post[:, tf, :, None]
    e = k @ s_in.to(k.dtype)                                         # (batch, out, in)
    geometric = (1 - kv**s) / (1 - kv) if kv != 1.0 else s
    e_bias = (post * geometric).sum(dim=1)
    silent = post.sum(dim=1) == 0                                    # (batch, out)
    seen = s_in[:, :-1].abs().sum(dim=1) > 0                         # (batch, in): fired into the window
    e.masked_fill_(silent[:, :, None] & seen[:, None, :], silent_effect)
    e_bias.masked_fill_(silent, silent_effect)
    return e, e_bias


class _HM2BPFunction(torch.autograd.Function):
    """Identity on the recorded spikes; backward = HM2-BP's gradients for s_in, weight and bias."""

    @staticmethod
    def forward(ctx: Any, s_in: torch.Tensor, weight: torch.Tensor,  # type: ignore[override]
                bias: torch.Tensor | None, spikes: torch.Tensor, rule: "HM2BP", layer: Any) -> torch.Tensor:
        ctx.save_for_backward(s_in, weight, bias, spikes)
        ctx.rule, ctx.layer = rule, layer
        return spikes.clone()

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor) -> tuple[Any, ...]:  # type: ignore[override]
        s_in, weight, bias, spikes = ctx.saved_tensors
        rule, layer = ctx.rule, ctx.layer
        dtype = weight.dtype
        x, post, w = s_in.detach().to(dtype), spikes.to(dtype), weight.detach()
        b = bias.detach() if bias is not None else None
        nu = float(layer.threshold)
        ku, kv = 1.0 - float(layer.current_decay), 1.0 - float(layer.voltage_decay)
        e, e_bias = spike_train_psp(x, post, ku, kv, rule.silent_effect)
        # dE/do_i: the mean over t of the incoming gradient (exact when E depends on counts only)
        delta = grad_out.to(dtype).mean(dim=1) / nu                   # (batch, out)
        o_post = post.sum(dim=1)
        o_pre = x[:, :-1].abs().sum(dim=1)                            # pre spikes the layer saw
        grad_x = grad_w = grad_b = None
        if ctx.needs_input_grad[1] or ctx.needs_input_grad[2]:
            scaled = delta
            if rule.side_effect:
                total = torch.einsum("ij,bij->bi", w, e) + (b * e_bias if b is not None else 0.0)
                silent_total = SILENT_SIDE_RATIO * (w.sum(dim=1) + (b if b is not None else 0.0))
                side = torch.where(o_post > 0, total / o_post.clamp(min=1), silent_total) / nu
                scaled = delta * (1 + side)
            if ctx.needs_input_grad[1]:
                grad_w = torch.einsum("bi,bij->ij", scaled, e)
            if ctx.needs_input_grad[2]:
                grad_b = (scaled * e_bias).sum(dim=0)
        if ctx.needs_input_grad[0]:
            # dE/do_j = sum_i delta_i w_ij r_ij, r_ij = e_{i|j}/o_j, or 1 where o_i = 0 or o_j = 0
            fired = (o_post > 0).to(dtype)
            via_e = torch.einsum("bi,ij,bij->bj", delta * fired, w, e) / o_pre.clamp(min=1)
            d_pre = torch.where(o_pre > 0, via_e + (delta * (1 - fired)) @ w, delta @ w)
            # a function of the count o_j = sum_t s_j[t] has this same gradient at every step
            grad_x = d_pre[:, None, :].expand(s_in.shape).to(s_in.dtype)
        return grad_x, grad_w, grad_b, None, None, None


@dataclass(frozen=True)
class HM2BP(Rule):
    """HM2-BP: spike-train-level gradients after the full forward, rate-coded loss with a margin.

    ``desired_rate`` / ``undesired_rate``: target firing rates of the correct / other classes, and
    errors with |rate - target| <= ``margin`` are ignored (the code's 35 / 5 / 5 spikes of 400 steps,
    rescaled for T ~ 20). ``silent_effect``: the code's e_{i|j} of a silent post neuron whose pre neuron
    fired (keeps its gradient alive). ``side_effect``: the (1 + S_i) factor on the weight gradient.
    ``loss`` is not used: the objective is HM2-BP's own.

    Kernel: tau_s, tau_m from the layer's own decays (module docstring) and T_refrac = 0, as our
    neuron has no refractory period. Hardware-exact layers use the float weight, bias and decays (the
    chip's 12-bit decays differ by < 1/4096; its rounding makes the S-PSP identity approximate).
    """

    name: ClassVar[str] = "hm2bp"
    custom_layer_backward: ClassVar[bool] = True
    #: measured on the 784-128-10 MLP (MNIST-format digits, 5 epochs): at 5e-3 (1.4e-3 for the 784-input
    #: layer after fan-in scaling) the hidden layer lost 93 of 128 neurons to silence in the first epoch and
    #: accuracy fell from 67% to 16%; at 2e-3 it trains steadily (76%). The paper: Adam 1e-3 at batch 1.
    default_lr: ClassVar[float] = 2e-3
    desired_rate: float = 0.6
    undesired_rate: float = 0.05
    margin: float = 0.05
    silent_effect: float = 0.1
    side_effect: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0.0 <= self.undesired_rate <= 1.0 or not 0.0 <= self.desired_rate <= 1.0:
            raise ValueError("desired_rate and undesired_rate must be in [0, 1]")
        if self.margin < 0:
            raise ValueError(f"margin must be >= 0, got {self.margin}")

    def surrogate(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError(
            "HM2-BP has no per-step surrogate: it trains spiking CUBA-LIF layers through layer_backward "
            "only, not a membrane readout, an encoding (input_bits) layer or NeuNorm")

    def layer_backward(self, layer: Any, s_in: torch.Tensor, spikes: torch.Tensor) -> torch.Tensor:
        """``spikes`` unchanged, with HM2-BP's gradients w.r.t. ``s_in``, ``layer.weight``, ``layer.bias``."""
        return _HM2BPFunction.apply(s_in, layer.weight, layer.bias, spikes, self, layer)

    def objective(self, scores: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """E = 1/2 sum_c (r_c - y_c)^2 over errors beyond the margin, mean over the batch; ``scores``
        are the output firing rates r (batch, classes): the code's count loss divided by T^2."""
        y = torch.full_like(scores, self.undesired_rate)
        y.scatter_(1, target.view(-1, 1).long(), self.desired_rate)
        err = scores - y
        outside = (err.abs() > self.margin + 1e-6).to(scores.dtype)   # 1e-6: rates are multiples of 1/T
        return 0.5 * (outside * err * err).sum(dim=-1).mean()
