"""The public Python API a PyTorch user can guess: layers from snnc.models, torch's shape-only layers
accepted, snnc.train on any data, snnc.run on the user's own arrays / DataLoader, the snnTorch export."""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import snnc
import snnc.models
from snnc.errors import SnncError, UnsupportedLayerError
from snnc.models import CubaConv, CubaDense, Flatten, SpikeDropout, SpikingNet, SumPool
from snnc.models.datasets import load_dataset
from snnc.pipeline import run_artifact

from conftest import make_model


def test_every_public_name_of_snnc_models_imports() -> None:
    for name in snnc.models.__all__:
        assert getattr(snnc.models, name) is not None, name
    with pytest.raises(AttributeError):
        snnc.models.NoSuchLayer  # noqa: B018
    assert {"train", "run", "compile", "save", "load"} <= set(snnc.__all__)


def test_torch_shape_layers_are_converted() -> None:
    conv = CubaConv((2, 8, 8), 4, 3, padding=1)
    net = SpikingNet([conv, SumPool(conv.out_shape, 2), nn.Flatten(), nn.Dropout(0.1), nn.Identity(),
                      CubaDense(64, 3)])
    kinds = [type(layer) for layer in net.layers]
    assert kinds == [CubaConv, SumPool, Flatten, SpikeDropout, CubaDense]
    assert net.layers[2].in_shape == (4, 4, 4) and net.layers[3].p == pytest.approx(0.1)
    # a leading nn.Flatten is a no-op (snnc's input is flat), and an nn.Sequential is taken as its layers
    net = SpikingNet(nn.Sequential(nn.Flatten(), CubaDense(64, 10)))
    assert [type(layer) for layer in net.layers] == [CubaDense]


@pytest.mark.parametrize("layer, hint", [(nn.MaxPool2d(2), "SumPool"), (nn.Linear(256, 3), "CubaDense"),
                                         (nn.ReLU(), "needs no activation"), (nn.BatchNorm2d(4), "batch_norm=True")])
def test_unsupported_torch_layers_name_their_replacement(layer: nn.Module, hint: str) -> None:
    conv = CubaConv((2, 8, 8), 4, 3, padding=1)
    with pytest.raises(UnsupportedLayerError) as e:
        SpikingNet([conv, layer, nn.Flatten(), CubaDense(256, 3)])
    msg = str(e.value)
    assert f"layer 1 is a {type(layer).__name__}" in msg and hint in msg and "snnc.models" in msg


def _digits_arrays() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    train, test = load_dataset("digits", "train"), load_dataset("digits", "test")
    return train.x, train.y, test.x, test.y


def test_train_on_arrays_writes_a_checkpoint_that_compiles(tmp_path: Path) -> None:
    x, y, xt, yt = _digits_arrays()
    torch.manual_seed(0)
    net = make_model((64, 32, 10))
    seen = []
    logs = snnc.train(net, (x, y), test_data=(xt, yt), epochs=1, timesteps=8, max_steps=20,
                      out=tmp_path / "m.pt", on_epoch=seen.append)
    assert len(logs) == 1 and seen == logs and logs[0].test_accuracy is not None
    ckpt = snnc.load(tmp_path / "m.pt")
    assert ckpt.metadata["timesteps"] == 8 and ckpt.metadata["encoding"] == "rate"
    assert torch.equal(ckpt.build().layers[0].weight, net.layers[0].weight.cpu())


def test_train_refuses_data_that_does_not_fit_the_network() -> None:
    x, y, _, _ = _digits_arrays()
    net = make_model((64, 32, 10))
    with pytest.raises(SnncError, match="64 inputs"):
        snnc.train(net, (x[:, :60], y), epochs=1)
    with pytest.raises(SnncError, match="label 12 .* 10 classes"):
        snnc.train(net, (x, np.where(y == 9, 12, y)), epochs=1)
    with pytest.raises(SnncError, match="epochs=0"):
        snnc.train(net, (x, y), epochs=0)
    with pytest.raises(SnncError, match="SpikingNet"):
        snnc.train(nn.Linear(64, 10), (x, y), epochs=1)
    with pytest.raises(SnncError, match="not data snnc reads"):
        snnc.train(net, 3.0, epochs=1)


def test_run_on_own_arrays_equals_snn_run_and_a_dataloader(model_path: Path, tmp_path: Path) -> None:
    """snnc.run codes static samples with the compiler's seed: the user's arrays of the digits test
    split give exactly snn-run's decisions on the same samples; a DataLoader gives the same again."""
    art = snnc.compile(model_path, out=tmp_path / "art").out
    test = load_dataset("digits", "test", 0)
    x, y = test.x[:64], test.y[:64]
    out = snnc.run(art, (x, y))
    cli = run_artifact(art, backend="hwsim", dataset=None, samples=64)
    assert out.accuracy is not None and cli["correct"] == int((out.predictions == y).sum())
    assert set(out.spikes) == {"lif1", "lif2"} and out.spikes["lif1"].shape == (64, 12, 32)
    assert out.spikes["lif1"].any()
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.from_numpy(x), torch.from_numpy(y)), batch_size=10)
    assert np.array_equal(snnc.run(art, loader).predictions, out.predictions)
    assert np.array_equal(snnc.run(art, {"x": x, "y": y}).predictions, out.predictions)
    bare = snnc.run(art, x[:5])
    assert bare.labels is None and bare.accuracy is None and np.array_equal(bare.predictions, out.predictions[:5])
    with pytest.raises(SnncError, match="64 inputs"):
        snnc.run(art, x[:, :10])
    with pytest.raises(SnncError, match="backend 'gpu'"):
        snnc.run(art, x[:2], backend="gpu")


def test_custom_event_model_compiles_on_its_event_dataset(tmp_path: Path) -> None:
    """A conv model saved with snnc.save and an event dataset's name: the compiler feeds it the dataset's
    frames (it used to rate-code them and fail with advice to use a rate-coded model)."""
    conv = CubaConv((2, 16, 16), 4, 3, padding=1)
    net = SpikingNet([conv, SumPool(conv.out_shape, 2), nn.Flatten(), CubaDense(256, 4)])
    snnc.save(net, tmp_path / "ev.pt", metadata={"dataset": "synthetic-events", "timesteps": 8})
    res = snnc.compile(tmp_path / "ev.pt", out=tmp_path / "ev.loihi")
    manifest = snnc.compiler.artifact.load_artifact(res.out).manifest
    assert manifest["input"]["encoding"]["kind"] == "events"
    assert res.report["accuracy"]["samples"] > 0


def test_export_snntorch_with_scalar_beta(tmp_path: Path) -> None:
    """snnTorch's idiomatic scalar beta fails in its own exporter; export_snntorch writes a NIR file that
    compiles, leaves the user's model alone, and warns about the reset snnTorch uses by default."""
    snn = pytest.importorskip("snntorch")
    from snntorch.export_nir import export_to_nir

    from snnc.compiler.from_snntorch import export_snntorch

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(12, 10), snn.Leaky(beta=0.9, init_hidden=True, reset_mechanism="zero",
                                                       reset_delay=False),
                          nn.Linear(10, 4), snn.Leaky(beta=0.8, init_hidden=True, reset_mechanism="zero",
                                                      reset_delay=False))
    with pytest.raises(ValueError, match="type mismatch"):   # the trap this helper exists for
        export_to_nir(model, torch.zeros(12))
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)   # reset to zero: no reset warning
        warnings.filterwarnings("ignore", message=".*deprecated.*")
        export_snntorch(model, tmp_path / "s.nir", input_shape=12)
    assert model[1].beta.shape == ()   # the user's model is untouched
    res = snnc.compile(tmp_path / "s.nir", out=tmp_path / "s.loihi")
    graph = snnc.compiler.artifact.load_artifact(res.out).graph
    assert [p.neuron.size for p in graph.populations()] == [10, 4]

    subtract = nn.Sequential(nn.Linear(12, 4), snn.Leaky(beta=0.9, init_hidden=True))
    with pytest.warns(UserWarning, match="resets by 'subtract'"):
        export_snntorch(subtract, tmp_path / "t.nir", input_shape=12)
    delayed = nn.Sequential(nn.Linear(12, 4), snn.Leaky(beta=0.9, init_hidden=True, reset_mechanism="zero"))
    with pytest.warns(UserWarning, match="resets one step after it spikes.*reset_delay=False"):
        export_snntorch(delayed, tmp_path / "d.nir", input_shape=12)
    with pytest.raises(SnncError, match="does not run on a sample of shape"):
        export_snntorch(model, tmp_path / "u.nir", input_shape=13)
    recurrent = nn.Sequential(nn.Linear(12, 8, bias=False),
                              snn.RLeaky(beta=0.9, linear_features=8, init_hidden=True, reset_mechanism="zero",
                                         reset_delay=False),
                              nn.Linear(8, 3), snn.Leaky(beta=0.8, init_hidden=True, reset_mechanism="zero",
                                                         reset_delay=False))
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        warnings.filterwarnings("ignore", message=".*deprecated.*")
        export_snntorch(recurrent, tmp_path / "r.nir", input_shape=12)
    res = snnc.compile(tmp_path / "r.nir", out=tmp_path / "r.loihi")
    graph = snnc.compiler.artifact.load_artifact(res.out).graph
    assert graph.is_recurrent and [p.neuron.size for p in graph.populations()] == [8, 3]
    rsyn = nn.Sequential(nn.Linear(12, 8), snn.RSynaptic(alpha=0.5, beta=0.9, linear_features=8, init_hidden=True,
                                                         reset_mechanism="zero"))
    with pytest.raises(SnncError, match="non-zero recurrent bias.*recurrent.bias.data.zero_"), \
            pytest.warns(UserWarning, match="RSynaptic cannot"):
        export_snntorch(rsyn, tmp_path / "s2.nir", input_shape=12)
    conv = nn.Sequential(nn.Conv2d(2, 4, 3), snn.Leaky(beta=0.9, init_hidden=True), nn.Flatten(), nn.Linear(144, 3))
    with pytest.raises(SnncError, match="layer '0' is an nn.Conv2d.*snnc.models.CubaConv"):
        export_snntorch(conv, tmp_path / "v.nir", input_shape=(2, 8, 8))


@pytest.mark.slow
def test_run_on_lava_equals_hwsim_on_own_arrays(model_path: Path, tmp_path: Path) -> None:
    """snnc.run(backend='lava') on the user's arrays: the same output spikes as hwsim, step for step."""
    art = snnc.compile(model_path, out=tmp_path / "art").out
    x = load_dataset("digits", "test", 0).x[:3]
    hw = snnc.run(art, x, record=["lif2"])
    lava = snnc.run(art, x, backend="lava")
    assert set(hw.spikes) == set(lava.spikes) == {"lif2"} and hw.spikes["lif2"].any()
    assert np.array_equal(hw.spikes["lif2"], lava.spikes["lif2"])
    assert np.array_equal(hw.predictions, lava.predictions)


def test_train_warns_when_timesteps_are_short_for_the_depth() -> None:
    from snnc.models.train import TrainingWarning

    x, y, _, _ = _digits_arrays()
    net = make_model((64, 32, 32, 10))
    with pytest.warns(TrainingWarning, match=r"3 synapses deep.*timesteps=9 or more"):
        snnc.train(net, (x, y), epochs=1, timesteps=4, max_steps=1)
