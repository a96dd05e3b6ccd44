"""snn-train --preset (the papers' configurations), learning-rate schedules, fan-in-scaled learning
rates and the initial-activity calibration."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from snnc.cli import train_main
from snnc.models.checkpoint import load
from snnc.models.network import mlp
from snnc.models.presets import PRESETS, Schedule
from snnc.models.quant import choose_weight_scale
from snnc.models.rules import make_rule
from snnc.models.train import calibrate_activity, param_groups
from test_datasets import _write_mnist, _write_nmnist


def test_schedules() -> None:
    every = Schedule("step", gamma=0.1, every=40)
    assert [every.factor(e) for e in (1, 40, 41, 80, 81)] == pytest.approx([1, 1, 0.1, 0.1, 0.01])
    at = Schedule("step", gamma=0.2, milestones=(75,))
    assert (at.factor(74), at.factor(75), at.factor(125)) == pytest.approx((1, 0.2, 0.2))
    assert (Schedule("inv-sqrt").factor(1), Schedule("inv-sqrt").factor(4)) == (1.0, 0.5)
    cos = Schedule("cosine", warmup=5, total=300)
    assert cos.factor(1) == pytest.approx(1 / 6) and cos.factor(6) == 1.0 and cos.factor(300) < 1e-3
    assert all(cos.factor(e) >= cos.factor(e + 1) for e in range(6, 300))


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_trains_with_its_recipe(name: str, tmp_path: Path) -> None:
    """One optimiser step of each preset on small files in the true formats; the log records the
    preset's values where no flag overrides them, and the optimiser is the paper's."""
    preset = PRESETS[name]
    if preset.dataset == "mnist":
        _write_mnist(tmp_path, n_train=8, n_test=4)
    else:
        _write_nmnist(tmp_path, "Train", {0: 4, 1: 4})
        _write_nmnist(tmp_path, "Test", {0: 2, 1: 2})
    small = [] if preset.arch != "mlp" else ["--hidden", "6"]
    out = tmp_path / "m.pt"
    assert train_main(["--preset", name, "--data-dir", str(tmp_path), "--epochs", "1", "--max-steps", "1",
                       "--timesteps", "2", "--batch-size", "4", *small, "--out", str(out)]) == 0
    config = json.loads(out.with_suffix(".log.json").read_text())["config"]
    assert (config["dataset"], config["arch"], config["rule"], config["epochs"], config["timesteps"]) == \
           (preset.dataset, preset.arch, preset.rule, 1, 2)
    assert config["lr"] == preset.lr and config["lr_scaling"] == "none"
    state = torch.load(out.with_suffix(".state.pt"), weights_only=True)["optimizer"]
    group = state["param_groups"][0]
    assert group["lr"] == pytest.approx(preset.lr * preset.schedule.factor(1))
    assert ("momentum" in group) == (preset.optimizer.kind == "sgd")
    assert group["weight_decay"] == preset.optimizer.weight_decay


def test_preset_flags_override_and_unknown_names_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _write_mnist(tmp_path, n_train=8, n_test=4)
    out = tmp_path / "m.pt"
    assert train_main(["--preset", "stbp-mnist-mlp", "--data-dir", str(tmp_path), "--epochs", "1", "--max-steps",
                       "1", "--hidden", "5", "--lr", "0.01", "--rule", "arctan", "--out", str(out)]) == 0
    config = json.loads(out.with_suffix(".log.json").read_text())["config"]
    assert (config["hidden"], config["lr"], config["rule"], config["batch_size"]) == ([5], 0.01, "arctan", 100)
    assert "Differs from the paper" in capsys.readouterr().out
    assert train_main(["--preset", "mnist-99", "--out", str(out)]) == 2
    assert "unknown --preset 'mnist-99'" in capsys.readouterr().err


def test_a_preset_loss_can_be_overridden_and_resume_needs_the_same_preset(tmp_path: Path,
                                                                          capsys: pytest.CaptureFixture[str]) -> None:
    _write_nmnist(tmp_path, "Train", {0: 4, 1: 4})
    _write_nmnist(tmp_path, "Test", {0: 2, 1: 2})
    out = tmp_path / "m.pt"
    common = ["--data-dir", str(tmp_path), "--arch", "mlp", "--hidden", "6", "--timesteps", "2", "--batch-size",
              "4", "--max-steps", "1", "--out", str(out)]
    assert train_main(["--preset", "bpsta-nmnist", "--loss", "rate-ce", "--epochs", "1", *common]) == 0
    assert load(out).build().rule.loss == "rate-ce"          # the preset's MSE, overridden
    assert train_main(["--dataset", "nmnist", "--timesteps", "2", "--epochs", "2", "--resume", *common[:-2],
                       "--out", str(out)]) == 2
    assert "--preset" in capsys.readouterr().err
    assert train_main(["--preset", "bpsta-nmnist", "--epochs", "2", "--resume", *common]) == 0


def test_learning_rates_scale_with_fan_in() -> None:
    model = mlp(784, 10, hidden=(32,))
    groups = param_groups(model, 4e-3)
    assert [g["lr"] for g in groups] == pytest.approx([4e-3 * math.sqrt(64 / 784), 4e-3])   # 32 inputs: capped at lr
    assert [g["lr"] for g in param_groups(model, 4e-3, "none")] == [4e-3, 4e-3]
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))


def test_silent_layers_start_louder_and_active_ones_are_left_alone() -> None:
    torch.manual_seed(0)
    model = mlp(200, 10, hidden=(30,), rule=make_rule("bpsta"), encoding="rate")   # 100 voters
    x = (torch.rand(64, 10, 200) < 0.3).float()
    with torch.no_grad():
        model.layers[1].weight.mul_(0.05)
    before = model.layers[0].weight.clone()
    with torch.no_grad():
        rates = {n: float(t.mean()) for n, t in model.traces(x).items()}
    assert rates["lif1"] >= 0.01 and rates["lif2"] < 0.01
    gains = calibrate_activity(model, x, 0.01)
    assert set(gains) == {"lif2"} and gains["lif2"] > 1
    assert torch.equal(model.layers[0].weight, before)
    with torch.no_grad():
        assert float(model.traces(x)["lif2"].mean()) >= 0.01
    assert model.layers[1].weight_scale == choose_weight_scale([model.layers[1].weight], model.layers[1].bias, 1.0)


@pytest.mark.parametrize("bad", [["--lr", "-1"], ["--lr", "0"], ["--hidden", "0"], ["--batch-size", "0"],
                                 ["--epochs", "0"], ["--max-steps", "0"], ["--current-decay", "-0.5"],
                                 ["--voltage-decay", "2"]])
def test_bad_training_numbers_get_one_line_and_no_file(bad: list[str], tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "m.pt"
    assert train_main([*bad, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("snn-train: error:") and bad[0] in err and "Traceback" not in err
    assert not out.exists()
