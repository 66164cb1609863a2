"""``asr export``: a checkpoint -> an ONNX model that ``asr.runtime`` runs without torch.

The network (conv front end, bidirectional RNNs, output layer) becomes an ONNX graph with
dynamic batch and time axes: inputs ``features`` (B, T, F) float32 and ``lengths`` (B,)
int64, outputs ``log_probs`` (B, T', V) and ``frames`` (B,). The feature front end stays
outside the graph, in numpy (``asr.runtime.NumpyFeatures``), and what it needs travels in
the file's metadata. Tuned decoder settings beside the checkpoint are copied beside the
export, with their LM, lexicon and hotword files, so the exported model decodes as the
checkpoint did.
"""

from __future__ import annotations

import json
import os
import shutil
import warnings
from dataclasses import replace
from pathlib import Path

import torch

from asr.checkpoint import load_checkpoint
from asr.config import to_dict
from asr.decoder_settings import PATH_FIELDS, load_settings, save_settings, settings_path
from asr.files import atomic_write
from asr.runtime import FORMAT, METADATA_KEY, VERSION, encode_array

OPSET = 17


def front_end_metadata(features) -> dict:
    """What ``NumpyFeatures`` needs to compute the features ``features`` (a FeatureExtractor) computes."""
    transform = features.transform
    mel_spectrogram = transform if features.config.kind == "logmel" else transform.MelSpectrogram
    return {
        "feature_config": to_dict(features.config),
        "n_fft": features.n_fft, "win_length": features.win_length, "hop_length": features.hop_length,
        "window": encode_array(mel_spectrogram.spectrogram.window.cpu().numpy()),
        "mel_filterbank": encode_array(mel_spectrogram.mel_scale.fb.cpu().numpy()),
        "dct": encode_array(transform.dct_mat.cpu().numpy()) if features.config.kind == "mfcc" else None,
        "mean": encode_array(features.mean.cpu().numpy()), "std": encode_array(features.std.cpu().numpy()),
    }


def export_onnx(checkpoint: str | os.PathLike, out: str | os.PathLike) -> list[Path]:
    """Write ``out`` (an .onnx file, or a folder that gets model.onnx) and, when the checkpoint
    has tuned decoder settings, ``<name>.decoder.json`` and its files beside it. Returns the
    files written."""
    import onnx

    out = Path(out)
    if out.suffix.lower() != ".onnx":
        out = out / "model.onnx"
    recognizer = load_checkpoint(checkpoint, "cpu")
    model = recognizer.model.eval()
    example = (torch.zeros(2, 50, recognizer.features.dim), torch.tensor([50, 31]))
    with atomic_write(out) as tmp:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the TorchScript-based exporter announces its own deprecation
            torch.onnx.export(model, example, str(tmp), input_names=["features", "lengths"],
                              output_names=["log_probs", "frames"], opset_version=OPSET, dynamo=False,
                              dynamic_axes={"features": {0: "batch", 1: "time"}, "lengths": {0: "batch"},
                                            "log_probs": {0: "batch", 1: "out_time"}, "frames": {0: "batch"}})
        graph = onnx.load(str(tmp))
        meta = {"format": FORMAT, "version": VERSION, "vocab": recognizer.vocab.symbols,
                "frame_seconds": recognizer.frame_seconds, "model_config": to_dict(model.config),
                "info": recognizer.info, "exported_from": Path(checkpoint).name,
                **front_end_metadata(recognizer.features)}
        del graph.metadata_props[:]
        entry = graph.metadata_props.add()
        entry.key, entry.value = METADATA_KEY, json.dumps(meta)
        onnx.save(graph, str(tmp))
    return [out] + _copy_decoder_settings(checkpoint, out)


def _copy_decoder_settings(checkpoint, out: Path) -> list[Path]:
    """The tuned settings of ``checkpoint`` beside ``out``, with copies of the files they name."""
    if not settings_path(checkpoint).is_file():
        return []
    settings = load_settings(checkpoint)
    written, changes = [], {}
    for key in PATH_FIELDS:
        value = getattr(settings, key)
        if value and Path(value).is_file():
            copy = out.with_name(f"{out.stem}.{key}{''.join(Path(value).suffixes) or '.txt'}")
            shutil.copyfile(value, copy)
            written.append(copy)
            changes[key] = str(copy)
    stored = json.loads(settings_path(checkpoint).read_text())
    extra = {k: v for k, v in stored.items() if k != "settings"}
    written.insert(0, save_settings(out, replace(settings, **changes), **extra))
    return written

