"""Word timestamps: where each word of a decoded transcript lies in the audio.

The decoder gives the text; its best frame alignment on the same log-probs (CTC
Viterbi, torchaudio's ``forced_align``) gives every character its frames. A word
starts at the first frame of its first character and ends after the last frame of
its last character.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from asr.text import Vocabulary


@dataclass(frozen=True)
class WordTime:
    word: str
    start: float  # seconds
    end: float

    def as_dict(self) -> dict:
        return {"word": self.word, "start": round(self.start, 3), "end": round(self.end, 3)}


def word_times(log_probs: np.ndarray, text: str, vocab: Vocabulary, frame_seconds: float,
               duration: float | None = None) -> list[WordTime]:
    """Timestamps of the words of ``text`` (which ``log_probs`` (T, V) decoded to)."""
    if not text:
        return []
    from torchaudio.functional import forced_align

    units = vocab.encode(text)
    targets = torch.tensor([units], dtype=torch.int32)
    emissions = torch.as_tensor(np.asarray(log_probs, dtype=np.float32)).unsqueeze(0)
    try:
        path, _ = forced_align(emissions, targets, blank=0)
    except RuntimeError:  # more labels than frames can hold: no alignment to report
        return []
    path = path[0].tolist()
    # First and last frame of each target label, in order.
    spans: list[list[int]] = []
    previous = 0
    for t, label in enumerate(path):
        if label != 0 and label != previous:
            spans.append([t, t])
        elif label != 0:
            spans[-1][1] = t
        previous = label
    # First and last frame of each word: a label with a leading space (the space itself, or a
    # piece such as " zero") starts the next word, whose first frame is its first letter's.
    bounds: list[list[int]] = []
    new_word = True
    for label, (first, last) in zip(units, spans):
        symbol = vocab.symbols[label]
        new_word = new_word or symbol.startswith(" ")
        if symbol.strip() and new_word:
            bounds.append([first, last])
            new_word = False
        elif symbol.strip():
            bounds[-1][1] = last
    limit = duration if duration is not None else len(path) * frame_seconds
    return [WordTime(word, min(first * frame_seconds, limit), min((last + 1) * frame_seconds, limit))
            for word, (first, last) in zip(text.split(" "), bounds)]
