"""One process or many: the device, the rank, and the collectives the loop needs.

Under torchrun (RANK, WORLD_SIZE, LOCAL_RANK in the environment) the process group is
initialised with nccl on CUDA and gloo on CPU; with one process every call here is a
no-op, so the training loop reads the same either way.
"""
from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterator, Optional

import torch
import torch.distributed as dist
from torch import nn

from ..errors import UsageError


@dataclass(frozen=True)
class Context:
    device: torch.device
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        """Rank 0: the one process that logs and writes files."""
        return self.rank == 0


def setup(device: Optional[str] = None) -> Context:
    """The device (``device``, else cuda when available, else cpu) and, under torchrun,
    this process's place in the process group, which is initialised once."""
    try:
        dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    except RuntimeError:
        raise UsageError(f"--device {device!r} is not a device; use cpu, cuda or cuda:N") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UsageError(f"--device {device} asks for CUDA, but no CUDA device is available; use --device cpu")
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return Context(dev)
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if dev.type == "cuda":
        dev = torch.device("cuda", local)
        torch.cuda.set_device(dev)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if dev.type == "cuda" else "gloo")
    return Context(dev, rank, world, local)


def teardown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def all_sum(ctx: Context, x: torch.Tensor) -> torch.Tensor:
    """x summed over the processes (in place)."""
    if ctx.world > 1:
        dist.all_reduce(x)
    return x


def gather(ctx: Context, obj: Any) -> list:
    """Every process's ``obj``, in rank order."""
    if ctx.world == 1:
        return [obj]
    out = [None] * ctx.world
    dist.all_gather_object(out, obj)
    return out


def barrier(ctx: Context) -> None:
    if ctx.world > 1:
        dist.barrier()


@contextmanager
def local_first(ctx: Context) -> Iterator[None]:
    """The body runs in each machine's first process (local rank 0) before the others
    there: what it builds on disk (the tensor cache) they then find instead of building
    it again each."""
    if ctx.local_rank != 0:
        barrier(ctx)
    try:
        yield
    finally:
        if ctx.local_rank == 0:
            barrier(ctx)


def broadcast_buffers(ctx: Context, model: nn.Module) -> None:
    """Give every process rank 0's buffers (BatchNorm's running statistics, which each
    process otherwise updates from its own shard): afterwards all hold one model."""
    if ctx.world > 1:
        for b in model.buffers():
            dist.broadcast(b, 0)
