"""Transcripts: one normalizer, and the vocabulary of output units (index 0 is the CTC blank).

The units are characters, or characters plus subword pieces ("bpe"): pieces learned from the
training transcripts by sentencepiece's BPE trainer, each word spelled by the longest pieces
that match from its start (a piece may begin with the space before a word: " zero"). Either
way a transcript is the concatenation of its units, so decoders join them and a checkpoint
stores only the list.
"""

from __future__ import annotations

import re
import unicodedata

from asr.errors import AsrError

BLANK = "<blank>"

_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
_NOT_ALLOWED = re.compile(r"[^\w' ]+")  # punctuation -> space; letters, digits, apostrophes stay
_SPACES = re.compile(r"\s+")


def normalize_text(text: str) -> str:
    """Lower-case, numbers written as words, punctuation removed, single spaces.

    >>> normalize_text("Call 911, NOW!")
    'call nine hundred and eleven now'
    """
    text = unicodedata.normalize("NFC", text).lower()
    text = text.replace("’", "'").replace("‘", "'")
    text = _NUMBER.sub(lambda m: " " + _number_words(m.group()) + " ", text)
    text = _NOT_ALLOWED.sub(" ", text.replace("_", " "))
    text = " ".join(w.strip("'") for w in text.split())
    return _SPACES.sub(" ", text).strip()


def _number_words(number: str) -> str:
    from num2words import num2words

    digits = number.replace(",", "")
    try:
        value = float(digits) if "." in digits else int(digits)
        words = num2words(value)
    except (ValueError, OverflowError):
        words = " ".join(num2words(int(d)) for d in digits if d.isdigit())
    return words.replace("-", " ").replace(",", " ")


UNITS = ("char", "bpe")


class Vocabulary:
    """Units <-> indices. Index 0 is the CTC blank; every character of the training text (and
    ' ', which separates words) is a unit, so any text made of them can be spelled."""

    def __init__(self, symbols: list[str]):
        if not symbols or symbols[0] != BLANK:
            raise ValueError("the first vocabulary symbol must be the blank")
        if len(set(symbols)) != len(symbols):
            raise ValueError("vocabulary symbols must be unique")
        self.symbols = list(symbols)
        self._index = {s: i for i, s in enumerate(symbols)}
        pieces = [s for s in symbols[1:] if len(s) > 1]
        self.has_pieces = bool(pieces)
        self._longest = max(map(len, pieces), default=1)
        self._spelled: dict[str, tuple[int, ...]] = {}  # " word" -> its pieces (memo)
        if pieces:
            missing = sorted({c for s in pieces for c in s} - set(symbols))
            if missing:
                raise ValueError(f"pieces use characters that are not units themselves: {missing}")

    @classmethod
    def from_texts(cls, texts, units: str = "char", size: int = 0) -> "Vocabulary":
        """Characters of ``texts``; with ``units="bpe"`` also up to ``size`` units in all, the rest
        subword pieces learned from ``texts`` (fewer when the text has fewer)."""
        texts = list(texts)
        chars = sorted({c for t in texts for c in t} | {" "})
        if units == "char":
            return cls([BLANK] + chars)
        if units != "bpe":
            raise AsrError(f"unknown units {units!r} (choose from: {', '.join(UNITS)})")
        if size <= len(chars) + 1:
            raise AsrError(f"bpe units: vocabulary size {size} leaves no room for pieces (the blank and "
                           f"the text's {len(chars)} characters take {len(chars) + 1}; e.g. 256)")
        return cls([BLANK] + chars + _learn_pieces(texts, size - len(chars) - 1, letters=len(chars) - 1))

    def __len__(self) -> int:
        return len(self.symbols)

    def __eq__(self, other) -> bool:
        return isinstance(other, Vocabulary) and self.symbols == other.symbols

    def unknown(self, text: str) -> list[str]:
        """Characters of ``text`` that the vocabulary lacks, in order of appearance."""
        return list(dict.fromkeys(c for c in text if c not in self._index))

    def encode(self, text: str, where: str = "") -> list[int]:
        missing = self.unknown(text)
        if missing:
            shown = ", ".join(repr(c) for c in missing)
            raise AsrError(f"{where + ': ' if where else ''}transcript {text!r} has characters "
                           f"outside the vocabulary: {shown}")
        if not self.has_pieces:
            return [self._index[c] for c in text]
        return [i for word in text.split(" ") if word for i in self.spell(" " + word)]

    def spell(self, word: str) -> tuple[int, ...]:
        """The units of ``word``: at each position the longest unit that matches."""
        units = self._spelled.get(word)
        if units is None:
            units, start = [], 0
            while start < len(word):
                for end in range(min(len(word), start + self._longest), start, -1):
                    index = self._index.get(word[start:end])
                    if index is not None:
                        units.append(index)
                        start = end
                        break
                else:
                    raise AsrError(f"{word.strip()!r} has characters outside the vocabulary: {word[start]!r}")
            units = self._spelled[word] = tuple(units)
        return units

    def decode(self, indices) -> str:
        return "".join(self.symbols[i] for i in indices if i != 0)


def _learn_pieces(texts: list[str], count: int, letters: int) -> list[str]:
    """Up to ``count`` multi-character BPE pieces of ``texts`` (sentencepiece's trainer), with
    its word-start mark written as the space it stands for. ``letters``: how many distinct
    characters other than the space ``texts`` has."""
    import io

    import sentencepiece

    model = io.BytesIO()
    # The trainer's vocabulary counts its 3 control pieces, its word-start mark and the letters;
    # a soft limit lets a small text give fewer pieces instead of failing.
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(texts), model_writer=model, model_type="bpe", vocab_size=count + letters + 4,
        character_coverage=1.0, hard_vocab_limit=False, minloglevel=2, num_threads=1)
    processor = sentencepiece.SentencePieceProcessor(model_proto=model.getvalue())
    pieces = (processor.id_to_piece(i) for i in range(processor.get_piece_size())
              if not (processor.is_control(i) or processor.is_unknown(i)))
    return [p.replace("\u2581", " ") for p in pieces if len(p) > 1][:count]
