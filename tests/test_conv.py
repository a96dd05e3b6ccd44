"""Convolutional networks: conv semantics against Lava's own Conv arithmetic and process, pooling and
BatchNorm folding, residual timing, the model zoo, and train -> compile -> verify on Lava."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from snnc.compiler.frontend import graph_from_module
from snnc.compiler.ir import Graph, Input, Output, QConv, QCubaLIF, QDense
from snnc.compiler.lowering import fuse_pool_into_conv, fuse_pool_into_dense
from snnc.compiler.passes import quantize
from snnc.compiler.targets import LOIHI
from snnc.errors import TargetLimitError, UnsupportedLayerError
from snnc.hwsim.sim import HwSim, conv_input, fan_out
from snnc.models.checkpoint import save
from snnc.models.conv import CubaConv, Flatten, ResidualBlock, SumPool
from snnc.models.datasets import load_dataset
from snnc.models.network import ARCHS, SpikingNet
from snnc.models.neurons import CubaDense
from snnc.models.train import train
from snnc.pipeline import compile_model, run_torch
from snnc.runtime.lava_backend import lava_conv_weight
from snnc.runtime.lava_compat import ensure_lava_importable

geometry = st.fixed_dictionaries({
    "c_in": st.sampled_from([1, 2, 4]), "groups": st.sampled_from([1, 2]), "c_out_per_group": st.integers(1, 3),
    "h": st.integers(3, 9), "w": st.integers(3, 9), "kh": st.integers(1, 3), "kw": st.integers(1, 3),
    "stride": st.tuples(st.integers(1, 3), st.integers(1, 3)), "padding": st.tuples(st.integers(0, 2), st.integers(0, 2)),
    "dilation": st.tuples(st.integers(1, 2), st.integers(1, 2)), "seed": st.integers(0, 2**16)})


def _random_conv(g: dict, weight_range: int = 255) -> QConv | None:
    groups = g["groups"] if g["c_in"] % g["groups"] == 0 else 1
    c_out = g["c_out_per_group"] * groups
    rng = np.random.default_rng(g["seed"])
    w = rng.integers(-weight_range, weight_range + 1, (c_out, g["c_in"] // groups, g["kh"], g["kw"]))
    try:
        return QConv("c", w, (g["c_in"], g["h"], g["w"]), g["stride"], g["padding"], g["dilation"], groups)
    except Exception:
        return None   # the kernel does not fit this input


@settings(max_examples=80, deadline=None)
@given(geometry)
def test_hwsim_conv_equals_lavas_own_conv_arithmetic(g: dict) -> None:
    """hwsim's conv is Lava's fixed-point Conv: lava.proc.conv.utils.conv on Lava's (W, H, C) layout with
    the flipped kernel, then the 24-bit signed_clamp (SP/lava/proc/conv/models.py:34-79)."""
    conv = _random_conv(g, weight_range=2**20)   # large weights: the 24-bit wrap is exercised too
    if conv is None:
        return
    ensure_lava_importable()
    from lava.proc.conv import utils

    rng = np.random.default_rng(g["seed"] + 1)
    s = rng.random((2, conv.in_size)) < 0.5
    ours = conv_input(s, conv)
    for b in range(2):
        x = s[b].reshape(conv.in_shape).transpose(2, 1, 0).astype(np.int32)   # (W, H, C)
        lava = utils.conv(x, lava_conv_weight(conv.weight).astype(np.int32), conv.kernel[::-1], conv.stride[::-1],
                          conv.padding[::-1], conv.dilation[::-1], conv.groups)
        lava = utils.signed_clamp(lava.astype(np.int64), bits=24)
        assert np.array_equal(ours[b], lava.transpose(2, 1, 0).reshape(-1))


@settings(max_examples=40, deadline=None)
@given(geometry)
def test_fan_out_counts_real_synapses(g: dict) -> None:
    conv = _random_conv(g)
    if conv is None:
        return
    ones = QConv("c", np.ones_like(conv.weight), conv.in_shape, conv.stride, conv.padding, conv.dilation, conv.groups)
    eye = np.eye(conv.in_size, dtype=bool)
    brute = conv_input(eye, ones).sum(axis=1)   # output sum of a one-hot input = its synapse count
    assert np.array_equal(fan_out(conv), brute)


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 3), st.integers(2, 3), st.integers(4, 13), st.integers(1, 3), st.integers(0, 1),
       st.integers(1, 2), st.integers(1, 2), st.integers(0, 2**16))
def test_pool_folding_is_exact(c: int, k: int, size: int, kernel: int, pad: int, stride: int, dil: int,
                               seed: int) -> None:
    """conv(sumpool_k(s)) == the folded conv on s, and W @ sumpool_k(s) == the folded dense on s."""
    h, w = size, size + 1
    if pad and (h % k or w % k):
        with pytest.raises(UnsupportedLayerError, match="cannot be folded exactly"):
            fuse_pool_into_conv(np.ones((1, c, kernel, kernel)), (c, h // k, w // k), k, (stride,) * 2, (pad,) * 2,
                                (dil,) * 2, (c, h, w), "layer 'x'")
        return
    pooled = (c, h // k, w // k)
    if min(pooled[1:]) + 2 * pad < dil * (kernel - 1) + 1:
        return
    rng = np.random.default_rng(seed)
    s = torch.from_numpy(rng.random((3, c, h, w)) < 0.5).double()
    p = torch.nn.functional.avg_pool2d(s, k, divisor_override=1)
    wt = rng.integers(-9, 10, (2, c, kernel, kernel)).astype(np.float64)
    want = torch.nn.functional.conv2d(p, torch.from_numpy(wt), stride=stride, padding=pad, dilation=dil)
    fw, geom = fuse_pool_into_conv(wt, pooled, k, (stride,) * 2, (pad,) * 2, (dil,) * 2, (c, h, w), "x")
    got = torch.nn.functional.conv2d(s, torch.from_numpy(fw), **geom)
    assert torch.equal(got, want)
    wd = rng.integers(-9, 10, (4, int(np.prod(pooled)))).astype(np.float64)
    dense = fuse_pool_into_dense(wd, pooled, k, (c, h, w))
    assert np.array_equal(s.reshape(3, -1).numpy() @ dense.T, p.reshape(3, -1).numpy() @ wd.T)


def _conv_model(seed: int = 0, gain: float = 2.5, batch_norm: bool = True) -> SpikingNet:
    """conv (BN) -> pool -> residual block (1x1 shortcut, stride 2) -> flatten -> dense: every element."""
    torch.manual_seed(seed)
    c1 = CubaConv((1, 8, 8), 4, 3, padding=1, batch_norm=batch_norm)
    pool = SumPool(c1.out_shape, 2)
    res = ResidualBlock(pool.out_shape, 6, stride=2)
    layers = [c1, pool, res, Flatten(res.out_shape), CubaDense(res.out_features, 10)]
    model = SpikingNet(layers)
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(gain)
        if c1.bn is not None:   # non-trivial running statistics, as after training
            c1.bn.running_mean.uniform_(-0.3, 0.3)
            c1.bn.running_var.uniform_(0.5, 2.0)
            c1.bn.weight.uniform_(0.5, 1.5)
            c1.bn.bias.uniform_(-0.2, 0.2)
    return model.eval()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_hardware_exact_conv_model_equals_hwsim(seed: int) -> None:
    """Torch (hardware-exact, BN and the residual's chip timing included) == hwsim, every population."""
    model = _conv_model(seed)
    graph = quantize(graph_from_module(model), LOIHI)
    assert any("BatchNorm folded" in n for n in graph.meta["lowered"])
    assert {"conv1", "conv2", "conv3", "skip3", "fc4"} <= set(graph.nodes)
    x = np.random.default_rng(seed).random((4, 12, 64)) < 0.4
    torch_out = run_torch(model, graph, x, "rate")
    hw = HwSim.from_graph(graph).run(x)
    for name in torch_out:
        assert hw.spikes[name].any(), f"{name} never spikes: the comparison would be vacuous"
        assert np.array_equal(torch_out[name], hw.spikes[name]), name


def test_zoo_architectures_build_and_compile_for_dataset_shapes() -> None:
    for name in ("lenet", "cifarnet", "vgg9", "resnet11"):
        for shape in ((1, 8, 8), (2, 34, 34), (3, 32, 32)):
            model = ARCHS[name](int(np.prod(shape)), 10, input_shape=shape)
            assert model.input_shape == shape
            graph = quantize(graph_from_module(model), LOIHI)
            assert graph.input.shape == shape and graph.is_fixed_point
            for pop in graph.populations():   # every neuron's inputs fit one Loihi 1 core's 4096 axons
                fan_in = sum(s.in_size if isinstance(s, QDense) else int(np.prod(s.weight.shape[1:]))
                             for s, _ in pop.inputs)
                assert fan_in <= 4096, (name, shape, pop.name, fan_in)


def test_conv_arch_refuses_what_it_cannot_deploy() -> None:
    from snnc.models.rules import make_rule

    with pytest.raises(UnsupportedLayerError, match="NeuNorm"):
        ARCHS["lenet"](64, 10, input_shape=(1, 8, 8), rule=make_rule("neunorm"))
    with pytest.raises(UnsupportedLayerError, match=r"needs \(C, H, W\) input"):
        ARCHS["vgg9"](64, 10, input_shape=(64,))
    with pytest.raises(ValueError, match="stride = kernel"):
        SumPool((1, 8, 8), 3, stride=2)


def test_unsupported_torch_layers_name_the_layer_and_the_fix(tmp_path: Path) -> None:
    from snnc.compiler.frontend import as_spiking_net

    seq = nn.Sequential(CubaConv((1, 8, 8), 4, 3, padding=1), nn.MaxPool2d(2))
    with pytest.raises(UnsupportedLayerError, match=r"layer '1' is a MaxPool2d.*SumPool"):
        as_spiking_net(seq, "m.pt")


def test_oversized_conv_fails_the_design_rule_check_early(tmp_path: Path) -> None:
    """3x3 kernels over 600 channels: 5400 inputs per neuron, more than a Loihi 1 core's 4096 axons."""
    model = SpikingNet([CubaConv((600, 4, 4), 8, 3, padding=1), Flatten((8, 4, 4)), CubaDense(128, 10)])
    path = tmp_path / "big.pt"
    save(model, path, metadata={"timesteps": 4})
    with pytest.raises(TargetLimitError) as err:
        compile_model(path, out=tmp_path / "big.loihi")
    assert "lif1" in str(err.value) and "4096" in str(err.value)
    assert not any(p.name.startswith(".big") or p.name == "big.loihi" for p in tmp_path.iterdir())


@pytest.mark.slow
@settings(max_examples=4, deadline=None)
@given(geometry)
def test_hwsim_equals_lava_conv_processes(g: dict) -> None:
    """Random conv -> LIF -> conv (groups) -> LIF -> dense -> LIF graphs on Lava's Conv/Dense/LIF processes."""
    from snnc.runtime.lava_backend import run_on_lava

    c1 = _random_conv(g, weight_range=60)
    if c1 is None:
        return
    rng = np.random.default_rng(g["seed"])
    l1 = QCubaLIF("lif1", c1.out_size, 2000, 300, 40, rng.integers(-3, 4, c1.out_size), shape=c1.out_shape)
    c2 = QConv("c2", rng.integers(-60, 61, (c1.out_shape[0], 1, 3, 3)), c1.out_shape, padding=1,
               groups=c1.out_shape[0])
    l2 = QCubaLIF("lif2", c2.out_size, 1000, 100, 30, np.zeros(c2.out_size, np.int64), shape=c2.out_shape)
    d3 = QDense("fc3", rng.integers(-40, 61, (5, c2.out_size)))
    l3 = QCubaLIF("lif3", 5, 100, 100, 60, np.zeros(5, np.int64))
    graph = Graph.chain([Input("input", c1.in_shape), c1, l1, c2, l2, d3, l3, Output("output")])
    x = rng.random((2, 10, c1.in_size)) < 0.5
    hw = HwSim.from_graph(graph).run(x)
    lava = run_on_lava(graph, x, timeout_s=120)
    for name in ("lif1", "lif2", "lif3"):
        assert np.array_equal(hw.spikes[name], lava[name]), name


@pytest.mark.slow
def test_trained_conv_network_compiles_runs_on_lava_and_verifies(tmp_path: Path) -> None:
    """A conv net with BN, pooling and a residual block, trained a few steps on digits, verifies with zero
    mismatches between torch, hwsim and Lava (every population, every step)."""
    model = _conv_model(gain=1.0)
    model.train()
    data = load_dataset("digits", "train", 0)
    logs = train(model, data, epochs=1, timesteps=8, batch_size=32, max_steps=6)
    assert logs and np.isfinite(logs[-1].loss)
    path = tmp_path / "conv.pt"
    save(model, path, metadata={"dataset": "digits", "timesteps": 8, "seed": 0})
    res = compile_model(path, out=tmp_path / "conv.loihi", verify=6, report_samples=16)
    v = res.report["verification"]
    assert v["passed"] and v["samples"] == 6
    assert set(v["mismatches"]) == {"torch-hwsim", "torch-lava", "hwsim-lava", "torch-emulator", "hwsim-emulator",
                                   "lava-emulator"}
    assert all(sum(per.values()) == 0 for per in v["mismatches"].values())
    layers = {layer["name"]: layer for layer in res.report["activity"]["layers"]}
    assert sum(layer["spikes"] > 0 for layer in layers.values()) >= 3   # not a silent network
    mapping = res.report["mapping"]
    assert mapping["cores"] >= len(layers) and all(layer["cores"] >= 1 for layer in mapping["layers"])


@pytest.mark.slow
def test_lava_runs_128_channel_and_128_wide_convs() -> None:
    """Lava's Conv mixes int8 geometry with Python ints (NumPy 2 overflows at 128: the run used to hang);
    snnc.runtime.lava_compat.patch_conv_geometry fixes it. hwsim and Lava must still agree."""
    from snnc.runtime.lava_backend import run_on_lava

    rng = np.random.default_rng(5)
    c1 = QConv("c1", rng.integers(-30, 61, (128, 1, 3, 3)), (1, 4, 130), padding=1)
    l1 = QCubaLIF("lif1", c1.out_size, 2000, 300, 40, np.zeros(c1.out_size, np.int64), shape=c1.out_shape)
    c2 = QConv("c2", rng.integers(-30, 61, (128, 1, 3, 3)), c1.out_shape, padding=1, groups=128)
    l2 = QCubaLIF("lif2", c2.out_size, 1000, 100, 30, np.zeros(c2.out_size, np.int64), shape=c2.out_shape)
    graph = Graph.chain([Input("input", c1.in_shape), c1, l1, c2, l2, Output("output")])
    x = rng.random((1, 6, c1.in_size)) < 0.5
    hw = HwSim.from_graph(graph).run(x)
    lava = run_on_lava(graph, x, timeout_s=240)
    for name in ("lif1", "lif2"):
        assert hw.spikes[name].any() and np.array_equal(hw.spikes[name], lava[name]), name
