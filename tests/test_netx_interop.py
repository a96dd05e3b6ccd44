"""network.net is a real lava-dl netx file: netx loads it, and Lava runs it to hwsim's spikes.

Both directions, dense and convolutional: snnc writes conv/flatten/dense chains that lava-dl's own
netx loader builds and Lava runs spike for spike like hwsim, and reads back both its own files and
files written by lava-dl's slayer ``export_hdf5``. See docs/netx.md.
"""
from __future__ import annotations

import contextlib
import importlib.util
import io
import re
from pathlib import Path

import h5py
import numpy as np
import pytest

from snnc.compiler.artifact import load_artifact
from snnc.compiler.ir import Graph, Input, Output, QConv, QCubaLIF, QDense
from snnc.compiler.netx_hdf5 import netx_dense_weights, netx_limitation, read_netx, write_netx
from snnc.errors import InputFileError, UnsupportedLayerError
from snnc.hwsim.sim import HwSim
from snnc.pipeline import compile_model
from snnc.runtime.lava_compat import ensure_lava_importable

from netx_helpers import run_netx, slayer_forward_and_export   # shared with tests/test_netx_in.py


# ------------------------------------------------------------------------ helpers

def _lif(name: str, shape: tuple[int, ...], rng: np.random.Generator, *, per_channel: bool = False,
         vth: int | None = None) -> QCubaLIF:
    size = int(np.prod(shape))
    if per_channel and len(shape) == 3:
        bias = np.repeat(rng.integers(-20, 21, shape[0]), shape[1] * shape[2])
    else:
        bias = rng.integers(-20, 21, size)
    return QCubaLIF(name, size, int(rng.integers(0, 4097)), int(rng.integers(0, 4097)),
                    int(vth if vth is not None else rng.integers(1, 2 ** 17)), bias.astype(np.int64),
                    shape=shape if len(shape) == 3 else None)


def _dense_weight(rng: np.random.Generator, out: int, inp: int, lo: int = -256, hi: int = 254) -> np.ndarray:
    """Even integers of both signs (what the quantizer writes; netx keeps them exactly)."""
    w = rng.integers(lo // 2, hi // 2 + 1, (out, inp)) * 2
    w.flat[0], w.flat[-1] = -2, 2
    return w.astype(np.int64)


def random_conv_chain(rng: np.random.Generator) -> Graph:
    """Input (C, H, W) -> 1..3 conv layers (random kernel/stride/padding/dilation/groups, non-square)
    -> optionally flatten + 1..2 dense layers."""
    shape = (int(rng.integers(1, 5)), int(rng.integers(4, 13)), int(rng.integers(4, 13)))
    nodes: list = [Input("input", shape)]
    for i in range(int(rng.integers(1, 4))):
        while True:
            g = int(rng.choice([d for d in (1, 2, 3, 4) if shape[0] % d == 0]))
            out_c = g * int(rng.integers(1, 4))
            k = (int(rng.integers(1, 4)), int(rng.integers(1, 4)))
            st = (int(rng.integers(1, 3)), int(rng.integers(1, 3)))
            pad = (int(rng.integers(0, 3)), int(rng.integers(0, 3)))
            dil = (int(rng.integers(1, 3)), int(rng.integers(1, 3)))
            ok = all(shape[1 + a] + 2 * pad[a] - dil[a] * (k[a] - 1) - 1 >= 0 for a in range(2))
            if ok:
                break
        w = rng.integers(-300, 301, (out_c, shape[0] // g, *k)).astype(np.int64)
        conv = QConv(f"conv{i + 1}", w, shape, st, pad, dil, g)
        nodes += [conv, _lif(f"lif{i + 1}", conv.out_shape, rng, per_channel=bool(rng.integers(0, 2)))]
        shape = conv.out_shape
    n_in = int(np.prod(shape))
    for j in range(int(rng.integers(0, 3))):
        n_out = int(rng.integers(1, 12))
        k = len([n for n in nodes if isinstance(n, QCubaLIF)]) + 1
        nodes += [QDense(f"fc{k}", _dense_weight(rng, n_out, n_in)), _lif(f"lif{k}", (n_out,), rng)]
        n_in = n_out
    return Graph.chain([*nodes, Output("output")])


def assert_same_graph(a: Graph, b: Graph) -> None:
    """Same input, same layers in order: synapse kind, geometry, integer weights, neuron parameters, shapes."""
    assert a.input.shape == b.input.shape and a.input.bits == b.input.bits == 0
    la, lb = list(a.layers()), list(b.layers())
    assert len(la) == len(lb)
    for (s1, n1), (s2, n2) in zip(la, lb):
        assert type(s1) is type(s2)
        assert s1.weight.shape == s2.weight.shape and np.array_equal(s1.weight, s2.weight)
        if isinstance(s1, QConv):
            assert s1.geometry() == s2.geometry()  # type: ignore[union-attr]
        else:
            assert s1.weight_exp == s2.weight_exp == 0
        assert (n1.size, n1.du, n1.dv, n1.vth, n1.bias_exp) == (n2.size, n2.du, n2.dv, n2.vth, n2.bias_exp)
        assert np.array_equal(n1.bias_mant, n2.bias_mant)
        assert n1.shape == n2.shape


# ------------------------------------------------------------------------ fast: round trips and refusals

def test_conv_chains_round_trip_through_network_net(tmp_path: Path) -> None:
    rng = np.random.default_rng(2024)
    for case in range(60):
        g = random_conv_chain(rng)
        assert netx_limitation(g) is None, case
        path = tmp_path / f"c{case}.net"
        write_netx(g, path, 17)
        back = read_netx(path)
        assert back.meta["timesteps"] == 17
        assert_same_graph(g, back)
        with h5py.File(path) as f:   # the file: slayer's keys, torch orders, flatten exactly before conv->dense
            kinds = [f[f"layer/{i}/type"][0].decode() for i in range(len(f["layer"]))]
            assert kinds[0] == "input" and tuple(f["layer/0/shape"][()]) == g.input.shape
            for i, kind in enumerate(kinds):
                if kind == "conv":
                    lay = f[f"layer/{i}"]
                    assert {"shape", "inChannels", "outChannels", "kernelSize", "stride", "padding", "dilation",
                            "groups", "weight", "bias", "neuron"} <= set(lay)
                    assert lay["groups"].shape == ()
                if kind == "dense":
                    assert (kinds[i - 1] == "flatten") == (kinds[i - 2] == "conv" if i >= 2 else False)
    # groups beyond Lava's int8 Var: written merged (block-diagonal kernel), read back as they were
    for groups, per in ((128, 1), (256, 2), (254, 1)):
        c = QConv("conv1", rng.integers(-9, 10, (groups * per, 1, 2, 2)), (groups, 3, 3), groups=groups)
        g = Graph.chain([Input("input", (groups, 3, 3)), c, _lif("lif1", c.out_shape, rng), Output("output")])
        assert netx_limitation(g) is None
        write_netx(g, tmp_path / "dw.net", 3)
        assert_same_graph(g, read_netx(tmp_path / "dw.net"))
        with h5py.File(tmp_path / "dw.net") as f:
            assert (f["layer/1/groups"][()], f["layer/1/snncGroups"][()]) == ({128: 64, 256: 64, 254: 127}[groups], groups)
    # a dense layer reading a (C, H, W) input directly: no flatten (netx's input port is the dense's, flat)
    g = Graph.chain([Input("input", (2, 3, 4)), QDense("fc1", _dense_weight(rng, 5, 24)), _lif("lif1", (5,), rng),
                     Output("output")])
    write_netx(g, tmp_path / "dense.net", 3)
    assert_same_graph(g, read_netx(tmp_path / "dense.net"))
    with h5py.File(tmp_path / "dense.net") as f:
        assert [f[f"layer/{i}/type"][0] for i in range(len(f["layer"]))] == [b"input", b"dense"]


def _lava_weight_functions():
    """netx's optimize_weight_bits and Lava's weight utilities, loaded without torch."""
    ensure_lava_importable()
    import lava
    import lava.utils.weightutils as wu

    spec = importlib.util.spec_from_file_location("_netx_utils", Path(lava.__path__[0]) / "lib/dl/netx/utils.py")
    nu = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(nu)  # type: ignore[union-attr]
    return nu.optimize_weight_bits, wu


def test_netx_dense_weights_replays_netx_and_lava_dense() -> None:
    """Our replay of netx's optimize_weight_bits + Lava's Dense clip/truncate equals the real code."""
    optimize, wu = _lava_weight_functions()
    rng = np.random.default_rng(5)
    compared = 0
    for i in range(3000):
        shape = (int(rng.integers(1, 5)), int(rng.integers(1, 5)))
        w = [rng.integers(-256, 255, shape), rng.integers(-256, 1, shape), rng.integers(0, 256, shape),
             -(2 ** rng.integers(0, 9, shape)), rng.integers(-3, 1, shape) * 2 ** int(rng.integers(0, 8)),
             rng.integers(-128, 128, shape) * 2][i % 6].astype(np.int64)
        mine, exp, why = netx_dense_weights(w)
        try:
            with contextlib.redirect_stdout(io.StringIO()), np.errstate(all="ignore"):
                w2, bits, wexp, _ = optimize(w.copy())
                mode = wu.determine_sign_mode(w2)
                real = wu.truncate_weights(wu.clip_weights(w2, mode, num_bits=8), mode, bits)
        except (OverflowError, ValueError):
            assert mine is None, w   # all-zero matrices: netx itself fails
            continue
        if why is not None:         # beyond 8 bits: we refuse, and netx indeed does not run them as written
            assert "exceed" in why and not np.array_equal(real * 2.0 ** wexp, w), w
            continue
        assert mine is not None
        assert np.array_equal(mine, real) and exp == wexp, w
        compared += 1
    assert compared > 2500


def _chain(*nodes) -> Graph:
    return Graph.chain([*nodes, Output("out")])


def test_netx_limitation_refuses_what_netx_cannot_run(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    z = lambda n, shape=None: QCubaLIF(f"l{n}", int(np.prod(shape or (n,))), 0, 0, 10,  # noqa: E731
                                       np.zeros(int(np.prod(shape or (n,))), np.int64), shape=shape)
    c = QConv("c", rng.integers(-5, 5, (2, 1, 3, 3)), (1, 5, 5), padding=1)
    cases = {
        "graded": (_chain(Input("i", (4,), bits=8), QDense("d", _dense_weight(rng, 3, 4)), z(3)), "graded"),
        "weight_exp": (_chain(Input("i", (4,)), QDense("d", _dense_weight(rng, 3, 4), 2), z(3)), "weight_exp 2"),
        "odd": (_chain(Input("i", (2,)), QDense("d", np.array([[3, -2]])), z(1)), r"weight\[0, 0\] = 3 is not a loihi"),
        "inhibitory": (_chain(Input("i", (2,)), QDense("d", np.array([[-256, -2]])), z(1)),
                       r"run weight\[0, 0\] = -256 as -254"),
        "zero-max": (_chain(Input("i", (2,)), QDense("d", np.array([[0, -2]])), z(1)), r"run weight\[0, 1\] = -2 as -1"),
        "all-zero": (_chain(Input("i", (2,)), QDense("d", np.zeros((1, 2), np.int64)), z(1)), "all-zero"),
        "conv-after-dense": (_chain(Input("i", (4,)), QDense("d", _dense_weight(rng, 25, 4)), z(25, (1, 5, 5)),
                                    c, z(50, (2, 5, 5))), "reads a dense layer"),
        "bias_exp": (_chain(Input("i", (4,)), QDense("d", _dense_weight(rng, 3, 4)),
                            QCubaLIF("l", 3, 0, 0, 10, np.zeros(3, np.int64), bias_exp=7)), "bias_exp 7"),
        "dilation-128": (_chain(Input("i", (1, 129, 1)), QConv("g", np.ones((1, 1, 2, 1), np.int64), (1, 129, 1),
                                                            dilation=(128, 1)), z(1, (1, 1, 1))), "int8"),
    }
    for name, (g, why) in cases.items():
        reason = netx_limitation(g)
        assert reason is not None and re.search(why, reason), (name, reason)
        with pytest.raises(UnsupportedLayerError, match="cannot write a netx network"):
            write_netx(g, tmp_path / f"{name}.net", 5)
    # a residual block (population feeding two synapses) is not a chain
    d = lambda n, o, i: QDense(n, _dense_weight(rng, o, i))  # noqa: E731
    res = Graph.build([Input("i", (4,)), d("a", 4, 4), z(4), d("b", 4, 4), d("skip", 4, 4),
                       QCubaLIF("l2", 4, 0, 0, 10, np.zeros(4, np.int64)), Output("out")],
                      [("i", "a"), ("a", "l4"), ("l4", "b"), ("l4", "skip"), ("b", "l2"), ("skip", "l2"), ("l2", "out")])
    assert "chains of layers only" in netx_limitation(res)  # type: ignore[operator]


def _layer(f: h5py.File, i: int, kind: str, **data) -> h5py.Group:
    g = f.create_group(f"layer/{i}")
    g["type"] = np.array([kind.encode()])
    for k, v in data.items():
        g[k] = v
    return g


def _cuba(g: h5py.Group, kind: str = "CUBA") -> None:
    n = g.create_group("neuron")
    n["type"] = np.array([kind.encode()])
    n["iDecay"], n["vDecay"], n["vThMant"] = 1024, 128, 80


def test_read_netx_names_file_layer_and_type_of_what_it_cannot_read(tmp_path: Path) -> None:
    conv = dict(shape=np.array([2, 4, 4]), weight=np.ones((2, 1, 3, 3)), stride=np.array([1, 1]),
                padding=np.array([1, 1]), dilation=np.array([1, 1]), groups=1)
    for kind in ("pool", "average", "concat", "convT", "unpool", "dense_comp"):
        path = tmp_path / f"{kind}.net"
        with h5py.File(path, "w") as f:
            _layer(f, 0, "input", shape=np.array([1, 4, 4]))
            _cuba(_layer(f, 1, "conv", **conv))
            _cuba(_layer(f, 2, kind, shape=np.array([2, 2, 2]), weight=np.ones((2, 2, 2, 2))))
        with pytest.raises(UnsupportedLayerError, match=re.escape(f"{path} layer 2: layer type '{kind}' is not supported")
                           + r".*"
                                                          r"supported: input \(without neuron\), conv, flatten and dense"):
            read_netx(path)
    bad = {
        "sdnn": (lambda f: (_layer(f, 0, "input", shape=np.array([3])),
                            _cuba(_layer(f, 1, "dense", shape=np.array([2]), weight=np.full((2, 3), 2)), "SDNN")),
                 r"layer 1: dense layer with 'SDNN' neurons is not supported"),
        "input-neuron": (lambda f: _cuba(_layer(f, 0, "input", shape=np.array([3]))), "layer 0: input layer with neurons"),
        "no-flatten": (lambda f: (_layer(f, 0, "input", shape=np.array([1, 4, 4])), _cuba(_layer(f, 1, "conv", **conv)),
                                  _cuba(_layer(f, 2, "dense", shape=np.array([2]), weight=np.full((2, 32), 2)))),
                       "layer 2: a dense layer right after a conv layer needs a flatten"),
        "delay": (lambda f: _cuba(_layer(f, 0, "dense", shape=np.array([2]), weight=np.full((2, 3), 2),
                                         delay=-np.ones(2))), "layer 0: negative synaptic delay -1"),
        "odd": (lambda f: _cuba(_layer(f, 0, "dense", shape=np.array([1]), weight=np.array([[3.0, -2.0]]))),
                r"layer 0: dense layer that netx does not run as written: weight\[0, 0\] = 3 is not a loihi"),
    }
    for name, (build, msg) in bad.items():
        path = tmp_path / f"{name}.net"
        with h5py.File(path, "w") as f:
            build(f)
        with pytest.raises(UnsupportedLayerError, match=re.escape(str(path)) + " " + msg):
            read_netx(path)
    path = tmp_path / "groups128.net"
    with h5py.File(path, "w") as f:
        _layer(f, 0, "input", shape=np.array([128, 4, 4]))
        _cuba(_layer(f, 1, "conv", **{**conv, "shape": np.array([128, 4, 4]), "weight": np.ones((128, 1, 3, 3)),
                                      "groups": 128}))
    with pytest.raises(UnsupportedLayerError, match=re.escape(f"{path} layer 1: conv layer with") + ".*int8"):
        read_netx(path)
    path = tmp_path / "noinput.net"
    with h5py.File(path, "w") as f:
        _cuba(_layer(f, 0, "conv", **conv))
    with pytest.raises(InputFileError, match="needs an input layer"):
        read_netx(path)


def test_reads_slayer_export_of_cuba_conv_flatten_dense_blocks(tmp_path: Path) -> None:
    """lava-dl's own export_hdf5 (slayer CUBA blocks) reads back to the blocks' quantized weights and
    neuron parameters, and hwsim on the read graph spikes exactly like slayer's forward pass."""
    import torch

    ensure_lava_importable()
    from lava.lib.dl import slayer

    torch.manual_seed(0)
    p = dict(threshold=1.25, current_decay=0.25, voltage_decay=0.03, requires_grad=False)
    blocks = torch.nn.ModuleList([
        slayer.block.cuba.Input(None, delay_shift=False),   # no neuron: exports just type and shape
        slayer.block.cuba.Conv(p, 2, 4, 3, padding=1, weight_scale=3),
        slayer.block.cuba.Conv(p, 4, 6, (3, 2), stride=(2, 1), padding=(1, 0), dilation=(1, 2), groups=2,
                               weight_scale=3),
        slayer.block.cuba.Flatten(),
        slayer.block.cuba.Dense(p, 6 * 5 * 7, 10, weight_scale=3)])
    steps = 20
    x = (torch.rand(1, 2, 10, 9, steps) < 0.3).float()
    outs = []
    with torch.no_grad():
        y = x
        for b in blocks:
            y = b(y)
            outs.append(y)
    path = tmp_path / "slayer.net"
    with h5py.File(path, "w") as f:
        layers = f.create_group("layer")
        for i, b in enumerate(blocks):
            b.export_hdf5(layers.create_group(str(i)))
    g = read_netx(path)
    assert g.input.shape == (2, 10, 9)
    layers = list(g.layers())
    assert [type(s).__name__ for s, _ in layers] == ["QConv", "QConv", "QDense"]
    assert [n.shape for _, n in layers] == [(4, 10, 9), (6, 5, 7), None]
    assert layers[1][0].geometry() == {"in_shape": [4, 10, 9], "out_shape": [6, 5, 7], "kernel": [3, 2],
                                       "stride": [2, 1], "padding": [1, 0], "dilation": [1, 2], "groups": 2}
    for (syn, neu), blk in zip(layers, [blocks[1], blocks[2], blocks[4]]):
        q = blk.synapse.pre_hook_fx(blk.synapse.weight, descale=True).detach().numpy()
        assert np.array_equal(syn.weight, q.reshape(syn.weight.shape))   # slayer's 5-D kernel, trailing 1 dropped
        assert (neu.du, neu.dv, neu.vth) == (1024, 123, 80) and not neu.bias_mant.any()
    xs = x[0].permute(3, 0, 1, 2).reshape(1, steps, -1).numpy().astype(bool)
    run = HwSim.from_graph(g).run(xs)
    for (_, neu), out in zip(layers, [outs[1], outs[2], outs[4]]):
        expected = out[0].reshape(-1, steps).T.numpy().astype(bool)
        assert expected.any() and np.array_equal(run.spikes[neu.name][0], expected), neu.name


# ------------------------------------------------------------------------ slow: netx on Lava

def conv_net(rng: np.random.Generator, in_shape, convs, n_out: int) -> Graph:
    """A chain of conv layers (each spec: out_c, kernel, stride, padding, dilation, groups) and one dense
    layer, with weights and thresholds chosen so that every layer spikes."""
    nodes: list = [Input("input", in_shape)]
    shape = in_shape
    for i, (out_c, k, st, pad, dil, groups) in enumerate(convs, start=1):
        k = (k, k) if isinstance(k, int) else k
        w = rng.integers(-24, 32, (out_c, shape[0] // groups, *k)).astype(np.int64)
        conv = QConv(f"conv{i}", w, shape, st, pad, dil, groups)
        bias = (rng.integers(-4, 5, conv.out_size) if i % 2 else np.repeat(rng.integers(-3, 4, out_c),
                                                                          conv.out_size // out_c))
        nodes += [conv, QCubaLIF(f"lif{i}", conv.out_size, int(rng.integers(300, 3000)), int(rng.integers(50, 800)),
                                 int(rng.integers(100, 160)), bias.astype(np.int64), shape=conv.out_shape)]
        shape = conv.out_shape
    k = len(convs) + 1
    nodes += [QDense(f"fc{k}", _dense_weight(rng, n_out, int(np.prod(shape)), -40, 40)),
              QCubaLIF(f"lif{k}", n_out, 2048, 64, 60, np.zeros(n_out, np.int64)), Output("output")]
    return Graph.chain(nodes)


@pytest.mark.slow
@pytest.mark.parametrize("case", ["brief", "asymmetric", "depthwise128"])
def test_conv_network_net_runs_in_netx_like_hwsim(case: str, tmp_path: Path) -> None:
    """snnc writes a conv network; lava-dl's netx builds it and Lava fixed_pt runs it spike for spike,
    every layer and every timestep, like hwsim."""
    rng = np.random.default_rng(11)
    if case == "brief":   # (2,10,10) -> conv 3x3 p1 -> (4,10,10) -> conv 3x3 s2 p1 -> (6,5,5) -> flatten -> 10
        g = conv_net(rng, (2, 10, 10), [(4, 3, 1, 1, 1, 1), (6, 3, 2, 1, 1, 1)], 10)
    elif case == "asymmetric":   # non-square input, asymmetric kernel/stride/padding/dilation, groups
        g = conv_net(rng, (3, 9, 7), [(4, (3, 2), (2, 1), (1, 0), (1, 2), 1), (6, (2, 3), (1, 2), (0, 1), (2, 1), 2)], 7)
    else:                 # depthwise with 128 groups: written as 64 merged groups (Lava holds groups as int8)
        g = conv_net(rng, (128, 4, 4), [(128, 2, 2, 0, 1, 128)], 5)
    assert netx_limitation(g) is None
    write_netx(g, tmp_path / "network.net", 40)
    steps = 40
    x = np.random.default_rng(7).random((1, steps, g.input.size)) < 0.3
    expected = HwSim.from_graph(g).run(x)
    names = [n.name for _, n in g.layers()]
    for name in names:   # the comparison is not vacuous: every layer spikes
        assert expected.spikes[name].sum() > 0, name
    got = run_netx(tmp_path / "network.net", x[0], g.input.shape)   # lava_api(): patch_conv_geometry for 128 groups
    assert len(got) == len(names)
    for name, spikes in zip(names, got):
        want = expected.spikes[name][0]
        assert spikes.shape == want.shape
        assert np.array_equal(spikes, want), f"{name}: first difference at (step, neuron) {np.argwhere(spikes != want)[0]}"
    assert np.array_equal(got[-1], expected.output[0])


@pytest.mark.slow
def test_slayer_exported_conv_network_runs_in_netx_like_hwsim_reads_it(tmp_path: Path) -> None:
    """The other direction on Lava: a slayer-exported conv file, read by snnc and run on hwsim, spikes
    like netx's own Lava network built from the same file."""
    import torch

    ensure_lava_importable()
    from lava.lib.dl import slayer

    torch.manual_seed(3)
    p = dict(threshold=1.0, current_decay=0.2, voltage_decay=0.05, requires_grad=False)
    blocks = [slayer.block.cuba.Input(None, delay_shift=False), slayer.block.cuba.Conv(p, 1, 3, 3, padding=1, weight_scale=3),
              slayer.block.cuba.Conv(p, 3, 4, 3, stride=2, weight_scale=3), slayer.block.cuba.Flatten(),
              slayer.block.cuba.Dense(p, 4 * 3 * 3, 5, weight_scale=4)]
    steps = 30
    xt = (torch.rand(1, 1, 8, 8, steps) < 0.35).float()
    path = tmp_path / "slayer.net"
    slayer_forward_and_export(blocks, xt, path)
    g = read_netx(path)
    x = xt[0].permute(3, 0, 1, 2).reshape(steps, -1).numpy().astype(bool)
    expected = HwSim.from_graph(g).run(x[None])
    got = run_netx(path, x, g.input.shape)
    for (_, neu), spikes in zip(g.layers(), got):
        want = expected.spikes[neu.name][0]
        assert want.any() and np.array_equal(spikes, want), neu.name


@pytest.mark.slow
def test_network_net_runs_in_netx_like_hwsim(model_path: Path, tmp_path: Path) -> None:
    art = load_artifact(compile_model(model_path, out=tmp_path / "build").out)
    steps = art.timesteps
    x = np.random.default_rng(7).random((1, steps, art.graph.input.size)) < 0.4
    expected = HwSim.from_graph(art.graph).run(x).output[0]
    assert expected.sum() > 0  # the comparison is not vacuous

    ensure_lava_importable()
    from lava.lib.dl import netx
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc.io.sink import RingBuffer as Sink
    from lava.proc.io.source import RingBuffer as Source

    net = netx.hdf5.Network(net_config=str(art.path / "network.net"))
    src = Source(data=x[0].T.astype(np.int32))
    sink = Sink(shape=net.out.shape, buffer=steps)
    src.s_out.connect(net.inp)
    net.out.connect(sink.a_in)
    try:
        net.run(condition=RunSteps(num_steps=steps), run_cfg=Loihi2SimCfg(select_tag="fixed_pt"))
        got = sink.data.get().T.astype(bool)
    finally:
        net.stop()
    assert got.shape == expected.shape
    assert np.array_equal(got, expected), f"first difference at (step, neuron) {np.argwhere(got != expected)[0]}"
