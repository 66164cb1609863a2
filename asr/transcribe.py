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
import torch

from asr.align import WordTime, snap_to_speech, word_times
from asr.audio import stream_audio
from asr.checkpoint import Recognizer
from asr.decoding import Decoder, DecodePool, Hypothesis
from asr.errors import AsrError
from asr.segment import FRAME_SECONDS, Piece, SegmentOptions, frames_to_keep, segment_stream, speech_mask

BATCH_SECONDS = 200.0  # audio through the model at once
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
    mean: torch.Tensor | None  # (F,) its speaker's feature mean, for normalize == "speaker"
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

    def __init__(self, recognizer: Recognizer, decoder: Decoder, segments: SegmentOptions = SegmentOptions(),
                 batch_seconds: float = BATCH_SECONDS, workers: int | None = None, timestamps: bool = True):
        self.recognizer = recognizer
        self.rate = recognizer.features.config.sample_rate
        self.segments = segments
        self.batch_samples = batch_seconds * self.rate
        self.timestamps = timestamps
        self.pool = DecodePool(decoder, workers)

    def close(self) -> None:
        self.pool.close()

    def __enter__(self) -> "Transcriber":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def run(self, paths: Iterable[str | os.PathLike | np.ndarray], means: Iterable[torch.Tensor | None] | None = None,
            progress: Callable[[float], None] | None = None) -> Iterator[Transcript]:
        """One Transcript per path, in order, each as soon as it is complete; a file that cannot
        be read gets ``error`` set and the others go on. ``means``: a (F,) speaker mean per
        path (features.normalize == "speaker"; without one each piece is its own speaker).
        ``progress`` is called with the seconds of audio read since its last call."""
        waiting: deque[_File] = deque()
        batch: list[tuple[_File, int, Piece]] = []
        means = iter(means) if means is not None else None
        for index, path in enumerate(paths):
            name = "<array>" if isinstance(path, np.ndarray) else str(path)
            file = _File(index, name, path, next(means) if means is not None else None)
            waiting.append(file)
            try:
                for piece in segment_stream(self._blocks(file, progress), self.rate, self.segments):
                    batch.append((file, file.pieces, piece))
                    file.pieces += 1
                    if sum(len(p.audio) for _, _, p in batch) >= self.batch_samples:
                        self._run_batch(batch)
                        batch = []
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

    @torch.inference_mode()
    def _run_batch(self, batch: list[tuple[_File, int, Piece]]) -> None:
        recognizer, device = self.recognizer, self.recognizer.device
        batch = [item for item in batch if not item[0].error]
        if not batch:
            return
        batch.sort(key=lambda item: len(item[2].audio))  # similar lengths pad least
        lengths = [max(len(p.audio), recognizer.features.min_samples) for _, _, p in batch]
        waves = torch.zeros(len(batch), max(lengths))
        for row, (_, _, piece) in enumerate(batch):
            waves[row, :len(piece.audio)] = torch.from_numpy(piece.audio)
        means = None
        if any(file.mean is not None for file, _, _ in batch):
            means = torch.stack([file.mean if file.mean is not None else _own_mean(recognizer, p)
                                 for file, _, p in batch]).to(device)
        log_probs, frames = recognizer.log_probs(waves.to(device), torch.tensor(lengths, device=device), means)
        log_probs = log_probs.float().cpu().numpy()
        frame_samples = recognizer.frame_seconds * self.rate
        kept, offsets = [], []
        for row, (_, _, piece) in enumerate(batch):
            first, last = frames_to_keep(piece, frame_samples, int(frames[row]))
            kept.append(log_probs[row, first:last])
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


def _array_blocks(samples: np.ndarray, size: int) -> Iterator[np.ndarray]:
    if samples.ndim != 1 or len(samples) == 0 or not np.issubdtype(samples.dtype, np.floating):
        raise AsrError(f"audio array must be non-empty float samples of shape (S,), got {samples.dtype} "
                       f"{tuple(samples.shape)}")
    if not np.isfinite(samples).all():
        raise AsrError("audio array contains NaN or infinite samples")
    for start in range(0, len(samples), size):
        yield np.ascontiguousarray(samples[start:start + size], dtype=np.float32)


def _own_mean(recognizer: Recognizer, piece: Piece) -> torch.Tensor:
    """(F,) the piece's own speech-frame mean (what the features use when given no mean)."""
    means, _ = recognizer.features.group_stats(_one_batch(recognizer, piece.audio, 0), 1)
    return means[0]


def _one_batch(recognizer: Recognizer, audio: np.ndarray, group: int):
    wave = torch.from_numpy(audio)
    if len(wave) < recognizer.features.min_samples:
        wave = torch.nn.functional.pad(wave, (0, recognizer.features.min_samples - len(wave)))
    yield wave.unsqueeze(0).to(recognizer.device), torch.tensor([len(wave)]), torch.tensor([group])


def common_mean(recognizer: Recognizer, paths: list[str]) -> torch.Tensor | None:
    """(F,) mean features of all the readable files, as one speaker's (None if none is).
    Read in blocks, so long files are fine."""
    rate = recognizer.features.config.sample_rate

    def batches():
        for path in paths:
            try:
                for block in stream_audio(path, rate):
                    yield from _one_batch(recognizer, block, 0)
            except AsrError:
                continue  # reported when it is transcribed

    means, _ = recognizer.features.group_stats(batches(), 1)
    return means[0] if bool(means.abs().sum() > 0) else None


def same_speaker_means(recognizer: Recognizer, sources: list) -> list[torch.Tensor | None] | None:
    """One common mean per source, for a model whose features are normalized per speaker
    (None otherwise): the sources are one speaker's. Arrays take the files' mean."""
    if recognizer.features.config.normalize != "speaker":
        return None
    mean = common_mean(recognizer, [s for s in sources if not isinstance(s, np.ndarray)])
    return [mean] * len(sources)


def transcribe_files(recognizer: Recognizer, paths: list[str], decoder: Decoder, timestamps: bool = False,
                     same_speaker: bool = False, segments: SegmentOptions = SegmentOptions(),
                     workers: int | None = None) -> list[Transcript]:
    """One transcript per file, in order (see ``Transcriber.run``). For a model whose features
    are normalized per speaker, each piece is its own speaker, or with ``same_speaker`` all the
    files are one."""
    means = same_speaker_means(recognizer, paths) if same_speaker else None
    with Transcriber(recognizer, decoder, segments, workers=workers, timestamps=timestamps) as transcriber:
        return list(transcriber.run(paths, means))
