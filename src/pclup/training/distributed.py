"""Several training processes (``torchrun``): distributed data parallel, NCCL on GPUs, gloo on CPUs.

Without torchrun's environment (``WORLD_SIZE`` unset or 1) everything here is the identity: one process,
rank 0, modules unwrapped.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
from torch import nn

from ..device import pick_device


@dataclass(frozen=True)
class Distributed:
    """This process's place among the training processes."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        """Rank 0: the process that validates, logs and writes checkpoints and the model."""
        return self.rank == 0

    @classmethod
    def start(cls, device: str) -> Distributed:
        """Join the process group that torchrun set up (NCCL when ``device`` is a GPU), or stay alone."""
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world <= 1:
            return cls()
        import torch.distributed as dist

        place = cls(int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", "0")))
        backend = "nccl" if _gpus(device) else "gloo"
        dist.init_process_group(backend)
        if backend == "nccl":
            torch.cuda.set_device(place.local_rank)
        return place

    def device(self, name: str) -> torch.device:
        """The device this process trains on: its own GPU when distributed over GPUs, else ``name``."""
        return pick_device(f"cuda:{self.local_rank}" if self.world > 1 and _gpus(name) else name)

    def wrap(self, module: nn.Module, device: torch.device) -> nn.Module:
        """``module`` in DistributedDataParallel when distributed (gradients averaged over processes)."""
        if self.world == 1:
            return module
        from torch.nn.parallel import DistributedDataParallel as DDP

        return DDP(module, device_ids=[self.local_rank] if device.type == "cuda" else None)

    def broadcast_buffers(self, module: nn.Module) -> None:
        """Give every process rank 0's buffers of ``module`` (BatchNorm statistics); nothing when alone."""
        if self.world == 1:
            return
        import torch.distributed as dist

        for buffer in module.buffers():
            dist.broadcast(buffer, 0)

    def mean(self, value: float) -> float:
        """The mean of ``value`` over the processes (``value`` itself when alone)."""
        if self.world == 1:
            return value
        import torch.distributed as dist

        on = f"cuda:{self.local_rank}" if dist.get_backend() == "nccl" else "cpu"  # NCCL reduces on GPUs
        t = torch.tensor([value], dtype=torch.float64, device=on)
        dist.all_reduce(t)
        return float(t.item()) / self.world

    def stop(self) -> None:
        if self.world > 1:
            import torch.distributed as dist

            dist.destroy_process_group()


def _gpus(device: str) -> bool:
    return torch.cuda.is_available() and device in ("auto", "cuda")
