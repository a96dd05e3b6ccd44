"""Per-layer fixed-point formats: the rule that chooses them, that training keeps them, that every file
format and engine carries them exactly (overflow included), and what they buy at 784 inputs."""
from __future__ import annotations

import copy
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from snnc.compiler.artifact import GRAPH_FILE, NETWORK_FILE, NIR_FILE, ONNX_FILE, load_artifact
from snnc.hwsim.sim import HwSim
from snnc.models.checkpoint import save
from snnc.models.conv import ResidualBlock
from snnc.models.datasets import Dataset, batch_spikes
from snnc.models.network import SpikingNet, layer_from_spec, mlp
from snnc.models.neurons import FIXED_WEIGHT_SCALE, CubaDense
from snnc.models.quant import AUTO_VTH_MAX, AUTO_VTH_MAX_READOUT, LOIHI_FIXED_POINT, choose_weight_scale, weight_to_int
from snnc.models.train import param_groups, train_step
from snnc.pipeline import compile_model

FP = LOIHI_FIXED_POINT


def _fits(weights: list[torch.Tensor], bias: torch.Tensor | None, scale: float) -> bool:
    ok = all(float(w.max()) * scale <= FP.weight_max and float(w.min()) * scale >= FP.weight_min for w in weights)
    return ok and (bias is None or float(bias.abs().max()) * scale <= FP.bias_mant_max)


@settings(max_examples=200, deadline=None)
@given(spread=st.floats(1e-4, 50.0), threshold=st.floats(0.05, 20.0), with_bias=st.booleans(),
       spiking=st.booleans(), seed=st.integers(0, 2**16))
def test_the_chosen_scale_is_the_largest_power_of_two_at_which_nothing_clips(
        spread: float, threshold: float, with_bias: bool, spiking: bool, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    weights = [(torch.rand(7, 5, generator=g) * 2 - 1) * spread, torch.rand(7, 2, generator=g) * spread]
    bias = (torch.rand(7, generator=g) - 0.5) * spread if with_bias else None
    s = choose_weight_scale(weights, bias, threshold, spiking)
    assert math.log2(s) == int(math.log2(s))
    cap = (AUTO_VTH_MAX if spiking else AUTO_VTH_MAX_READOUT) / threshold
    assert s <= cap and _fits(weights, bias, s)
    assert 2 * s > cap or not _fits(weights, bias, 2 * s)      # maximal
    q = weight_to_int(weights[0].double(), s)
    assert int(q.abs().max()) <= 256                            # and so the stored integers never clip


def test_a_784_input_layer_gets_a_fine_format_and_a_fixed_layer_keeps_its_own() -> None:
    torch.manual_seed(0)
    auto, fixed = CubaDense(784, 128), CubaDense(784, 128, weight_scale=FIXED_WEIGHT_SCALE)
    assert auto.weight_scale == AUTO_VTH_MAX and auto.auto_scale and not fixed.auto_scale
    levels = {k: len(torch.unique(weight_to_int(layer.weight.double(), layer.weight_scale)))
              for k, layer in (("auto", auto), ("fixed", fixed))}
    assert levels["fixed"] == 3 and levels["auto"] >= 64   # +-1/28 at steps of 1/32 vs 1/1024 threshold
    with torch.no_grad():
        auto.weight.mul_(40.0)
        fixed.weight.mul_(40.0)
    auto.refit_format()
    fixed.refit_format()
    assert auto.weight_scale == 128.0 and fixed.weight_scale == FIXED_WEIGHT_SCALE   # 254 / (40 / 28) = 177.8


def test_formats_survive_the_checkpoint_spec_and_old_specs_stay_fixed() -> None:
    torch.manual_seed(1)
    block = ResidualBlock((4, 6, 6), 8, stride=2)
    scales = (block.conv_a.weight_scale, block.conv_b.weight_scale)
    again = layer_from_spec(0, block.spec())
    assert (again.conv_a.weight_scale, again.conv_b.weight_scale) == scales and again.conv_a.auto_scale
    layer = CubaDense(10, 3)
    spec = layer.spec()
    assert layer_from_spec(0, spec).weight_scale == layer.weight_scale
    old = {k: v for k, v in spec.items() if k != "auto_scale"} | {"weight_scale": 64.0}   # before per-layer formats
    assert not layer_from_spec(0, old).auto_scale


def test_training_refits_each_layer_after_every_step() -> None:
    torch.manual_seed(2)
    model = mlp(40, 3, hidden=(8,))
    with torch.no_grad():
        model.layers[1].weight.mul_(60.0)    # as if training had grown them: stale format, clipping weights
    stale = model.layers[1].weight_scale
    opt = torch.optim.Adam(param_groups(model, 1e-3))
    train_step(model, opt, (torch.rand(4, 5, 40) < 0.3).float(), torch.tensor([0, 1, 2, 0]))
    w = model.layers[1].weight
    assert model.layers[1].weight_scale < stale
    assert model.layers[1].weight_scale == choose_weight_scale([w], model.layers[1].bias, 1.0)


def _format_model() -> SpikingNet:
    """784 -> 40 -> 10, layers in different formats; no leak and loud positive weights in the first, so that
    its u wraps and v saturates at its chosen format (the overflow case)."""
    torch.manual_seed(0)
    model = mlp(784, 10, hidden=(40,), current_decay=0.0, voltage_decay=0.0)
    with torch.no_grad():
        model.layers[0].weight.abs_().mul_(3.0)
        model.layers[1].weight.mul_(20.0)
    model.refit_formats()
    return model


@pytest.mark.slow
def test_chosen_formats_are_exact_in_every_file_and_engine_overflow_included(tmp_path: Path) -> None:
    model = _format_model()
    scales = {name: pop.weight_scale for name, pop in model.named_populations()}
    assert scales == {"lif1": 2048.0, "lif2": 64.0}
    path = save(model, tmp_path / "m.pt", metadata={"timesteps": 16})
    res = compile_model(path, out=tmp_path / "art", verify=2, report_samples=4)
    assert res.report["verification"]["passed"]           # torch, hwsim and Lava: 0 mismatched spikes
    assert res.report["quantization"]["weight_scales"] == scales
    state = res.report["numerics"]["layers"]["lif1"]["state"]
    assert state["u_wrapped"] > 0 and state["v_clipped"] > 0   # the overflow case is one, and it is reported
    art = load_artifact(res.out)
    for pop in art.graph.populations():
        assert pop.neuron.vth == int(scales[pop.name])    # type: ignore[union-attr]
    inputs = np.random.default_rng(0).random((3, 16, 784)) < 0.2
    ref = HwSim.from_graph(art.graph).run(inputs)
    for name in (GRAPH_FILE, NIR_FILE, ONNX_FILE, NETWORK_FILE):
        again = load_artifact(compile_model(art.path / name, out=tmp_path / f"from-{name}").out)
        for a, b in zip(art.graph.populations(), again.graph.populations()):
            assert a.neuron.vth == b.neuron.vth      # type: ignore[union-attr]
            for (s1, _), (s2, _) in zip(a.inputs, b.inputs):
                np.testing.assert_array_equal(s1.weight, s2.weight)
        got = HwSim.from_graph(again.graph).run(inputs)
        for pop in art.graph.populations():
            np.testing.assert_array_equal(ref.spikes[pop.name], got.spikes[pop.name], err_msg=f"{name}: {pop.name}")


def _digits28() -> Dataset:
    """scikit-learn's digits upscaled to 28x28 (784 inputs), as benchmarks/common.py writes them."""
    from sklearn.datasets import load_digits

    d = load_digits()
    img = torch.from_numpy(d.images / 16.0).float()[:, None]
    big = torch.nn.functional.interpolate(img, size=(24, 24), mode="bilinear", align_corners=False)
    x = torch.nn.functional.pad(big, (2, 2, 2, 2)).clamp(0, 1).reshape(len(img), 784).numpy()
    return Dataset("digits28", x, d.target.astype(np.int64), 10, "rate")


def test_784_input_mlp_trained_a_few_steps_keeps_its_loss_on_the_chip_only_with_per_layer_formats() -> None:
    """Train the 784-64-10 MLP for 40 steps; run the same weights hardware-exact. With per-layer formats
    the loss stays within 0.004 of the float model's on all three seeds; the fixed 1/32-threshold format
    (weights +-1/28 on three integer levels at initialisation) lands above that bound on every seed
    (measured: +0.009 to +0.012; per-layer: -0.002 to +0.001). Trained from scratch hardware-exact, both
    formats reached the same losses (the straight-through weights adapt): the format's gain is that the
    chip computes what the weights mean."""
    data = _digits28()
    held_out = batch_spikes(data, slice(1000, 1256), 8, torch.Generator().manual_seed(0), None)
    labels = torch.from_numpy(data.y[1000:1256])

    def loss(m: SpikingNet) -> float:
        with torch.no_grad():
            return float(m.rule.objective(m.scores(m(held_out)[-1]), labels))

    for seed in (0, 1, 2):
        torch.manual_seed(seed)
        model = mlp(784, 10, hidden=(64,), hardware_exact=False)
        opt = torch.optim.Adam(param_groups(model, 5e-3))
        g = torch.Generator().manual_seed(seed)
        for _ in range(40):
            idx = torch.randint(0, 1000, (32,), generator=g)
            train_step(model, opt, batch_spikes(data, idx, 8, g, None), torch.from_numpy(data.y[idx.numpy()]))
        bound = loss(model) + 0.004
        got = {}
        for auto in (True, False):
            hw = copy.deepcopy(model)
            hw.hardware_exact = True
            for _, pop in hw.named_populations():
                pop.auto_scale, pop.weight_scale = auto, FIXED_WEIGHT_SCALE
            hw.refit_formats()
            got[auto] = loss(hw)
        assert got[True] < bound < got[False], (seed, got, bound)
