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
