import math

import pytest

from asr.checkpoint import load_checkpoint
from asr.config import load_train_config
from asr.decoding import GreedyDecoder
from asr.errors import AsrError
from asr.evaluate import evaluate_manifest
from asr.train import lr_schedule, train
from conftest import OVERFIT_ITEMS, TINY_OVERRIDES, WORDS, write_fsdd_manifest


def test_lr_schedule_warms_up_then_decays():
    values = [lr_schedule(s, warmup=10, total=100, final_ratio=0.1) for s in range(100)]
    assert values[0] == pytest.approx(0.1) and values[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(values[10:], values[11:]))
    assert lr_schedule(100, 10, 100, 0.1) == pytest.approx(0.1)


@pytest.mark.slow
def test_tiny_model_learns_real_recordings_exactly(tiny_model):
    checkpoint, manifest = tiny_model
    recognizer = load_checkpoint(checkpoint)
    summary, rows = evaluate_manifest(recognizer, manifest, GreedyDecoder(recognizer.vocab), num_workers=0)
    assert [r["hypothesis"] for r in rows] == [WORDS[d] for d, _, _ in OVERFIT_ITEMS]
    assert summary.wer == 0.0 and summary.cer == 0.0
    assert recognizer.info["dev_wer"] == 0.0
    assert (checkpoint.parent / "last.pt").is_file() and (checkpoint.parent / "train.log").is_file()
    assert "dev WER" in (checkpoint.parent / "train.log").read_text()


def test_dev_transcripts_outside_the_vocabulary_are_an_error(tmp_path):
    train_manifest = write_fsdd_manifest(tmp_path / "train.jsonl", [(1, "jackson", 11), (2, "jackson", 11)])
    dev_manifest = write_fsdd_manifest(tmp_path / "dev.jsonl", [(1, "jackson", 12), (6, "jackson", 12)])
    config = load_train_config(None, TINY_OVERRIDES + [
        f"exp_dir={tmp_path / 'exp'}", f"data.train_manifest={train_manifest}",
        f"data.dev_manifest={dev_manifest}", "epochs=1"])
    with pytest.raises(AsrError, match=rf"{dev_manifest}:2: transcript 'six' .*'s', 'i', 'x'"):
        train(config, show_progress=False)


def test_missing_manifests_are_an_error(tmp_path):
    with pytest.raises(AsrError, match="must both be set"):
        train(load_train_config(None, [f"exp_dir={tmp_path}"]), show_progress=False)
