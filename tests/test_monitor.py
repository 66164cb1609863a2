"""Monitoring: TensorBoard events, the PNG plot, early stopping."""

import pytest

from asr.config import load_train_config
from asr.train import train
from test_resume import tiny_config


@pytest.mark.slow
def test_tensorboard_events_and_plot(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    exp = tmp_path / "exp"
    train(load_train_config(None, tiny_config(tmp_path, exp, 4, "log_every=1")), show_progress=False)
    events = EventAccumulator(str(exp / "tensorboard"))
    events.Reload()
    tags = events.Tags()
    assert {"train/loss", "train/lr", "train/grad_norm", "train/audio_seconds_per_second", "dev/wer",
            "dev/cer", "epoch/train_loss"} <= set(tags["scalars"])
    assert [e.step for e in events.Scalars("dev/wer")] == [1, 2, 3, 4]  # one batch per epoch
    assert len(events.Scalars("train/loss")) == 4
    assert any("dev/examples" in t for t in tags["tensors"])
    png = (exp / "training.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000


def test_early_stopping_after_patience(tmp_path):
    exp = tmp_path / "exp"
    # nothing is learnt at lr 0: the first epoch stays the best one
    args = tiny_config(tmp_path, exp, 10, "optim.lr=0.0", "early_stop_patience=2", "average_last=0",
                       "tensorboard=false")
    train(load_train_config(None, args), show_progress=False)
    log = (exp / "train.log").read_text()
    assert "early stop: no better dev WER for 2 epochs" in log
    assert "epoch 3:" in log and "epoch 4:" not in log


def test_gpu_utilization_is_not_measured_on_the_cpu():
    from asr.monitor import GpuUtilization

    with GpuUtilization("cpu") as gpu:
        pass
    assert not gpu.available and gpu.samples == [] and gpu.mean is None
    assert gpu.summary() == "GPU utilization not measured: device cpu is not a CUDA GPU"


def test_gpu_utilization_samples_nvml_on_the_visible_device(monkeypatch):
    """A stand-in NVML: the sampler asks the physical GPU behind cuda:1 (CUDA_VISIBLE_DEVICES) and
    averages its readings while the block runs."""
    import sys
    import threading
    import types

    from asr.monitor import GpuUtilization

    asked, readings, done = [], iter([40, 80, 90, 100] + [100] * 10_000), threading.Event()
    fake = types.SimpleNamespace(
        NVMLError=RuntimeError, nvmlInit=lambda: None,
        nvmlDeviceGetHandleByIndex=lambda i: asked.append(i) or f"gpu{i}",
        nvmlDeviceGetMemoryInfo=lambda h: types.SimpleNamespace(used=3 * 2**30))

    def utilization(handle):
        value = next(readings)
        if value == 100:
            done.set()
        return types.SimpleNamespace(gpu=value)

    fake.nvmlDeviceGetUtilizationRates = utilization
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,5")
    with GpuUtilization("cuda:1", interval_s=0.001) as gpu:
        assert done.wait(10)
    assert asked == [5]
    assert gpu.samples[:4] == [40, 80, 90, 100] and set(gpu.samples[4:]) <= {100}
    assert gpu.peak_bytes == 3 * 2**30
    assert gpu.summary().startswith("GPU utilization mean ") and "peak memory in use 3.0 GiB" in gpu.summary()


def test_gpu_utilization_without_nvml_says_how_to_get_it(monkeypatch):
    import sys

    from asr.monitor import GpuUtilization

    monkeypatch.setitem(sys.modules, "pynvml", None)  # import fails
    gpu = GpuUtilization("cuda:0")
    assert not gpu.available and "pip install nvidia-ml-py" in gpu.summary()
