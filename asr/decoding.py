"""CTC decoders behind one small interface, so callers swap them by name.

Every decoder has
- ``decode(log_probs (B, T, V), lengths (B,)) -> list[str]``, the best transcript per utterance;
- ``search(log_probs (T, V) numpy) -> list[Hypothesis]``, the n-best of one utterance.

``GreedyDecoder`` takes the best label per frame. ``BeamSearchDecoder`` is a CTC
prefix beam search over characters or subword pieces, optionally with a word n-gram LM
(weight and word-insertion bonus), constrained to a lexicon, and boosting hotwords. It is our
own code because it measured faster than pyctcdecode and torchaudio's flashlight
decoder at equal beam on the same logits (``scripts/bench_decode.py``), mainly by
two exact shortcuts: frames where only the blank is likely are folded into one
update, and a word's LM score is looked up once per distinct prefix.
``decode_batch`` spreads utterances over worker processes.
"""

from __future__ import annotations

import contextlib
import heapq
import math
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

from asr.decoder_settings import DEFAULTS
from asr.errors import AsrError
from asr.text import Vocabulary

if TYPE_CHECKING:  # torch is imported where a decoder takes tensors: transcription runs without it
    import torch

NEG = -1e30  # log of zero that stays finite in arithmetic


@dataclass(frozen=True)
class Hypothesis:
    text: str
    score: float  # what the search ranks by: acoustic + LM weight * LM + bonuses (natural log)
    acoustic: float  # CTC log-probability of the text (summed over the paths the beam kept)


class Decoder(Protocol):
    def decode(self, log_probs: torch.Tensor, lengths: torch.Tensor) -> list[str]: ...

    def search(self, log_probs: np.ndarray) -> list[Hypothesis]: ...


def _words(text: str) -> str:
    return " ".join(text.split())


def check_spelling(vocab: Vocabulary, words, what: str) -> None:
    """One-line error for the first word the model cannot spell."""
    for word in sorted(words):
        missing = vocab.unknown(word)
        if missing:
            shown = ", ".join(repr(c) for c in missing)
            raise AsrError(f"{what} {word!r} has characters outside the model's vocabulary: {shown}")


class _PerUtterance:
    """``decode`` for decoders that search one utterance at a time on the CPU."""

    def decode(self, log_probs: torch.Tensor, lengths: torch.Tensor) -> list[str]:
        arrays = log_probs.float().cpu().numpy()
        return [self.search(a[:n])[0].text for a, n in zip(arrays, lengths.tolist())]


class GreedyDecoder:
    """Best label per frame, repeats collapsed, blanks dropped (batched on the tensor's device)."""

    on_device = True  # decode() takes the model's output where it is (batched on the GPU)

    def __init__(self, vocab: Vocabulary):
        self.vocab = vocab

    def decode(self, log_probs: torch.Tensor, lengths: torch.Tensor) -> list[str]:
        import torch

        best = log_probs.argmax(dim=-1)  # (B, T)
        keep = torch.ones_like(best, dtype=torch.bool)
        keep[:, 1:] = best[:, 1:] != best[:, :-1]  # first frame of each run
        keep &= best != 0  # not blank
        keep &= torch.arange(best.shape[1], device=best.device) < lengths.unsqueeze(1)
        best, keep = best.cpu().tolist(), keep.cpu().tolist()
        return [_words(self.vocab.decode(i for i, k in zip(row, mask) if k))
                for row, mask in zip(best, keep)]

    def search(self, log_probs: np.ndarray) -> list[Hypothesis]:
        best = log_probs.argmax(axis=1)
        score = float(log_probs[np.arange(len(best)), best].sum())
        keep = np.ones(len(best), dtype=bool)
        keep[1:] = best[1:] != best[:-1]
        text = _words(self.vocab.decode(best[keep & (best != 0)].tolist()))
        return [Hypothesis(text, score, score)]


# What the search keeps per prefix beyond its acoustic scores (``info[prefix]``), made by
# ``_extend_char`` from its parent's: a plain tuple with these fields, since one is built for
# every new prefix (hundreds of thousands per minute of audio) and a named tuple or a slotted
# class made the whole search 15-20% slower.
EXTRA = 0  # all but the acoustic score: COMMITTED + PENDING + BANKED + the partial hotword's bonus
COMMITTED = 1  # LM and word scores of the finished words (weights applied)
PENDING = 2  # the unknown-word penalty while the partial word is a prefix of no LM word
LM_STATE = 3  # the LM's state after the finished words (None without an LM)
PARTIAL = 4  # the word being spelled ("" after a space)
HOT = 5  # the hotword text matched so far ("": none, None: the match broke in this word)
BANKED = 6  # bonuses of the hotwords completed so far

class BeamSearchDecoder(_PerUtterance):
    """CTC prefix beam search over characters (or pieces), with optional LM, lexicon and hotwords.

    Score of a prefix = log p_ctc(prefix) + lm_weight * ln p_lm(words) + word_score * #words
    + hotword bonuses. Pruning: per frame only labels with log-prob >= ``token_min_logp``
    (and the best label) are tried; at most ``beam_size`` prefixes survive, none more than
    ``beam_threshold`` below the best.

    lm: an object with ``begin()``, ``score(state, word) -> (ln p, state)``, ``finish(state)``
        and ``words`` (a set, or None when unknown), as ``asr.lm`` gives.
    lexicon: words the output may contain (None: any character sequence).
    hotwords: {word or phrase: bonus}; a partly matched hotword gets its share of the
        bonus as it grows, so the beam keeps it, and loses it if the match breaks.
    """

    def __init__(self, vocab: Vocabulary, beam_size: int = DEFAULTS.beam_size, lm=None,
                 lm_weight: float = DEFAULTS.lm_weight, word_score: float = DEFAULTS.word_score,
                 lexicon: list[str] | None = None, hotwords: dict[str, float] | None = None, nbest: int = 1,
                 token_min_logp: float = DEFAULTS.token_min_logp, beam_threshold: float = DEFAULTS.beam_threshold,
                 unk_score: float = -10.0):
        if beam_size < 1:
            raise AsrError(f"beam size must be at least 1, got {beam_size}")
        if nbest < 1:
            raise AsrError(f"n-best must be at least 1, got {nbest}")
        self.vocab = vocab
        self.beam_size = beam_size
        self.lm = lm
        self.lm_weight = lm_weight if lm is not None else 0.0
        self.word_score = word_score
        self.nbest = nbest
        self.token_min_logp = token_min_logp
        self.beam_threshold = beam_threshold
        self.space = vocab.symbols.index(" ") if " " in vocab.symbols else -1
        # A prefix is a string with one character per label. Characters stand for themselves;
        # with subword pieces every label but the space gets a private character, which
        # ``text_of`` spells out, and words are scored as the spelled text grows.
        self.text_of = None
        self.symbols = list(vocab.symbols)
        if vocab.has_pieces:
            self.symbols = [s if s == " " else chr(0xF0000 + i) for i, s in enumerate(vocab.symbols)]
            self.text_of = dict(zip(self.symbols, vocab.symbols))

        self.lexicon = self.lexicon_next = self.lexicon_prefixes = None
        if lexicon is not None:
            words = set(lexicon) | {w for phrase in (hotwords or {}) for w in phrase.split()}
            check_spelling(vocab, words, "lexicon word")
            self.lexicon = words
        if lexicon is not None and vocab.has_pieces:
            self.lexicon_prefixes = _prefixes(words)  # a piece may end a word and start the next
        elif lexicon is not None:
            # Labels that may follow each partial word (a space once it is a whole word); the
            # search tries no other, so every partial word stays a prefix of a lexicon word.
            self.lexicon_next = {"": set()}
            for prefix in _prefixes(words):
                self.lexicon_next.setdefault(prefix[:-1], set()).add(vocab.symbols.index(prefix[-1]))
                if prefix in words and self.space >= 0:
                    self.lexicon_next.setdefault(prefix, set()).add(self.space)
        # Without a lexicon, a word the LM does not know pays ``unk_score`` on top of the LM's
        # <unk> probability, and a partial word that no LM word starts with pays it at once.
        self.lm_words = self.lm_prefixes = None
        self.unk_score = self.unk_pending = 0.0
        if lm is not None and lexicon is None and getattr(lm, "words", None):
            self.lm_words = lm.words
            self.lm_prefixes = _prefixes(lm.words)
            self.unk_score = self.unk_pending = unk_score

        # An upper bound on how much one label can raise a prefix's LM and bonus score;
        # the search uses it to skip extensions that cannot enter the beam.
        self.max_gain = max(word_score, 0.0) + abs(self.unk_pending)
        self.hot_bonus: dict[str, float] = {}  # partial or complete hotword -> bonus so far
        self.hot_complete: dict[str, float] = {}
        for phrase, weight in (hotwords or {}).items():
            phrase = _words(phrase)
            if not phrase:
                continue
            check_spelling(vocab, [phrase], "hotword")
            self.hot_complete[phrase] = weight
            for i in range(1, len(phrase) + 1):
                share = weight * i / len(phrase)
                self.hot_bonus[phrase[:i]] = max(self.hot_bonus.get(phrase[:i], share), share)
            self.max_gain += max(weight, 0.0)

    # -- the search -------------------------------------------------------------------------
    def search(self, log_probs: np.ndarray) -> list[Hypothesis]:
        log_probs = np.asarray(log_probs, dtype=np.float64)
        T = log_probs.shape[0]
        # Labels tried per frame: those above token_min_logp (at least the best), best first.
        order = np.argsort(-log_probs, axis=1, kind="stable")
        ranked = np.take_along_axis(log_probs, order, axis=1)
        counts = np.maximum((ranked >= self.token_min_logp).sum(axis=1), 1)
        blank_only = ((counts == 1) & (order[:, 0] == 0)).tolist()
        width = int(counts.max())
        order, ranked, counts = order[:, :width].tolist(), ranked[:, :width].tolist(), counts.tolist()
        blank_lp = log_probs[:, 0].tolist()

        symbols, space, size = self.symbols, self.space, self.beam_size
        gain = self.max_gain
        info = {"": self._root_info()}
        beams = [("", 0.0, NEG)]  # (prefix, log p ending in blank, log p ending in a label)
        log1p, exp = math.log1p, math.exp
        skipped = 0.0
        for t in range(T):
            if blank_only[t]:
                skipped += blank_lp[t]
                continue
            if skipped:
                beams = [(k, _lae(b, nb) + skipped, NEG) for k, b, nb in beams]
                skipped = 0.0
            lp_blank = blank_lp[t]
            tried = order[t][:counts[t]]
            candidates = [(tok, lp) for tok, lp in zip(tried, ranked[t]) if tok != 0]
            totals = [_lae(b, nb) for _, b, nb in beams]
            cutoff = NEG
            # With a lexicon the likely labels may all be refused; the blank is then the way on
            # (and the way between two equal letters), so it is always tried.
            if self.lexicon is not None or 0 in tried:
                # Every prefix stays in the next frame with at least total + blank: a new prefix
                # scoring below the k-th of those, or `beam_threshold` below the best, would be
                # pruned by the beam anyway, so it is never built.
                stays = [total + lp_blank + info[k][EXTRA] for total, (k, _, _) in zip(totals, beams)]
                cutoff = max(stays) - self.beam_threshold
                if len(stays) >= size:
                    cutoff = max(cutoff, heapq.nlargest(size, stays)[-1])
            current = {k for k, _, _ in beams}
            nxt: dict[str, list[float]] = {}
            for (prefix, pb, pnb), total in zip(beams, totals):
                if cutoff > NEG:
                    _add(nxt, prefix, True, total + lp_blank)
                last = prefix[-1] if prefix else ""
                parent = info[prefix]
                bound = total + parent[EXTRA] + gain
                allowed = self.lexicon_next.get(parent[PARTIAL]) if self.lexicon_next is not None else None
                for tok, lp in candidates:
                    if bound + lp < cutoff:
                        break  # candidates are sorted: the rest score lower still
                    if tok == space and not prefix:  # a leading space is silence
                        _add(nxt, prefix, True, total + lp)
                        continue
                    ch = symbols[tok]
                    if ch == last:
                        _add(nxt, prefix, False, pnb + lp)  # the same label again: collapsed
                        if ch == " ":  # space, blank, space: still one space
                            _add(nxt, prefix, True, pb + lp)
                            continue
                        p = pb + lp
                    else:
                        p = total + lp
                    if allowed is not None and tok not in allowed:
                        continue  # the lexicon has no word going on this way
                    key = prefix + ch
                    entry = info.get(key)
                    if entry is None:
                        entry = info[key] = self._extend(parent, ch)
                    if entry is None:  # not allowed by the lexicon
                        continue
                    if key in current or p + entry[EXTRA] >= cutoff:
                        _add(nxt, key, False, p)
            if not nxt:  # the lexicon allowed none of the likely labels: every prefix waits
                for (prefix, _, _), total in zip(beams, totals):
                    _add(nxt, prefix, True, total + lp_blank)
            scored = []
            for key, (b, nb) in nxt.items():
                hi, lo = (b, nb) if b > nb else (nb, b)
                scored.append((hi + log1p(exp(lo - hi)) + info[key][EXTRA], key, b, nb))
            if self.nbest == 1 and len(scored) > 1:
                # Prefixes that differ only in words the LM no longer sees have the same future:
                # only the best of them can end up on top, so the others are dropped.
                same_future: dict[tuple, tuple] = {}
                for item in scored:
                    entry = info[item[1]]
                    state = (entry[LM_STATE], entry[PARTIAL], item[1][-1:], entry[HOT])
                    kept = same_future.get(state)
                    if kept is None or item[0] > kept[0]:
                        same_future[state] = item
                scored = list(same_future.values())
            if len(scored) > size:
                scored = heapq.nlargest(size, scored)
            best = max(s[0] for s in scored)
            beams = [(k, b, nb) for s, k, b, nb in scored if s >= best - self.beam_threshold]
        if skipped:
            beams = [(k, _lae(b, nb) + skipped, NEG) for k, b, nb in beams]
        return self._finish(beams, info)

    def _root_info(self) -> tuple:
        return (0.0, 0.0, 0.0, self.lm.begin() if self.lm is not None else None, "", "", 0.0)  # see EXTRA

    def _extend(self, parent: tuple, label: str) -> tuple | None:
        """The search state after one more label (None: the lexicon does not allow it)."""
        if self.text_of is None:
            return self._extend_char(parent, label)
        for ch in self.text_of[label]:
            parent = self._extend_char(parent, ch)
            if parent is None:
                return None
        return parent

    def _extend_char(self, parent: tuple, ch: str) -> tuple | None:
        _, committed, pending, state, partial, hot, banked = parent  # EXTRA, COMMITTED, ..., BANKED
        if ch != " ":
            partial += ch
            if self.lexicon_prefixes is not None and partial not in self.lexicon_prefixes:
                return None
            if self.lm_prefixes is not None:
                pending = 0.0 if partial in self.lm_prefixes else self.unk_pending
            if hot is not None:
                hot = hot + ch if hot + ch in self.hot_bonus else None
        elif not partial:  # the space a piece starts with, with no word before it
            return parent
        else:
            ended = self._end_word(committed, state, partial, hot, banked)
            if ended is None:
                return None
            committed, state, banked = ended
            pending, partial = 0.0, ""
            hot = hot + " " if hot and hot not in self.hot_complete and hot + " " in self.hot_bonus else ""
        bonus = self.hot_bonus.get(hot, 0.0) if hot else 0.0
        return (committed + pending + banked + bonus, committed, pending, state, partial, hot, banked)

    def _end_word(self, committed, state, partial, hot, banked):
        if self.lexicon is not None and partial not in self.lexicon:
            return None
        if self.lm is not None:
            logp, state = self.lm.score(state, partial)
            committed += self.lm_weight * logp
            if self.lm_words is not None and partial not in self.lm_words:
                committed += self.unk_score
        committed += self.word_score
        if hot and hot in self.hot_complete:
            banked += self.hot_complete[hot]
        return committed, state, banked

    def _finish(self, beams, info) -> list[Hypothesis]:
        final: dict[str, tuple[float, float]] = {}
        unfinished = []
        for prefix, pb, pnb in beams:
            acoustic = _lae(pb, pnb)
            entry = info[prefix]
            committed, state, partial, hot, banked = (
                entry[COMMITTED], entry[LM_STATE], entry[PARTIAL], entry[HOT], entry[BANKED])
            text = prefix if self.text_of is None else "".join(self.text_of[k] for k in prefix)
            if partial:
                ended = self._end_word(committed, state, partial, hot, banked)
                if ended is None:  # ends inside a word the lexicon does not have
                    unfinished.append((text[:len(text) - len(partial)], acoustic, committed, state, banked))
                    continue
                committed, state, banked = ended
            if self.lm is not None:
                committed += self.lm_weight * self.lm.finish(state)
            text = text.strip()
            score = acoustic + committed + banked
            if text in final:  # "a b" and "a b " are one transcript
                old_score, old_acoustic = final[text]
                score, acoustic = _lae(old_score, score), _lae(old_acoustic, acoustic)
            final[text] = (score, acoustic)
        if not final:  # every prefix ends inside a word: keep the words before it
            for prefix, acoustic, committed, state, banked in unfinished:
                if self.lm is not None:
                    committed += self.lm_weight * self.lm.finish(state)
                final.setdefault(prefix.strip(), (acoustic + committed + banked, acoustic))
        ranked = sorted(final.items(), key=lambda item: -item[1][0])[:self.nbest]
        return [Hypothesis(text, score, acoustic) for text, (score, acoustic) in ranked]


def _prefixes(words) -> set[str]:
    """Every non-empty prefix of every word."""
    return {w[:i] for w in words for i in range(1, len(w) + 1)}


def _lae(a: float, b: float) -> float:
    """log(exp(a) + exp(b))."""
    if a < b:
        a, b = b, a
    return a + math.log1p(math.exp(b - a))


def _add(beams: dict, key: str, is_blank: bool, p: float) -> None:
    entry = beams.get(key)
    if entry is None:
        beams[key] = [p, NEG] if is_blank else [NEG, p]
    else:
        i = 0 if is_blank else 1
        entry[i] = _lae(entry[i], p)


class FlashlightLexiconDecoder(_PerUtterance):
    """Lexicon-constrained beam search by torchaudio's flashlight decoder, which reads the LM
    file with its own KenLM. More accurate than our search with a lexicon at equal beam and
    about as fast at small beams (``scripts/bench_decode.py``), so ``build_decoder`` uses it
    for a lexicon without hotwords and character units. ``lm_weight`` means the same as in ``BeamSearchDecoder``:
    it multiplies natural-log LM probabilities."""

    def __init__(self, vocab: Vocabulary, lexicon: list[str], beam_size: int = DEFAULTS.beam_size,
                 lm_path: str | None = None, lm_weight: float = DEFAULTS.lm_weight,
                 word_score: float = DEFAULTS.word_score, nbest: int = 1):
        import tempfile

        from torchaudio.models.decoder import ctc_decoder

        if beam_size < 1:
            raise AsrError(f"beam size must be at least 1, got {beam_size}")
        check_spelling(vocab, lexicon, "lexicon word")
        if lm_path is not None:
            if not Path(lm_path).is_file():
                raise AsrError(f"{lm_path}: language model not found")
        self.vocab = vocab
        if vocab.has_pieces:  # measured: " two" held over three frames came out as "two two"
            raise AsrError("flashlight's lexicon search repeats a one-piece word held over several frames: "
                           "decode subword units with BeamSearchDecoder")
        silence = next(s for s in ("|", "<sil>", "<space>") if s not in vocab.symbols)
        tokens = [silence if s == " " else s for s in vocab.symbols]
        with tempfile.NamedTemporaryFile("w", suffix=".lexicon", delete=False, encoding="utf-8") as f:
            for word in sorted(set(lexicon)):
                f.write(f"{word}\t{' '.join(word)}\n")  # the space between words is silence
        try:
            with _quiet_stderr():  # KenLM reports its loading progress on stderr
                self.decoder = ctc_decoder(lexicon=f.name, tokens=tokens, lm=lm_path, nbest=nbest,
                                           beam_size=beam_size, lm_weight=lm_weight * math.log(10.0),
                                           word_score=word_score, blank_token=vocab.symbols[0],
                                           sil_token=silence, unk_word="<unk>")
        except (RuntimeError, ValueError) as e:
            reason = re.search(r"threw (\w+)", str(e))
            reason = reason.group(1) if reason else str(e).strip().splitlines()[0][:120]
            raise AsrError(f"{lm_path}: not a language model KenLM can read ({reason})") from None
        finally:
            os.unlink(f.name)

    def search(self, log_probs: np.ndarray) -> list[Hypothesis]:
        import torch

        emissions = torch.from_numpy(np.ascontiguousarray(log_probs, dtype=np.float32)).unsqueeze(0)
        hyps, seen = [], set()
        for result in self.decoder(emissions)[0]:
            text = " ".join(w for w in result.words if w)
            if text not in seen:
                seen.add(text)
                hyps.append(Hypothesis(text, float(result.score), float(result.score)))
        return hyps or [Hypothesis("", float("-inf"), float("-inf"))]


@contextlib.contextmanager
def _quiet_stderr():
    """Silence what C++ code writes to file descriptor 2 (Python's sys.stderr included)."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


# -- batches over processes -------------------------------------------------------------------

_WORKER_DECODER = None


def _init_worker(decoder) -> None:
    global _WORKER_DECODER
    _WORKER_DECODER = decoder


def _search_in_worker(array: np.ndarray) -> list[Hypothesis]:
    return _WORKER_DECODER.search(array)


def cpu_count() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


class DecodePool:
    """``search`` for many utterances at a time, spread over ``workers`` processes (default:
    one per core) that are forked once, at the first batch worth it, and live until ``close``.
    Greedy search and small batches stay in this process."""

    def __init__(self, decoder: Decoder, workers: int | None = None):
        self.decoder = decoder
        self.workers = workers or cpu_count()
        self._pool = None

    def search(self, arrays: list[np.ndarray]) -> list[list[Hypothesis]]:
        """The n-best list of each (T, V) array, in order."""
        if self.workers <= 1 or isinstance(self.decoder, GreedyDecoder) or len(arrays) < 8:
            return [self.decoder.search(a) for a in arrays]
        if self._pool is None:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            # fork: workers share the decoder (LM tables included) with this process instead of a copy
            self._pool = ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("fork"),
                                             initializer=_init_worker, initargs=(self.decoder,))
        chunk = max(1, len(arrays) // (self.workers * 8))
        return list(self._pool.map(_search_in_worker, arrays, chunksize=chunk))

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None

    def __enter__(self) -> "DecodePool":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def decode_batch(decoder: Decoder, arrays: list[np.ndarray], workers: int | None = None) -> list[list[Hypothesis]]:
    """n-best lists for many utterances (each a (T, V) array), spread over ``workers``
    processes (default: one per core)."""
    with DecodePool(decoder, min(workers or cpu_count(), len(arrays))) as pool:
        return pool.search(arrays)


def uses_flashlight(vocab: Vocabulary, lexicon, hotwords) -> bool:
    """A lexicon without hotwords goes to flashlight, when flashlight-text is installed and the
    units are characters."""
    if lexicon is None or hotwords or vocab.has_pieces:
        return False
    # flashlight is reached through torchaudio: without torch (the runtime install) our own search serves
    import importlib.util

    return all(importlib.util.find_spec(name) is not None for name in ("flashlight", "torchaudio"))
