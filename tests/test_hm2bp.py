"""HM2-BP: S-PSPs and gradients equal the paper's formulas computed by hand; a tiny network learns.

The closed forms here are written from the paper (eps(t, s) with exponentials and time constants,
loops over spike lists), independently of models/hm2bp.py.
"""
from __future__ import annotations

import math

import pytest
import torch

from snnc.models.hm2bp import HM2BP, spike_train_psp
from snnc.models.network import mlp
from snnc.models.neurons import CubaDense

DU, DV = 0.5, 0.2                                    # the layer's current / voltage decays
TAU_S, TAU_M = -1 / math.log(1 - DU), -1 / math.log(1 - DV)
T = 6
# explicit trains, spike times as emitted (the layer sees pre spikes one step later)
PRE = {0: [0, 2], 1: [3], 2: [5]}                    # pre 2 fires only at T-1: the layer never sees it
POST = {0: [2, 5], 1: []}                            # post 1 is silent


def eps(t: int, s: int) -> float:
    """The paper's eps(t, s), T_refrac = 0, amplitude of a neuron that adds u (not eps/tau_s) to v."""
    amp = 1 / (math.exp(-1 / TAU_M) - math.exp(-1 / TAU_S))
    m = min(s, t)
    return amp * math.exp(-max(t - s, 0) / TAU_S) * (math.exp(-m / TAU_M) - math.exp(-m / TAU_S))


def hand_psp(pre: list[int], post: list[int]) -> float:
    """e_{i|j} = sum over post spikes, over earlier pre spikes, of eps(t_post - t_pre, t_post - t_last)."""
    if not post:
        return 0.1 if any(t < T - 1 for t in pre) else 0.0   # the code's hack for a silent post neuron
    total, last = 0.0, -1
    for tf in post:
        total += sum(eps(tf - tp, tf - last) for tp in pre if tp < tf)
        last = tf
    return total


def hand_bias_psp(post: list[int]) -> float:
    """Bias: 1 into v at every step, sum_{m < s} k_v^m per post spike."""
    if not post:
        return 0.1
    total, last = 0.0, -1
    for tf in post:
        total += sum(math.exp(-m / TAU_M) for m in range(tf - last))
        last = tf
    return total


def trains(times: dict[int, list[int]]) -> torch.Tensor:
    x = torch.zeros(1, T, len(times), dtype=torch.float64)
    for j, ts in times.items():
        x[0, ts, j] = 1.0
    return x


def test_hand_closed_form_itself() -> None:
    k = lambda m: (0.8**m - 0.5**m) / 0.3                      # noqa: E731
    assert hand_psp(PRE[0], POST[0]) == pytest.approx(k(2) + 0.25 * k(3) + k(3))  # 1.3 + 0.3225 + 1.29
    assert hand_psp(PRE[1], POST[0]) == pytest.approx(k(2))


def test_spsp_equals_the_paper_closed_form() -> None:
    e, e_bias = spike_train_psp(trains(PRE), trains(POST), 1 - DU, 1 - DV, silent_effect=0.1)
    want = torch.tensor([[hand_psp(PRE[j], POST[i]) for j in PRE] for i in POST], dtype=torch.float64)
    torch.testing.assert_close(e[0], want, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(e_bias[0], torch.tensor([hand_bias_psp(POST[i]) for i in POST],
                                                       dtype=torch.float64), rtol=1e-12, atol=1e-12)


def test_spsp_sums_to_the_membrane_potential_at_spike_times() -> None:
    """sum_j w_ij e_{i|j} + b_i e_{i|b} = sum over i's spikes of v_i just before the reset (float mode)."""
    torch.manual_seed(0)
    n_in, n_out, steps = 10, 4, 30
    w, b = torch.randn(n_out, n_in, dtype=torch.float64) * 0.6, torch.rand(n_out, dtype=torch.float64) * 0.1
    s_in = (torch.rand(3, steps, n_in) < 0.3).double()
    u = v = torch.zeros(3, n_out, dtype=torch.float64)
    spikes, v_sum = [], torch.zeros(3, n_out, dtype=torch.float64)
    for t in range(steps):                       # the compiler/ir.py equations, written out again
        a = s_in[:, t - 1] @ w.t() if t > 0 else torch.zeros_like(u)
        u = (1 - DU) * u + a
        v = (1 - DV) * v + u + b
        s = (v > 1.0).double()
        v_sum += s * v
        spikes.append(s)
        v = v * (1 - s)
    post = torch.stack(spikes, dim=1)
    assert 0 < post.sum() < post.numel()
    e, e_bias = spike_train_psp(s_in, post, 1 - DU, 1 - DV, silent_effect=0.0)
    fired = post.sum(dim=1) > 0
    total = torch.einsum("ij,bij->bi", w, e) + b * e_bias
    torch.testing.assert_close(total[fired], v_sum[fired], rtol=1e-10, atol=1e-10)


def _layer(threshold: float, bias: bool = True) -> CubaDense:
    layer = CubaDense(3, 2, current_decay=DU, voltage_decay=DV, threshold=threshold, bias=bias).double()
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[0.7, -0.4, 0.3], [0.2, 0.5, -0.6]]))
        if bias:
            layer.bias.copy_(torch.tensor([0.1, -0.05]))
    return layer


@pytest.mark.parametrize("side_effect", [True, False])
def test_gradients_equal_macro_and_micro_formulas(side_effect: bool) -> None:
    nu = 0.8
    layer, rule = _layer(nu), HM2BP(side_effect=side_effect)
    s_in = trains(PRE).requires_grad_(True)
    out = rule.layer_backward(layer, s_in, trains(POST))
    assert torch.equal(out.detach(), trains(POST))
    g = torch.linspace(-1.0, 2.0, T * 2, dtype=torch.float64).view(1, T, 2)   # any dE/ds; dE/do = mean_t
    (out * g).sum().backward()

    w, b = layer.weight.detach().tolist(), layer.bias.detach().tolist()
    o_post = [len(POST[i]) for i in POST]
    o_pre = [sum(t < T - 1 for t in PRE[j]) for j in PRE]
    delta = [g[0, :, i].mean().item() / nu for i in POST]
    e = [[hand_psp(PRE[j], POST[i]) for j in PRE] for i in POST]
    eb = [hand_bias_psp(POST[i]) for i in POST]
    grad_w, grad_b = torch.zeros(2, 3, dtype=torch.float64), torch.zeros(2, dtype=torch.float64)
    for i in POST:
        if not side_effect:
            side = 0.0
        elif o_post[i]:
            side = (sum(w[i][j] * e[i][j] for j in PRE) + b[i] * eb[i]) / (nu * o_post[i])
        else:
            side = 0.5 * (sum(w[i]) + b[i]) / nu
        for j in PRE:
            grad_w[i, j] = delta[i] * e[i][j] * (1 + side)
        grad_b[i] = delta[i] * eb[i] * (1 + side)
    d_pre = [sum(delta[i] * w[i][j] * (e[i][j] / o_pre[j] if o_post[i] and o_pre[j] else 1.0) for i in POST)
             for j in PRE]
    torch.testing.assert_close(layer.weight.grad, grad_w, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(layer.bias.grad, grad_b, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(s_in.grad, torch.tensor(d_pre, dtype=torch.float64).expand(1, T, 3),
                               rtol=1e-10, atol=1e-12)


def test_batched_gradient_is_the_sum_over_samples() -> None:
    torch.manual_seed(1)
    rule, batch = HM2BP(), 3
    s_in = (torch.rand(batch, 12, 3) < 0.4).double()
    post = (torch.rand(batch, 12, 2) < 0.3).double()
    post[1] = 0.0                                                      # one sample with silent posts
    g = torch.randn(batch, 12, 2, dtype=torch.float64)

    def grads(idx: slice) -> tuple[torch.Tensor, ...]:
        layer, x = _layer(1.0), s_in[idx].clone().requires_grad_(True)
        (rule.layer_backward(layer, x, post[idx]) * g[idx]).sum().backward()
        return layer.weight.grad, layer.bias.grad, x.grad

    whole = grads(slice(None))
    parts = [grads(slice(k, k + 1)) for k in range(batch)]
    torch.testing.assert_close(whole[0], sum(p[0] for p in parts))
    torch.testing.assert_close(whole[1], sum(p[1] for p in parts))
    torch.testing.assert_close(whole[2], torch.cat([p[2] for p in parts]))


def test_objective_targets_and_margin() -> None:
    rule = HM2BP(desired_rate=0.6, undesired_rate=0.05, margin=0.05)
    rates = torch.tensor([[0.5, 0.1, 0.3], [0.05, 0.65, 0.0]])
    # sample 0, class 0: |0.5-0.6| = 0.1 > margin; class 1: 0.05 <= margin (ignored); class 2: 0.25
    # sample 1, class 1 (target): 0.05 ignored; classes 0, 2: 0 and 0.05, ignored
    want = 0.5 * (0.1**2 + 0.25**2) / 2
    assert rule.objective(rates, torch.tensor([0, 1])).item() == pytest.approx(want, rel=1e-5)


def _separable(n: int = 32, steps: int = 20) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    proto = torch.full((3, 16), 0.05)
    for c in range(3):
        proto[c, 5 * c:5 * c + 5] = 0.6
    y = torch.randint(0, 3, (n,), generator=g)
    return (torch.rand(n, steps, 16, generator=g) < proto[y][:, None, :]).float(), y


@pytest.mark.parametrize("hardware_exact", [True, False])
def test_tiny_network_learns(hardware_exact: bool) -> None:
    torch.manual_seed(0)
    model = mlp(16, 3, hidden=(12,), rule=HM2BP(), hardware_exact=hardware_exact)
    before = [layer.weight.detach().clone() for layer in model.layers]
    opt = torch.optim.Adam(model.parameters(), lr=0.02)
    x, y = _separable()
    losses = []
    for _ in range(30):
        out = model(x)[-1]
        loss = model.rule.objective(out.mean(dim=1), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.25 * losses[0]
    for layer, w0 in zip(model.layers, before):
        assert (layer.weight.detach() - w0).abs().max() > 0.05


def test_hidden_layer_learns_through_the_micro_level_alone() -> None:
    """With the output layer frozen, only dE/ds_in (micro level) can lower the loss."""
    torch.manual_seed(0)
    model = mlp(16, 3, hidden=(12,), rule=HM2BP(), hardware_exact=False)
    out_layer = model.layers[-1]
    out_layer.weight.requires_grad_(False)
    out_layer.bias.requires_grad_(False)
    opt = torch.optim.Adam(model.layers[0].parameters(), lr=0.02)
    x, y = _separable()
    losses = []
    for _ in range(30):
        loss = model.rule.objective(model(x)[-1].mean(dim=1), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert min(losses[-5:]) < 0.6 * losses[0]
