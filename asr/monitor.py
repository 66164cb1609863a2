"""What training is doing: TensorBoard events, and PNG plots of the curves at the end.

    tensorboard --logdir exp/fsdd/tensorboard
"""

from __future__ import annotations

import logging
from pathlib import Path

log = logging.getLogger("asr.train")


class Monitor:
    """Per-step scalars (loss, learning rate, gradient norm, throughput) and per-epoch ones
    (train loss, dev WER/CER, a few decoded dev utterances). ``history`` holds what the
    plots need and travels in the training state, so a resumed run plots its whole past."""

    def __init__(self, exp_dir: Path, tensorboard: bool = True, history: dict | None = None, step: int = 0):
        self.exp_dir = Path(exp_dir)
        self.history = history or {"steps": [], "epochs": []}
        self.writer = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:  # pragma: no cover - tensorboard is a dependency
                log.warning("tensorboard is not installed: no event files (pip install tensorboard)")
            else:
                # purge_step: after a resume, events past the restored step are dropped
                self.writer = SummaryWriter(str(self.exp_dir / "tensorboard"), purge_step=step or None)

    def step(self, step: int, loss: float, lr: float, grad_norm: float, audio_per_s: float) -> None:
        self.history["steps"].append((step, loss, lr))
        if self.writer:
            self.writer.add_scalar("train/loss", loss, step)
            self.writer.add_scalar("train/lr", lr, step)
            self.writer.add_scalar("train/grad_norm", grad_norm, step)
            self.writer.add_scalar("train/audio_seconds_per_second", audio_per_s, step)

    def epoch(self, epoch: int, step: int, train_loss: float, dev_wer: float, dev_cer: float,
              examples: list[tuple[str, str]]) -> None:
        self.history["epochs"].append((epoch, train_loss, dev_wer, dev_cer))
        if self.writer:
            self.writer.add_scalar("epoch/train_loss", train_loss, step)
            self.writer.add_scalar("dev/wer", dev_wer, step)
            self.writer.add_scalar("dev/cer", dev_cer, step)
            table = "\n".join(f"| {ref} | {hyp} |" for ref, hyp in examples)
            self.writer.add_text("dev/examples", f"| reference | hypothesis |\n| --- | --- |\n{table}", step)
            self.writer.flush()

    def close(self) -> None:
        if self.writer:
            self.writer.close()

    def plot(self) -> Path | None:
        """exp_dir/training.png: loss and learning rate by step, dev WER/CER by epoch."""
        if not self.history["steps"]:
            return None
        try:
            import matplotlib
        except ImportError:  # pragma: no cover - matplotlib is a dependency
            log.warning("matplotlib is not installed: no training.png (pip install matplotlib)")
            return None

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        steps, losses, lrs = zip(*self.history["steps"])
        fig, (ax_loss, ax_lr, ax_wer) = plt.subplots(1, 3, figsize=(15, 4))
        ax_loss.plot(steps, losses, linewidth=0.8)
        ax_loss.set(xlabel="step", ylabel="CTC loss", yscale="log", title="training loss")
        ax_lr.plot(steps, lrs)
        ax_lr.set(xlabel="step", ylabel="learning rate", title="learning rate")
        if self.history["epochs"]:
            epochs, _, wers, cers = zip(*self.history["epochs"])
            ax_wer.plot(epochs, wers, marker="o", label="WER")
            ax_wer.plot(epochs, cers, marker="o", label="CER")
            ax_wer.legend()
        ax_wer.set(xlabel="epoch", ylabel="%", title="dev error rates")
        fig.tight_layout()
        path = self.exp_dir / "training.png"
        fig.savefig(path, dpi=100)
        plt.close(fig)
        return path


class GpuUtilization:
    """How busy a CUDA device was while a block ran, sampled through NVML in a background
    thread: the share of sample periods in which a kernel was running (NVML's "GPU
    utilization"), and the peak memory in use on the device.

        with GpuUtilization(device) as gpu:
            ...
        print(gpu.summary())   # "GPU utilization mean 93% (median 97%, 41 samples), peak memory 5.1 GiB"

    On the CPU, or without NVML (``pip install nvidia-ml-py``), nothing is sampled and
    ``reason`` says why."""

    def __init__(self, device, interval_s: float = 0.05):
        self.interval_s = interval_s
        self.samples: list[int] = []
        self.peak_bytes = 0
        self.reason = ""
        self._nvml = self._handle = self._thread = None
        self._stop = None
        import torch

        device = torch.device(device)
        if device.type != "cuda":
            self.reason = f"device {device} is not a CUDA GPU"
            return
        try:
            import pynvml
        except ImportError:
            self.reason = "NVML is not installed (pip install nvidia-ml-py)"
            return
        try:
            pynvml.nvmlInit()
            index = device.index if device.index is not None else torch.cuda.current_device()
            self._handle = pynvml.nvmlDeviceGetHandleByIndex(_physical_index(index))
        except pynvml.NVMLError as e:
            self.reason = f"NVML: {e}"
            return
        self._nvml = pynvml

    @property
    def available(self) -> bool:
        return self._nvml is not None

    def __enter__(self) -> "GpuUtilization":
        if self.available:
            import threading

            self._stop = threading.Event()
            self._thread = threading.Thread(target=self._sample, name="asr-nvml", daemon=True)
            self._thread.start()
        return self

    def _sample(self) -> None:
        while True:
            self.samples.append(int(self._nvml.nvmlDeviceGetUtilizationRates(self._handle).gpu))
            self.peak_bytes = max(self.peak_bytes, int(self._nvml.nvmlDeviceGetMemoryInfo(self._handle).used))
            if self._stop.wait(self.interval_s):
                return

    def __exit__(self, *exc) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join()

    @property
    def mean(self) -> float | None:
        return sum(self.samples) / len(self.samples) if self.samples else None

    def summary(self) -> str:
        if not self.available:
            return f"GPU utilization not measured: {self.reason}"
        if not self.samples:
            return "GPU utilization not measured: no sample taken"
        median = sorted(self.samples)[len(self.samples) // 2]
        return (f"GPU utilization mean {self.mean:.0f}% (median {median}%, {len(self.samples)} samples), "
                f"peak memory in use {self.peak_bytes / 2**30:.1f} GiB")


def _physical_index(index: int) -> int:
    """NVML numbers GPUs physically; CUDA_VISIBLE_DEVICES renumbers them for torch."""
    import os

    visible = [v.strip() for v in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if v.strip()]
    if index < len(visible) and visible[index].isdigit():
        return int(visible[index])
    return index
