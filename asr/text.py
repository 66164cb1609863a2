"""Transcripts: one normalizer, and the character vocabulary (index 0 is the CTC blank)."""

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


class Vocabulary:
    """Characters <-> indices. Index 0 is the CTC blank; ' ' separates words."""

    def __init__(self, symbols: list[str]):
        if not symbols or symbols[0] != BLANK:
            raise ValueError("the first vocabulary symbol must be the blank")
        if len(set(symbols)) != len(symbols):
            raise ValueError("vocabulary symbols must be unique")
        self.symbols = list(symbols)
        self._index = {s: i for i, s in enumerate(symbols)}

    @classmethod
    def from_texts(cls, texts) -> "Vocabulary":
        chars = sorted({c for t in texts for c in t} | {" "})
        return cls([BLANK] + chars)

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
        return [self._index[c] for c in text]

    def decode(self, indices) -> str:
        return "".join(self.symbols[i] for i in indices if i != 0)
