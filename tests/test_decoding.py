import math

import pytest
import torch

from asr.decoder_settings import DecoderSettings, build_decoder
from asr.decoding import FlashlightLexiconDecoder, GreedyDecoder
from asr.errors import AsrError
from asr.text import Vocabulary


def peaky(vocab: Vocabulary, frames: str) -> torch.Tensor:
    """Log-probs (T, V) with one clear winner per frame; '_' is the blank."""
    lp = torch.full((len(frames), len(vocab)), -10.0)
    for t, c in enumerate(frames):
        lp[t, 0 if c == "_" else vocab.symbols.index(c)] = -0.01
    return lp


def test_greedy_collapses_repeats_and_drops_blanks():
    vocab = Vocabulary.from_texts(["abc"])
    decoder = GreedyDecoder(vocab)
    lp = torch.stack([peaky(vocab, "aa_ab__bcc"), peaky(vocab, "_a  b_ c__")])
    assert decoder.decode(lp, torch.tensor([10, 10])) == ["aabbc", "a b c"]


def test_greedy_respects_lengths():
    vocab = Vocabulary.from_texts(["abc"])
    lp = peaky(vocab, "a_b_c")[None]
    assert GreedyDecoder(vocab).decode(lp, torch.tensor([3])) == ["ab"]


def test_unknown_decoder_name():
    with pytest.raises(AsrError, match="unknown decoder 'beem'"):
        build_decoder(DecoderSettings(decoder="beem"), Vocabulary.from_texts(["a"]))


def test_every_decoder_setting_reaches_the_decoder(tmp_path):
    """The settings are the one place an option is declared: each one, the pruning knobs
    included, ends up in the decoder built, and an unknown one is an error."""
    from asr.decoder_settings import load_settings

    lexicon = tmp_path / "words.txt"
    lexicon.write_text("cat\ncab\n")
    settings = load_settings(tmp_path / "none.pt", {"beam_size": 7, "lm_weight": 0.3, "word_score": 1.5,
                                                    "hotwords": "cab", "hotword_weight": 2.5, "lexicon": str(lexicon),
                                                    "token_min_logp": -9.0, "beam_threshold": 4.0})
    assert settings.decoder == "beam"
    decoder = build_decoder(settings, LETTERS)
    assert (decoder.beam_size, decoder.word_score, decoder.token_min_logp, decoder.beam_threshold) == (7, 1.5, -9.0, 4.0)
    assert decoder.lexicon == {"cat", "cab"} and decoder.hot_bonus["cab"] == 2.5
    with pytest.raises(AsrError, match="unknown decoder setting.*beam_width"):
        load_settings(tmp_path / "none.pt", {"beam_width": 3})


# -- beam search ---------------------------------------------------------------------------------

import importlib.util  # noqa: E402

import numpy as np  # noqa: E402

from asr.decoding import BeamSearchDecoder, decode_batch  # noqa: E402
from asr.lm import build_kneser_ney  # noqa: E402
from tests.conftest import REPO  # noqa: E402


def bench_module():
    spec = importlib.util.spec_from_file_location("bench_decode", REPO / "scripts" / "bench_decode.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def probs_to_logp(rows: list[list[float]]) -> np.ndarray:
    p = np.asarray(rows, dtype=np.float64) + 1e-12
    return np.log(p / p.sum(axis=1, keepdims=True))


def test_beam_finds_the_most_probable_labelling_where_greedy_does_not():
    vocab = Vocabulary(["<blank>", "a", "b"])
    # Each frame: blank 0.4, "a" 0.35, "b" 0.25. Best path: blank blank (p = 0.16), text "".
    # p("a") = 0.35*0.4 + 0.4*0.35 + 0.35*0.35 = 0.4025 is the most probable labelling.
    lp = probs_to_logp([[0.4, 0.35, 0.25]] * 2)
    assert GreedyDecoder(vocab).search(lp)[0].text == ""
    best = BeamSearchDecoder(vocab, beam_size=8, token_min_logp=-20).search(lp)[0]
    assert best.text == "a"
    assert best.score == pytest.approx(np.log(0.4025), abs=1e-6)


def test_nbest_is_sorted_and_distinct():
    vocab = Vocabulary(["<blank>", " ", "a", "b"])
    lp = probs_to_logp([[0.4, 0.0, 0.3, 0.3], [0.4, 0.0, 0.3, 0.3]])
    hyps = BeamSearchDecoder(vocab, beam_size=8, nbest=4, token_min_logp=-20).search(lp)
    texts = [h.text for h in hyps]
    assert len(set(texts)) == len(texts) == 4
    assert [h.score for h in hyps] == sorted((h.score for h in hyps), reverse=True)
    # p("a") = 0.3*0.4 + 0.4*0.3 + 0.3*0.3 = 0.33, the same for "b"; then "" (0.16).
    assert sorted(texts[:2]) == ["a", "b"] and hyps[0].score == pytest.approx(np.log(0.33))
    assert texts[2] == "" and hyps[2].score == pytest.approx(np.log(0.16))


def test_beam_of_one_equals_greedy_on_peaky_outputs():
    bench = bench_module()
    arrays, _ = bench.synthetic(np.random.default_rng(3), 10)
    vocab = Vocabulary(bench.ALPHABET)
    greedy, beam = GreedyDecoder(vocab), BeamSearchDecoder(vocab, beam_size=1)
    for lp in arrays:
        assert beam.search(lp)[0].text == greedy.search(lp)[0].text


def test_agrees_with_pyctcdecode_on_the_benchmark_logits():
    pytest.importorskip("pyctcdecode")
    bench = bench_module()
    arrays, _ = bench.synthetic(np.random.default_rng(4), 12)
    vocab = Vocabulary(bench.ALPHABET)
    peer = bench.Pyctcdecode(None)
    for beam in (10, 50):
        ours = BeamSearchDecoder(vocab, beam_size=beam)
        for lp in arrays:
            assert ours.search(lp)[0].text == " ".join(peer(lp, beam).split())


def spell(vocab: Vocabulary, frames: list[dict[str, float]]) -> np.ndarray:
    """Log-probs from per-frame {symbol: prob}; the rest of each frame's mass is blank."""
    rows = []
    for frame in frames:
        row = [0.0] * len(vocab)
        for symbol, p in frame.items():
            row[vocab.symbols.index(symbol)] = p
        row[0] = max(1.0 - sum(frame.values()), 0.0)
        rows.append(row)
    return probs_to_logp(rows)


LETTERS = Vocabulary(["<blank>", " "] + list("abcdefghijklmnopqrstuvwxyz"))


def test_lm_turns_a_misspelling_into_a_known_word():
    # Acoustics slightly prefer "cad"; the LM has only seen "the cat sat".
    lp = spell(LETTERS, [{"c": 0.9}, {}, {"a": 0.9}, {}, {"d": 0.5, "t": 0.45}, {}])
    lm = build_kneser_ney([["the", "cat", "sat"], ["a", "cat"]] * 5, order=2)
    assert BeamSearchDecoder(LETTERS, beam_size=8).search(lp)[0].text == "cad"
    assert BeamSearchDecoder(LETTERS, beam_size=8, lm=lm, lm_weight=1.0).search(lp)[0].text == "cat"


def test_lexicon_only_outputs_its_words():
    digits = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
    # "eigh" then a weak "t" and a strong "o": greedy reads "eigho", a non-word.
    lp = spell(LETTERS, [{"e": 0.9}, {"i": 0.9}, {"g": 0.9}, {"h": 0.9}, {"o": 0.6, "t": 0.35}, {},
                         {" ": 0.9}, {"s": 0.9}, {"i": 0.5, "e": 0.4}, {"x": 0.9}])
    assert GreedyDecoder(LETTERS).search(lp)[0].text == "eigho six"
    bench = bench_module()
    arrays, _ = bench.synthetic(np.random.default_rng(5), 5)
    vocab = Vocabulary(bench.ALPHABET)
    ours = BeamSearchDecoder(LETTERS, beam_size=8, lexicon=digits)
    assert ours.search(lp)[0].text == "eight six"
    flashlight = FlashlightLexiconDecoder(LETTERS, digits, beam_size=8)
    assert flashlight.search(lp)[0].text == "eight six"
    for decoder in (BeamSearchDecoder(vocab, beam_size=8, lexicon=digits),
                    FlashlightLexiconDecoder(vocab, digits, beam_size=8)):
        for array in arrays:  # number sentences, most words not digits: still only digits come out
            assert set(decoder.search(array)[0].text.split()) <= set(digits)


def test_hotwords_change_the_output():
    lp = spell(LETTERS, [{"k": 0.9}, {"a": 0.9}, {"l": 0.9}, {"d": 0.9}, {"y": 0.5, "i": 0.45}, {},
                         {" ": 0.9}, {"r": 0.9}, {"u": 0.9}, {"n": 0.9}, {"s": 0.9}])
    plain = BeamSearchDecoder(LETTERS, beam_size=8)
    assert plain.search(lp)[0].text == "kaldy runs"
    boosted = BeamSearchDecoder(LETTERS, beam_size=8, hotwords={"kaldi": 2.0})
    assert boosted.search(lp)[0].text == "kaldi runs"
    phrase = BeamSearchDecoder(LETTERS, beam_size=8, hotwords={"kaldi runs": 2.0})
    assert phrase.search(lp)[0].text == "kaldi runs"
    # A partial match earns nothing at the end: boosting "kaldic" does not pull "kaldi" in.
    partial = BeamSearchDecoder(LETTERS, beam_size=8, hotwords={"kaldic": 2.0})
    assert partial.search(lp)[0].text == "kaldy runs"


def test_bad_settings_are_one_line_errors():
    with pytest.raises(AsrError, match="beam size must be at least 1"):
        BeamSearchDecoder(LETTERS, beam_size=0)
    with pytest.raises(AsrError, match="lexicon word 'caf\u00e9' has characters outside"):
        BeamSearchDecoder(LETTERS, lexicon=["cat", "caf\u00e9"])
    with pytest.raises(AsrError, match="hotword 'x-ray'"):
        BeamSearchDecoder(LETTERS, hotwords={"x-ray": 1.0})


def test_batches_over_processes_match_one_process():
    bench = bench_module()
    arrays, _ = bench.synthetic(np.random.default_rng(6), 16)
    lm = build_kneser_ney((s.split() for s in bench.number_sentences(np.random.default_rng(1), 500)), order=2)
    decoder = BeamSearchDecoder(Vocabulary(bench.ALPHABET), beam_size=8, lm=lm)
    alone = [decoder.search(a) for a in arrays]
    assert decode_batch(decoder, arrays, workers=2) == alone


# Pieces as a BPE vocabulary has them: whole words, parts of words, characters.
PIECES = Vocabulary(["<blank>", " ", "e", "n", "o", "t", "w", " o", "ne", " one", " t", " two", "ee"])


def test_beam_over_pieces_sums_the_spellings_of_one_text():
    # " two" is the likeliest first label, but "one" has three spellings:
    # " o" "ne" (0.35 * 0.35) + " one" blank (0.25 * 0.4) + " one" " one" (0.25 * 0.25) = 0.285 > 0.16
    lp = spell(PIECES, [{" two": 0.4, " o": 0.35, " one": 0.25}, {"ne": 0.35, " one": 0.25}])
    assert GreedyDecoder(PIECES).search(lp)[0].text == "two"
    best = BeamSearchDecoder(PIECES, beam_size=16).search(lp)[0]
    assert best.text == "one" and best.acoustic == pytest.approx(math.log(0.285), abs=1e-6)


def test_lexicon_over_pieces_turns_a_non_word_into_a_word(tmp_path):
    # Greedy reads " t" "ee" = "tee" (0.36); " two" blank = "two" (0.16) is the lexicon's.
    lp = spell(PIECES, [{" t": 0.6, " two": 0.4}, {"ee": 0.6}])
    assert GreedyDecoder(PIECES).search(lp)[0].text == "tee"
    assert BeamSearchDecoder(PIECES, beam_size=16).search(lp)[0].text == "tee"
    (tmp_path / "lexicon.txt").write_text("one\ntwo\n")
    decoder = build_decoder(DecoderSettings(decoder="beam", lexicon=str(tmp_path / "lexicon.txt")), PIECES)
    assert isinstance(decoder, BeamSearchDecoder)  # not flashlight's (next test)
    assert decoder.search(lp)[0].text == "two"
    # a one-piece word held over frames is one word; " o" "ne" spells "one" as " one" does
    held = spell(PIECES, [{}, {" two": 0.9}, {" two": 0.9}, {" two": 0.9}, {}, {" o": 0.9}, {"ne": 0.9}, {}])
    assert decoder.search(held)[0].text == "two one"
    lm = build_kneser_ney([["one", "two"], ["two", "one"]] * 3, order=2)
    both = np.concatenate([lp, spell(PIECES, [{}, {" one": 0.9}, {}])])
    assert BeamSearchDecoder(PIECES, beam_size=16, lm=lm, lexicon=["one", "two"]).search(both)[0].text == "two one"


def test_hotword_over_pieces():
    lp = spell(PIECES, [{" t": 0.5, " two": 0.4}, {}])  # "t" 0.5 against "two" 0.4
    assert BeamSearchDecoder(PIECES, beam_size=16).search(lp)[0].text == "t"
    assert BeamSearchDecoder(PIECES, beam_size=16, hotwords={"two": 1.0}).search(lp)[0].text == "two"


def test_flashlight_refuses_pieces():
    from asr.decoding import FlashlightLexiconDecoder

    with pytest.raises(AsrError, match="repeats a one-piece word held over several frames"):
        FlashlightLexiconDecoder(PIECES, ["one", "two"], beam_size=16)


def test_word_times_over_pieces():
    from asr.align import word_times

    # frames: _ " one" " one" _ _ " two" _  ->  "one two"
    lp = spell(PIECES, [{}, {" one": 0.9}, {" one": 0.9}, {}, {}, {" two": 0.9}, {}])
    words = word_times(lp, "one two", PIECES, frame_seconds=0.1)
    assert [(w.word, w.start, w.end) for w in words] == [("one", pytest.approx(0.1), pytest.approx(0.3)),
                                                         ("two", pytest.approx(0.5), pytest.approx(0.6))]


def test_word_times_from_the_best_alignment():
    from asr.align import word_times

    # frames: _ a a _ b _ space _ c c _  ->  "ab c"
    lp = spell(LETTERS, [{}, {"a": 0.9}, {"a": 0.9}, {}, {"b": 0.9}, {}, {" ": 0.9}, {}, {"c": 0.9}, {"c": 0.9}, {}])
    words = word_times(lp, "ab c", LETTERS, frame_seconds=0.1, duration=1.05)
    assert [w.word for w in words] == ["ab", "c"]
    assert [(w.start, w.end) for w in words] == [pytest.approx((0.1, 0.5)), pytest.approx((0.8, 1.0))]
    clipped = word_times(lp, "ab c", LETTERS, frame_seconds=0.1, duration=0.95)
    assert clipped[-1].end == pytest.approx(0.95)  # never past the end of the audio
    assert word_times(lp, "", LETTERS, 0.1) == []
