"""Where this process stands in a torchrun job: rank, world size, device, and the few
collective operations training needs (DDP wrapping, reducing a step's numbers, merging
dev hypotheses, a barrier after saves). A single process is a job of one, and every
operation is then a no-op.

Every collective waits at most ``timeout`` seconds: a process that fails or hangs makes the
others stop with a one-line error within that time, instead of blocking them forever.
"""

from __future__ import annotations

import os
from datetime import timedelta

import torch

from asr.errors import AsrError, reason
from asr.recognizer import pick_device

TIMEOUT = 600.0  # seconds a collective waits for the other processes


class Distributed:
    """This process's place in a torchrun job (``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK``), or a
    single process. Rank 0 alone writes checkpoints, states, logs and TensorBoard events."""

    def __init__(self, rank: int = 0, world_size: int = 1, device: torch.device | None = None,
                 timeout: float = TIMEOUT):
        self.rank, self.world_size, self.device, self.timeout = rank, world_size, device, timeout

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @classmethod
    def from_environment(cls, device_name: str = "auto", timeout: float = TIMEOUT) -> "Distributed":
        world_size = int(os.environ.get("WORLD_SIZE", "1"))
        if world_size <= 1:
            return cls()
        import torch.distributed as td

        device = pick_device(device_name, local_rank=int(os.environ.get("LOCAL_RANK", "0")))
        cuda = device.type == "cuda"
        if cuda:
            torch.cuda.set_device(device)
        if not td.is_initialized():
            td.init_process_group("nccl" if cuda else "gloo", timeout=timedelta(seconds=timeout))
        return cls(td.get_rank(), td.get_world_size(), device, timeout)

    def _collective(self, what: str, operation):
        """Run a collective; a peer that failed or hangs becomes a one-line error here."""
        try:
            return operation()
        except Exception as e:  # gloo/NCCL raise RuntimeError or DistBackendError
            self.close()  # a broken group left to the interpreter's exit aborts the process (SIGABRT)
            raise AsrError(f"process {self.rank} of {self.world_size}: {what} failed: another process failed or "
                           f"did not answer within {self.timeout:g} s ({reason(e)}); see the other processes' "
                           "output") from None

    def barrier(self) -> None:
        """Wait until every process gets here (at most ``timeout`` seconds)."""
        if self.world_size <= 1:
            return
        import torch.distributed as td

        self._collective("barrier", td.barrier)  # bounded by the process group's timeout

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
        self._collective("reducing a step", lambda: (td.all_reduce(sums), td.all_reduce(raised, op=td.ReduceOp.MAX)))
        return (float(sums[0] / sums[1]), float(sums[2]), *(bool(f) for f in raised.tolist()))

    def merge(self, part: dict) -> dict:
        """The union of every process's dict."""
        if self.world_size <= 1:
            return part
        import torch.distributed as td

        parts: list = [None] * self.world_size
        self._collective("gathering results", lambda: td.all_gather_object(parts, part))
        return {k: v for p in parts for k, v in p.items()}

    def close(self) -> None:
        """Destroy the process group while the interpreter is whole: a group still held at exit
        (a DDP wrapper in a reference cycle keeps it) can abort the process in gloo's teardown."""
        if self.world_size > 1:
            import gc

            import torch.distributed as td

            gc.collect()  # the last DDP wrapper and its reducer go first
            if td.is_initialized():
                td.destroy_process_group()
