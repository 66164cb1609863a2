"""Robustness test sets: the same test recordings changed the way real recordings differ from
each other (level, noise, speaking rate, telephone line, room, file format), each condition a
set of its own with a ``condition`` field in one manifest, so that ``asr evaluate`` reports WER
per condition.

    asr conditions --manifest data/test-isolated.jsonl --out-dir data/robust --seed 7

Every change is drawn from a generator seeded by (seed, condition, file name), so a recording
gets the same change whatever order or subset of the set it is built in (babble aside, whose
voices come from the set). Files are written as a recorder or codec would
store them (16-bit PCM unless the condition is about the format), so quiet conditions carry
the quantization of a quiet recording. None of the generators is the training augmentation's
(``asr.augment``): rooms come from pyroomacoustics' image method, noise and filters from numpy.
"""

from __future__ import annotations

import os
import re
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from asr.audio import TELEPHONE_BAND, TELEPHONE_RATE, load_audio, resample
from asr.data import Utterance, write_manifest
from asr.errors import AsrError

BABBLE_VOICES = 4  # other recordings of the set summed into babble


@dataclass(frozen=True)
class Output:
    samples: np.ndarray  # (S,) or (S, channels) float
    rate: int
    suffix: str = ".wav"
    subtype: str = "PCM_16"


# (samples at the set's rate, that rate, this recording's generator, other recordings of the set
# by count) -> the changed recording
Change = Callable[[np.ndarray, int, np.random.Generator, Callable[[int], list[np.ndarray]]], Output]


class Pool:
    """The other recordings of the set, for babble."""

    def __init__(self, utterances: list[Utterance], rate: int):
        self.utterances, self.rate = utterances, rate

    def others(self, index: int, count: int, rng: np.random.Generator) -> list[np.ndarray]:
        speaker = self.utterances[index].speaker
        candidates = [i for i, u in enumerate(self.utterances) if i != index and (speaker is None or u.speaker != speaker)]
        candidates = candidates or [i for i in range(len(self.utterances)) if i != index]
        chosen = rng.choice(candidates, size=min(count, len(candidates)), replace=False) if candidates else []
        return [load_audio(self.utterances[i].audio_filepath, self.rate) for i in chosen]


def _gain(db: float) -> Change:
    return lambda x, rate, rng, others: Output(x * 10 ** (db / 20), rate)


def _power(x: np.ndarray) -> float:
    return float(np.mean(x.astype(np.float64) ** 2)) + 1e-20


def _at_snr(x: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    return x + noise * np.sqrt(_power(x) / (_power(noise) * 10 ** (snr_db / 10)))


def _noise(kind: str, snr_db: float) -> Change:
    def change(x, rate, rng, others):
        if kind == "babble":
            noise = np.zeros(len(x))
            for voice in others(BABBLE_VOICES):
                voice = voice / np.sqrt(_power(voice))  # each voice at the same level
                start = int(rng.integers(len(voice)))
                noise += np.resize(np.roll(voice, -start), len(x))
        else:
            noise = rng.standard_normal(len(x))
            if kind == "pink":  # power falling as 1/f
                spectrum = np.fft.rfft(noise)
                spectrum /= np.sqrt(np.maximum(np.arange(len(spectrum)), 1))
                noise = np.fft.irfft(spectrum, len(x))
        return Output(_at_snr(x, noise, snr_db), rate)
    return change


def _speed(factor: float) -> Change:
    """Played faster or slower, pitch and all (as a tape would)."""
    return lambda x, rate, rng, others: Output(resample(x.astype(np.float32), round(rate * factor), rate), rate)


def _band(x: np.ndarray, rate: int, low: float, high: float, edge: float = 100.0) -> np.ndarray:
    """Band-pass with raised-cosine edges ``edge`` Hz wide, by a zero-padded FFT."""
    n = 1 << (len(x) + rate // 10).bit_length()
    f = np.fft.rfftfreq(n, 1 / rate)
    ramp = lambda d: np.clip(0.5 + 0.5 * np.sin(np.pi * np.clip(d / edge, -0.5, 0.5)), 0, 1)  # noqa: E731
    gain = ramp(f - low) * ramp(high - f)
    return np.fft.irfft(np.fft.rfft(x, n) * gain, n)[:len(x)]


def _telephone(x, rate, rng, others) -> Output:
    """A telephone call: 8 kHz, the 300-3400 Hz band, 8-bit mu-law (G.711) at -20 to -6 dBFS peak."""
    y = resample(x.astype(np.float32), rate, TELEPHONE_RATE) if rate != TELEPHONE_RATE else x
    y = _band(y, TELEPHONE_RATE, *TELEPHONE_BAND)
    y = y / (np.abs(y).max() + 1e-12) * 10 ** (rng.uniform(-20, -6) / 20)
    return Output(y, TELEPHONE_RATE, ".wav", "ULAW")


def _room(x, rate, rng, others) -> Output:
    """A shoebox room (3-8 x 3-6 x 2.5-3.5 m) with RT60 drawn from 0.3-0.6 s, talker and
    microphone at random places 0.5 m or more from the walls (pyroomacoustics' image method)."""
    try:
        import pyroomacoustics as pra
    except ImportError:
        raise AsrError("the room condition needs pyroomacoustics (pip install pyroomacoustics)") from None
    size = np.array([rng.uniform(3, 8), rng.uniform(3, 6), rng.uniform(2.5, 3.5)])
    rt60 = rng.uniform(0.3, 0.6)
    absorption, order = pra.inverse_sabine(rt60, size)
    room = pra.ShoeBox(size, fs=rate, materials=pra.Material(absorption), max_order=min(order, 30))
    place = lambda: np.array([rng.uniform(0.5, s - 0.5) for s in size[:2]] + [rng.uniform(1.0, 1.8)])  # noqa: E731
    room.add_source(place())
    room.add_microphone(place())
    room.compute_rir()
    rir = np.asarray(room.rir[0][0])
    wet = np.convolve(x, rir)[:len(x) + int(0.3 * rate)]  # keep the start of the tail
    return Output(wet * np.sqrt(_power(x) / _power(wet[:len(x)])), rate)


def _format(rate: int, suffix: str, subtype: str, channels: int = 1) -> Change:
    def change(x, orig, rng, others):
        y = resample(x.astype(np.float32), orig, rate)
        if channels == 2:  # panned a little to the left
            y = np.stack([y, y * 10 ** (-3 / 20)], axis=1)
        return Output(y, rate, suffix, subtype)
    return change


CONDITIONS: dict[str, Change] = {
    "clean": _gain(0.0),
    "level-30dB": _gain(-30.0), "level-20dB": _gain(-20.0), "level-10dB": _gain(-10.0), "level+6dB": _gain(6.0),
    **{f"{kind}-snr{snr}": _noise(kind, snr) for kind in ("white", "pink", "babble") for snr in (20, 10)},
    "speed-0.9": _speed(0.9), "speed-1.1": _speed(1.1),
    "telephone": _telephone,
    "room": _room,
    "wav-44k-stereo": _format(44100, ".wav", "PCM_16", channels=2),
    "flac-22k-24bit": _format(22050, ".flac", "PCM_24"),
    "wav-48k-float": _format(48000, ".wav", "FLOAT"),
    "ogg-16k": _format(16000, ".ogg", "VORBIS"),
}


LEVEL = re.compile(r"^level([+-]\d+(?:\.\d+)?)dB$")


def condition(name: str) -> Change:
    """The change a condition name stands for: one of CONDITIONS, or any level as ``level-25dB``."""
    if name in CONDITIONS:
        return CONDITIONS[name]
    match = LEVEL.match(name)
    if match:
        return _gain(float(match.group(1)))
    raise AsrError(f"unknown condition {name} (known: {', '.join(CONDITIONS)}, or any level as level-25dB)")


def pick(names: str | None) -> list[str]:
    """A comma-separated list of condition names (all of CONDITIONS for None or ""), checked."""
    if not names:
        return list(CONDITIONS)
    chosen = [n.strip() for n in names.split(",") if n.strip()]
    for name in chosen:
        condition(name)
    return chosen


def build_conditions(utterances: list[Utterance], out_dir: str | Path, rate: int, seed: int,
                     names: list[str] | None = None) -> list[dict]:
    """Write every recording of ``utterances`` (read at ``rate``) changed by each condition under
    ``out_dir/<condition>/``; returns their manifest entries (``condition`` and ``speaker`` kept)."""
    out_dir = Path(out_dir)
    names = names or list(CONDITIONS)
    changes = {name: condition(name) for name in names}
    for name in names:
        (out_dir / name).mkdir(parents=True, exist_ok=True)
    entries: dict[str, list[dict]] = {name: [] for name in names}  # manifest order: by condition
    pool = Pool(utterances, rate)
    for index, u in enumerate(utterances):
        audio = load_audio(u.audio_filepath, rate)  # read once for every condition
        for name, change in changes.items():
            rng = np.random.default_rng([seed, zlib.crc32(name.encode()), zlib.crc32(Path(u.audio_filepath).name.encode())])
            others = lambda count: pool.others(index, count, rng)  # noqa: E731
            out = change(audio, rate, rng, others)
            samples = np.clip(out.samples, -1, 1) if out.subtype != "FLOAT" else out.samples
            path = out_dir / name / (f"{index:05d}-{Path(u.audio_filepath).stem}{out.suffix}")
            sf.write(str(path), samples, out.rate, subtype=out.subtype)
            entry = {"audio_filepath": str(path), "text": u.text, "duration": len(samples) / out.rate,
                     "condition": name}
            if u.speaker is not None:
                entry["speaker"] = u.speaker
            entries[name].append(entry)
    return [entry for name in names for entry in entries[name]]


def write_condition_manifest(utterances: list[Utterance], out_dir: str | Path, manifest: str | Path, rate: int,
                             seed: int, names: list[str] | None = None) -> int:
    """``build_conditions``, then its manifest; returns the number of files written."""
    entries = build_conditions(utterances, out_dir, rate, seed, names)
    folder = Path(manifest).resolve().parent  # a manifest's relative paths are read from its folder
    for e in entries:
        e["audio_filepath"] = os.path.relpath(Path(e["audio_filepath"]).resolve(), folder)
    write_manifest(manifest, entries)
    return len(entries)
