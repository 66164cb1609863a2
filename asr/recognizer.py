"""The loaded model: features and acoustic model together, and the device it runs on.

``Recognizer.batch_log_probs`` is what transcription needs (numpy samples in, numpy
log-probs out); ``asr.runtime.OnnxRecognizer`` offers the same for an exported model.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import torch

from asr import vtln as warps
from asr.errors import AsrError
from asr.features import FeatureExtractor
from asr.model import CTCModel
from asr.runtime import RowThreads
from asr.text import Vocabulary


@dataclass
class Recognizer:
    """Everything needed to turn waveforms into CTC log-probabilities."""

    features: FeatureExtractor
    model: CTCModel
    vocab: Vocabulary
    info: dict = field(default_factory=dict)  # training metadata: epoch, step, dev WER, ...
    _rows: RowThreads = field(default_factory=RowThreads, init=False, repr=False, compare=False)

    def to(self, device) -> "Recognizer":
        self.features.to(device)
        self.model.to(device)
        return self

    def eval(self) -> "Recognizer":
        self.features.eval()
        self.model.eval()
        return self

    @property
    def frame_seconds(self) -> float:
        """Audio time between two output frames (feature hop times the conv strides)."""
        return (self.features.hop_length * math.prod(self.model.config.conv_strides)
                / self.features.config.sample_rate)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def log_probs(self, waveforms: torch.Tensor, lengths: torch.Tensor, means: torch.Tensor | None = None,
                  vtln: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, S) waveforms + (B,) sample lengths -> (B, T', V) log-probs + (B,) frame lengths;
        ``means``: the speakers' feature means, for features normalized per speaker. ``vtln``:
        each utterance read at the warp factors of ``asr.vtln.factors(vtln)``, keeping its surest
        reading (``asr.vtln``)."""
        feats, frames = self.features(waveforms, lengths, means)
        if not vtln:
            return self.model(feats, frames)
        best = best_score = None
        for factor in warps.factors(vtln):
            x = feats if factor == 1 else self.features.warp(feats, frames, torch.full((len(feats),), factor))
            log_probs, out_frames = self.model(x, frames)
            valid = torch.arange(log_probs.shape[1], device=log_probs.device)[None, :] < out_frames[:, None]
            score = (log_probs.float().max(-1).values * valid).sum(1) / out_frames.clamp(min=1)  # warps.confidence
            if best is None:
                best, best_score = log_probs, score
            else:
                best = torch.where((score > best_score)[:, None, None], log_probs, best)
                best_score = torch.maximum(score, best_score)
        return best, out_frames

    # -- the interface transcription uses (numpy in, numpy out; ONNX models offer the same) --

    @property
    def sample_rate(self) -> int:
        return self.features.config.sample_rate

    @property
    def per_speaker(self) -> bool:
        """Whether features are normalized by a speaker mean (``means`` of ``batch_log_probs``)."""
        return self.features.config.per_speaker

    def batch_log_probs(self, waves: list[np.ndarray], means: list[np.ndarray | None] | None = None,
                        vtln: float = 0.0) -> list[np.ndarray]:
        """Float32 samples at ``sample_rate``, one array per utterance -> one (T, V) float32
        array of log-probs each. ``means``: a (F,) speaker mean per utterance (None: its own,
        from its speech frames). ``vtln``: as ``log_probs``.

        On the CPU the rows are dealt out to one thread per core, each running its share as a
        padded batch with one torch thread: the recurrent layers step through time in small
        matrix products that torch's own threads speed up not at all (on 2 cores one thread
        ran a batch in 0.80 s, two in 1.13 s, two halves side by side in 0.49 s)."""
        run = functools.partial(self._padded_log_probs, vtln=vtln)
        if self.device.type != "cpu":
            return run(waves, means)
        previous = torch.get_num_threads()
        torch.set_num_threads(1)  # also for a single row: one thread ran it faster than two
        try:
            return self._rows.run(run, waves, means)
        finally:
            torch.set_num_threads(previous)

    @torch.inference_mode()
    def _padded_log_probs(self, waves: list[np.ndarray], means: list | None, vtln: float = 0.0) -> list[np.ndarray]:
        device = self.device
        lengths = [max(len(w), self.features.min_samples) for w in waves]
        batch = torch.zeros(len(waves), max(lengths))
        for row, wave in enumerate(waves):
            batch[row, :len(wave)] = torch.from_numpy(wave)
        speaker = None
        if self.per_speaker and means is not None and any(m is not None for m in means):
            speaker = torch.stack([torch.as_tensor(m) if m is not None else self.speaker_mean([w])
                                   for m, w in zip(means, waves)]).to(device)
        log_probs, frames = self.log_probs(batch.to(device), torch.tensor(lengths, device=device), speaker, vtln)
        log_probs = log_probs.float().cpu().numpy()
        return [log_probs[row, :n] for row, n in enumerate(frames.tolist())]

    @torch.inference_mode()
    def speaker_mean(self, blocks: Iterable[np.ndarray]) -> torch.Tensor | None:
        """(F,) mean features over the speech frames of all ``blocks`` of audio, as one speaker's
        (None if there are none)."""
        def batches():
            for block in blocks:
                wave = torch.from_numpy(np.ascontiguousarray(block, np.float32))
                if len(wave) < self.features.min_samples:
                    wave = torch.nn.functional.pad(wave, (0, self.features.min_samples - len(wave)))
                yield wave.unsqueeze(0).to(self.device), torch.tensor([len(wave)]), torch.tensor([0])

        means, _ = self.features.group_stats(batches(), 1)
        return means[0] if bool(means.abs().sum() > 0) else None


def pick_device(name: str = "auto", local_rank: int | None = None) -> torch.device:
    """"auto" -> CUDA when present, else CPU; anything else is taken as a torch device.

    In a job of several processes (``local_rank``: this process's GPU slot on its machine) each
    process takes its own GPU: "auto" and "cuda" mean cuda:LOCAL_RANK, and naming one GPU is an
    error (every process would take it)."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(name)
    except RuntimeError:
        raise AsrError(f"unknown device {name!r} (use auto, cpu, cuda or cuda:N)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise AsrError(f"device {name!r} asked for, but CUDA is not available on this machine")
    if device.type == "cuda" and local_rank is not None:
        if device.index is not None:
            raise AsrError(f"device {name!r}: in a job of several processes each takes its own GPU "
                           "(cuda:LOCAL_RANK); use device=auto or device=cuda")
        device = torch.device("cuda", local_rank)
    return device
