"""Multi-process training through ``torch.distributed``, launched by ``torchrun``.

torchsci has no distributed engine of its own: this module reads the environment that ``torchrun``
sets (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``), initialises the process group with
the right backend (nccl for CUDA, gloo otherwise), and offers the few collectives the Trainer needs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch.utils.data import get_worker_info


@dataclass(frozen=True)
class DistInfo:
    """Where this process stands in a distributed run (rank 0 of 1 when not distributed)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def env_info() -> DistInfo:
    """The rank layout ``torchrun`` put in the environment (single process when unset)."""
    return DistInfo(
        rank=int(os.environ.get("RANK", 0)),
        world_size=int(os.environ.get("WORLD_SIZE", 1)),
        local_rank=int(os.environ.get("LOCAL_RANK", 0)),
    )


def init(device_type: str) -> DistInfo:
    """Join the process group that ``torchrun`` describes; a no-op for a single process."""
    info = env_info()
    if info.enabled and not dist.is_initialized():
        backend = "nccl" if device_type == "cuda" else "gloo"
        dist.init_process_group(backend=backend)
    return info


def reader_shard() -> tuple[int, int]:
    """``(this reader's index, number of readers)`` over the run's ranks times this rank's DataLoader workers.

    A stream that reads its own chunks (an iterable dataset) keeps every ``n``-th unit from index ``i``, so
    each rank and worker reads a different part and together they read everything once.

    Examples
    --------
    >>> from torchsci.distributed import reader_shard
    >>> reader_shard()  # one process, no workers
    (0, 1)
    """
    shards, shard = 1, 0
    if dist.is_available() and dist.is_initialized():
        shards, shard = dist.get_world_size(), dist.get_rank()
    info = get_worker_info()
    if info is not None:
        shard, shards = shard * info.num_workers + info.id, shards * info.num_workers
    return shard, shards


def barrier() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """Sum ``tensor`` over all ranks in place (identity when not distributed)."""
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def all_gather_object(obj: Any) -> list[Any]:
    """Every rank's ``obj``, in rank order (``[obj]`` when not distributed)."""
    if dist.is_available() and dist.is_initialized():
        out: list[Any] = [None] * dist.get_world_size()
        dist.all_gather_object(out, obj)
        return out
    return [obj]
