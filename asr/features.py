"""Acoustic features: log-mel filterbank or MFCC, computed batched on the model's device.

Frames are centred on multiples of the hop, and the signal is padded with zeros
(not reflected) at both ends, so the first and last sounds of a tightly trimmed
recording still get frames of their own. Zero padding is also what a shorter
utterance sees in a padded batch, so batching cannot change any of its valid
frames. Normalization statistics only count valid frames for the same reason.
"""

from __future__ import annotations

import math

import torch
import torchaudio.transforms as T
from torch import nn

from asr import vtln
from asr.config import FeatureConfig

LOG_FLOOR = 1e-6  # added to mel power before the log, avoids log(0) on digital silence
SPEECH_RANGE = 3.0 * math.log(10)  # speech frames: within 30 dB of the utterance's loudest
LEVEL_FRAMES = 10  # normalize == "level": the utterance's level is that of its loudest 100 ms (10 frames)
LEVEL_RANGE = 20.0  # dB: a local level (features.level_window) stays within this of the whole utterance's


class FeatureExtractor(nn.Module):
    """Padded waveforms (B, S) + lengths (B,) -> features (B, T, F) + frame lengths (B,)."""

    def __init__(self, config: FeatureConfig):
        super().__init__()
        self.config = config
        self.win_length = round(config.sample_rate * config.win_ms / 1000)
        self.hop_length = round(config.sample_rate * config.hop_ms / 1000)
        self.n_fft = config.n_fft or 1 << (self.win_length - 1).bit_length()
        mel_kwargs = dict(n_fft=self.n_fft, win_length=self.win_length, hop_length=self.hop_length,
                          n_mels=config.n_mels, center=True, pad_mode="constant", power=2.0)
        if config.kind == "logmel":
            self.transform = T.MelSpectrogram(config.sample_rate, **mel_kwargs)
            self.dim = config.n_mels
        else:
            self.transform = T.MFCC(config.sample_rate, n_mfcc=config.n_mfcc, log_mels=True,
                                    melkwargs=mel_kwargs)
            self.dim = config.n_mfcc
        # Training-set statistics for normalize == "global" or "level" (for "speaker", the spread within
        # speakers: the means come with each batch); saved with the model.
        self.register_buffer("mean", torch.zeros(self.dim))
        self.register_buffer("std", torch.ones(self.dim))

    @property
    def min_samples(self) -> int:
        """The shortest waveform the features take (one hop)."""
        return self.hop_length

    def frame_lengths(self, sample_lengths: torch.Tensor) -> torch.Tensor:
        """One frame centred on every multiple of the hop within the signal."""
        return torch.div(sample_lengths, self.hop_length, rounding_mode="floor") + 1

    def raw(self, waveforms: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Features (B, T, F) before mean/variance normalization, with frames past each length
        zeroed. Under normalize == "level" each utterance's mel power is divided by its level
        first, so that a recording made louder or quieter gives the same features (the log's
        floor then sits at a fixed distance below the speech, whatever the gain)."""
        frames = self.frame_lengths(lengths).clamp(min=1)
        with torch.autocast(waveforms.device.type, enabled=False):
            mel_spectrogram = self.transform if self.config.kind == "logmel" else self.transform.MelSpectrogram
            power = mel_spectrogram(waveforms.float()).transpose(1, 2)  # (B, T, n_mels)
            if self.config.normalize == "level":
                window = round(self.config.level_window * 1000 / self.config.hop_ms)
                power = power / utterance_level(power, frames, window)[:, :, None]
            x = torch.log(power + LOG_FLOOR)  # as torchaudio's MFCC (log_mels=True) takes it too
            if self.config.kind == "mfcc":
                x = x @ self.transform.dct_mat
        mask = lengths_to_mask(frames, x.shape[1]).unsqueeze(-1)  # (B, T, 1)
        return x.masked_fill(~mask, 0.0), frames

    def forward(self, waveforms: torch.Tensor, lengths: torch.Tensor,
                means: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalized features. ``means`` (B, F): each utterance's speaker mean, for
        normalize == "speaker"; without it each utterance is its own speaker."""
        x, frames = self.raw(waveforms, lengths)
        mask = lengths_to_mask(frames, x.shape[1]).unsqueeze(-1)
        if self.config.per_speaker:
            if means is None:
                speech = self.speech_frames(waveforms, frames, x.shape[1]).unsqueeze(-1).to(x.dtype)
                means = (x * speech).sum(1) / speech.sum(1)
            x = (x - means.to(x.dtype).unsqueeze(1)) / self.std
        elif self.config.normalize == "utterance":
            count = frames.view(-1, 1, 1).to(x.dtype)
            mean = x.sum(1, keepdim=True) / count
            var = ((x - mean).masked_fill(~mask, 0.0) ** 2).sum(1, keepdim=True) / count
            x = (x - mean) / (var.sqrt() + 1e-5)
        elif self.config.training_stats:
            x = (x - self.mean) / self.std
        return x.masked_fill(~mask, 0.0), frames

    def warp(self, x: torch.Tensor, frames: torch.Tensor, factors: torch.Tensor) -> torch.Tensor:
        """Normalized log-mel features (B, T, F) + frame lengths (B,), each utterance's frequency
        axis warped by its factor (B,) (``asr.vtln``); a new tensor, padded frames still zero.
        Under training-set statistics the warp is taken in the log-mel domain and the result
        normalized again (the statistics differ from band to band)."""
        B, T, F = x.shape
        position = torch.from_numpy(vtln.source_bins(factors.cpu().numpy(), self.config.sample_rate, F)).to(x.device)
        low = position.floor().long().clamp(max=F - 2)
        weight = (position - low).to(x.dtype)[:, None, :]
        normalized = self.config.training_stats
        raw = x * self.std + self.mean if normalized else x
        pick = lambda index: raw.gather(2, index[:, None, :].expand(B, T, F))  # noqa: E731
        out = pick(low) * (1 - weight) + pick(low + 1) * weight
        if normalized:
            out = (out - self.mean) / self.std
        return out * lengths_to_mask(frames.to(x.device), T)[:, :, None]

    @torch.no_grad()
    def fit_global_stats(self, batches) -> None:
        """Set ``mean``/``std`` from an iterable of (waveforms, lengths) batches."""
        total = torch.zeros(self.dim, dtype=torch.float64)
        total_sq = torch.zeros(self.dim, dtype=torch.float64)
        count = 0
        for waveforms, lengths in batches:
            x, frames = self.raw(waveforms.to(self.mean.device), lengths.to(self.mean.device))
            x = x.double().cpu()
            total += x.sum((0, 1))
            total_sq += (x ** 2).sum((0, 1))
            count += int(frames.sum())
        mean = total / max(count, 1)
        std = (total_sq / max(count, 1) - mean ** 2).clamp(min=1e-10).sqrt()
        self.mean.copy_(mean.float())
        self.std.copy_(std.float())

    def speech_frames(self, waveforms: torch.Tensor, frames: torch.Tensor, count: int) -> torch.Tensor:
        """(B, count) bool: the valid frames whose window's power is within 30 dB of the
        utterance's loudest, so that a speaker's mean does not depend on how much silence
        their recordings hold."""
        pad = self.win_length // 2  # windows centred on multiples of the hop, as the features'
        power = torch.nn.functional.pad(waveforms.float() ** 2, (pad, pad)).unsqueeze(1)
        power = torch.nn.functional.avg_pool1d(power, self.win_length, self.hop_length).squeeze(1)
        power = torch.nn.functional.pad(power, (0, max(count - power.shape[1], 0)))[:, :count]
        level = torch.log(power + 1e-12)
        valid = lengths_to_mask(frames, count)
        loudest = level.masked_fill(~valid, -math.inf).amax(1, keepdim=True)
        return valid & (level >= loudest - SPEECH_RANGE)

    @torch.no_grad()
    def group_stats(self, batches, groups: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean features of each group of utterances over their speech frames, from (waveforms,
        lengths, group ids) batches: (groups, F) means, and the (F,) spread of all frames about
        their group's mean."""
        speech_sum = torch.zeros(groups, self.dim, dtype=torch.float64)
        speech_count = torch.zeros(groups, dtype=torch.float64)
        total = torch.zeros(groups, self.dim, dtype=torch.float64)
        total_sq = torch.zeros(self.dim, dtype=torch.float64)
        count = torch.zeros(groups, dtype=torch.float64)
        for waveforms, lengths, ids in batches:
            waveforms = waveforms.to(self.mean.device)
            x, frames = self.raw(waveforms, lengths.to(self.mean.device))
            speech = self.speech_frames(waveforms, frames, x.shape[1]).unsqueeze(-1).double().cpu()
            x = x.double().cpu()
            speech_sum.index_add_(0, ids, (x * speech).sum(1))
            speech_count.index_add_(0, ids, speech.sum((1, 2)))
            total.index_add_(0, ids, x.sum(1))
            total_sq += (x ** 2).sum((0, 1))
            count.index_add_(0, ids, frames.double().cpu())
        means = speech_sum / speech_count.clamp(min=1).unsqueeze(1)
        # sum over frames of (x - m)^2 = x^2 - 2 m x + m^2, each frame about its group's m
        spread = total_sq - (2 * means * total - count.unsqueeze(1) * means ** 2).sum(0)
        within = spread / count.sum().clamp(min=1)
        return means.float(), within.clamp(min=1e-10).sqrt().float()


def utterance_level(power: torch.Tensor, frames: torch.Tensor, window: int = 0) -> torch.Tensor:
    """(B, T, F) mel power + (B,) frame lengths -> (B, T) the speech level at each frame: the
    geometric mean, over the LEVEL_FRAMES loudest valid frames, of their mean power over bins.
    ``window`` 0: loudest of the whole utterance, one level for all its frames; silence before and
    after the words does not move it, and one loud click counts for a tenth of it (in dB).
    ``window`` W > 0: loudest within W frames either side of each stretch of LEVEL_FRAMES frames,
    so that a quiet talker after a loud one in a long recording is read at their own level; never
    below the whole utterance's level minus LEVEL_RANGE, so long silences stay quiet."""
    B, T, _ = power.shape
    energy = power.mean(2).masked_fill(~lengths_to_mask(frames, T), 0.0)
    whole = _loudest_mean(energy, frames.clamp(max=LEVEL_FRAMES))
    if window <= 0 or T <= window:  # every window holds the whole utterance
        return whole[:, None].expand(B, T)
    blocks = -(-T // LEVEL_FRAMES)
    padded = torch.nn.functional.pad(energy, (window, window + blocks * LEVEL_FRAMES - T))
    spans = padded.unfold(1, 2 * window + LEVEL_FRAMES, LEVEL_FRAMES)[:, :blocks]  # (B, blocks, span)
    local = _loudest_mean(spans, (spans > 0).sum(2).clamp(min=1, max=LEVEL_FRAMES))
    local = torch.maximum(local, whole[:, None] * 10 ** (-LEVEL_RANGE / 10))
    return local.repeat_interleave(LEVEL_FRAMES, dim=1)[:, :T]


def _loudest_mean(energy: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
    """(..., N) energies + (...) counts -> (...) the geometric mean of the ``counts`` loudest (at
    most LEVEL_FRAMES) of each row."""
    top = energy.topk(min(LEVEL_FRAMES, energy.shape[-1]), dim=-1).values.clamp(min=1e-30)
    taken = torch.arange(top.shape[-1], device=top.device) < counts[..., None]
    return torch.exp((top.log() * taken).sum(-1) / counts)


def lengths_to_mask(lengths: torch.Tensor, max_len: int) -> torch.Tensor:
    """(B,) lengths -> (B, max_len) bool, True on valid positions."""
    return torch.arange(max_len, device=lengths.device) < lengths.unsqueeze(1)
