"""Audio files -> transcripts (and word timestamps) with a trained checkpoint."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from asr.align import WordTime, word_times
from asr.audio import load_audio
from asr.checkpoint import Recognizer
from asr.decoding import Decoder, Hypothesis
from asr.errors import AsrError


@dataclass(frozen=True)
class Transcript:
    path: str
    text: str
    duration: float  # seconds of audio
    error: str = ""  # set instead of text when the file could not be read
    words: list[WordTime] = field(default_factory=list)  # with timestamps=True
    nbest: list[Hypothesis] = field(default_factory=list)  # the decoder's alternatives, best first


@torch.inference_mode()
def transcribe_files(recognizer: Recognizer, paths: list[str], decoder: Decoder,
                     timestamps: bool = False) -> list[Transcript]:
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
        log_probs = log_probs[0, :int(lengths[0])].float().cpu().numpy()
        hypotheses = decoder.search(log_probs)
        text = hypotheses[0].text
        duration = len(audio) / rate
        words = word_times(log_probs, text, recognizer.vocab, recognizer.frame_seconds, duration) \
            if timestamps else []
        results.append(Transcript(path, text, duration, words=words, nbest=hypotheses))
    return results
