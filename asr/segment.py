"""Cutting a stream of audio into pieces the model reads well: at pauses, never too long.

The acoustic model is trained on utterances of seconds. Run over an hour at once, a
bidirectional RNN needs memory in proportion to the hour, and its state drifts on input
far longer than any it was trained on (measured in ``scripts/bench_longform.py``). So:

- A recording no longer than ``max_seconds`` is one piece, exactly as training and
  evaluation see an utterance.
- A longer one is cut in the middle of every pause of at least ``min_pause`` seconds. A
  pause is a run of 10 ms frames whose energy stays within ``speech_db`` of the noise
  floor, the ``floor_percentile``-th percentile of the last ``history_seconds`` of frames:
  a rule relative to the recording itself, so it holds at any level and in steady noise.
  The pieces tile the recording, silence included: where the rule finds no speech (loud
  steady noise, say), audio is cut by length, never dropped.
- Where nobody pauses for ``max_seconds``, the piece is cut at its quietest frame in the
  second half of that stretch.
- Each piece reads ``context`` seconds past its cuts (less only at the recording's ends; a
  piece waits for the block that holds them), and the output frames of that context are
  dropped (``asr.transcribe`` settles the words at the cut from both pieces' readings):
  every frame kept was computed with audio on both sides. This
  matters even at pauses: on FSDD, pieces that end in half a pause of faint noise read
  2.0% WER greedy, against 1.1% with a second of context and 0.9% for the same audio cut
  by hand at the pauses (``scripts/bench_longform.py``).

Memory holds at most ``max_seconds`` plus a block of audio, whatever the length.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np

from asr.errors import AsrError

FRAME_SECONDS = 0.01  # energy frames for finding pauses


@dataclass(frozen=True)
class SegmentOptions:
    max_seconds: float = 30.0  # longest piece the model reads (a recording this long or shorter is one piece)
    min_pause: float = 0.5  # seconds of quiet where a piece may end
    context: float = 1.0  # seconds read past each cut (their output is dropped)
    speech_db: float = 8.0  # frames this far above the noise floor are speech
    floor_percentile: float = 10.0
    history_seconds: float = 30.0  # recent audio the noise floor is taken from

    def __post_init__(self):
        if self.max_seconds < 4 * self.context + 1 or self.context < 0:
            raise AsrError(f"segment length {self.max_seconds} s must be at least 4 x the context "
                           f"({self.context} s) + 1 s")
        if self.min_pause <= 0:
            raise AsrError(f"the pause that ends a piece must be positive, not {self.min_pause} s")


@dataclass(frozen=True)
class Piece:
    """Samples [start, end) of the recording (at the model's rate) for the model to read;
    only the output of samples [keep_start, keep_end) is kept."""

    start: int
    keep_start: int
    keep_end: int
    end: int
    audio: np.ndarray  # (end - start,) float32


class _Buffer:
    """The stream's samples from ``offset`` on, appended block by block."""

    def __init__(self):
        self.offset = 0
        self.samples = np.zeros(0, np.float32)

    @property
    def end(self) -> int:
        return self.offset + len(self.samples)

    def append(self, block: np.ndarray) -> None:
        self.samples = np.concatenate([self.samples, block])

    def get(self, start: int, end: int) -> np.ndarray:
        return self.samples[start - self.offset:end - self.offset].copy()

    def drop_before(self, sample: int) -> None:
        if sample > self.offset:
            self.samples = self.samples[sample - self.offset:]
            self.offset = sample


def frame_levels(samples: np.ndarray, hop: int) -> np.ndarray:
    """Energy (dB) of each whole frame of ``hop`` samples."""
    count = len(samples) // hop
    frames = samples[:count * hop].astype(np.float64).reshape(count, hop)
    return 10 * np.log10((frames ** 2).mean(axis=1) + 1e-10)


def segment_stream(blocks: Iterable[np.ndarray], sample_rate: int,
                   options: SegmentOptions = SegmentOptions()) -> Iterator[Piece]:
    """Pieces of the audio that ``blocks`` (consecutive float32 arrays) make up, in order.
    Their kept samples tile the recording: nothing is left out, silence included."""
    hop = max(1, round(FRAME_SECONDS * sample_rate))
    max_len = round(options.max_seconds * sample_rate)
    min_pause = round(options.min_pause * sample_rate)
    context = round(options.context * sample_rate)
    history = np.zeros(0, np.float64)  # energies (dB) of recent frames, for the noise floor
    levels = np.zeros(0, np.float64)  # energies of the frames from frame `first` on
    first = 0
    buffer = _Buffer()
    held: list[Piece] | None = []  # pieces found before the recording proved longer than max_len
    cuts: deque[tuple[int, int, int, int]] = deque()  # pieces (start, keep_start, keep_end, end) whose end is not read yet
    read_start = keep_start = 0  # the open piece
    last_speech = None  # sample just past the open piece's last speech frame (None: none yet)
    for block in blocks:
        buffer.append(block)
        framed = (first + len(levels)) * hop
        count = (buffer.end - framed) // hop
        new = frame_levels(buffer.get(framed, framed + count * hop), hop)
        history = np.concatenate([history, new])[-round(options.history_seconds / FRAME_SECONDS):]
        floor = np.percentile(history, options.floor_percentile) if len(history) else 0.0
        levels = np.concatenate([levels, new])
        for i, is_speech in enumerate(new > floor + options.speech_db):
            at = framed + i * hop  # the frame's first sample
            if is_speech:
                if last_speech is not None and at - last_speech >= min_pause:  # a pause ends: cut in its middle
                    cut = (last_speech + at) // 2
                    cuts.append((read_start, keep_start, cut, cut + context))
                    read_start, keep_start = max(cut - context, read_start), cut
                last_speech = at + hop
            if at + hop - keep_start >= max_len:
                # Nobody paused: cut at the quietest frame of the stretch's second half.
                lo = (keep_start + max_len // 2) // hop
                hi = max(lo + 1, (at + hop - context) // hop)
                cut = (lo + int(np.argmin(levels[lo - first:hi - first]))) * hop
                cuts.append((read_start, keep_start, cut, cut + context))
                read_start, keep_start = cut - context, cut
                if last_speech is not None and last_speech <= cut:
                    last_speech = None
        pieces = []
        while cuts and cuts[0][3] <= buffer.end:  # a piece goes once its context after the cut is read
            start, keep, cut, end = cuts.popleft()
            pieces.append(Piece(start, keep, cut, end, buffer.get(start, end)))
        if held is not None:
            held.extend(pieces)
            if buffer.end > max_len:  # a long recording: let the held pieces go
                pieces, held = held, None
            else:
                pieces = []
        yield from pieces
        if held is None:  # forget what no piece can need again
            needed = cuts[0][0] if cuts else read_start
            buffer.drop_before(needed)
            drop = max(0, needed // hop - first)
            levels, first = levels[drop:], first + drop
    total = buffer.end
    if held is not None:  # the whole recording is no longer than max_len: one piece
        if total:
            yield Piece(0, 0, total, total, buffer.get(0, total))
        return
    for start, keep, cut, end in cuts:  # the recording ended within their context
        yield Piece(start, keep, cut, min(end, total), buffer.get(start, min(end, total)))
    if total > keep_start:
        yield Piece(read_start, keep_start, total, total, buffer.get(read_start, total))


def speech_mask(audio: np.ndarray, sample_rate: int, options: SegmentOptions = SegmentOptions()) -> np.ndarray:
    """(frames,) bool: the 10 ms frames of ``audio`` louder than its noise floor by ``speech_db``
    (the rule that finds pauses, with the floor taken from ``audio`` alone)."""
    levels = frame_levels(audio, max(1, round(FRAME_SECONDS * sample_rate)))
    if not len(levels):
        return np.zeros(0, bool)
    return levels > np.percentile(levels, options.floor_percentile) + options.speech_db


def frames_to_keep(piece: Piece, frame_samples: float, frames: int) -> tuple[int, int]:
    """The model's output frames (of ``frame_samples`` samples each, ``frames`` in all) that
    belong to the piece's kept samples: [first, last)."""
    first = math.ceil((piece.keep_start - piece.start) / frame_samples - 1e-9)
    last = math.ceil((piece.keep_end - piece.start) / frame_samples - 1e-9)
    return min(first, frames), min(max(last, first), frames)
