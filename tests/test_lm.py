import gzip
import math

import pytest

from asr.errors import AsrError
from asr.lm import build_kneser_ney, load_lm, read_arpa, read_sentences

TOY = [["a", "b"], ["a", "c"], ["b"]]


def p(lm, context, word):
    return 10 ** lm.log10_prob(tuple(context), word)


def test_bigram_kneser_ney_against_hand_computation():
    # <s> a b </s> / <s> a c </s> / <s> b </s>. Every order has too few counts of counts for
    # the modified discounts, so D1, D2, D3+ = 0.5, 1.0, 1.5.
    lm = build_kneser_ney(TOY, order=2)
    # Unigram continuation counts: a 1 (<s>), b 2 (a, <s>), c 1 (a), </s> 2 (b, c); total 6.
    # gamma = (0.5 * 2 + 1.0 * 2) / 6 = 0.5, spread uniformly over {a, b, c, </s>, <unk>}.
    assert p(lm, [], "a") == pytest.approx(0.5 / 6 + 0.5 / 5)
    assert p(lm, [], "b") == pytest.approx(1.0 / 6 + 0.5 / 5)
    assert p(lm, [], "<unk>") == pytest.approx(0.5 / 5)
    # Bigrams keep raw counts: <s> a = 2, <s> b = 1; gamma(<s>) = (0.5 + 1.0) / 3 = 0.5.
    assert p(lm, ["<s>"], "a") == pytest.approx((2 - 1.0) / 3 + 0.5 * (0.5 / 6 + 0.1))
    assert p(lm, ["<s>"], "b") == pytest.approx((1 - 0.5) / 3 + 0.5 * (1.0 / 6 + 0.1))
    # Unseen after <s>: back-off weight 0.5 times the unigram.
    assert p(lm, ["<s>"], "c") == pytest.approx(0.5 * (0.5 / 6 + 0.1))
    # a b = 1, a c = 1; gamma(a) = 0.5 * 2 / 2.
    assert p(lm, ["a"], "b") == pytest.approx(0.5 / 2 + 0.5 * (1.0 / 6 + 0.1))
    # An out-of-vocabulary word is <unk>.
    assert p(lm, ["a"], "zebra") == pytest.approx(p(lm, ["a"], "<unk>"))


def test_every_context_is_a_distribution():
    sentences = [s.split() for s in ["the cat sat", "the cat ran", "a dog sat down", "the dog ran",
                                     "a cat sat down", "the the cat"]] * 3 + [["down"]]
    for order in (1, 2, 3, 4):
        lm = build_kneser_ney(sentences, order=order)
        vocab = sorted(lm.words)
        for context in [(), ("<s>",), ("the",), ("<s>", "the"), ("the", "cat"), ("dog", "zebra"), ("sat", "down")]:
            total = sum(p(lm, context, w) for w in vocab)
            assert total == pytest.approx(1.0, abs=1e-9), (order, context)


def test_modified_discounts_from_counts_of_counts():
    # Enough distinct bigrams that t1..t4 are all non-zero at order 2.
    sentences = []
    for i in range(12):
        for j in range(1 + i % 5):
            sentences.append([f"w{i}", f"v{j}"])
    lm = build_kneser_ney(sentences, order=2)
    vocab = sorted(lm.words)
    assert sum(p(lm, ("w3",), w) for w in vocab) == pytest.approx(1.0)


def test_arpa_round_trip(tmp_path):
    lm = build_kneser_ney(TOY, order=3)
    path = tmp_path / "toy.arpa"
    lm.write_arpa(path)
    text = path.read_text()
    assert text.startswith("\\data\\\nngram 1=6\n")  # a b c </s> <unk> <s>
    assert "-99\t<s>" in text and text.rstrip().endswith("\\end\\")
    again = read_arpa(path)
    for context, word in [((), "a"), (("<s>",), "b"), (("<s>", "a"), "c"), (("a", "b"), "a"), (("c",), "zebra")]:
        assert again.log10_prob(context, word) == pytest.approx(lm.log10_prob(context, word), abs=1e-6)
    gz = tmp_path / "toy.arpa.gz"
    gz.write_bytes(gzip.compress(path.read_bytes()))
    assert load_lm(gz).log10_prob(("<s>",), "a") == pytest.approx(lm.log10_prob(("<s>",), "a"), abs=1e-6)


def test_sentence_probability_and_queries_in_natural_log():
    lm = build_kneser_ney(TOY, order=2)
    state = lm.begin()
    total = 0.0
    for word in ["a", "b"]:
        logp, state = lm.score(state, word)
        total += logp
    total += lm.finish(state)
    assert total == pytest.approx(lm.sentence_log10_prob(["a", "b"]) * math.log(10))


def test_kenlm_reads_our_arpa_the_same(tmp_path):
    """KenLM (as bundled in flashlight-text) agrees with our probabilities on our ARPA file."""
    kenlm_module = pytest.importorskip("flashlight.lib.text.decoder.kenlm")
    from flashlight.lib.text.dictionary import Dictionary

    sentences = [s.split() for s in ["one two three", "two three four", "one one two", "four"]]
    lm = build_kneser_ney(sentences, order=3)
    path = tmp_path / "lm.arpa"
    lm.write_arpa(path)
    words = ["one", "two", "three", "four", "five"]
    dictionary = Dictionary()
    for word in words + ["<unk>"]:
        dictionary.add_entry(word)
    kenlm = kenlm_module.KenLM(str(path), dictionary)
    state = kenlm.start(False)
    ours_state = lm.begin()
    for word in ["one", "two", "four", "five", "three"]:
        state, score = kenlm.score(state, dictionary.get_index(word))
        ours, ours_state = lm.score(ours_state, word)
        assert score == pytest.approx(ours / math.log(10), abs=1e-4), word


@pytest.mark.parametrize("content, message", [
    ("", "not a complete ARPA"),
    ("\\data\\\nngram 1=2\n\n\\1-grams:\n-1.0\ta\n\\end\\\n", "declares 2 1-grams but the file has 1"),
    ("\\data\\\nngram 1=1\n\n\\1-grams:\nx\ta\n\\end\\\n", "malformed number"),
    ("\\data\\\nngram 1=1\n\n\\1-grams:\n-1.0\n\\end\\\n", ":5: expected a log10 probability"),
    ("\\data\\\nngram 1=1\n\n\\1-grams:\n-1.0\ta\n", "not a complete ARPA"),
])
def test_malformed_arpa_is_one_line(tmp_path, content, message):
    path = tmp_path / "bad.arpa"
    path.write_text(content)
    with pytest.raises(AsrError, match=message) as info:
        read_arpa(path)
    assert "\n" not in str(info.value) and str(path) in str(info.value)


def test_missing_and_binary_files(tmp_path):
    with pytest.raises(AsrError, match="language model not found"):
        load_lm(tmp_path / "nope.arpa")
    noise = tmp_path / "noise.bin"
    noise.write_bytes(bytes(range(256)) * 4)
    with pytest.raises(AsrError, match="not an ARPA language model"):
        load_lm(noise)


def test_read_sentences_normalizes_text_and_manifests(tmp_path):
    text = tmp_path / "text.txt"
    text.write_text("Hello, World!\n\nCall 911\n")
    manifest = tmp_path / "m.jsonl"
    manifest.write_text('{"audio_filepath": "a.wav", "text": "one two"}\n')
    assert list(read_sentences([text, manifest])) == [
        ["hello", "world"], ["call", "nine", "hundred", "and", "eleven"], ["one", "two"]]
    manifest.write_text('{"audio_filepath": "a.wav"}\n')
    with pytest.raises(AsrError, match="m.jsonl:1: not a manifest line"):
        list(read_sentences([manifest]))
    with pytest.raises(AsrError, match="no text"):
        build_kneser_ney([], order=2)


def test_kenlm_module_backend_scores_like_ours(tmp_path):
    """KenLM binaries are read through the kenlm module (pip install kenlm): same queries, same numbers."""
    pytest.importorskip("kenlm")
    from asr.lm import KenLMModel

    lm = build_kneser_ney([s.split() for s in ["one two three", "two three four", "one one two"]], order=3)
    path = tmp_path / "lm.arpa"
    lm.write_arpa(path)
    theirs = KenLMModel(path)  # the module reads ARPA as well as binaries
    state, ours_state = theirs.begin(), lm.begin()
    for word in ["one", "two", "zebra", "four"]:
        score, state = theirs.score(state, word)
        ours, ours_state = lm.score(ours_state, word)
        assert score == pytest.approx(ours, abs=1e-4), word
    assert theirs.finish(state) == pytest.approx(lm.finish(ours_state), abs=1e-4)
