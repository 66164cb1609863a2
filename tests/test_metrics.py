import pytest

from asr.metrics import char_errors, score, word_errors


def test_word_errors_hand_computed():
    # ref: the cat sat on the mat ; hyp: the cat sit on mat mat mat
    # sat->sit (S), the->mat (S), + mat (I)  or equivalent: 3 edits over 6 words
    e = word_errors("the cat sat on the mat", "the cat sit on mat mat mat")
    assert e.errors == 3 and e.words == 6


def test_word_error_kinds():
    assert word_errors("one two three", "one three") == word_errors("one two three", "one three")
    e = word_errors("one two three", "one three")
    assert (e.substitutions, e.deletions, e.insertions) == (0, 1, 0)
    e = word_errors("one two", "one two two")
    assert (e.substitutions, e.deletions, e.insertions) == (0, 0, 1)
    e = word_errors("one two", "one too")
    assert (e.substitutions, e.deletions, e.insertions) == (1, 0, 0)


def test_empty_sides():
    assert word_errors("", "hello there").insertions == 2
    e = word_errors("hello there", "")
    assert (e.deletions, e.words) == (2, 2)
    assert char_errors("abc", "") == (3, 3)


def test_corpus_wer_sums_errors_over_words():
    # 1 error in 1 word + 0 errors in 3 words = 1/4 = 25% (not the mean of 100% and 0%)
    summary, per_utt = score(["one", "two three four"], ["two", "two three four"])
    assert summary.wer == pytest.approx(25.0)
    assert summary.words == 4 and summary.utterances == 2 and summary.substitutions == 1
    assert [e.errors for e in per_utt] == [1, 0]


def test_cer_counts_characters():
    # "seven" -> "sevn": one deletion over 5 characters
    summary, _ = score(["seven"], ["sevn"])
    assert summary.cer == pytest.approx(20.0)
    assert summary.wer == pytest.approx(100.0)
