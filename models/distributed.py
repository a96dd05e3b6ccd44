"""Data-parallel training with PyTorch's own DistributedDataParallel, started by ``torchrun``.

``torchrun --nproc_per_node N $(which snn-train) ...`` sets WORLD_SIZE, RANK and LOCAL_RANK (and
MASTER_ADDR/MASTER_PORT); :func:`from_environment` reads them, :func:`setup` joins the process group
("gloo" on the CPU, "nccl" on CUDA, one GPU per local rank). Every rank draws the whole global batch
from the same seeded generator and keeps its own contiguous slice (:func:`shard`), so the data order
and the rate coding are those of a single-process run with the same ``--batch-size``; DDP averages
the gradients, and each rank's loss is weighted by its share of the batch so that the average is the
gradient of the global batch's mean loss even when the batch does not split evenly.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistributedContext:
    """This process's place in a torchrun job."""

    world_size: int
    rank: int
    local_rank: int

    @property
    def is_main(self) -> bool:
        """Rank 0 prints, evaluates and writes checkpoints."""
        return self.rank == 0


def from_environment(env: dict[str, str] | None = None) -> DistributedContext | None:
    """The torchrun context from the environment, or None for a plain single-process run."""
    env = dict(os.environ) if env is None else env
    world = int(env.get("WORLD_SIZE", "1"))
    if world <= 1:
        return None
    if "RANK" not in env:
        raise RuntimeError("WORLD_SIZE > 1 but RANK is not set: start distributed training with torchrun")
    rank = int(env["RANK"])
    return DistributedContext(world, rank, int(env.get("LOCAL_RANK", str(rank))))


def setup(ctx: DistributedContext, device: torch.device) -> tuple[torch.device, bool]:
    """Join the process group (if not joined yet) -> (this rank's device, whether we joined it)."""
    if device.type == "cuda":
        device = torch.device("cuda", ctx.local_rank if device.index is None else device.index)
        torch.cuda.set_device(device)
    if dist.is_initialized():
        return device, False
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo", rank=ctx.rank, world_size=ctx.world_size)
    return device, True


def shard(n: int, ctx: DistributedContext) -> tuple[slice, float]:
    """This rank's contiguous slice of a global batch of ``n`` samples, and its loss weight
    (its share times the world size: 1 when the batch splits evenly). A rank left without samples
    (n < world size) gets one sample with weight 0, so every rank still runs forward and backward."""
    base, extra = divmod(n, ctx.world_size)
    start = ctx.rank * base + min(ctx.rank, extra)
    size = base + (1 if ctx.rank < extra else 0)
    if size == 0:
        return slice(0, 1), 0.0
    return slice(start, start + size), size * ctx.world_size / n


def all_sum(values: list[float], device: torch.device) -> list[float]:
    """Sum plain numbers over all ranks (epoch statistics)."""
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t.tolist()


def teardown(joined: bool) -> None:
    """Wait for every rank (rank 0 may still be writing its checkpoint), then leave the group."""
    if joined and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
