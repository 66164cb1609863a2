"""Word timestamps: where each word of a decoded transcript lies in the audio.

The decoder gives the text; its best frame alignment on the same log-probs (CTC
Viterbi: torchaudio's ``forced_align`` where torch is loaded already, else ``viterbi_align``
here, which finds the same path) gives every character its frames. A word
starts at the first frame of its first character and ends after the last frame of
its last character. Its confidence is the mean posterior probability of its characters on
the frames the alignment gives them (1: the model was sure of every frame).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

import numpy as np

from asr.text import Vocabulary


@dataclass(frozen=True)
class WordTime:
    word: str
    start: float  # seconds
    end: float
    confidence: float = 1.0  # mean posterior of the word's characters on their frames, 0-1

    def as_dict(self) -> dict:
        return {"word": self.word, "start": round(self.start, 3), "end": round(self.end, 3),
                "confidence": round(self.confidence, 3)}

    def shifted(self, seconds: float) -> "WordTime":
        return WordTime(self.word, self.start + seconds, self.end + seconds, self.confidence)


@dataclass(frozen=True)
class Letter:
    """One unit of a word (a character, or a word piece) on the frames the alignment gives it."""

    text: str  # without the word-separating space
    first: int  # first frame
    last: int  # last frame
    mass: float  # sum of the unit's posteriors on those frames

    @property
    def frames(self) -> int:
        return self.last + 1 - self.first


def aligned_words(log_probs: np.ndarray, text: str, vocab: Vocabulary) -> list[list[Letter]]:
    """The units of each word of ``text`` (which ``log_probs`` (T, V) decoded to) on their
    frames; [] when there is no alignment (no text, or more labels than frames)."""
    if not text:
        return []
    units = vocab.encode(text)
    alignment = _align(np.asarray(log_probs, dtype=np.float32), units)
    if alignment is None:
        return []
    path, probs = alignment
    # First and last frame of each target label, in order.
    spans: list[list[int]] = []
    previous = 0
    for t, label in enumerate(path):
        if label != 0 and label != previous:
            spans.append([t, t])
        elif label != 0:
            spans[-1][1] = t
        previous = label
    # A label with a leading space (the space itself, or a piece such as " zero") starts the
    # next word.
    words: list[list[Letter]] = []
    new_word = True
    for label, (first, last) in zip(units, spans):
        symbol = vocab.symbols[label]
        new_word = new_word or symbol.startswith(" ")
        if symbol.strip():
            if new_word:
                words.append([])
                new_word = False
            words[-1].append(Letter(symbol.strip(), first, last, sum(probs[first:last + 1])))
    return words


def spelled(letters: list[Letter]) -> str:
    return "".join(x.text for x in letters)


def timed_word(letters: list[Letter], frame_seconds: float, limit: float = float("inf")) -> WordTime:
    """The word the ``letters`` spell: from the first frame of its first letter to just past
    the last of its last, in seconds (at most ``limit``)."""
    return WordTime(spelled(letters), min(letters[0].first * frame_seconds, limit),
                    min((letters[-1].last + 1) * frame_seconds, limit),
                    sum(x.mass for x in letters) / sum(x.frames for x in letters))


def word_times(log_probs: np.ndarray, text: str, vocab: Vocabulary, frame_seconds: float,
               duration: float | None = None) -> list[WordTime]:
    """Timestamps of the words of ``text`` (which ``log_probs`` (T, V) decoded to)."""
    limit = duration if duration is not None else len(log_probs) * frame_seconds
    return [timed_word(letters, frame_seconds, limit) for letters in aligned_words(log_probs, text, vocab)]


def _align(log_probs: np.ndarray, units: list[int]) -> tuple[list[int], list[float]] | None:
    """(label per frame, posterior of that label per frame) of the best CTC path, or None."""
    if "torchaudio" not in sys.modules:  # an exported model: importing torch would cost seconds
        found = viterbi_align(log_probs, units)
        if found is None:
            return None
        path, scores = found
    else:
        import torch
        from torchaudio.functional import forced_align

        try:
            path, scores = forced_align(torch.from_numpy(log_probs).unsqueeze(0),
                                        torch.tensor([units], dtype=torch.int32), blank=0)
        except RuntimeError:
            return None
        path, scores = path[0].numpy(), scores[0].numpy()
    return path.tolist(), np.exp(scores).tolist()


def viterbi_align(log_probs: np.ndarray, units: list[int], blank: int = 0) -> tuple[np.ndarray, np.ndarray] | None:
    """The most likely CTC path of ``units`` through ``log_probs`` (T, V): the label of each
    frame (blank included) and its log-probability there; None when no path fits."""
    frames = len(log_probs)
    states = np.full(2 * len(units) + 1, blank)  # blank, u1, blank, u2, ..., blank
    states[1::2] = units
    emit = log_probs[:, states]  # (T, S)
    skip = np.zeros(len(states), bool)  # a state may be entered from two back: a label unlike the one before
    skip[2:] = (states[2:] != blank) & (states[2:] != states[:-2])
    score = np.full(len(states), -np.inf)
    score[:2] = emit[0, :2]
    moves = np.zeros((frames, len(states)), np.int8)  # how far back each state's best predecessor is
    columns = np.arange(len(states))
    for t in range(1, frames):
        candidates = np.full((3, len(states)), -np.inf)
        candidates[0] = score
        candidates[1, 1:] = score[:-1]
        candidates[2, 2:] = np.where(skip[2:], score[:-2], -np.inf)
        moves[t] = candidates.argmax(axis=0)
        score = candidates[moves[t], columns] + emit[t]
    ends = [len(states) - 1] + ([len(states) - 2] if units else [])
    state = max(ends, key=lambda s: score[s])
    if not np.isfinite(score[state]):
        return None
    path = np.empty(frames, np.int64)
    for t in range(frames - 1, -1, -1):
        path[t] = state
        state -= int(moves[t, state])
    return states[path], emit[np.arange(frames), path]


def snap_to_speech(words: list[WordTime], speech: np.ndarray, frame_seconds: float, start: float, end: float,
                   reach: float = 0.2, bridge: float = 0.05) -> list[WordTime]:
    """Widen each word over the speech that touches it. CTC puts a letter where the model is
    surest, often the middle of a fricative or after a plosive's closure, so aligned words
    start late and end early (by 0.1-0.2 s for "six" on FSDD). ``speech`` (N,) flags frames of
    ``frame_seconds`` from time ``start`` on; a word grows by at most ``reach`` seconds each
    way, through frames flagged speech, never into its neighbours nor outside [start, end].
    Quiet gaps of at most ``bridge`` seconds between speech frames count as speech: the closure
    before a final plosive ("eight") is silent, but the word goes on after it."""
    speech = _bridged(speech, round(bridge / frame_seconds))
    out = []
    for i, word in enumerate(words):
        lo = max(out[-1].end if out else start, word.start - reach)
        hi = min(words[i + 1].start if i + 1 < len(words) else end, word.end + reach)
        first = int((word.start - start) / frame_seconds + 1e-6)  # the frame the word starts in
        while first > 0 and start + first * frame_seconds > lo and first - 1 < len(speech) and speech[first - 1]:
            first -= 1
        last = int(np.ceil((word.end - start) / frame_seconds - 1e-6))  # the frame just past the word
        while last < len(speech) and start + (last + 1) * frame_seconds <= hi and speech[last]:
            last += 1
        new_start = min(word.start, max(lo, start + first * frame_seconds))
        new_end = max(word.end, min(hi, start + last * frame_seconds))
        out.append(WordTime(word.word, new_start, new_end, word.confidence))
    return out


def pause_between(speech: np.ndarray, frame_seconds: float, start: float, t0: float, t1: float,
                  pause: float = 0.25) -> bool:
    """Whether ``pause`` seconds or more of quiet run unbroken somewhere in [t0, t1) (``speech``
    and ``start`` as ``snap_to_speech`` has them)."""
    first = max(0, int((t0 - start) / frame_seconds + 1e-6))
    last = min(len(speech), int(np.ceil((t1 - start) / frame_seconds - 1e-6)))
    quiet = ~speech[first:last]
    need = round(pause / frame_seconds)
    if need < 1 or len(quiet) < need:
        return False
    runs = np.convolve(quiet.astype(np.int32), np.ones(need, np.int32), "valid")
    return bool((runs == need).any())


def _bridged(speech: np.ndarray, gap: int) -> np.ndarray:
    """``speech`` with runs of at most ``gap`` unflagged frames between flagged ones flagged."""
    flagged = np.flatnonzero(speech)
    if gap < 1 or len(flagged) < 2:
        return speech
    filled = speech.copy()
    steps = np.diff(flagged)
    for k in np.flatnonzero((steps > 1) & (steps <= gap + 1)):
        filled[flagged[k] + 1:flagged[k + 1]] = True
    return filled
