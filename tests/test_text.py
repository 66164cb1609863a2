import pytest

from asr.errors import AsrError
from asr.text import BLANK, Vocabulary, normalize_text
from conftest import WORDS


@pytest.mark.parametrize("raw, expected", [
    ("Hello, World!", "hello world"),
    ("  two   spaces\tand\ttabs ", "two spaces and tabs"),
    ("I have 3 cats", "i have three cats"),
    ("It's 42.", "it's forty two"),
    ("Don’t stop", "don't stop"),
    ("'quoted' words", "quoted words"),
    ("7", "seven"),
])
def test_normalize_text(raw, expected):
    assert normalize_text(raw) == expected


def test_vocabulary_round_trip_and_blank():
    vocab = Vocabulary.from_texts(["one two", "three"])
    assert vocab.symbols[0] == BLANK and " " in vocab.symbols
    ids = vocab.encode("two one")
    assert 0 not in ids
    assert vocab.decode(ids) == "two one"
    assert vocab.decode([0] + ids + [0]) == "two one"


def test_unknown_characters_name_the_manifest_line():
    vocab = Vocabulary.from_texts(["one two"])
    with pytest.raises(AsrError, match=r"train.jsonl:7: .*outside the vocabulary: 's', 'i', 'x'"):
        vocab.encode("six", "train.jsonl:7")


DIGIT_STRINGS = [" ".join(WORDS[(7 * i + 3 * k) % 10] for k in range(1 + i % 4)) for i in range(300)]


def test_bpe_units_spell_each_digit_word_as_one_unit():
    vocab = Vocabulary.from_texts(DIGIT_STRINGS, "bpe", 64)
    assert vocab.has_pieces and len(vocab) <= 64
    assert all(vocab.spell(" " + w) == (vocab.symbols.index(" " + w),) for w in WORDS)
    assert [vocab.symbols[i] for i in vocab.encode("one two one")] == [" one", " two", " one"]
    for text in DIGIT_STRINGS + ["neon tree", "z"]:  # words never seen are spelled by smaller units
        assert vocab.decode(vocab.encode(text)).strip() == text
    assert Vocabulary.from_texts(DIGIT_STRINGS, "bpe", 64) == vocab  # the same text, the same units
    assert Vocabulary(vocab.symbols).encode("nine") == vocab.encode("nine")  # as a checkpoint restores it
    assert Vocabulary.from_texts(DIGIT_STRINGS).has_pieces is False


def test_bpe_settings_that_cannot_work():
    with pytest.raises(AsrError, match="vocabulary size 16 leaves no room for pieces .* take 17"):
        Vocabulary.from_texts(DIGIT_STRINGS, "bpe", 16)
    with pytest.raises(AsrError, match="unknown units 'word' \\(choose from: char, bpe\\)"):
        Vocabulary.from_texts(DIGIT_STRINGS, "word")
    with pytest.raises(AsrError, match="outside the vocabulary: 'q'"):
        Vocabulary.from_texts(DIGIT_STRINGS, "bpe", 64).encode("quiet")
    with pytest.raises(AsrError, match="'quiet' has characters outside the vocabulary: 'q'"):
        Vocabulary.from_texts(DIGIT_STRINGS, "bpe", 64).spell(" quiet")
    with pytest.raises(ValueError, match="not units themselves"):
        Vocabulary([BLANK, " ", "a", "ab"])
