import pytest

from asr.errors import AsrError
from asr.text import BLANK, Vocabulary, normalize_text


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
