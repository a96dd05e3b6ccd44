"""Loading never executes code from a file unless the user opts in with the flag named for it.

The payload is live: unpickled, it creates a file. The opt-in test shows that it does, so that the
refusals below are refusals of code that would really have run.
"""
from __future__ import annotations

import contextlib
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from conftest import make_model
from snnc.errors import InputFileError
from snnc.models.checkpoint import load, save

BIN = Path(sys.executable).parent


class _WritesAFile:
    """Unpickling calls ``open(target, "w")``: the file appears."""

    def __init__(self, target: Path):
        self.target = str(target)

    def __reduce__(self):  # noqa: D105
        return (open, (self.target, "w"))


def _payload(victim: Path) -> dict:
    return {"format": "snnc.checkpoint", "format_version": 1, "spec": {}, "state_dict": {},
            "payload": _WritesAFile(victim)}


def _evil_zip(path: Path, victim: Path) -> Path:
    torch.save(_payload(victim), path)
    return path


def _evil_legacy(path: Path, victim: Path) -> Path:
    path.write_bytes(pickle.dumps(_payload(victim), protocol=2))   # the pre-zip torch format
    return path


@pytest.mark.parametrize("make", [_evil_zip, _evil_legacy], ids=["zip", "legacy-pickle"])
def test_the_payload_runs_only_with_the_opt_in(make, tmp_path: Path) -> None:
    victim = tmp_path / "pwned.txt"
    path = make(tmp_path / "evil.pt", victim)
    with pytest.raises(InputFileError, match="--allow-pickle-code-execution"):
        load(path)
    assert not victim.exists()
    with contextlib.suppress(InputFileError):   # the opt-in runs the code (whatever the file is then)
        load(path, allow_pickle_code_execution=True)
    assert victim.exists(), "the payload is not live: the refusal tests would prove nothing"


@pytest.mark.parametrize("make", [_evil_zip, _evil_legacy], ids=["zip", "legacy-pickle"])
def test_snn_compile_refuses_and_writes_nothing(make, tmp_path: Path) -> None:
    victim, out = tmp_path / "pwned.txt", tmp_path / "build"
    res = subprocess.run([str(BIN / "snn-compile"), str(make(tmp_path / "evil.pt", victim)), "--out", str(out)],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 2 and "--allow-pickle-code-execution" in res.stderr
    assert "Traceback" not in res.stderr and str(tmp_path / "evil.pt") in res.stderr
    assert not victim.exists() and not out.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["evil.pt"]


def test_resume_refuses_a_state_file_with_code(tmp_path: Path) -> None:
    """snn-train --resume reads the .state.pt beside the model: with code in it, nothing runs."""
    victim, out = tmp_path / "pwned.txt", tmp_path / "model.pt"
    save(make_model(), out, metadata={"dataset": "digits", "timesteps": 12, "seed": 0})
    torch.save({"format": "snnc.train-state", "payload": _WritesAFile(victim)}, out.with_suffix(".state.pt"))
    res = subprocess.run([str(BIN / "snn-train"), "--dataset", "digits", "--timesteps", "12", "--seed", "0",
                          "--resume", "--out", str(out)], capture_output=True, text=True, timeout=300)
    assert res.returncode == 2 and "would run code stored in the file" in res.stderr, res.stderr
    assert "Traceback" not in res.stderr and not victim.exists()
