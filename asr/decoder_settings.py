"""Decoder settings: what ``--decoder/--lm/...`` ask for, the tuned file beside a checkpoint,
and building the decoder they describe (LM, lexicon and hotword files included).

``DecoderSettings`` is the one place a decoder option is declared: its default, its help
text, and so its command-line flag (``asr.cli.add_decoder_flags`` makes one per field),
the ``asr.load`` keyword and its place in the tuned file; ``build_decoder`` is the one
factory. A new option is a field here, a line in ``build_decoder`` and its test. One field,
``vtln``, is about how the model reads the audio rather than the search: ``asr.transcribe.Transcriber``
hands it to the recognizer.

``asr tune-decoder`` writes ``<checkpoint stem>.decoder.json`` next to the checkpoint;
``asr evaluate`` and ``asr transcribe`` start from it when it exists, and flags given on
the command line override single fields.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

from asr.errors import AsrError
from asr.files import atomic_write
from asr.text import Vocabulary

PATH_FIELDS = ("lm", "lexicon", "hotwords")


def _option(default, help: str, **flag):
    return field(default=default, metadata={"help": help, **flag})


@dataclass(frozen=True)
class DecoderSettings:
    decoder: str = _option("greedy", "greedy or beam (prefix beam search)", choices=("greedy", "beam"))
    beam_size: int = _option(16, "prefixes kept per frame")
    lm: str | None = _option(None, "word n-gram LM: ARPA (plain or .gz) or KenLM binary")
    lm_weight: float = _option(0.5, "LM weight (times the natural-log LM probability)")
    word_score: float = _option(0.0, "bonus per word")
    lexicon: str | None = _option(None, "file of words the output is restricted to (one per line)")
    hotwords: str | None = _option(None, "file (one per line, optional TAB weight) or comma-separated list")
    hotword_weight: float = _option(5.0, "bonus per hotword")
    token_min_logp: float = _option(-5.0, "labels below this log-probability in a frame are not tried "
                                          "(the best always is); our beam search")
    beam_threshold: float = _option(10.0, "prefixes scoring this far below the best are dropped; our beam search")
    vtln: float = _option(0.0, "read each recording (piece) with its spectrum warped by 1 +- 0.05 k up to this "
                               "and keep the reading the model is surest of (asr.vtln; 0: off; 0.1: five "
                               "readings): for voices unlike the training set's")


DEFAULTS = DecoderSettings()


def describe(settings: DecoderSettings) -> str:
    """One line for tables: 'greedy' or 'beam 16, LM lm.arpa (weight 0.5, word score 1), lexicon'."""
    vtln = f", VTLN {settings.vtln:g}" if settings.vtln else ""
    if settings.decoder == "greedy":
        return "greedy" + vtln
    parts = [f"beam {settings.beam_size}"]
    if settings.lm:
        parts.append(f"LM {Path(settings.lm).name} (weight {settings.lm_weight:g}, word score {settings.word_score:g})")
    elif settings.word_score:
        parts.append(f"word score {settings.word_score:g}")
    if settings.lexicon:
        parts.append("lexicon")
    if settings.hotwords:
        parts.append("hotwords")
    for name in ("token_min_logp", "beam_threshold"):
        if getattr(settings, name) != getattr(DEFAULTS, name):
            parts.append(f"{name} {getattr(settings, name):g}")
    return ", ".join(parts) + vtln


def settings_path(checkpoint: str | os.PathLike) -> Path:
    checkpoint = Path(checkpoint)
    return checkpoint.with_name(checkpoint.stem + ".decoder.json")


def load_settings(checkpoint: str | os.PathLike, overrides: dict | None = None, tuned: bool = True) -> DecoderSettings:
    """The tuned settings next to ``checkpoint`` (greedy when there are none), then ``overrides``
    (fields given on the command line; None means not given). Asking for an LM, lexicon,
    hotwords or a beam size without naming a decoder means the beam decoder."""
    settings = DecoderSettings()
    path = settings_path(checkpoint)
    if tuned and path.is_file():
        try:
            stored = json.loads(path.read_text())["settings"]
            known = {f.name for f in fields(DecoderSettings)}
            stored = {k: v for k, v in stored.items() if k in known}
            for key in PATH_FIELDS:  # files are stored relative to the settings file
                value = stored.get(key)
                if value and (key != "hotwords" or (path.parent / value).is_file()):
                    stored[key] = str(path.parent / value)
            settings = replace(settings, **stored)
        except (ValueError, KeyError, TypeError) as e:
            raise AsrError(f"{path}: damaged decoder settings ({e})") from None
    given = {k: v for k, v in (overrides or {}).items() if v is not None}
    known = {f.name for f in fields(DecoderSettings)}
    if set(given) - known:
        raise AsrError(f"unknown decoder setting(s) {', '.join(sorted(set(given) - known))} "
                       f"(known: {', '.join(sorted(known))})")
    beam_only = ("lm", "lexicon", "hotwords", "beam_size", "token_min_logp", "beam_threshold")
    if "decoder" not in given and any(k in given for k in beam_only):
        given["decoder"] = "beam"
    if given.get("decoder") == "greedy":  # the tuned LM and friends belong to the beam decoder
        settings = replace(settings, lm=None, lexicon=None, hotwords=None)
    return replace(settings, **given)


def save_settings(checkpoint: str | os.PathLike, settings: DecoderSettings, **extra) -> Path:
    """Write settings next to ``checkpoint`` (file paths relative to it), atomically."""
    path = settings_path(checkpoint)
    stored = asdict(settings)
    for key in PATH_FIELDS:
        value = stored.get(key)
        if value and Path(value).exists():
            stored[key] = os.path.relpath(Path(value).resolve(), path.parent.resolve())
    with atomic_write(path) as tmp:
        tmp.write_text(json.dumps({"settings": stored, **extra}, indent=2) + "\n")
    return path


def read_lexicon(path: str | os.PathLike) -> list[str]:
    """Words from a lexicon file: the first field of each line (flashlight's
    ``word<TAB>spelling`` lexicons read the same as plain word lists)."""
    path = Path(path)
    if not path.is_file():
        raise AsrError(f"{path}: lexicon not found")
    try:
        words = [line.split()[0] for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    except UnicodeDecodeError:
        raise AsrError(f"{path}: lexicon is not UTF-8 text") from None
    if not words:
        raise AsrError(f"{path}: lexicon has no words")
    return words


def parse_hotwords(spec: str, weight: float) -> dict[str, float]:
    """A file with one word or phrase per line (optionally TAB and its own weight), or a
    comma-separated list."""
    from asr.text import normalize_text

    path = Path(spec)
    if path.is_file():
        hotwords = {}
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            phrase, _, own = line.partition("\t")
            try:
                hotwords[normalize_text(phrase)] = float(own) if own.strip() else weight
            except ValueError:
                raise AsrError(f"{path}:{number}: hotword weight {own!r} is not a number") from None
        return {k: v for k, v in hotwords.items() if k}
    return {normalize_text(p): weight for p in spec.split(",") if normalize_text(p)}


def build_decoder(settings: DecoderSettings, vocab: Vocabulary, nbest: int = 1, lm_cache: dict | None = None,
                  flashlight: bool = True):
    """The decoder ``settings`` describe. ``lm_cache`` (path -> loaded LM) lets many decoders
    share one LM, as tuning does. ``flashlight=False`` keeps to our own beam search (exported
    models do, so that they decode alike with and without torch installed)."""
    from asr.decoding import BeamSearchDecoder, FlashlightLexiconDecoder, GreedyDecoder, uses_flashlight

    if settings.decoder not in ("greedy", "beam"):
        raise AsrError(f"unknown decoder {settings.decoder!r} (choose from: greedy, beam)")
    if settings.decoder == "greedy":
        if settings.lm or settings.lexicon or settings.hotwords:
            raise AsrError("--lm, --lexicon and --hotwords need --decoder beam")
        return GreedyDecoder(vocab)
    lexicon = read_lexicon(settings.lexicon) if settings.lexicon else None
    hotwords = parse_hotwords(settings.hotwords, settings.hotword_weight) if settings.hotwords else None
    lm = None
    flashlight = flashlight and uses_flashlight(vocab, lexicon, hotwords)
    if settings.lm and not flashlight:  # flashlight reads the file itself
        from asr.lm import load_lm

        lm_cache = {} if lm_cache is None else lm_cache
        if settings.lm not in lm_cache:
            lm_cache[settings.lm] = load_lm(settings.lm)
        lm = lm_cache[settings.lm]
    if flashlight:  # a lexicon without hotwords: flashlight's search, which reads the LM file itself
        return FlashlightLexiconDecoder(vocab, lexicon, beam_size=settings.beam_size, lm_path=settings.lm,
                                        lm_weight=settings.lm_weight, word_score=settings.word_score, nbest=nbest)
    return BeamSearchDecoder(vocab, beam_size=settings.beam_size, lm=lm, lm_weight=settings.lm_weight,
                             word_score=settings.word_score, lexicon=lexicon, hotwords=hotwords, nbest=nbest,
                             token_min_logp=settings.token_min_logp, beam_threshold=settings.beam_threshold)
