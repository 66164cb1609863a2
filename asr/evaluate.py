"""Decode a manifest and score it: summary (WER, CER, error counts) and a per-utterance report."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch

from asr import vtln as warps
from asr.recognizer import Recognizer
from asr.data import SpeechDataset, make_loader, read_manifest, speaker_normalization
from asr.decoding import Decoder
from asr.errors import AsrError
from asr.metrics import Summary, score
from asr.segment import SegmentOptions
from asr.transcribe import Transcriber


def _model_outputs(recognizer: Recognizer, loader, amp: bool, vtln: float = 0.0):
    """(dataset indices, log-probs (B, T, V), frame lengths (B,)) for every batch of ``loader``."""
    device = recognizer.device
    for batch in loader:
        batch = batch.to(device)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp and device.type == "cuda"):
            log_probs, lengths = recognizer.log_probs(batch.waveforms, batch.wave_lengths, batch.means, vtln)
        yield batch.indices, log_probs, lengths


@torch.no_grad()
def decode_indexed(recognizer: Recognizer, loader, decoder: Decoder, amp: bool = False) -> dict[int, str]:
    """{dataset index: hypothesis} for every batch of ``loader``, decoded where the model ran."""
    hypotheses: dict[int, str] = {}
    for indices, log_probs, lengths in _model_outputs(recognizer, loader, amp):
        for index, text in zip(indices, decoder.decode(log_probs, lengths)):
            hypotheses[index] = text
    return hypotheses


def decode_loader(recognizer: Recognizer, loader, decoder: Decoder, amp: bool = False) -> list[str]:
    """Hypotheses in dataset order for every batch of ``loader``."""
    hypotheses = decode_indexed(recognizer, loader, decoder, amp)
    return [hypotheses[i] for i in range(len(hypotheses))]


@torch.no_grad()
def compute_log_probs(recognizer: Recognizer, loader, amp: bool = True, vtln: float = 0.0) -> list[np.ndarray]:
    """One (T, V) float32 array of log-probs per utterance, in dataset order (``vtln``: as
    ``Recognizer.log_probs``)."""
    outputs: dict[int, np.ndarray] = {}
    for indices, log_probs, lengths in _model_outputs(recognizer, loader, amp, vtln):
        for index, lp, n in zip(indices, log_probs.float().cpu().numpy(), lengths.tolist()):
            outputs[index] = lp[:n]
    return [outputs[i] for i in range(len(outputs))]


def _loader(recognizer: Recognizer, utterances, batch_seconds: float, num_workers: int):
    dataset = SpeechDataset(utterances, recognizer.features.config.sample_rate,
                            min_samples=recognizer.features.min_samples)
    if recognizer.features.config.per_speaker:
        speaker_normalization(dataset, recognizer.features, batch_seconds, num_workers)
    return make_loader(dataset, batch_seconds, max_batch_size=256, shuffle=False, num_workers=num_workers)


def manifest_log_probs(recognizer: Recognizer, manifest: str | os.PathLike, batch_seconds: float = 200.0,
                       num_workers: int = 1, vtln: float = 0.0):
    """(utterances, log-probs) of every line of ``manifest`` (``vtln``: as ``Recognizer.log_probs``)."""
    warps.check(vtln, recognizer.features.config.kind)
    utterances = read_manifest(manifest)
    loader = _loader(recognizer, utterances, batch_seconds, num_workers)
    return utterances, compute_log_probs(recognizer, loader, vtln=vtln)


def evaluate_manifest(recognizer: Recognizer, manifest: str | os.PathLike, decoder: Decoder,
                      batch_seconds: float = 200.0, num_workers: int = 1,
                      decode_workers: int | None = None, segments: SegmentOptions = SegmentOptions(),
                      vtln: float = 0.0) -> tuple[Summary, list[dict]]:
    """Score ``manifest``; returns the summary and one report row per utterance (manifest order).
    Utterances are transcribed as ``asr transcribe`` does (``asr.transcribe``): batched, decoded
    over ``decode_workers`` processes (default: one per core), and a recording longer than
    ``segments.max_seconds`` cut at pauses. With features normalized per speaker, each
    utterance gets the mean of its speaker's utterances in the manifest."""
    utterances = read_manifest(manifest)
    means = None
    if recognizer.features.config.per_speaker:
        dataset = SpeechDataset(utterances, recognizer.features.config.sample_rate,
                                min_samples=recognizer.features.min_samples)
        speaker_normalization(dataset, recognizer.features, batch_seconds, num_workers)
        means = list(dataset.speaker_means)
    with Transcriber(recognizer, decoder, segments, batch_seconds, decode_workers, timestamps=False,
                     vtln=vtln) as transcriber:
        transcripts = list(transcriber.run([u.audio_filepath for u in utterances], means))
    for u, t in zip(utterances, transcripts):
        if t.error:
            raise AsrError(f"{u.where}: {t.error}")
    hypotheses = [t.text for t in transcripts]
    references = [u.text for u in utterances]
    summary, counts = score(references, hypotheses)
    rows = [{"audio_filepath": u.audio_filepath, "reference": u.text, "hypothesis": h,
             **{key: getattr(u, key) for key in GROUPS if getattr(u, key) is not None},
             "errors": c.errors, "substitutions": c.substitutions, "deletions": c.deletions,
             "insertions": c.insertions, "words": c.words}
            for u, h, c in zip(utterances, hypotheses, counts)]
    return summary, rows


GROUPS = ("condition", "speaker")  # manifest fields by which a summary is also broken down


def group_summaries(rows: list[dict]) -> dict[str, dict[str, Summary]]:
    """{field: {value: summary}} for each of GROUPS that the report rows carry (in order of first
    appearance): WER per condition of a robustness set, or per speaker."""
    out = {}
    for key in GROUPS:
        texts: dict[str, tuple[list[str], list[str]]] = {}  # value -> (references, hypotheses)
        for row in rows:
            if key in row:
                references, hypotheses = texts.setdefault(row[key], ([], []))
                references.append(row["reference"])
                hypotheses.append(row["hypothesis"])
        if texts:
            out[key] = {value: score(*pair)[0] for value, pair in texts.items()}
    return out


def write_report(path: str | os.PathLike, rows: list[dict]) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
