"""Vocal tract length warping of log-mel features, for training (VTLP, ``asr.augment``) and for
reading a recording by a voice the model never heard (VTLN, the decoder setting ``vtln``).

A longer or shorter vocal tract moves every formant by about the same factor. Warping the
frequency axis by a factor undoes (or, in training, imitates) that: a sound at frequency f moves
to factor * f, up to ``BOUNDARY`` of the Nyquist frequency; above it the warp runs linearly to
the Nyquist frequency, which stays put, so no band is lost or invented. Timing is untouched.

VTLN here needs no other recording of the speaker: the model reads each piece at the factors
``factors(vtln)`` (1 - vtln ... 1 + vtln in steps of ``STEP``) and keeps the reading it is
surest of, the one with the highest mean log-probability of each frame's best label
(``confidence``). Classic VTLN picks a speaker's factor by the likelihood of many of their
recordings; the model's own certainty does that for one piece. It costs one network pass per
factor (five at ``vtln=0.1``); the features are computed once.

Numpy only, so that exported models (``asr.runtime``) warp as checkpoints do.
"""

from __future__ import annotations

import numpy as np

BOUNDARY = 0.8  # share of the Nyquist frequency up to which the warp scales linearly
STEP = 0.05  # between the factors VTLN tries
MAX_WARP = 0.5  # warps are factors in (1 - MAX_WARP, 1 + MAX_WARP)


def hz_to_mel(hz):
    """The HTK mel scale, torchaudio's default (the features' filterbank)."""
    return 2595 * np.log10(1 + np.asarray(hz, np.float64) / 700)


def mel_to_hz(mel):
    return 700 * (10 ** (np.asarray(mel, np.float64) / 2595) - 1)


def factors(vtln: float) -> list[float]:
    """The warp factors VTLN tries: 1, then 1 -+ k * STEP up to ``vtln``, smallest warps first
    (a tie in ``confidence`` keeps the earlier, smaller warp)."""
    steps = int(round(vtln / STEP, 6))
    return [1.0] + [round(1 + sign * k * STEP, 6) for k in range(1, steps + 1) for sign in (-1, 1)]


def surest(readings) -> tuple[int, object]:
    """(index, reading) of the reading with the highest ``confidence``; the first on a tie."""
    scores = [confidence(r) for r in readings]
    best = max(range(len(readings)), key=lambda i: (scores[i], -i))
    return best, readings[best]


def source_bins(warps, sample_rate: int, n_mels: int) -> np.ndarray:
    """(B,) warp factors -> (B, n_mels) fractional mel-bin positions each output bin is read from."""
    nyquist = sample_rate / 2
    top = hz_to_mel(nyquist)
    centres = mel_to_hz(top * np.arange(1, n_mels + 1) / (n_mels + 1))  # of the mel filters, in Hz
    a = np.asarray(warps, np.float64)[:, None]
    knee = BOUNDARY * nyquist * np.minimum(a, 1) / a  # the last frequency scaled by the factor
    below = centres / a  # inverse warp of each centre frequency
    above = knee + (centres - a * knee) * (nyquist - knee) / (nyquist - a * knee)
    source = np.where(centres <= a * knee, below, above)
    return np.clip(hz_to_mel(source) / top * (n_mels + 1) - 1, 0, n_mels - 1)


def warp(x: np.ndarray, position: np.ndarray) -> np.ndarray:
    """Log-mel features (..., T, F) read at fractional bins ``position`` (F,), linearly."""
    low = np.minimum(np.floor(position).astype(np.int64), x.shape[-1] - 2)
    weight = (position - low).astype(x.dtype)
    return x[..., low] * (1 - weight) + x[..., low + 1] * weight


def confidence(log_probs: np.ndarray) -> float:
    """How sure the model is of a reading (T, V): the mean log-probability of each frame's best label."""
    return float(log_probs.max(axis=-1).mean()) if len(log_probs) else 0.0


def check(vtln: float, kind: str) -> None:
    """A one-line error unless ``vtln`` can be used with features of ``kind``."""
    from asr.errors import AsrError

    if not 0 <= vtln < MAX_WARP:
        raise AsrError(f"vtln must be in [0, {MAX_WARP:g}), got {vtln:g}")
    if vtln > 0 and kind != "logmel":
        raise AsrError(f"vtln warps log-mel features; this model's features are {kind!r}")
