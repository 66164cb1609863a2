"""Self-describing checkpoints: feature config, model config, vocabulary and weights.

Loading needs nothing but the file, so ``asr transcribe --model CKPT`` takes no
other flag. Files are written atomically (temporary file, then rename).
"""

from __future__ import annotations

import os
import pickle
import zipfile
from pathlib import Path

import torch

from asr.config import FeatureConfig, ModelConfig, from_dict, to_dict
from asr.errors import AsrError, reason
from asr.features import FeatureExtractor
from asr.files import atomic_write
from asr.model import CTCModel
from asr.recognizer import Recognizer
from asr.text import Vocabulary

FORMAT = "asr-ctc-checkpoint"
VERSION = 1


def save_checkpoint(path: str | os.PathLike, recognizer: Recognizer) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {
        "format": FORMAT,
        "version": VERSION,
        "feature_config": to_dict(recognizer.features.config),
        "model_config": to_dict(recognizer.model.config),
        "vocab": recognizer.vocab.symbols,
        "feature_state": {k: v.cpu() for k, v in recognizer.features.state_dict().items()},
        "model_state": {k: v.cpu() for k, v in recognizer.model.state_dict().items()},
        "info": recognizer.info,
    }
    with atomic_write(path) as tmp:
        torch.save(state, tmp)


def load_checkpoint(path: str | os.PathLike, device: str | torch.device = "cpu") -> Recognizer:
    path = Path(path)
    if not path.is_file():
        raise AsrError(f"{path}: checkpoint not found")
    if path.stat().st_size == 0:
        raise AsrError(f"{path}: damaged or not an asr checkpoint (empty file)")
    if not zipfile.is_zipfile(path):  # torch.save writes a zip archive; a cut-off one has no directory
        raise AsrError(f"{path}: damaged or not an asr checkpoint (not a complete PyTorch archive)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile, ValueError, OSError) as e:
        raise AsrError(f"{path}: damaged checkpoint ({reason(e)})") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise AsrError(f"{path}: not an asr checkpoint")
    if state.get("version") != VERSION:
        raise AsrError(f"{path}: checkpoint format version {state.get('version')} is not supported "
                       f"(this asr reads version {VERSION})")
    try:
        features = FeatureExtractor(from_dict(FeatureConfig, state["feature_config"]))
        vocab = Vocabulary(state["vocab"])
        model = CTCModel(from_dict(ModelConfig, state["model_config"]), features.dim, len(vocab))
        features.load_state_dict(state["feature_state"])
        model.load_state_dict(state["model_state"])
    except (KeyError, ValueError, RuntimeError, TypeError, AsrError) as e:
        raise AsrError(f"{path}: damaged checkpoint ({reason(e)})") from None
    return Recognizer(features, model, vocab, state.get("info", {})).to(device).eval()
