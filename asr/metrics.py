"""Word and character error rates (jiwer), for a whole set and per utterance."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import jiwer


@dataclass(frozen=True)
class ErrorCounts:
    substitutions: int
    deletions: int
    insertions: int
    words: int  # reference words

    @property
    def errors(self) -> int:
        return self.substitutions + self.deletions + self.insertions


def word_errors(reference: str, hypothesis: str) -> ErrorCounts:
    """Edit operations turning the reference words into the hypothesis words."""
    ref, hyp = reference.split(), hypothesis.split()
    if not ref:
        return ErrorCounts(0, 0, len(hyp), 0)
    if not hyp:
        return ErrorCounts(0, len(ref), 0, len(ref))
    out = jiwer.process_words(reference, hypothesis)
    return ErrorCounts(out.substitutions, out.deletions, out.insertions, len(ref))


def char_errors(reference: str, hypothesis: str) -> tuple[int, int]:
    """(character edits, reference characters); spaces count as characters."""
    if not reference:
        return len(hypothesis), 0
    if not hypothesis:
        return len(reference), len(reference)
    out = jiwer.process_characters(reference, hypothesis)
    return out.substitutions + out.deletions + out.insertions, len(reference)


@dataclass(frozen=True)
class Summary:
    wer: float  # percent
    cer: float  # percent
    utterances: int
    words: int
    substitutions: int
    deletions: int
    insertions: int

    def as_dict(self) -> dict:
        return asdict(self)

    def __str__(self) -> str:
        return (f"WER {self.wer:.2f}% | CER {self.cer:.2f}% | {self.utterances} utterances, {self.words} words | "
                f"{self.substitutions} sub, {self.deletions} del, {self.insertions} ins")


def score(references: list[str], hypotheses: list[str]) -> tuple[Summary, list[ErrorCounts]]:
    """Corpus-level WER/CER (errors summed over utterances, not averaged) and per-utterance counts."""
    per_utt = [word_errors(r, h) for r, h in zip(references, hypotheses, strict=True)]
    chars = [char_errors(r, h) for r, h in zip(references, hypotheses)]
    words = sum(e.words for e in per_utt)
    n_chars = sum(n for _, n in chars)
    summary = Summary(
        wer=100.0 * sum(e.errors for e in per_utt) / max(words, 1),
        cer=100.0 * sum(e for e, _ in chars) / max(n_chars, 1),
        utterances=len(per_utt), words=words,
        substitutions=sum(e.substitutions for e in per_utt),
        deletions=sum(e.deletions for e in per_utt),
        insertions=sum(e.insertions for e in per_utt))
    return summary, per_utt
