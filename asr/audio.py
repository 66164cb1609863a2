"""Audio input: every format libsndfile reads, mixed to mono, resampled to the model's rate.

Every failure is an ``AsrError`` whose message starts with the file's path.
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import soundfile as sf

from asr.errors import AsrError

BLOCK_SECONDS = 20.0  # audio read at a time by stream_audio()
RESAMPLE_MARGIN = 0.05  # seconds of neighbouring audio each streamed block is resampled with
# The telephone network's voice channel, for the training augmentation (asr.augment) and the
# telephone test condition (asr.conditions)
TELEPHONE_RATE = 8000  # Hz, G.711 samples
TELEPHONE_BAND = (300.0, 3400.0)  # Hz, ITU-T G.712
MU = 255  # mu-law companding of 8-bit telephone samples (ITU-T G.711)


def _check_path(path: str) -> None:
    if not os.path.exists(path):
        raise AsrError(f"{path}: audio file not found")
    if os.path.isdir(path):
        raise AsrError(f"{path}: is a directory, not an audio file")
    if os.path.getsize(path) == 0:
        raise AsrError(f"{path}: empty file (0 bytes)")


def _unreadable(path: str, error: Exception) -> AsrError:
    reason = str(error).split(":")[-1].strip() or type(error).__name__
    return AsrError(f"{path}: not a readable audio file ({reason})")


def load_audio(path: str | os.PathLike, sample_rate: int, start: float = 0.0, end: float | None = None,
               raw: dict | None = None) -> np.ndarray:
    """Read ``path`` as float32 mono samples at ``sample_rate`` Hz, shape (S,).

    ``start``/``end`` (seconds) read a part of the file; ``raw`` gives soundfile's format
    arguments (format, samplerate, channels, subtype, endian) for a headerless file."""
    path = str(path)
    _check_path(path)
    try:
        rate = raw["samplerate"] if raw else sf.info(path).samplerate
        first, last = int(round(start * rate)), None if end is None else int(round(end * rate))
        samples, rate = sf.read(path, dtype="float32", always_2d=True, start=first, stop=last,
                                **(raw or {}))  # (S, channels)
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as e:
        raise _unreadable(path, e) from None
    if samples.shape[0] == 0:
        where = f" between {start:.2f} s and {end:.2f} s" if start or end is not None else ""
        raise AsrError(f"{path}: audio has no samples{where} (zero length)")
    if not np.isfinite(samples).all():
        raise AsrError(f"{path}: audio contains NaN or infinite samples")
    mono = samples.mean(axis=1) if samples.shape[1] > 1 else samples[:, 0]
    if rate != sample_rate:
        mono = resample(mono, rate, sample_rate)
    return np.ascontiguousarray(mono, dtype=np.float32)


def stream_audio(path: str | os.PathLike, sample_rate: int,
                 block_seconds: float = BLOCK_SECONDS) -> Iterator[np.ndarray]:
    """``load_audio`` in consecutive blocks of about ``block_seconds``: float32 mono (S,) at
    ``sample_rate``, so that memory holds one block whatever the file's length. Joined, the
    blocks equal ``load_audio(path, sample_rate)``: each block is resampled together with
    ``RESAMPLE_MARGIN`` seconds of its neighbours, and cut on whole resampling periods."""
    path = str(path)
    _check_path(path)
    try:
        f = sf.SoundFile(path)
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as e:
        raise _unreadable(path, e) from None
    with f:
        rate = f.samplerate
        period = rate // math.gcd(rate, sample_rate)  # input samples per whole number of output samples
        step = max(1, round(block_seconds * rate / period)) * period
        margin = 0 if rate == sample_rate else math.ceil(RESAMPLE_MARGIN * rate / period) * period
        before = np.zeros(0, np.float32)  # the last `margin` samples of the previous block
        block = _read_mono(f, path, step)
        if len(block) == 0:
            raise AsrError(f"{path}: audio has no samples (zero length)")
        while len(block):
            after = _read_mono(f, path, step)
            if not margin:
                yield block
            else:
                ahead = after[:margin]
                out = resample(np.concatenate([before, block, ahead]), rate, sample_rate)
                first = len(before) * sample_rate // rate
                count = (len(block) * sample_rate // rate if len(after)
                         else math.ceil(len(block) * sample_rate / rate))
                yield np.ascontiguousarray(out[first:first + count])
                before = block[-margin:]
            block = after


def _read_mono(f: sf.SoundFile, path: str, frames: int) -> np.ndarray:
    try:
        samples = f.read(frames, dtype="float32", always_2d=True)  # (S, channels)
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as e:
        raise _unreadable(path, e) from None
    if not np.isfinite(samples).all():
        raise AsrError(f"{path}: audio contains NaN or infinite samples")
    mono = samples.mean(axis=1) if samples.shape[1] > 1 else samples[:, 0]
    return np.ascontiguousarray(mono, dtype=np.float32)


def resample(samples: np.ndarray, orig_rate: int, new_rate: int) -> np.ndarray:
    """Band-limited resampling of float samples (S,): windowed-sinc interpolation with the
    filter torchaudio's ``resample`` uses (Hann window, 6 zero crossings, cut-off at 0.99 of
    the lower Nyquist frequency), in numpy, so transcription needs no torch. Equal to
    torchaudio's output within float32 rounding (tested)."""
    if orig_rate == new_rate:
        return samples
    kernels, width, step = _sinc_kernels(orig_rate, new_rate)
    padded = np.pad(np.asarray(samples, np.float32), (width, width + step))
    windows = np.lib.stride_tricks.sliding_window_view(padded, kernels.shape[1])[::step]  # (frames, K)
    out = (windows @ kernels.T).reshape(-1)  # (frames, new) -> each frame's `new` output samples
    return out[:math.ceil(len(samples) * kernels.shape[0] / step)]


@functools.lru_cache(maxsize=16)
def _sinc_kernels(orig_rate: int, new_rate: int, zero_crossings: int = 6,
                  rolloff: float = 0.99) -> tuple[np.ndarray, int, int]:
    """The (new, K) float32 filters that make ``new`` output samples from each stretch of
    ``orig`` input samples (both divided by their gcd), their half width, and ``orig``."""
    gcd = math.gcd(orig_rate, new_rate)
    orig, new = orig_rate // gcd, new_rate // gcd
    cutoff = min(orig, new) * rolloff
    width = math.ceil(zero_crossings * orig / cutoff)
    # time of every input sample (columns) relative to every output sample (rows), in input periods
    t = -np.arange(new, dtype=np.float64)[:, None] / new + np.arange(-width, width + orig)[None, :] / orig
    t = np.clip(t * cutoff, -zero_crossings, zero_crossings)
    window = np.cos(t * math.pi / zero_crossings / 2) ** 2
    t *= math.pi
    with np.errstate(invalid="ignore", divide="ignore"):
        sinc = np.where(t == 0, 1.0, np.sin(t) / t)
    return (sinc * window * cutoff / orig).astype(np.float32), width, orig


def audio_duration(path: str | os.PathLike) -> float:
    """Duration in seconds from the file header (no decoding)."""
    try:
        info = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError) as e:
        raise AsrError(f"{path}: cannot read audio header ({str(e).split(':')[-1].strip()})") from None
    return info.frames / info.samplerate


def write_audio(path: str | os.PathLike, samples: np.ndarray, sample_rate: int) -> None:
    """Write 16-bit PCM WAV/FLAC (format from the suffix), creating parent folders."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), samples, sample_rate, subtype="PCM_16")
