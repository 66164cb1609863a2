"""Audio files -> transcripts with a trained checkpoint."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from asr.audio import load_audio
from asr.checkpoint import Recognizer
from asr.decoding import Decoder
from asr.errors import AsrError


@dataclass(frozen=True)
class Transcript:
    path: str
    text: str
    duration: float  # seconds of audio
    error: str = ""  # set instead of text when the file could not be read


@torch.inference_mode()
def transcribe_files(recognizer: Recognizer, paths: list[str], decoder: Decoder) -> list[Transcript]:
    """One transcript per file, in order; a file that cannot be read gets ``error`` set
    and the others are still transcribed."""
    rate = recognizer.features.config.sample_rate
    results = []
    for path in paths:
        try:
            audio = load_audio(path, rate)
        except AsrError as e:
            results.append(Transcript(path, "", 0.0, str(e)))
            continue
        wave = torch.from_numpy(audio)
        if len(wave) < recognizer.features.min_samples:
            wave = torch.nn.functional.pad(wave, (0, recognizer.features.min_samples - len(wave)))
        wave = wave.unsqueeze(0).to(recognizer.device)  # (S,) -> (1, S)
        log_probs, lengths = recognizer.log_probs(wave, torch.tensor([wave.shape[1]], device=wave.device))
        results.append(Transcript(path, decoder.decode(log_probs, lengths)[0], len(audio) / rate))
    return results
