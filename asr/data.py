"""Manifests, datasets and length-bucketed batches.

A manifest is JSON Lines, one utterance per line (the NeMo convention)::

    {"audio_filepath": "wavs/0001.wav", "duration": 2.35, "text": "hello world"}

Relative paths resolve against the manifest's folder. ``duration`` (seconds) is
read from the audio header when absent. Transcripts are normalized on reading.
"""

from __future__ import annotations

import json
import math
import os
import random
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.data import Dataset

from asr.audio import audio_duration, load_audio
from asr.errors import AsrError
from asr.files import atomic_write
from asr.text import Vocabulary, normalize_text


@dataclass(frozen=True)
class Utterance:
    audio_filepath: str  # absolute, or relative to the working directory
    duration: float  # seconds
    text: str  # normalized transcript
    where: str  # "manifest.jsonl:LINE", for error messages
    speaker: str | None = None  # who speaks (for per-speaker feature normalization, WER per speaker)
    condition: str | None = None  # how the recording was changed (asr.conditions), for WER per condition


def read_manifest(path: str | os.PathLike) -> list[Utterance]:
    """Parse a JSON Lines manifest; every problem names the manifest line."""
    path = Path(path)
    if not path.is_file():
        raise AsrError(f"{path}: manifest not found")
    utterances = []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            where = f"{path}:{number}"
            try:
                entry = json.loads(line)
            except json.JSONDecodeError as e:
                raise AsrError(f"{where}: invalid JSON ({e.msg})") from None
            if not isinstance(entry, dict):
                raise AsrError(f"{where}: expected a JSON object")
            for key in ("audio_filepath", "text"):
                if key not in entry:
                    raise AsrError(f"{where}: missing {key!r}")
            if not isinstance(entry["text"], str):
                raise AsrError(f"{where}: 'text' must be a string")
            audio = Path(entry["audio_filepath"])
            if not audio.is_absolute():
                audio = path.parent / audio
            if not audio.is_file():
                raise AsrError(f"{where}: audio file not found: {audio}")
            duration = entry.get("duration")
            if duration is None:
                duration = audio_duration(audio)
            elif (not isinstance(duration, (int, float)) or isinstance(duration, bool) or not math.isfinite(duration)
                  or duration <= 0):  # JSON readers take NaN and Infinity, which would break length bucketing
                raise AsrError(f"{where}: 'duration' must be a positive, finite number of seconds, got {duration!r}")
            speaker = entry.get("speaker")
            if speaker is not None and not isinstance(speaker, (str, int)):
                raise AsrError(f"{where}: 'speaker' must be a string or a number")
            condition = entry.get("condition")
            if condition is not None and not isinstance(condition, str):
                raise AsrError(f"{where}: 'condition' must be a string")
            utterances.append(Utterance(str(audio), float(duration), normalize_text(entry["text"]), where,
                                        None if speaker is None else str(speaker), condition))
    if not utterances:
        raise AsrError(f"{path}: manifest has no utterances")
    return utterances


def write_manifest(path: str | os.PathLike, entries: list[dict]) -> None:
    """Write entries as JSON Lines, atomically (a half-written manifest never exists)."""
    with atomic_write(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        for entry in entries:
            f.write(json.dumps(entry, ensure_ascii=False) + "\n")


@dataclass
class Batch:
    """Padded tensors always travel with their lengths."""

    waveforms: torch.Tensor  # (B, S) float32, zero-padded
    wave_lengths: torch.Tensor  # (B,) samples
    targets: torch.Tensor  # (B, U) int64, zero-padded (empty when not encoded)
    target_lengths: torch.Tensor  # (B,)
    indices: list[int]  # positions in the dataset, to find the utterance again
    means: torch.Tensor | None = None  # (B, F) each utterance's speaker feature mean, where used

    def to(self, device) -> "Batch":
        nb = device.type == "cuda"
        return Batch(self.waveforms.to(device, non_blocking=nb), self.wave_lengths.to(device, non_blocking=nb),
                     self.targets.to(device, non_blocking=nb), self.target_lengths.to(device, non_blocking=nb),
                     self.indices, None if self.means is None else self.means.to(device, non_blocking=nb))

    def pin_memory(self) -> "Batch":
        return Batch(self.waveforms.pin_memory(), self.wave_lengths.pin_memory(), self.targets.pin_memory(),
                     self.target_lengths.pin_memory(), self.indices,
                     None if self.means is None else self.means.pin_memory())


class SpeechDataset(Dataset):
    """Utterances -> (index, waveform (S,), target indices). Targets are encoded when a
    vocabulary is given, and every transcript is checked against it up front."""

    def __init__(self, utterances: list[Utterance], sample_rate: int, vocab: Vocabulary | None = None,
                 min_samples: int = 1):
        self.utterances = utterances
        self.sample_rate = sample_rate
        self.min_samples = min_samples
        self.targets = [vocab.encode(u.text, u.where) for u in utterances] if vocab else None
        self.speaker_means: torch.Tensor | None = None  # (N, F), set by speaker_normalization()

    def speaker_groups(self) -> tuple[list[int], int]:
        """A group id per utterance, one group per speaker; an utterance without a speaker is a
        group of its own. Returns the ids and the number of groups."""
        ids: dict[object, int] = {}
        groups = [ids.setdefault(u.speaker if u.speaker is not None else ("utterance", i), len(ids))
                  for i, u in enumerate(self.utterances)]
        return groups, len(ids)

    def __len__(self) -> int:
        return len(self.utterances)

    def __getitem__(self, index: int):
        audio = load_audio(self.utterances[index].audio_filepath, self.sample_rate)
        target = self.targets[index] if self.targets is not None else []
        return index, torch.from_numpy(audio), target

    def collate(self, items) -> Batch:
        lengths = [max(len(w), self.min_samples) for _, w, _ in items]
        waveforms = torch.zeros(len(items), max(lengths))
        targets = torch.zeros(len(items), max((len(t) for _, _, t in items), default=0), dtype=torch.long)
        for row, (_, wave, target) in enumerate(items):
            waveforms[row, : len(wave)] = wave
            targets[row, : len(target)] = torch.tensor(target, dtype=torch.long)
        indices = [i for i, _, _ in items]
        means = self.speaker_means[indices] if self.speaker_means is not None else None
        return Batch(waveforms, torch.tensor(lengths), targets, torch.tensor([len(t) for _, _, t in items]),
                     indices, means)


class BucketBatchSampler(torch.utils.data.Sampler):
    """Batches of similar duration, bounded by total padded audio (seconds) and batch size.

    Utterances are sorted by a jittered duration each epoch, so batches change
    between epochs while padding stays small; batch order is shuffled too. During
    the first ``sorted_epochs`` epochs (counting from 1) batches come shortest
    first instead ("SortaGrad", Deep Speech 2): short utterances get CTC past its
    all-blank start sooner.
    """

    def __init__(self, durations: list[float], batch_seconds: float, max_batch_size: int,
                 shuffle: bool = True, seed: int = 0, sorted_epochs: int = 0, rank: int = 0, world_size: int = 1):
        self.durations = durations
        self.rank, self.world_size = rank, world_size
        self.batch_seconds = batch_seconds
        self.max_batch_size = max_batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.sorted_epochs = sorted_epochs
        self.epoch = 0
        self.skip = 0

    def set_epoch(self, epoch: int, skip: int = 0) -> None:
        """Batches of ``epoch``, leaving out its first ``skip`` (done before a resume)."""
        self.epoch = epoch
        self.skip = skip

    def batches(self) -> list[list[int]]:
        rng = random.Random(self.seed * 100_003 + self.epoch)
        shuffle = self.shuffle and self.epoch > self.sorted_epochs
        jitter = (lambda: 1 + rng.uniform(-0.1, 0.1)) if shuffle else (lambda: 1.0)
        order = sorted(range(len(self.durations)), key=lambda i: self.durations[i] * jitter())
        batches, current, longest = [], [], 0.0
        for i in order:
            longest_if_added = max(longest, self.durations[i])
            if current and (longest_if_added * (len(current) + 1) > self.batch_seconds
                            or len(current) >= self.max_batch_size):
                batches.append(current)
                current, longest_if_added = [], self.durations[i]
            current.append(i)
            longest = longest_if_added
        if current:
            batches.append(current)
        if shuffle:
            rng.shuffle(batches)
        if self.world_size > 1:
            # Distributed: every process makes the same global batches and takes its share of
            # each, so a step of N processes sees the batch one process would (length bucketing
            # kept). A global batch too small to share is left out of the epoch.
            batches = [b[self.rank::self.world_size] for b in batches if len(b) >= self.world_size]
        return batches

    def __iter__(self):
        return iter(self.batches()[self.skip:])

    def __len__(self) -> int:
        return len(self.batches()) - self.skip


def make_loader(dataset: SpeechDataset, batch_seconds: float, max_batch_size: int, shuffle: bool,
                seed: int = 0, num_workers: int = 0, pin_memory: bool = False, sorted_epochs: int = 0,
                rank: int = 0, world_size: int = 1):
    durations = [u.duration for u in dataset.utterances]
    sampler = BucketBatchSampler(durations, batch_seconds, max_batch_size, shuffle, seed, sorted_epochs,
                                 rank, world_size)
    return torch.utils.data.DataLoader(
        dataset, batch_sampler=sampler, collate_fn=dataset.collate, num_workers=num_workers,
        pin_memory=pin_memory, persistent_workers=num_workers > 0,
        prefetch_factor=4 if num_workers > 0 else None)


def speaker_normalization(dataset: SpeechDataset, features, batch_seconds: float = 200.0,
                          num_workers: int = 0) -> torch.Tensor:
    """Give every utterance of ``dataset`` its speaker's mean features (one pass over the
    audio, without augmentation), for features normalized per speaker; returns the spread
    of the features within speakers."""
    groups, count = dataset.speaker_groups()
    loader = make_loader(dataset, batch_seconds, 256, shuffle=False, num_workers=num_workers)
    batches = ((b.waveforms, b.wave_lengths, torch.tensor([groups[i] for i in b.indices])) for b in loader)
    means, within = features.group_stats(batches, count)
    dataset.speaker_means = means[torch.tensor(groups)]
    return within


def total_hours(utterances: list[Utterance]) -> float:
    return math.fsum(u.duration for u in utterances) / 3600
