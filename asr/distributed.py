"""Where this process stands in a torchrun job: rank, world size, device, and the few
collective operations training needs (DDP wrapping, reducing a step's numbers, merging
dev hypotheses). A single process is a job of one, and every operation is then a no-op.
"""

from __future__ import annotations

import os

import torch


class Distributed:
    """This process's place in a torchrun job (``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK``), or a
    single process. Rank 0 alone writes checkpoints, states, logs and TensorBoard events."""

    def __init__(self, rank: int = 0, world_size: int = 1, device: torch.device | None = None):
        self.rank, self.world_size, self.device = rank, world_size, device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @classmethod
    def from_environment(cls, device_name: str = "auto") -> "Distributed":
        world_size = int(os.environ.get("WORLD_SIZE", "1"))
        if world_size <= 1:
            return cls()
        import torch.distributed as td

        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        cuda = torch.cuda.is_available() and device_name != "cpu"
        device = torch.device("cuda", local_rank) if cuda else torch.device("cpu")
        if cuda:
            torch.cuda.set_device(device)
        if not td.is_initialized():
            td.init_process_group("nccl" if cuda else "gloo")
        return cls(td.get_rank(), td.get_world_size(), device)

    def wrap(self, model: torch.nn.Module) -> torch.nn.Module:
        if self.world_size <= 1:
            return model
        from torch.nn.parallel import DistributedDataParallel

        ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=ids)

    def reduce_step(self, loss: float, size: int, audio_s: float, *flags: bool) -> tuple:
        """The global batch's mean loss and audio seconds, and each flag set in any process."""
        if self.world_size <= 1:
            return (loss, audio_s, *flags)
        import torch.distributed as td

        sums = torch.tensor([loss * size, size, audio_s], dtype=torch.float64, device=self.device)
        raised = torch.tensor([float(f) for f in flags], dtype=torch.float64, device=self.device)
        td.all_reduce(sums)
        td.all_reduce(raised, op=td.ReduceOp.MAX)
        return (float(sums[0] / sums[1]), float(sums[2]), *(bool(f) for f in raised.tolist()))

    def merge(self, part: dict) -> dict:
        """The union of every process's dict."""
        if self.world_size <= 1:
            return part
        import torch.distributed as td

        parts: list = [None] * self.world_size
        td.all_gather_object(parts, part)
        return {k: v for p in parts for k, v in p.items()}

    def close(self) -> None:
        if self.world_size > 1:
            import torch.distributed as td

            if td.is_initialized():
                td.destroy_process_group()
