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


def _wave(recognizer: Recognizer, audio) -> torch.Tensor:
    """(1, S) on the model's device, padded to the features' shortest input."""
    wave = torch.from_numpy(audio)
    if len(wave) < recognizer.features.min_samples:
        wave = torch.nn.functional.pad(wave, (0, recognizer.features.min_samples - len(wave)))
    return wave.unsqueeze(0).to(recognizer.device)


def _common_mean(recognizer: Recognizer, paths: list[str]) -> torch.Tensor | None:
    """(1, F) mean features of all the readable files, as one speaker's (None if none is)."""
    rate = recognizer.features.config.sample_rate
    read = []

    def batches():
        for path in paths:
            try:
                wave = _wave(recognizer, load_audio(path, rate))
            except AsrError:
                continue  # reported when it is transcribed
            read.append(path)
            yield wave, torch.tensor([wave.shape[1]], device=wave.device), torch.zeros(1, dtype=torch.long)

    means, _ = recognizer.features.group_stats(batches(), 1)
    return means.to(recognizer.device) if read else None


@torch.inference_mode()
def transcribe_files(recognizer: Recognizer, paths: list[str], decoder: Decoder,
                     timestamps: bool = False, same_speaker: bool = False) -> list[Transcript]:
    """One transcript per file, in order; a file that cannot be read gets ``error`` set
    and the others are still transcribed. For a model whose features are normalized per
    speaker, each file is its own speaker, or with ``same_speaker`` all are one."""
    rate = recognizer.features.config.sample_rate
    means = (_common_mean(recognizer, paths)
             if same_speaker and recognizer.features.config.normalize == "speaker" else None)
    results = []
    for path in paths:
        try:
            audio = load_audio(path, rate)
        except AsrError as e:
            results.append(Transcript(path, "", 0.0, str(e)))
            continue
        wave = _wave(recognizer, audio)
        log_probs, lengths = recognizer.log_probs(wave, torch.tensor([wave.shape[1]], device=wave.device), means)
        log_probs = log_probs[0, :int(lengths[0])].float().cpu().numpy()
        hypotheses = decoder.search(log_probs)
        text = hypotheses[0].text
        duration = len(audio) / rate
        words = word_times(log_probs, text, recognizer.vocab, recognizer.frame_seconds, duration) \
            if timestamps else []
        results.append(Transcript(path, text, duration, words=words, nbest=hypotheses))
    return results
