"""models/: golden neuron traces, the STBP surrogate's closed form, quantizers, checkpoints."""
from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from snnc.errors import InputFileError, SnncError, UnsupportedLayerError
from snnc.models.checkpoint import load, save
from snnc.models.datasets import encode_samples, load_dataset
from snnc.models.neurons import CubaDense, cuba_hw_step, delay_one_step
from snnc.models.quant import decay_to_int, weight_to_int
from snnc.models.rules import STBPRect, make_rule, rate_mse_loss
from snnc.models.train import train

from conftest import make_model


def test_hw_step_golden_trace() -> None:
    """Hand-computed: du_eff=1024, dv=0, vth=100 (effective 6400), input a=30 at step 1 only.

    u1 = 0 + 30*64 = 1920; v1 = 1920.  u2 = trunc(1920*3072/4096) = 1440; v2 = 3360.
    u3 = 1080; v3 = 4440.  u4 = 810; v4 = 5250.  u5 = trunc(607.5) = 607; v5 = 5857.
    u6 = trunc(455.25) = 455; v6 = 6312.  u7 = trunc(341.25) = 341; v7 = 6653 > 6400: spike, v := 0.
    """
    rule = STBPRect()
    u = v = torch.zeros(1, 1, dtype=torch.float64)
    us, vs, ss = [], [], []
    for t in range(7):
        a = torch.full((1, 1), 30.0 if t == 0 else 0.0, dtype=torch.float64)
        s, u, v = cuba_hw_step(a, u, v, 0.0, du=1024, dv=0, vth=100, unit=6400.0, rule=rule)
        us.append(int(u)), vs.append(int(v)), ss.append(int(s))
    assert us == [1920, 1440, 1080, 810, 607, 455, 341]
    assert vs == [1920, 3360, 4440, 5250, 5857, 6312, 0]
    assert ss == [0, 0, 0, 0, 0, 0, 1]


def test_hw_step_rounds_negative_toward_zero_and_wraps_u() -> None:
    rule = STBPRect()
    u = torch.tensor([[-1001.0]], dtype=torch.float64)
    s, u2, _ = cuba_hw_step(torch.zeros(1, 1, dtype=torch.float64), u, torch.zeros_like(u), 0.0,
                            du=2048, dv=0, vth=1, unit=64.0, rule=rule)
    assert int(u2) == -500  # -1001 * 2048 / 4096 = -500.5 -> -500 (toward zero), not -501 (floor)
    top = 2**23
    u = torch.tensor([[top - 10.0]], dtype=torch.float64)
    _, u3, v3 = cuba_hw_step(torch.ones(1, 1, dtype=torch.float64), u, torch.zeros_like(u), 0.0,
                             du=0, dv=0, vth=131071, unit=64.0, rule=rule)
    assert int(u3) == top - 10 + 64 - 2**24  # wrapped
    assert int(v3) == top - 10 + 64 - 2**24  # v follows the wrapped u


def test_stbp_rect_gradient_matches_closed_form() -> None:
    """dL/dx through the spike = upstream * (1/a) 1[|x| < a/2] (Wu et al. 2018, h1)."""
    rule = STBPRect(width=1.0)
    x = torch.tensor([-0.6, -0.4, 0.0, 0.3, 0.49, 0.51, 2.0], requires_grad=True)
    s = rule.spike(x)
    assert s.tolist() == [0, 0, 0, 1, 1, 1, 1]  # strict '>'
    s.sum().backward()
    assert x.grad.tolist() == [0, 1, 1, 1, 1, 0, 0]
    rule2 = STBPRect(width=2.0)
    x2 = torch.tensor([-1.5, -0.9, 0.9, 1.1], requires_grad=True)
    rule2.spike(x2).sum().backward()
    assert x2.grad.tolist() == [0, 0.5, 0.5, 0]


def test_rate_mse_loss_closed_form() -> None:
    out = torch.zeros(2, 4, 3)
    out[0, :, 1] = 1          # sample 0: class 1 fires every step -> rate (0, 1, 0)
    out[1, :2, 0] = 1         # sample 1: class 0 half the time  -> rate (0.5, 0, 0)
    loss = rate_mse_loss(out.mean(dim=1), torch.tensor([1, 2]))
    assert loss.item() == pytest.approx(0.5 * (0 + (0.25 + 1)) / 2)


def test_unknown_rule_lists_supported() -> None:
    with pytest.raises(SnncError, match="stbp-rect"):
        make_rule("nope")


def test_weight_quantizer_even_clamped_half_even() -> None:
    w = torch.tensor([0.0, 1 / 64, 3 / 64, 5.0, -5.0, 100 / 64, -1 / 64])
    q = weight_to_int(w, 64.0)
    # 1 -> 0 (half to even of 0.5), 3 -> 4 (1.5 -> 2), clamp at 254 / -256, 100 -> 100, -1 -> 0 (-0.5 -> -0)
    assert q.tolist() == [0, 0, 4, 254, -256, 100, 0]
    assert decay_to_int(0.25) == 1024 and decay_to_int(1.0) == 4096 and decay_to_int(0.0) == 0


def test_weight_quantizer_is_straight_through() -> None:
    w = torch.tensor([0.3, -0.2], requires_grad=True)
    weight_to_int(w, 64.0).sum().backward()
    assert w.grad.tolist() == [64.0, 64.0]


def test_delay_shifts_one_step() -> None:
    x = torch.arange(6.0).reshape(1, 3, 2)
    assert delay_one_step(x)[0].tolist() == [[0, 0], [0, 1], [2, 3]]


def test_layer_modes_agree_on_integers_of_float_model() -> None:
    """A float layer whose parameters are exactly representable gives the same spikes in both modes
    when nothing rounds: du=dv=0 (no decay) and integer weights."""
    layer = CubaDense(4, 3, bias=False, current_decay=0.0, voltage_decay=0.0, threshold=1.0, weight_scale=64.0)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[0.25, 0.5, -0.25, 0.125]] * 3) * torch.tensor([[1.0], [2.0], [-1.0]]))
    x = (torch.rand(2, 15, 4, generator=torch.Generator().manual_seed(1)) < 0.5).float()
    rule = STBPRect()
    # du_eff=0 still decays in hardware (register -1 + 1 = 0: factor 4096/4096): no decay, exact
    assert torch.equal(layer(x, rule, False), layer(x, rule, True).float())


def test_checkpoint_round_trip_loads_with_weights_only(tmp_path: Path) -> None:
    model = make_model()
    path = save(model, tmp_path / "m.pt", metadata={"dataset": "digits"})
    raw = torch.load(path, weights_only=True)  # the format promise: no code needed
    assert raw["format"] == "snnc.checkpoint"
    ckpt = load(path)
    rebuilt = ckpt.build()
    x = torch.from_numpy(encode_samples(np.random.default_rng(0).random((3, 64)), 10, 0)).float()
    assert all(torch.equal(a, b) for a, b in zip(model(x), rebuilt(x)))
    assert ckpt.metadata == {"dataset": "digits"}


class _Evil:
    def __init__(self, target: str):
        self.target = target

    def __reduce__(self):  # noqa: D105 - unpickling this writes a file
        return (open, (self.target, "w"))


def test_malicious_pickle_is_refused_and_runs_nothing(tmp_path: Path) -> None:
    victim = tmp_path / "pwned.txt"
    path = tmp_path / "evil.pt"
    with open(path, "wb") as f:
        torch.save({"format": "snnc.checkpoint", "payload": _Evil(str(victim))}, f)
    with pytest.raises(InputFileError, match="--allow-pickle-code-execution"):
        load(path)
    assert not victim.exists()


@pytest.mark.filterwarnings("ignore:Detected pickle protocol:UserWarning")  # torch's note on plain.pkl
def test_bad_files_give_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(InputFileError, match="no such file"):
        load(tmp_path / "missing.pt")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"this is not a model")
    with pytest.raises(InputFileError, match="not a PyTorch model file"):
        load(junk)
    bare = tmp_path / "bare.pt"
    torch.save(make_model().state_dict(), bare)
    with pytest.raises(InputFileError, match="not an snnc checkpoint"):
        load(bare)
    plain = tmp_path / "plain.pkl"
    plain.write_bytes(pickle.dumps({"a": 1}))
    with pytest.raises(InputFileError):
        load(plain)


def test_unknown_layer_kind_names_layer_and_supported(tmp_path: Path) -> None:
    path = save(make_model(), tmp_path / "m.pt")
    raw = torch.load(path, weights_only=True)
    raw["spec"]["layers"][1]["kind"] = "conv2d"
    torch.save(raw, path)
    with pytest.raises(UnsupportedLayerError, match=r"m\.pt: layer 1 has kind 'conv2d'.*cuba_dense"):
        load(path).build()


def test_digits_split_and_encoding_deterministic() -> None:
    tr, te = load_dataset("digits", "train"), load_dataset("digits", "test")
    assert len(tr.y) + len(te.y) == 1797 and tr.input_size == 64 and 0 <= tr.x.min() and tr.x.max() <= 1
    a, b = encode_samples(te.x[:4], 8, 3), encode_samples(te.x[:4], 8, 3)
    assert a.dtype == bool and a.shape == (4, 8, 64) and np.array_equal(a, b)


def test_training_reduces_loss() -> None:
    data = load_dataset("digits", "train")
    model = make_model(gain=1.0)
    logs = train(model, data, epochs=3, timesteps=10, max_steps=15, lr=5e-3)
    assert logs[-1].loss < logs[0].loss
