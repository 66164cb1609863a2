"""Exported models without torch: numpy features and onnxruntime for the network.

``asr export`` writes the acoustic model as ONNX and puts everything else a transcriber
needs into the file's metadata (key ``asr``, JSON): vocabulary, feature settings, the
STFT window, mel filterbank and DCT matrix as the torch model built them, and the
normalization statistics. ``OnnxRecognizer`` offers what ``asr.recognizer.Recognizer``
offers to transcription (``batch_log_probs``, ``speaker_mean``), so ``asr transcribe``,
``asr serve`` and ``asr.load`` take either. This module imports numpy and onnxruntime
only: ``pip install ".[runtime]"`` is enough for it.

The features here repeat ``asr.features`` step by step (zero-padded centred frames, power
spectrum, mel, log or MFCC, then the same normalization), so that a model exported from a
checkpoint reads the same numbers; ``scripts/bench_onnx.py`` measures how close.
"""

from __future__ import annotations

import base64
import json
import math
import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from asr import vtln as warps
from asr.config import FeatureConfig, from_dict
from asr.decoding import cpu_count
from asr.errors import AsrError, reason
from asr.text import Vocabulary

FORMAT = "asr-onnx"
VERSION = 1
METADATA_KEY = "asr"
LOG_FLOOR = 1e-6  # as asr.features
LEVEL_FRAMES = 10  # as asr.features
LEVEL_RANGE = 20.0  # as asr.features
SPEECH_RANGE = 3.0 * math.log(10)


def encode_array(array: np.ndarray) -> dict:
    """A float32 array as JSON: shape and base64 of its bytes (exact, unlike decimal text)."""
    array = np.ascontiguousarray(array, dtype="<f4")
    return {"shape": list(array.shape), "base64": base64.b64encode(array.tobytes()).decode("ascii")}


def decode_array(stored: dict) -> np.ndarray:
    data = base64.b64decode(stored["base64"], validate=True)
    return np.frombuffer(data, dtype="<f4").reshape(stored["shape"]).astype(np.float32)


class NumpyFeatures:
    """Float samples -> normalized features (T, F), as ``asr.features.FeatureExtractor`` computes
    them, from the settings and matrices stored at export."""

    def __init__(self, meta: dict):
        config = from_dict(FeatureConfig, meta["feature_config"], "features")  # checked as any config is
        self.config = config
        self.n_fft, self.win_length, self.hop_length = meta["n_fft"], meta["win_length"], meta["hop_length"]
        window = decode_array(meta["window"])  # (win_length,), centred in n_fft as torch.stft does
        left = (self.n_fft - len(window)) // 2
        self.window = np.zeros(self.n_fft, np.float32)
        self.window[left:left + len(window)] = window
        self.mel = decode_array(meta["mel_filterbank"])  # (n_fft // 2 + 1, n_mels)
        self.dct = decode_array(meta["dct"]) if meta.get("dct") else None  # (n_mels, n_mfcc)
        self.mean, self.std = decode_array(meta["mean"]), decode_array(meta["std"])
        self.dim = len(self.mean)

    @property
    def min_samples(self) -> int:
        return self.hop_length

    def padded(self, wave) -> np.ndarray:
        """float32 samples; shorter than a hop: zero-padded to one, as the torch recognizer pads it."""
        wave = np.asarray(wave, np.float32)
        return np.pad(wave, (0, self.min_samples - len(wave))) if len(wave) < self.min_samples else wave

    def power(self, waves: list[np.ndarray]) -> list[np.ndarray]:
        """Mel power (T, n_mels) of each utterance (``padded`` ones), a frame centred on every
        multiple of the hop: one FFT and one product for all of them (rows padded with zeros,
        which is what each frame past an utterance's end holds anyway), so a batch of short
        recordings spends its time in numpy's loops rather than in Python."""
        lengths = [len(w) for w in waves]
        counts = [n // self.hop_length + 1 for n in lengths]
        half = self.n_fft // 2
        batch = np.zeros((len(waves), max(lengths) + 2 * half), np.float32)
        for row, wave in enumerate(waves):
            batch[row, half:half + len(wave)] = wave
        frames = np.lib.stride_tricks.sliding_window_view(batch, self.n_fft, axis=1)[:, ::self.hop_length]
        spectrum = np.fft.rfft(frames[:, :max(counts)] * self.window, axis=-1)
        power = (spectrum.real ** 2 + spectrum.imag ** 2).astype(np.float32) @ self.mel
        return [power[row, :count] for row, count in enumerate(counts)]

    def raw(self, wave: np.ndarray) -> np.ndarray:
        """Un-normalized features (T, F) of one utterance."""
        return self._log(self.power([self.padded(wave)])[0])

    def _log(self, power: np.ndarray) -> np.ndarray:
        if self.config.normalize == "level":
            power = power / self.level(power.mean(axis=1))[:, None]
        x = np.log(power + LOG_FLOOR)
        return x @ self.dct if self.dct is not None else x

    def level(self, energy: np.ndarray) -> np.ndarray:
        """(T,) mean power over bins -> (T,) the speech level at each frame, as
        ``asr.features.utterance_level`` takes it."""
        T = len(energy)
        whole = _loudest_mean(energy, min(T, LEVEL_FRAMES))
        window = round(self.config.level_window * 1000 / self.config.hop_ms)
        if window <= 0 or T <= window:
            return np.full(T, whole, np.float32)
        blocks = -(-T // LEVEL_FRAMES)
        padded = np.pad(energy, (window, window + blocks * LEVEL_FRAMES - T))
        spans = np.lib.stride_tricks.sliding_window_view(padded, 2 * window + LEVEL_FRAMES)[::LEVEL_FRAMES][:blocks]
        local = _loudest_mean(spans, np.clip((spans > 0).sum(axis=1), 1, LEVEL_FRAMES))
        local = np.maximum(local, whole * 10 ** (-LEVEL_RANGE / 10))
        return np.repeat(local, LEVEL_FRAMES)[:T].astype(np.float32)

    def speech_frames(self, wave: np.ndarray, count: int) -> np.ndarray:
        """(count,) bool: frames whose window's power is within 30 dB of the loudest."""
        pad = self.win_length // 2
        power = np.pad(np.asarray(wave, np.float64) ** 2, (pad, pad))
        sums = np.concatenate([[0.0], np.cumsum(power)])
        starts = np.arange(0, len(power) - self.win_length + 1, self.hop_length)
        power = (sums[starts + self.win_length] - sums[starts]) / self.win_length
        power = np.pad(power, (0, max(count - len(power), 0)))[:count]
        level = np.log(np.maximum(power, 0) + 1e-12)
        return level >= level.max() - SPEECH_RANGE

    def own_mean(self, wave: np.ndarray, x: np.ndarray | None = None) -> np.ndarray:
        x = self.raw(wave) if x is None else x
        speech = self.speech_frames(wave, len(x))
        return x[speech].mean(axis=0) if speech.any() else np.zeros(self.dim, np.float32)

    def __call__(self, wave: np.ndarray, mean: np.ndarray | None = None) -> np.ndarray:
        return self.many([wave], [mean])[0]

    def many(self, waves: list[np.ndarray], means: list | None = None) -> list[np.ndarray]:
        """Normalized features (T, F) of each utterance; ``means``: a speaker mean each (None: its own)."""
        waves = [self.padded(w) for w in waves]  # speaker means taken on the padded samples too
        means = means if means is not None else [None] * len(waves)
        return [self._normalize(self._log(power), wave, mean)
                for power, wave, mean in zip(self.power(waves), waves, means)]

    def warp(self, x: np.ndarray, factor: float) -> np.ndarray:
        """Normalized log-mel features (T, F) with the frequency axis warped by ``factor``, as
        ``asr.features.FeatureExtractor.warp`` does it."""
        position = warps.source_bins([factor], self.config.sample_rate, self.dim)[0]
        if not self.config.training_stats:
            return warps.warp(x, position).astype(np.float32)
        return ((warps.warp(x * self.std + self.mean, position) - self.mean) / self.std).astype(np.float32)

    def _normalize(self, x: np.ndarray, wave: np.ndarray, mean) -> np.ndarray:
        if self.config.per_speaker:
            mean = self.own_mean(wave, x) if mean is None else np.asarray(mean, np.float32)
            x = (x - mean) / self.std
        elif self.config.normalize == "utterance":
            mean = x.mean(axis=0)
            x = (x - mean) / (np.sqrt(((x - mean) ** 2).mean(axis=0)) + 1e-5)
        elif self.config.training_stats:
            x = (x - self.mean) / self.std
        return x.astype(np.float32)


def _loudest_mean(energy: np.ndarray, counts) -> np.ndarray:
    """(..., N) energies + counts -> the geometric mean of the ``counts`` loudest (at most
    LEVEL_FRAMES) of each row, as ``asr.features._loudest_mean``."""
    top = np.maximum(-np.sort(-energy, axis=-1)[..., :LEVEL_FRAMES], 1e-30)
    taken = np.arange(top.shape[-1]) < np.asarray(counts)[..., None]
    return np.exp((np.log(top) * taken).sum(axis=-1) / counts)


class OnnxRecognizer:
    """An exported model: ``batch_log_probs`` and ``speaker_mean`` as ``Recognizer`` has them."""

    device = "cpu"

    def __init__(self, path: str | os.PathLike, threads: int | None = None):
        import onnxruntime as ort

        self.path = Path(path)
        self.rows = RowThreads(threads)
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1  # rows are dealt to threads instead (batch_log_probs)
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])
            meta = json.loads(self.session.get_modelmeta().custom_metadata_map[METADATA_KEY])
        except KeyError:
            raise AsrError(f"{path}: an ONNX model, but not one asr exported (no 'asr' metadata)") from None
        except (ValueError, TypeError) as e:
            raise AsrError(f"{path}: damaged asr metadata ({str(e)[:120]})") from None
        except Exception as e:  # onnxruntime raises its own classes for unreadable files
            raise AsrError(f"{path}: not a readable ONNX model ({reason(e)})") from None
        if meta.get("format") != FORMAT:
            raise AsrError(f"{path}: not an asr ONNX export")
        if meta.get("version") != VERSION:
            raise AsrError(f"{path}: asr ONNX format version {meta.get('version')} is not supported "
                           f"(this asr reads version {VERSION})")
        try:
            self.features = NumpyFeatures(meta)
            self.vocab = Vocabulary(meta["vocab"])
            self.frame_seconds = float(meta["frame_seconds"])
        except (KeyError, ValueError, TypeError, AsrError) as e:
            raise AsrError(f"{path}: damaged asr metadata ({str(e)[:120]})") from None
        self.info = meta.get("info", {})

    @property
    def sample_rate(self) -> int:
        return self.features.config.sample_rate

    @property
    def per_speaker(self) -> bool:
        return self.features.config.per_speaker

    def batch_log_probs(self, waves: list[np.ndarray], means: list | None = None,
                        vtln: float = 0.0) -> list[np.ndarray]:
        """One (T, V) float32 array of log-probs per utterance (``vtln``: each utterance's surest
        reading over the warp factors, as ``Recognizer.log_probs``). The rows are dealt to one
        thread per core, each running its share as a padded batch on one onnxruntime thread (as
        the torch ``Recognizer`` does, for the same reason: recurrent layers parallelize poorly
        within a batch)."""
        return self.rows.run(lambda w, m: self._padded_log_probs(w, m, vtln), waves, means)

    def _padded_log_probs(self, waves: list[np.ndarray], means: list, vtln: float = 0.0) -> list[np.ndarray]:
        feats = self.features.many(waves, [None if m is None else np.asarray(m, np.float32) for m in means])
        readings = [self._network(feats if factor == 1 else [self.features.warp(f, factor) for f in feats])
                    for factor in warps.factors(vtln)]
        return [warps.surest([reading[row] for reading in readings])[1] for row in range(len(feats))]

    def _network(self, feats: list[np.ndarray]) -> list[np.ndarray]:
        batch = np.zeros((len(feats), max(len(f) for f in feats), self.features.dim), np.float32)
        for row, f in enumerate(feats):
            batch[row, :len(f)] = f
        lengths = np.array([len(f) for f in feats], np.int64)
        log_probs, frames = self.session.run(None, {"features": batch, "lengths": lengths})
        return [log_probs[row, :n] for row, n in enumerate(frames.tolist())]

    def speaker_mean(self, blocks: Iterable[np.ndarray]) -> np.ndarray | None:
        """(F,) mean features over the speech frames of all ``blocks``, as one speaker's."""
        total, count = np.zeros(self.features.dim, np.float64), 0
        for block in blocks:
            x = self.features.raw(block)
            speech = self.features.speech_frames(block, len(x))
            total += x[speech].sum(axis=0)
            count += int(speech.sum())
        return (total / count).astype(np.float32) if count else None


class RowThreads:
    """One thread per core (started at the first batch worth it), each running a share of a
    batch's rows: dealt round-robin, so the shares are alike in length. Both recognizers use
    it, with one framework thread per share, and numpy's BLAS (the features' mel projection)
    kept to one thread meanwhile: OpenBLAS otherwise starts a thread per core for every product,
    and on 2 cores the exported model ran at 0.88x the checkpoint's speed instead of 1.12x."""

    def __init__(self, threads: int | None = None):
        self.threads = threads or cpu_count()
        self._pool = None
        self._blas = None  # threadpoolctl's view of the loaded BLAS libraries (found once)

    def run(self, run, waves: list, means: list | None) -> list:
        """``run(waves, means)`` over the shares; the results back in the rows' order."""
        means = means if means is not None else [None] * len(waves)
        workers = min(self.threads, len(waves))
        if workers <= 1:
            return run(waves, means)
        if self._pool is None:
            from concurrent.futures import ThreadPoolExecutor

            self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="asr-rows")
        if self._blas is None:
            from threadpoolctl import ThreadpoolController

            self._blas = ThreadpoolController()
        shares = [list(range(first, len(waves), workers)) for first in range(workers)]
        with self._blas.limit(limits=1, user_api="blas"):
            results = list(self._pool.map(lambda rows: run([waves[i] for i in rows], [means[i] for i in rows]),
                                          shares))
        out: list = [None] * len(waves)
        for rows, arrays in zip(shares, results):
            for i, array in zip(rows, arrays):
                out[i] = array
        return out


def is_onnx(path: str | os.PathLike) -> bool:
    """Whether ``path`` names an exported model (an .onnx file) rather than a checkpoint."""
    return Path(path).suffix.lower() == ".onnx"


def load_onnx(path: str | os.PathLike, threads: int | None = None) -> OnnxRecognizer:
    path = Path(path)
    if not path.is_file():
        raise AsrError(f"{path}: model not found")
    if path.stat().st_size == 0:
        raise AsrError(f"{path}: damaged or not an ONNX model (empty file)")
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        raise AsrError(f"{path}: reading ONNX models needs onnxruntime (pip install \".[runtime]\")") from None
    return OnnxRecognizer(path, threads)
