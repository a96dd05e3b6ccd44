"""Training experience: exact resume, per-epoch checkpoints, the JSON log, devices."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from snnc.cli import train_main
from snnc.models.checkpoint import load
from snnc.models.datasets import load_dataset
from snnc.models.rules import make_rule
from snnc.models.train import TrainState, resolve_device, train

from conftest import make_model


def _weights(model: torch.nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in model.parameters()]


@pytest.mark.parametrize("rule", ["stbp-rect", "lee-dropout"])
def test_resumed_training_is_bit_identical_to_uninterrupted(rule: str) -> None:
    """Also with a rule that draws training-time masks from torch's global RNG (Lee's dropout)."""
    data = load_dataset("digits", "train")
    kw = dict(timesteps=6, max_steps=4, batch_size=32, seed=3)

    def fresh() -> torch.nn.Module:
        m = make_model(gain=1.0)
        if rule == "lee-dropout":
            m.rule = make_rule("lee", dropout=0.3)
        return m

    straight = fresh()
    train(straight, data, epochs=3, **kw)

    states: list[TrainState] = []
    first = fresh()
    train(first, data, epochs=2, on_epoch=lambda log, st: states.append(st), **kw)
    # round-trip the state through a file that loads without unpickling code
    state = TrainState.from_dict(torch.load(_save(states[-1]), weights_only=True))
    torch.manual_seed(999)  # a new process would start from another global RNG state
    resumed = fresh()
    resumed.load_state_dict(first.state_dict())
    logs = train(resumed, data, epochs=3, resume=state, **kw)
    assert [log.epoch for log in logs] == [1, 2, 3]
    for a, b in zip(_weights(straight), _weights(resumed)):
        assert torch.equal(a, b)
    assert not all(torch.equal(a, b) for a, b in zip(_weights(first), _weights(resumed)))  # it did train


def _save(state: TrainState) -> Path:
    import tempfile

    path = Path(tempfile.mkdtemp()) / "s.pt"
    torch.save(state.to_dict(), path)
    return path


def test_cli_saves_every_epoch_logs_json_and_resumes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "m.pt"
    args = ["--hidden", "16", "--timesteps", "6", "--max-steps", "3", "--out", str(out), "--device", "cpu"]
    assert train_main(["--epochs", "1", *args]) == 0
    assert load(out).metadata["epochs"] == 1
    assert train_main(["--epochs", "2", "--resume", *args]) == 0
    assert "resuming after epoch 1" in capsys.readouterr().out
    log = json.loads(out.with_suffix(".log.json").read_text())
    assert [e["epoch"] for e in log["epochs"]] == [1, 2] and log["config"]["timesteps"] == 6
    assert all(0 <= e["test_accuracy"] <= 1 and e["samples_per_s"] > 0 for e in log["epochs"])
    assert load(out).metadata["epochs"] == 2
    # resuming with different data settings is refused, with the reason
    capsys.readouterr()
    assert train_main(["--epochs", "3", "--resume", *[a if a != "6" else "7" for a in args]]) == 2
    assert "same --dataset, --seed, --timesteps and --preset" in capsys.readouterr().err
    assert train_main(["--epochs", "3", "--resume", "--out", str(tmp_path / "none.pt")]) == 2


def test_device_resolution() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto") == torch.device("cuda" if torch.cuda.is_available() else "cpu")
