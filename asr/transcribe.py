"""Recordings of any length -> transcripts with segments and word timestamps.

Every file takes the same path, a two-second command or a three-hour meeting:

    stream_audio (blocks)  ->  segment_stream (pieces cut at pauses)  ->  batches of pieces,
    from many files at once, through the model  ->  decoder (over every core)  ->  words
    aligned and put back in file time  ->  one Transcript per file, in input order.

Memory holds a block of audio, the open piece of each file and one batch, so it stays flat
as the recording grows; short files are batched together instead of run one at a time.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np

from asr import vtln as warps
from asr.align import WordTime, snap_to_speech, word_times
from asr.audio import stream_audio
from asr.decoding import Decoder, DecodePool, Hypothesis
from asr.errors import AsrError
from asr.segment import FRAME_SECONDS, Piece, SegmentOptions, frames_to_keep, segment_stream, speech_mask

BATCH_SECONDS = 200.0  # audio through the model at once
MMAP_THRESHOLD = 32 << 20  # bytes: larger buffers are mapped and unmapped whole (see _Heap)
TRIM_SECONDS = 100.0  # audio between two heap trims
# The recognizer: asr.recognizer.Recognizer (torch) or asr.runtime.OnnxRecognizer (exported),
# each with vocab, sample_rate, frame_seconds, per_speaker, batch_log_probs and speaker_mean.
Word = WordTime


@dataclass(frozen=True)
class Segment:
    start: float  # seconds in the file
    end: float
    text: str
    words: list[Word] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"start": round(self.start, 3), "end": round(self.end, 3), "text": self.text,
                "words": [w.as_dict() for w in self.words]}


@dataclass(frozen=True)
class Transcript:
    path: str
    text: str
    duration: float  # seconds of audio
    error: str = ""  # set instead of text when the file could not be read
    segments: list[Segment] = field(default_factory=list)
    nbest: list[Hypothesis] = field(default_factory=list)  # alternatives, best first (one-piece files)

    @property
    def words(self) -> list[Word]:
        return [w for s in self.segments for w in s.words]

    def as_dict(self) -> dict:
        return {"path": self.path, "text": self.text, "duration": round(self.duration, 3),
                "segments": [s.as_dict() for s in self.segments],
                "words": [w.as_dict() for w in self.words]}


@dataclass
class _File:
    """A file on its way through: its pieces' results as they come back."""

    index: int
    path: str
    source: str | os.PathLike | np.ndarray
    mean: object | None  # (F,) its speaker's feature mean, for a model normalized per speaker
    samples: int = 0
    pieces: int = 0
    read: bool = False  # every piece has been cut
    error: str = ""
    results: dict[int, tuple[Segment | None, list[Hypothesis]]] = field(default_factory=dict)

    @property
    def done(self) -> bool:
        return self.read and (bool(self.error) or len(self.results) == self.pieces)


class Transcriber:
    """Transcribes files with one recognizer and decoder; ``close`` (or ``with``) ends its
    decoding processes."""

    def __init__(self, recognizer, decoder: Decoder, segments: SegmentOptions = SegmentOptions(),
                 batch_seconds: float = BATCH_SECONDS, workers: int | None = None, timestamps: bool = True,
                 vtln: float = 0.0):
        warps.check(vtln, recognizer.features.config.kind)
        self.recognizer = recognizer
        self.vtln = vtln  # each piece read at several warps, the surest kept (asr.vtln)
        self.rate = recognizer.sample_rate
        self.segments = segments
        self.batch_samples = batch_seconds * self.rate
        self.timestamps = timestamps
        self.pool = DecodePool(decoder, workers)
        _Heap.settle()

    def close(self) -> None:
        self.pool.close()

    def __enter__(self) -> "Transcriber":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def run(self, paths: Iterable[str | os.PathLike | np.ndarray], means: Iterable | None = None,
            progress: Callable[[float], None] | None = None) -> Iterator[Transcript]:
        """One Transcript per path, in order, each as soon as it is complete; a file that cannot
        be read gets ``error`` set and the others go on. ``means``: a (F,) speaker mean per
        path (models normalized per speaker; without one each piece is its own speaker).
        ``progress`` is called with the seconds of audio read since its last call."""
        waiting: deque[_File] = deque()
        batch: list[tuple[_File, int, Piece]] = []
        queued = 0  # samples in `batch`
        means = iter(means) if means is not None else None
        for index, path in enumerate(paths):
            name = "<array>" if isinstance(path, np.ndarray) else str(path)
            file = _File(index, name, path, next(means) if means is not None else None)
            waiting.append(file)
            try:
                for piece in segment_stream(self._blocks(file, progress), self.rate, self.segments):
                    batch.append((file, file.pieces, piece))
                    file.pieces += 1
                    queued += len(piece.audio)
                    if queued >= self.batch_samples:
                        self._run_batch(batch)
                        batch, queued = [], 0
            except AsrError as e:
                file.error = str(e)
            file.read = True
            while waiting and waiting[0].done:
                yield self._finish(waiting.popleft())
        if batch:
            self._run_batch(batch)
        while waiting:
            yield self._finish(waiting.popleft())

    def _blocks(self, file: _File, progress) -> Iterator[np.ndarray]:
        if isinstance(file.source, np.ndarray):
            blocks = _array_blocks(file.source, round(BATCH_SECONDS * self.rate))
        else:
            blocks = stream_audio(file.source, self.rate)
        for block in blocks:
            file.samples += len(block)
            if progress:
                progress(len(block) / self.rate)
            yield block

    def _run_batch(self, batch: list[tuple[_File, int, Piece]]) -> None:
        recognizer = self.recognizer
        batch = [item for item in batch if not item[0].error]
        if not batch:
            return
        batch.sort(key=lambda item: len(item[2].audio))  # similar lengths pad least
        means = None
        if any(file.mean is not None for file, _, _ in batch):
            means = [file.mean for file, _, _ in batch]
        log_probs = []
        for rows in _padded_groups([len(p.audio) for _, _, p in batch], self.batch_samples):
            log_probs += recognizer.batch_log_probs([batch[i][2].audio for i in rows],
                                                    None if means is None else [means[i] for i in rows], self.vtln)
        frame_samples = recognizer.frame_seconds * self.rate
        kept, offsets = [], []
        for array, (_, _, piece) in zip(log_probs, batch):
            first, last = frames_to_keep(piece, frame_samples, len(array))
            kept.append(array[first:last])
            offsets.append(piece.start / self.rate + first * recognizer.frame_seconds)
        for (file, number, piece), array, offset, nbest in zip(batch, kept, offsets, self.pool.search(kept)):
            text = nbest[0].text if nbest else ""
            segment = None
            if text:
                start, end = piece.keep_start / self.rate, piece.keep_end / self.rate
                words = self._words(array, text, offset, start, end, piece) if self.timestamps else []
                if words:  # the segment is its speech, not the pauses around it
                    start, end = words[0].start, words[-1].end
                segment = Segment(start, end, text, words)
            file.results[number] = (segment, nbest)
        _Heap.trim(sum(len(p.audio) for _, _, p in batch) / self.rate)

    def _words(self, log_probs: np.ndarray, text: str, offset: float, start: float, end: float,
               piece: Piece) -> list[Word]:
        """The words of a piece's text in file time, widened over the speech around them;
        spread evenly over the piece when the alignment fails (more letters than frames)."""
        seconds = self.recognizer.frame_seconds
        words = [w.shifted(offset) for w in word_times(log_probs, text, self.recognizer.vocab, seconds,
                                                        end - offset)]
        if words:
            speech = speech_mask(piece.audio, self.rate, self.segments)
            return snap_to_speech(words, speech, FRAME_SECONDS, piece.start / self.rate, end)
        spelled = text.split()
        step = (end - start) / len(spelled)
        return [Word(w, start + i * step, start + (i + 1) * step, 0.0) for i, w in enumerate(spelled)]

    def _finish(self, file: _File) -> Transcript:
        duration = file.samples / self.rate
        if file.error:
            return Transcript(file.path, "", duration, file.error)
        results = [file.results[i] for i in range(file.pieces)]
        segments = [segment for segment, _ in results if segment is not None]
        nbest = results[0][1] if len(results) == 1 else []
        return Transcript(file.path, " ".join(s.text for s in segments), duration, segments=segments,
                          nbest=nbest)


class _Heap:
    """glibc's allocator, told to keep a long run's memory flat. By default it raises its mmap
    threshold as large buffers are freed, so that later ones come from the heap, which
    fragments: on a 10-hour recording peak RSS grew by about 40 MB an hour (756 MB at one hour,
    1,140 MB at ten). A fixed threshold and a trim every ``TRIM_SECONDS`` of audio hold it: at
    4 MB, 646 MB at one hour and 706 MB at ten, but every batch's tensors then came fresh from
    the kernel and transcription ran 15-20% slower; at 32 MB (committed), with the model's
    threads, 713 MB at one hour and 836 MB at ten, at full speed (scripts/bench_longform.py).
    Elsewhere than glibc, nothing is done."""

    libc = None
    pending = 0.0  # seconds of audio since the last trim

    @classmethod
    def settle(cls) -> None:
        if cls.libc is None:
            import ctypes
            import ctypes.util

            try:
                libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
                libc.mallopt(-3, MMAP_THRESHOLD)  # M_MMAP_THRESHOLD
                cls.libc = libc
            except (OSError, AttributeError):
                cls.libc = False

    @classmethod
    def trim(cls, seconds: float) -> None:
        """After ``seconds`` of audio: trim once every TRIM_SECONDS (a trim walks the heap, and
        one per short file cost more than the file)."""
        cls.pending += seconds
        if cls.libc and cls.pending >= TRIM_SECONDS:
            cls.libc.malloc_trim(0)
            cls.pending = 0.0


def _padded_groups(lengths: list[int], budget: float) -> list[range]:
    """Consecutive rows of a batch sorted by length, in groups whose padded size (rows times
    the longest) stays within ``budget`` samples: memory follows the padded batch, not the audio."""
    groups, first = [], 0
    for i, length in enumerate(lengths):
        if i > first and (i + 1 - first) * length > budget:
            groups.append(range(first, i))
            first = i
    return groups + [range(first, len(lengths))] if lengths else groups


def _array_blocks(samples: np.ndarray, size: int) -> Iterator[np.ndarray]:
    if samples.ndim != 1 or len(samples) == 0 or not np.issubdtype(samples.dtype, np.floating):
        raise AsrError(f"audio array must be non-empty float samples of shape (S,), got {samples.dtype} "
                       f"{tuple(samples.shape)}")
    if not np.isfinite(samples).all():
        raise AsrError("audio array contains NaN or infinite samples")
    for start in range(0, len(samples), size):
        yield np.ascontiguousarray(samples[start:start + size], dtype=np.float32)


def same_speaker_means(recognizer, sources: list) -> list | None:
    """One common mean per source, for a model whose features are normalized per speaker
    (None otherwise): the sources are one speaker's. Arrays take the files' mean. Files are
    read in blocks, so long ones are fine; unreadable ones are reported when transcribed."""
    if not recognizer.per_speaker:
        return None
    rate = recognizer.sample_rate

    def blocks():
        for source in sources:
            if isinstance(source, np.ndarray):
                continue
            try:
                yield from stream_audio(source, rate)
            except AsrError:
                continue

    return [recognizer.speaker_mean(blocks())] * len(sources)


def transcribe_files(recognizer, paths: list[str], decoder: Decoder, timestamps: bool = False,
                     same_speaker: bool = False, segments: SegmentOptions = SegmentOptions(),
                     workers: int | None = None, vtln: float = 0.0) -> list[Transcript]:
    """One transcript per file, in order (see ``Transcriber.run``). For a model whose features
    are normalized per speaker, each piece is its own speaker, or with ``same_speaker`` all the
    files are one."""
    means = same_speaker_means(recognizer, paths) if same_speaker else None
    with Transcriber(recognizer, decoder, segments, workers=workers, timestamps=timestamps, vtln=vtln) as transcriber:
        return list(transcriber.run(paths, means))
