"""Distributed data parallel training (models/distributed.py, models/train.py): two CPU processes with
PyTorch's DistributedDataParallel over gloo, started the way torchrun starts them (WORLD_SIZE, RANK,
LOCAL_RANK, MASTER_ADDR/PORT in the environment)."""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from snnc.models.checkpoint import load
from snnc.models.datasets import load_dataset
from snnc.models.distributed import DistributedContext, from_environment, shard
from snnc.models.train import train

from conftest import make_model

KW = dict(epochs=2, timesteps=6, batch_size=31, max_steps=3, seed=5, lr=5e-3)   # 31: shards of 16 and 15


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _model() -> torch.nn.Module:
    return make_model((64, 24, 10), hardware_exact=False, gain=1.0, seed=1)


def _rank(rank: int, world: int, port: int, out: str) -> None:
    """One torchrun-style process: the environment torchrun sets, then the ordinary train()."""
    os.environ.update(WORLD_SIZE=str(world), RANK=str(rank), LOCAL_RANK=str(rank),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    torch.manual_seed(100 + rank)         # different per rank: DDP must broadcast rank 0's weights
    model = _model() if rank == 0 else make_model((64, 24, 10), hardware_exact=False, gain=1.0, seed=7)
    calls: list[int] = []
    sizes: list[int] = []
    model.register_forward_pre_hook(lambda module, args: sizes.append(args[0].shape[0]) if module.training else None)
    logs = train(model, load_dataset("digits", "train"), on_epoch=lambda log, st: calls.append(log.epoch), **KW)
    torch.save({"state": model.state_dict(), "calls": calls, "loss": [log.loss for log in logs],
                "group_left": not torch.distributed.is_initialized(), "sizes": sizes}, Path(out) / f"rank{rank}.pt")


@pytest.mark.slow   # ~16 s on 2 cores, mostly two processes importing torch
def test_two_ranks_train_like_one_process_with_the_same_global_batch(tmp_path: Path) -> None:
    """Shards of 16 and 15: with a plain per-rank mean instead of the share weights the weights end
    ~1e-2 apart (measured); with them, ~1e-8."""
    mp.spawn(_rank, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    for k, v in r0["state"].items():
        assert torch.equal(v, r1["state"][k]), k                  # DDP kept the replicas identical
    assert r0["calls"] == [1, 2] and r1["calls"] == []             # on_epoch on rank 0 only
    assert r0["group_left"] and r1["group_left"]
    assert r0["sizes"] == [16] * 6 and r1["sizes"] == [15] * 6     # each rank its share of every batch
    assert r0["loss"] == r1["loss"]                               # epoch statistics summed over ranks

    single = _model()
    start = {k: v.clone() for k, v in single.state_dict().items()}
    logs = train(single, load_dataset("digits", "train"), **KW)
    moved = max(float((v - start[k]).abs().max()) for k, v in single.state_dict().items())
    assert moved > 1e-2                                           # training changed the weights
    for k, v in single.state_dict().items():                      # float rounding differs: a tolerance
        assert torch.allclose(r0["state"][k], v, atol=2e-5, rtol=0), (k, float((r0["state"][k] - v).abs().max()))
    assert [log.loss for log in logs] == pytest.approx(r0["loss"], rel=1e-4)


def test_environment_and_shards() -> None:
    assert from_environment({}) is None and from_environment({"WORLD_SIZE": "1"}) is None
    ctx = from_environment({"WORLD_SIZE": "3", "RANK": "2", "LOCAL_RANK": "0"})
    assert ctx == DistributedContext(3, 2, 0) and not ctx.is_main
    with pytest.raises(RuntimeError, match="torchrun"):
        from_environment({"WORLD_SIZE": "2"})
    # 10 samples over 3 ranks: 4, 3, 3, covering the batch once, weights averaging to 1
    parts = [shard(10, DistributedContext(3, r, r)) for r in range(3)]
    assert [(p.start, p.stop) for p, _ in parts] == [(0, 4), (4, 7), (7, 10)]
    assert sum(w for _, w in parts) / 3 == pytest.approx(1.0)
    assert shard(1, DistributedContext(2, 1, 1)) == (slice(0, 1), 0.0)   # nothing left: weight 0


@pytest.mark.slow
def test_torchrun_snn_train_cli(tmp_path: Path) -> None:
    """The documented command: torchrun --nproc_per_node 2 $(which snn-train) ..."""
    exe = shutil.which("snn-train") or str(Path(sys.executable).parent / "snn-train")
    out = tmp_path / "model.pt"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                           exe, "--dataset", "digits", "--hidden", "16", "--epochs", "1", "--timesteps", "4",
                           "--max-steps", "2", "--out", str(out)],
                          capture_output=True, text=True, env=env, timeout=300)
    # torchrun's own summary comes last; a rank's error (its abort message) comes first
    assert done.returncode == 0, done.stderr[:3000] + "\n...\n" + done.stderr[-1500:]
    assert done.stdout.count("epoch 1:") == 1                   # printed by rank 0 only
    ckpt = load(out)
    assert ckpt.metadata["epochs"] == 1
    log = json.loads(out.with_suffix(".log.json").read_text())
    assert log["epochs"][0]["epoch"] == 1
