"""Shared fixtures: real FSDD speech from ../shared/data, and one tiny model trained on it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FSDD = REPO.parent / "shared" / "data" / "fsdd" / "recordings"
LIBRISPEECH = REPO.parent / "shared" / "data" / "librispeech-sample" / "LibriSpeech"
WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]


def fsdd_file(digit: int, speaker: str = "jackson", take: int = 10) -> Path:
    path = FSDD / f"{digit}_{speaker}_{take}.wav"
    if not path.is_file():
        pytest.skip(f"real speech not found: {path}")
    return path


def write_fsdd_manifest(path: Path, items: list[tuple[int, str, int]]) -> Path:
    with open(path, "w") as f:
        for digit, speaker, take in items:
            f.write(json.dumps({"audio_filepath": str(fsdd_file(digit, speaker, take)), "text": WORDS[digit],
                                "speaker": speaker}) + "\n")
    return path


# Six real recordings the tiny model must learn to transcribe exactly.
OVERFIT_ITEMS = [(d, "jackson", 10) for d in (0, 1, 2, 3, 6, 8)]

TINY_OVERRIDES = [
    "epochs=400", "seed=1", "log_every=1000",
    "features.sample_rate=8000", "features.n_mels=32",
    "model.hidden_size=64", "model.num_layers=1", "model.conv_channels=64", "model.conv_strides=[2]",
    "model.dropout=0.0", "specaugment.freq_masks=0", "specaugment.time_masks=0",
    "optim.lr=0.005", "optim.warmup_steps=10", "optim.final_lr_ratio=0.2",
    "data.batch_seconds=20", "data.num_workers=0", "augment.enabled=false",
]


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> tuple[Path, Path]:
    """(checkpoint, manifest): a tiny model trained on six real recordings until it knows them."""
    from asr.config import load_train_config
    from asr.train import train

    tmp = tmp_path_factory.mktemp("tiny")
    manifest = write_fsdd_manifest(tmp / "six.jsonl", OVERFIT_ITEMS)
    config = load_train_config(None, TINY_OVERRIDES + [
        f"exp_dir={tmp / 'exp'}", f"data.train_manifest={manifest}", f"data.dev_manifest={manifest}"])
    best = train(config, show_progress=False)
    return best, manifest


def load_recipe(name: str):
    """recipes/<name>/prepare.py as module ``prepare_<name>`` (every recipe has a prepare.py)."""
    import importlib.util
    import sys

    module_name = f"prepare_{name}"
    if module_name not in sys.modules:
        spec = importlib.util.spec_from_file_location(module_name, REPO / "recipes" / name / "prepare.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module  # dataclasses look their module up while the class is built
        spec.loader.exec_module(module)
    return sys.modules[module_name]
