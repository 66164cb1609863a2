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
from asr.align import Letter, WordTime, aligned_words, pause_between, snap_to_speech, spelled, timed_word
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
    results: dict[int, tuple["_Part | None", list[Hypothesis]]] = field(default_factory=dict)

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
        kept = [frames_to_keep(piece, frame_samples, len(array)) for array, (_, _, piece) in zip(log_probs, batch)]
        for (file, number, piece), array, (first, last), nbest in zip(batch, log_probs, kept,
                                                                       self.pool.search(log_probs)):
            file.results[number] = (self._segment(piece, array, first, last, nbest), nbest)
        _Heap.trim(sum(len(p.audio) for _, _, p in batch) / self.rate)

    def _segment(self, piece: Piece, log_probs: np.ndarray, first: int, last: int,
                 nbest: list[Hypothesis]) -> _Part | None:
        """What a piece says in its kept frames [first, last), in file time.

        The decoder reads the piece's whole window, context included, and the alignment of its
        text puts every letter on frames: the piece keeps the letters on its kept frames, and
        notes the letters of its first and last word that fall outside them, for ``_Part.meet``
        to settle each cut from both pieces' readings."""
        text = nbest[0].text if nbest else ""
        if not text:
            return None
        keep_start, keep_end = piece.keep_start / self.rate, piece.keep_end / self.rate
        whole = first == 0 and last == len(log_probs)
        if whole and not self.timestamps:
            return _Part(keep_start, keep_end, text.split())
        seconds = self.recognizer.frame_seconds
        origin = piece.start / self.rate
        words = aligned_words(log_probs, text, self.recognizer.vocab)
        if not words:  # no alignment (more letters than frames): spread the words over the window
            step = len(log_probs) / len(text.split())
            words = [[Letter(w, round(i * step), max(round(i * step), round((i + 1) * step) - 1), 0.0)]
                     for i, w in enumerate(text.split())]
        limit = len(piece.audio) / self.rate

        def timed(letters: list[Letter]) -> Word | None:
            return timed_word(letters, seconds, limit).shifted(origin) if letters else None

        prior = [w for w in words if w[-1].first < first]  # words read wholly before the kept part
        following = [w for w in words if w[0].first >= last]  # and wholly after it
        inside = [(letters, [x for x in letters if first <= x.first < last]) for letters in words]
        inside = [(letters, kept) for letters, kept in inside if kept]
        if not inside:
            return None
        words = [timed(kept) for _, kept in inside]
        raw_start, raw_end = words[0].start, words[-1].end
        lead = timed([x for x in inside[0][0] if x.first < first])
        trail = timed([x for x in inside[-1][0] if x.first >= last])
        quiet = (False, False)
        if self.timestamps:
            speech = speech_mask(piece.audio, self.rate, self.segments)

            def apart(a: Word, b: Word) -> bool:  # a pause between the end of a and the start of b
                return pause_between(speech, FRAME_SECONDS, origin, a.end, b.start)

            def spoken(letters: list[Letter]) -> Word:
                """A word never spans a pause: a first or last letter a pause away from the rest
                (models trained on other voices put a word's first letter right after the word
                before it) names the word but does not time it."""
                body = letters
                if len(body) > 1 and apart(timed(body[:1]), timed(body[1:])):
                    body = body[1:]
                if len(body) > 1 and apart(timed(body[:-1]), timed(body[-1:])):
                    body = body[:-1]
                word, span = timed(letters), timed(body)
                return Word(word.word, span.start, span.end, word.confidence)

            words = [spoken(kept) for _, kept in inside]
            quiet = (lead is not None and apart(lead, words[0]), trail is not None and apart(words[-1], trail))
            words = snap_to_speech(words, speech, FRAME_SECONDS, origin, max(keep_end, words[-1].end))
        return _Part(keep_start, keep_end, [w.word for w in words], words, lead=lead, trail=trail, quiet=quiet,
                     first_letter=raw_start, last_letter=raw_end,
                     word_before=spelled(prior[-1]) if prior else "",
                     word_after=spelled(following[0]) if following else "")

    def _finish(self, file: _File) -> Transcript:
        duration = file.samples / self.rate
        if file.error:
            return Transcript(file.path, "", duration, file.error)
        results = [file.results[i] for i in range(file.pieces)]
        parts = [part for part, _ in results]
        for part, later in zip(parts, parts[1:]):
            if part and later and part.spelled and later.spelled:
                part.meet(later)
                if self.timestamps and part.words and later.words and later.words[0].start < part.words[-1].end:
                    word, end = later.words[0], part.words[-1].end  # words never overlap
                    later.words[0] = Word(word.word, end, max(word.end, end), word.confidence)
        segments = [part.segment(self.timestamps) for part in parts if part and part.spelled]
        nbest = results[0][1] if len(results) == 1 else []
        return Transcript(file.path, " ".join(s.text for s in segments), duration, segments=segments,
                          nbest=nbest)


@dataclass
class _Part:
    """What one piece says in its kept part, and what its reading says around it."""

    start: float  # the kept part, seconds in the file
    end: float
    spelled: list[str]  # its words
    words: list[Word] = field(default_factory=list)  # timed (widened over speech with timestamps)
    lead: Word | None = None  # letters of the first word that the reading puts before the kept part
    trail: Word | None = None  # and of the last word after it
    quiet: tuple[bool, bool] = (False, False)  # lead, trail: a pause away from the word (letters, not time)
    first_letter: float = 0.0  # time of the first kept letter
    last_letter: float = 0.0  # and the end of the last
    word_before: str = ""  # the last word the reading puts wholly before the kept part
    word_after: str = ""  # the first it puts wholly after it

    def meet(self, later: "_Part") -> None:
        """Settles the word at the cut between this piece and the next from both readings.

        Keeping each piece's letters alone splits a word whose first letter one model put in
        the pause before the cut ("eight f ive" from held-out voices, scripts/bench_longform.py);
        keeping a word whole where it starts glues words that one reading ran together over
        the pause ("threeone"). So: when both readings run a word across the cut, it is the
        reading that holds more of its letters on its own side; when one does, it keeps the
        whole word where the other reading has the same word wholly on this side of the cut
        (a lexicon can put a letter the model hardly emitted anywhere), or nothing at those
        letters' times."""
        trail, lead = self.trail, later.lead
        if trail and lead:
            if len(self.spelled[-1]) >= len(later.spelled[0]):
                self._extend(-1, trail)
                later._drop(0)
            else:
                later._extend(0, lead)
                self._drop(-1)
        elif trail and (trail.end <= later.first_letter or later.word_before == self.spelled[-1] + trail.word):
            self._extend(-1, trail)
        elif lead and (lead.start >= self.last_letter or self.word_after == lead.word + later.spelled[0]):
            later._extend(0, lead)

    def _extend(self, index: int, letters: Word) -> None:
        """Adds the ``letters`` outside the kept part to the first (``index`` 0) or last (-1) word."""
        if index == 0:
            self.spelled[0] = letters.word + self.spelled[0]
        else:
            self.spelled[-1] += letters.word
        if self.words:
            word = self.words[index]
            if self.quiet[index]:  # letters a pause away: the word's time stays its own speech
                letters = Word(letters.word, word.start, word.end, letters.confidence)
            a, b = (letters, word) if index == 0 else (word, letters)
            weight = len(a.word) / (len(a.word) + len(b.word))
            self.words[index] = Word(a.word + b.word, a.start, b.end,
                                     weight * a.confidence + (1 - weight) * b.confidence)

    def _drop(self, index: int) -> None:
        self.spelled.pop(index)
        if self.words:
            self.words.pop(index)

    def segment(self, timestamps: bool) -> Segment:
        text = " ".join(self.spelled)
        if timestamps and self.words:  # the segment is its speech, not the pauses around it
            return Segment(self.words[0].start, self.words[-1].end, text, self.words)
        return Segment(self.start, self.end, text)


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
