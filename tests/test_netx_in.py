"""netx in: ``snn-compile network.net`` for a network that lava-dl's SLAYER trained and exported.

The user story of a lava-dl user, end to end: train slayer CUBA blocks (dense, and conv + flatten +
dense) on scikit-learn's digits coded as spikes, export them the standard lava-dl way (an h5py file
with a ``layer`` group, each block's own ``export_hdf5``), compile with ``snn-compile --verify``, and
check that hwsim spikes exactly like lava-dl's own ``netx.hdf5.Network`` built from the same file on
Lava's fixed-point simulator, and like slayer's own forward pass. The fast tests cover what the
reader accepts with a note and what it refuses (files written with h5py, as slayer writes them).
See docs/netx.md, "netx in".
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest

from snnc.cli import compile_main
from snnc.compiler.artifact import load_artifact
from snnc.compiler.ir import QConv, QDense
from snnc.compiler.netx_hdf5 import SUPPORTED, read_netx, read_netx_file, write_netx
from snnc.compiler.sources import load_source
from snnc.errors import InputFileError, UnsupportedLayerError
from snnc.hwsim.sim import HwSim
from snnc.pipeline import compile_model
from snnc.runtime.lava_compat import ensure_lava_importable

from netx_helpers import run_netx, slayer_forward_and_export

#: Time bins per digit (rate code), and the Loihi CUBA parameters of every trained block.
STEPS = 16
NEURON = dict(threshold=1.25, current_decay=0.25, voltage_decay=0.03, requires_grad=False)


# ------------------------------------------------------------------------ files as slayer writes them

def _slayer_layer(f: h5py.File, i: int, kind: str, neuron: dict[str, Any] | None = None, **data: Any) -> h5py.Group:
    """One layer group with slayer's encodings: ``type`` as a (1,) S10 string (block/base.py:580-582),
    neuron keys as slayer's CUBA neuron writes them (neuron/cuba.py:263-272), overridable."""
    g = f.create_group(f"layer/{i}")
    g.create_dataset("type", (1,), "S10", [kind.encode()])
    for k, v in data.items():
        g[k] = v
    if neuron is not None:
        n = {"type": "CUBA", "iDecay": 1024, "vDecay": 123, "vThMant": 80, "refDelay": 1, "gradedSpike": False,
             **neuron}
        for k, v in n.items():
            g.create_dataset(f"neuron/{k}", data=v)
    return g


def _dense(f: h5py.File, i: int, n_in: int, n_out: int, neuron: dict[str, Any] | None = None,
           **data: Any) -> h5py.Group:
    w = np.full((n_out, n_in), 2.0, dtype=np.float32)
    w[0, 0] = -4.0
    return _slayer_layer(f, i, "dense", {} if neuron is None else neuron, shape=np.array([n_out]),
                         inFeatures=n_in, outFeatures=n_out, weight=w, **data)


def _conv(f: h5py.File, i: int, neuron: dict[str, Any] | None = None, **data: Any) -> h5py.Group:
    """A 1->2 channel 3x3 pad-1 conv on (1, 4, 4), slayer's 5-D kernel (trailing 1)."""
    return _slayer_layer(f, i, "conv", {} if neuron is None else neuron, shape=np.array([2, 4, 4]),
                         inChannels=1, outChannels=2, kernelSize=np.array([3, 3]), stride=np.array([1, 1]),
                         padding=np.array([1, 1]), dilation=np.array([1, 1]), groups=1,
                         weight=np.full((2, 1, 3, 3, 1), 2.0, dtype=np.float32), **data)


# ------------------------------------------------------------------------ fast: what is read, noted, refused

def test_netx_notes_say_what_was_read(tmp_path: Path) -> None:
    """The first note names the layers, who wrote the file and Ts/tSample; load_source passes the notes
    on, and tSample becomes the sample length."""
    slayer_path = tmp_path / "slayer.net"
    with h5py.File(slayer_path, "w") as f:     # what a standard lava-dl export holds: layers only
        _dense(f, 0, 6, 4)
        _dense(f, 1, 4, 3)
    imp = read_netx_file(slayer_path)
    assert imp.writer == "lava-dl (SLAYER export_hdf5)" and imp.ts is None and imp.tsample is None
    assert imp.notes[0] == ("netx: 2 layers from lava-dl (SLAYER export_hdf5), no /simulation/tSample (lava-dl's "
                            "export_hdf5 writes none): the sample length comes from snn-compile --timesteps; "
                            "input (6,) -> dense 6->4 -> dense 4->3; neurons (iDecay, vDecay, vThMant): "
                            "lif1 (1024, 123, 80), lif2 (1024, 123, 80)")
    assert len(imp.notes) == 1    # nothing else to remark on a plain export
    src = load_source(slayer_path)
    assert src.kind == "netx" and src.notes == list(imp.notes) and "timesteps" not in src.metadata

    ours = tmp_path / "ours.net"
    write_netx(imp.graph, ours, 17)
    imp2 = read_netx_file(ours)
    assert imp2.writer == "snnc" and (imp2.ts, imp2.tsample) == (1, 17)
    assert imp2.notes[0].startswith("netx: 2 layers from snnc, Ts=1, tSample=17; "
                                    "input (6,) -> dense 6->4 -> dense 4->3")
    assert load_source(ours).metadata["timesteps"] == 17

    other = tmp_path / "other.net"        # neither snnc's attribute nor slayer's S10 type strings
    with h5py.File(other, "w") as f:
        g = f.create_group("layer/0")
        g["type"] = np.array([b"dense"])
        g["weight"] = np.full((2, 3), 2)
        g["neuron/type"], g["neuron/iDecay"], g["neuron/vDecay"], g["neuron/vThMant"] = b"CUBA", 0, 0, 5
        f["simulation/Ts"], f["simulation/tSample"] = 2, 9
    imp3 = read_netx_file(other)
    assert imp3.notes[0].startswith("netx: 1 layer from an unknown writer (not snnc, not SLAYER's export_hdf5), "
                                    "Ts=2, tSample=9; input (3,) -> dense 3->2")
    assert any("/simulation/Ts = 2: netx does not read /simulation" in n for n in imp3.notes)


def test_accepts_with_a_note_what_does_not_change_the_network(tmp_path: Path) -> None:
    """Zero delays (slayer's delay=True blocks whose delays floor to 0), per-neuron arrays that hold one
    value, a zero norm exponent, keys netx ignores, and thresholds no neuron can reach: read, and said."""
    path = tmp_path / "ok.net"
    with h5py.File(path, "w") as f:
        _slayer_layer(f, 0, "input", shape=np.array([1, 4, 4]))
        _conv(f, 1, delay=np.zeros(2, np.float32), bias=np.array([2.0, -2.0], np.float32))
        _slayer_layer(f, 2, "flatten", shape=np.array([32, 1, 1]))
        _dense(f, 3, 32, 5, {"iDecay": np.full(5, 700), "weight_exp": np.array([-0.0], np.float32),
                             "activation": b"relu"}, delay=np.zeros(5, np.float32), note=np.arange(3))
        _dense(f, 4, 5, 3, {"vThMant": (1 << 18) - 1})    # slayer's Affine readout
    imp = read_netx_file(path)
    g = imp.graph
    layers = list(g.layers())
    assert [type(s) for s, _ in layers] == [QConv, QDense, QDense]
    assert layers[1][1].du == 700 and layers[2][1].vth == (1 << 18) - 1
    assert np.array_equal(layers[0][1].bias_mant, np.repeat([2, -2], 16))
    notes = "\n".join(imp.notes[1:])
    for expected in (f"{path} layer 1: conv 'delay' is all zero (2 values)",
                     f"{path} layer 3: dense 'delay' is all zero (5 values",
                     "netx builds a DelayDense with zero delays for it",
                     f"{path} layer 3: neuron keys ['activation'] ignored",
                     f"{path} layer 3: dense layer keys ['note'] ignored (netx does not read them either)",
                     f"{path} layer 4: vThMant 262143 is above the 17-bit threshold"):
        assert expected in notes, expected
    assert len(imp.notes) == 6
    # the never-spiking readout really never spikes in hwsim, whatever the input
    run = HwSim.from_graph(g).run(np.ones((1, 30, 16), dtype=bool))
    assert run.spikes["lif2"].any() and not run.spikes["lif3"].any()


REFUSALS: dict[str, tuple[Any, type, str, str]] = {
    # name: (build(f), error, what the message says after "PATH layer I: ", and what to do)
    "dense_delay": (lambda f: _dense(f, 0, 4, 3, delay=np.array([0.0, -2.0, 0.0], np.float32)),
                    UnsupportedLayerError, r"layer 0: negative synaptic delay -2: netx hands it to Lava's DelayDense",
                    "which has no negative delays"),
    "conv_delay": (lambda f: (_slayer_layer(f, 0, "input", shape=np.array([1, 4, 4])),
                              _conv(f, 1, delay=np.array([1.0, 0.0], np.float32))),
                   UnsupportedLayerError, r"layer 1: conv layer with synaptic delays \(up to 1 steps.*netx ignores a "
                   r"conv layer's delay", "Retrain without delay=True"),
    "delay_shape": (lambda f: _dense(f, 0, 4, 3, delay=np.zeros(5, np.float32)),
                    InputFileError, r"layer 0: 'delay' of shape \(5,\) fits neither", "netx raises RuntimeError"),
    "graded": (lambda f: _dense(f, 0, 4, 3, {"gradedSpike": True}),
               UnsupportedLayerError, r"layer 0: dense layer with graded spikes \(gradedSpike = True", "Retrain with "
               "graded_spike=False"),
    "refractory": (lambda f: _dense(f, 0, 4, 3, {"refDelay": 3}),
                   UnsupportedLayerError, r"layer 0: dense layer with refractory delay refDelay = 3 is not supported",
                   "only refDelay = 1"),
    "per_neuron_decay": (lambda f: _conv(f, 0, {"vDecay": np.array([100, 101])}),
                         UnsupportedLayerError, r"layer 0: conv layer with per-neuron 'vDecay' \(2 values in "
                         r"\[100, 101\]", "Retrain with shared_param=True"),
    "norm_exponent": (lambda f: _dense(f, 0, 4, 3, {"weight_exp": np.array([1.0], np.float32)}),
                      UnsupportedLayerError,
                      r"layer 0: dense layer with a normalisation exponent neuron/weight_exp = 1",
                      "Train with MeanOnlyBatchNorm"),
    "sdnn_input": (lambda f: (_slayer_layer(f, 0, "input", {"type": "SDNN"}, shape=np.array([4])),
                              _dense(f, 1, 4, 3)),
                   UnsupportedLayerError, r"layer 0: input layer with 'SDNN' neurons \(slayer's sigma_delta.Input\)",
                   "Train with slayer.block.cuba blocks"),
    "sdnn_dense": (lambda f: _dense(f, 0, 4, 3, {"type": "SDNN"}),
                   UnsupportedLayerError, r"layer 0: dense layer with 'SDNN' neurons is not supported: sigma-delta",
                   "Train with slayer.block.cuba blocks"),
    "rf": (lambda f: _dense(f, 0, 4, 3, {"type": "RF_PHASE"}),
           UnsupportedLayerError, r"layer 0: dense layer with 'RF_PHASE' neurons is not supported", "Train with "
           "slayer.block.cuba blocks"),
    "pool": (lambda f: (_slayer_layer(f, 0, "input", shape=np.array([1, 4, 4])),
                        _slayer_layer(f, 1, "pool", {}, shape=np.array([1, 2, 2]), weight=np.full((1, 1, 2, 2), 64.0))),
             UnsupportedLayerError, r"layer 1: layer type 'pool' is not supported: netx itself cannot load it",
             "Pool with a strided cuba.Conv block"),
    "input_neuron": (lambda f: (_slayer_layer(f, 0, "input", {}, shape=np.array([4])), _dense(f, 1, 4, 3)),
                     UnsupportedLayerError, r"layer 0: input layer with neurons \(slayer's Input block",
                     "cuba.Input(None, delay_shift=False)"),
}


@pytest.mark.parametrize("case", sorted(REFUSALS))
def test_refuses_what_netx_or_snnc_would_not_run_as_trained(case: str, tmp_path: Path) -> None:
    """Each refusal names the file, the layer index and type, why, what to do, and what is supported."""
    build, error, what, todo = REFUSALS[case]
    path = tmp_path / f"{case}.net"
    with h5py.File(path, "w") as f:
        build(f)
    with pytest.raises(error) as info:
        read_netx(path)
    msg = str(info.value)
    assert re.match(re.escape(str(path)) + " " + what, msg), msg
    assert todo in msg, msg
    if error is UnsupportedLayerError:
        assert f"(supported: {SUPPORTED}" in msg, msg


def test_compile_prints_and_records_what_it_read(tmp_path: Path) -> None:
    """snn-compile prints the netx notes and keeps them in the manifest (no Lava: verify 0)."""
    path = tmp_path / "network.net"
    with h5py.File(path, "w") as f:
        _dense(f, 0, 6, 4, delay=np.zeros(4, np.float32))
        _dense(f, 1, 4, 3)
    said: list[str] = []
    res = compile_model(path, out=tmp_path / "build", timesteps=7, on_stage=said.append)
    notes = list(read_netx_file(path).notes)
    assert len(notes) == 2 and said[:2] == notes
    man = load_artifact(res.out).manifest
    assert man["source"]["kind"] == "netx" and man["source"]["notes"] == notes
    assert man["source"]["metadata"]["netx"] == {"writer": "lava-dl (SLAYER export_hdf5)", "Ts": None, "tSample": None}
    assert man["input"]["timesteps"] == 7


# ------------------------------------------------------------------------ slow: trained by SLAYER, run on netx

def _digits(shape: tuple[int, ...]):
    """scikit-learn's digits in [0, 1], split 1400 / 397 with a fixed permutation, each image as
    ``shape``; and a rate code: Bernoulli spikes, (N, *shape, T) in slayer's layout."""
    import torch
    from sklearn.datasets import load_digits

    d = load_digits()
    x = (d.images / 16.0).reshape(len(d.target), *shape)
    order = np.random.default_rng(0).permutation(len(d.target))
    tr, te = order[:1400], order[1400:]

    def code(xs: np.ndarray, seed: int) -> "torch.Tensor":
        p = torch.tensor(xs, dtype=torch.float32)[..., None].expand(*xs.shape, STEPS)
        return (torch.rand(p.shape, generator=torch.Generator().manual_seed(seed)) < p).float()

    return code(x[tr], 1), torch.tensor(d.target[tr]), code(x[te], 2), d.target[te]


def _slayer_blocks(arch: str):
    """SLAYER CUBA blocks: dense 64-32-10, or conv 1->6 (3x3, stride 2) -> conv 6->12 (3x3, stride 2)
    -> flatten -> dense 10 on (1, 8, 8). The conv net needs an input block for netx to know its shape;
    ``Input(None)`` crashes in step_delay unless delay_shift=False (block/base.py:28-29, 118)."""
    import torch
    from lava.lib.dl import slayer

    torch.manual_seed(0)
    cuba = slayer.block.cuba
    if arch == "dense":
        return torch.nn.ModuleList([cuba.Dense(NEURON, 64, 32, weight_scale=2),
                                    cuba.Dense(NEURON, 32, 10, weight_scale=2)])
    return torch.nn.ModuleList([cuba.Input(None, delay_shift=False),
                                cuba.Conv(NEURON, 1, 6, 3, padding=1, stride=2, weight_scale=2),
                                cuba.Conv(NEURON, 6, 12, 3, padding=1, stride=2, weight_scale=2),
                                cuba.Flatten(), cuba.Dense(NEURON, 12 * 2 * 2, 10, weight_scale=2)])


def _forward(blocks, x) -> list:
    outs = []
    for b in blocks:
        x = b(x)
        outs.append(x)
    return outs


def _time_major(s) -> np.ndarray:
    """slayer's (N, C[, H, W], T) spikes -> snnc's (N, T, n), n in torch (C, H, W) flat order."""
    a = s.detach().numpy()
    return np.moveaxis(a, -1, 1).reshape(a.shape[0], a.shape[-1], -1) > 0


@pytest.mark.slow
@pytest.mark.parametrize("arch", ["dense", "conv"])
def test_slayer_trained_network_compiles_verifies_and_spikes_like_netx(arch: str, tmp_path: Path,
                                                                       capsys: pytest.CaptureFixture[str]) -> None:
    """Train with SLAYER (40 Adam steps), export with the blocks' export_hdf5, ``snn-compile network.net
    --target loihi --verify 4``; then hwsim on the compiled graph spikes exactly like netx's Lava network
    built from the same file (every layer, every step, 16 test digits) and like slayer's own forward
    pass (every layer, every step, all 397 test digits)."""
    import torch

    ensure_lava_importable()
    shape = (64,) if arch == "dense" else (1, 8, 8)
    x_train, y_train, x_test, y_test = _digits(shape)
    blocks = _slayer_blocks(arch)
    opt = torch.optim.Adam(blocks.parameters(), lr=0.01)
    losses = []
    for step in range(40):
        batch = torch.randint(0, len(y_train), (64,), generator=torch.Generator().manual_seed(step))
        rate = _forward(blocks, x_train[batch])[-1].mean(-1)
        loss = torch.nn.functional.cross_entropy(rate * 10, y_train[batch])
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    blocks.eval()
    with torch.no_grad():
        slayer_out = _forward(blocks, x_test)
    slayer_acc = float((slayer_out[-1].sum(-1).argmax(1).numpy() == y_test).mean())
    assert np.mean(losses[-5:]) < 0.5 * np.mean(losses[:5]), losses     # genuinely trained
    assert slayer_acc > 0.5, slayer_acc                                   # chance is 0.1

    path = tmp_path / "network.net"                  # the standard lava-dl export
    with h5py.File(path, "w") as f:
        layer = f.create_group("layer")
        for i, b in enumerate(blocks):
            b.export_hdf5(layer.create_group(f"{i}"))

    build = tmp_path / "build"
    rc = compile_main([str(path), "--target", "loihi", "--verify", "4", "--timesteps", str(STEPS), "--out", str(build)])
    printed = capsys.readouterr().out
    assert rc == 0, printed
    n_layers = 2 if arch == "dense" else 3
    assert f"netx: {n_layers} layers from lava-dl (SLAYER export_hdf5), no /simulation/tSample" in printed
    assert "Verification PASS: 4 samples x 16 steps" in printed

    art = load_artifact(build)      # checks every file's sha256 against the manifest
    names = {p.name for p in build.iterdir()}
    assert {"graph.h5", "graph.nir", "network.net", "manifest.json", "report.json", "report.html"} <= names
    # every graph file hashed (the reports are not: snn-report rewrites them)
    assert names - {"manifest.json", "report.json", "report.html"} == set(art.manifest["files"])
    assert art.manifest["source"]["kind"] == "netx" and art.manifest["netx"] == "written: network.net"
    report = art.report()
    ver = report["verification"]
    pops = [n.name for _, n in art.graph.layers()]
    assert ver["passed"] is True and ver["samples"] == 4 and ver["engines"] == ["hwsim", "lava", "emulator"]
    assert ver["mismatches"] == {pair: {p: 0 for p in pops} for pair in ("hwsim-lava", "hwsim-emulator", "lava-emulator")}
    assert all(ver["spikes"]["hwsim"][p] > 0 for p in pops), ver["spikes"]     # not vacuous
    assert report["mapping"]["cores"] >= n_layers and report["energy"]["total_j"] > 0
    assert report["latency"]["per_step_s"] > 0 and report["latency"]["timesteps"] == STEPS

    x = _time_major(x_test)
    hw = HwSim.from_graph(art.graph).run(x)
    # hwsim == slayer's own forward pass, every layer, every step, every test digit
    slayer_layers = [o for b, o in zip(blocks, slayer_out) if hasattr(b, "synapse")]
    assert len(slayer_layers) == len(pops)
    for name, out in zip(pops, slayer_layers):
        want = _time_major(out)
        assert np.array_equal(hw.spikes[name], want), f"{name}: {int((hw.spikes[name] != want).sum())} spikes differ"
    hw_acc = float((hw.spikes[pops[-1]].sum(1).argmax(1) == y_test).mean())
    assert hw_acc == slayer_acc

    # hwsim == lava-dl's netx network from the SAME file on Lava fixed_pt, every layer and step
    n = 16
    netx_spikes = run_netx(path, x[:n], art.graph.input.shape)
    assert len(netx_spikes) == len(pops)
    for name, got in zip(pops, netx_spikes):
        want = hw.spikes[name][:n]
        assert want.any(), name
        assert got.shape == want.shape and np.array_equal(got, want), \
            f"{name}: first difference at (sample, step, neuron) {np.argwhere(got != want)[0]}"
    print(f"[{arch}] loss {np.mean(losses[:5]):.2f} -> {np.mean(losses[-5:]):.2f}; accuracy on {len(y_test)} test "
          f"digits: slayer {slayer_acc:.3f}, hwsim {hw_acc:.3f}; netx = hwsim on {n} digits, spikes per layer "
          f"{[int(s.sum()) for s in netx_spikes]}; report: {report['mapping']['cores']} cores, "
          f"{report['energy']['total_j'] * 1e9:.1f} nJ per inference")


@pytest.mark.slow
def test_slayer_zero_delays_run_on_netx_delaydense_like_hwsim(tmp_path: Path) -> None:
    """slayer's delay=True blocks export floor(delay); delays start in [0, 1), so an export can hold
    all-zero delays. snnc reads them as no delay; netx builds a DelayDense for them: the two agree."""
    import torch

    ensure_lava_importable()
    from lava.lib.dl import slayer

    torch.manual_seed(1)
    p = dict(threshold=1.0, current_decay=0.25, voltage_decay=0.03, requires_grad=False)
    blocks = [slayer.block.cuba.Dense(p, 20, 12, weight_scale=4, delay=True),
              slayer.block.cuba.Dense(p, 12, 6, weight_scale=4, delay=True)]
    steps = 30
    xt = (torch.rand(3, 20, steps) < 0.4).float()
    path = tmp_path / "delay.net"
    slayer_forward_and_export(blocks, xt, path)
    with h5py.File(path) as f:       # the case under test: delays present, all floor to 0
        assert all("delay" in f[f"layer/{i}"] and not f[f"layer/{i}/delay"][()].any() for i in range(2))
    imp = read_netx_file(path)
    assert sum("'delay' is all zero" in n for n in imp.notes) == 2
    x = _time_major(xt)
    want = HwSim.from_graph(imp.graph).run(x)
    got = run_netx(path, x, imp.graph.input.shape)
    for (_, neu), spikes in zip(imp.graph.layers(), got):
        assert want.spikes[neu.name].any() and np.array_equal(spikes, want.spikes[neu.name]), neu.name
