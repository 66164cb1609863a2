"""The Python API: load a trained model once, transcribe recordings of any length.

    import asr
    model = asr.load("exp/fsdd/best.pt")              # + the tuned decoder beside it, if any
    result = model.transcribe("call.wav")
    result.text, result.segments[0].start, result.words[0].confidence
    for result in model.transcribe_many(["a.wav", "b.flac"]): ...

``asr transcribe`` is built on the same calls.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator

import numpy as np

from asr.segment import SegmentOptions
from asr.transcribe import Transcriber, Transcript


class Model:
    """A loaded recognizer and its decoder. Decoding processes, once started, are kept for
    later calls; ``close()`` (or ``with``) ends them."""

    def __init__(self, recognizer, settings, decoder, segments: SegmentOptions = SegmentOptions(),
                 batch_seconds: float | None = None, workers: int | None = None):
        self.recognizer = recognizer
        self.decoder_settings = settings
        kwargs = {} if batch_seconds is None else {"batch_seconds": batch_seconds}
        self._transcriber = Transcriber(recognizer, decoder, segments, workers=workers, vtln=settings.vtln, **kwargs)

    @property
    def sample_rate(self) -> int:
        """The rate the model reads; files at any rate are resampled to it."""
        return self.recognizer.sample_rate

    def transcribe(self, audio: str | os.PathLike | np.ndarray) -> Transcript:
        """A file's path, or float samples (S,) at ``sample_rate``. Raises ``AsrError`` with a
        one-line message when the file cannot be read."""
        from asr.errors import AsrError

        (result,) = self.transcribe_many([audio])
        if result.error:
            raise AsrError(result.error)
        return result

    def transcribe_many(self, sources: Iterable[str | os.PathLike | np.ndarray], same_speaker: bool = False,
                        progress=None) -> Iterator[Transcript]:
        """One Transcript per source, in order, batched together; a file that cannot be read gets
        ``error`` set and the rest go on. ``same_speaker``: the files are one speaker's, for a
        model whose features are normalized per speaker (otherwise each piece is its own).
        ``progress(seconds)`` hears of the audio read."""
        from asr.transcribe import same_speaker_means

        means = None
        if same_speaker:
            sources = list(sources)
            means = same_speaker_means(self.recognizer, sources)
        return self._transcriber.run(sources, means, progress=progress)

    def close(self) -> None:
        self._transcriber.close()

    def __enter__(self) -> "Model":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def load(checkpoint: str | os.PathLike, device: str = "auto", tuned: bool = True,
         segments: SegmentOptions = SegmentOptions(), workers: int | None = None,
         batch_seconds: float | None = None, nbest: int = 1, **decoder) -> Model:
    """Load a checkpoint written by ``asr train``, or a model written by ``asr export`` (.onnx,
    run by onnxruntime without torch). The decoder is the one ``asr tune-decoder`` saved beside
    it (unless ``tuned=False``), else greedy; keyword arguments override single settings, as
    the command's flags do: any field of ``asr.decoder_settings.DecoderSettings`` (``decoder="beam"``,
    ``beam_size``, ``lm``, ``lm_weight``, ``word_score``, ``lexicon``, ``hotwords``, ``vtln``, ...); None
    leaves a setting as it is. ``nbest``: alternatives kept per one-piece file."""
    from asr.decoder_settings import build_decoder, load_settings

    recognizer = load_recognizer(checkpoint, device)
    settings = load_settings(checkpoint, decoder, tuned=tuned)
    # an export is decoded by our own beam search only, so it decodes alike with and without torch
    from asr.runtime import OnnxRecognizer

    decoder = build_decoder(settings, recognizer.vocab, nbest=nbest,
                            flashlight=not isinstance(recognizer, OnnxRecognizer))
    return Model(recognizer, settings, decoder, segments, batch_seconds, workers)


def load_recognizer(path: str | os.PathLike, device: str = "auto"):
    """A checkpoint as a torch ``Recognizer`` on ``device``, or an .onnx export as an
    ``OnnxRecognizer`` (CPU; torch is not imported)."""
    from asr.runtime import is_onnx, load_onnx

    if is_onnx(path):
        if device not in ("auto", "cpu"):
            from asr.errors import AsrError

            raise AsrError(f"{path}: exported models run on the CPU (onnxruntime); --device {device} "
                           "needs the checkpoint")
        return load_onnx(path)
    import importlib.util

    try:
        missing = importlib.util.find_spec("torch") is None
    except ImportError:
        missing = True
    if missing:
        from asr.errors import AsrError

        raise AsrError(f"{path}: checkpoints need torch (pip install \".[train]\"); this install runs "
                       "models written by asr export (.onnx)")
    from asr.checkpoint import load_checkpoint
    from asr.recognizer import pick_device

    return load_checkpoint(path, pick_device(device))
