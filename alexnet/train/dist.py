"""torchrun's processes: who am I, where do I run, and the two collectives the loop needs.

Without RANK / WORLD_SIZE in the environment this is one process and every call is a no-op.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from alexnet import device as dev_


@dataclass
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    owns_group: bool = False           # we initialised the process group, so we destroy it

    @property
    def main(self) -> bool:
        return self.rank == 0

    def barrier(self):
        if self.world > 1 or torch.distributed.is_initialized():
            torch.distributed.barrier()

    def all_sum(self, t: torch.Tensor) -> torch.Tensor:
        if torch.distributed.is_initialized():
            torch.distributed.all_reduce(t)
        return t

    def rank0_first(self, fn):
        """Rank 0 builds (and caches) first; the others then find its cache instead of redoing the work."""
        if not self.main:
            self.barrier()
        out = fn()
        if self.main:
            self.barrier()
        return out


def setup(device: str) -> Dist:
    """torchrun sets RANK / WORLD_SIZE / LOCAL_RANK; without them this is a single process."""
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        return Dist()
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local = int(os.environ.get("LOCAL_RANK", rank))
    owns = False
    if not torch.distributed.is_initialized():
        cuda = device in ("auto", "cuda") and torch.cuda.is_available()
        torch.distributed.init_process_group("nccl" if cuda else "gloo", rank=rank, world_size=world)
        owns = True
    return Dist(rank, world, local, owns)


def pick_device(device: str, dist: Dist) -> torch.device:
    out = dev_.pick(device)
    if out.type == "cuda" and torch.distributed.is_initialized():   # one GPU per torchrun process
        out = torch.device("cuda", dist.local_rank)
        torch.cuda.set_device(out)
    return out
