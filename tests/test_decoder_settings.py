import json

import pytest

from asr.decoder_settings import (DecoderSettings, describe, load_settings, parse_hotwords, read_lexicon,
                                  save_settings, settings_path)
from asr.errors import AsrError


def test_tuned_settings_round_trip_with_relative_paths(tmp_path):
    exp = tmp_path / "exp"
    exp.mkdir()
    (exp / "lm.arpa").write_text("x")
    checkpoint = exp / "best.pt"
    tuned = DecoderSettings(decoder="beam", beam_size=8, lm=str(exp / "lm.arpa"), lm_weight=1.5, word_score=-1.0)
    path = save_settings(checkpoint, tuned, dev_wer=1.25)
    assert path == settings_path(checkpoint) == exp / "best.decoder.json"
    stored = json.loads(path.read_text())
    assert stored["settings"]["lm"] == "lm.arpa" and stored["dev_wer"] == 1.25
    moved = tmp_path / "moved"
    exp.rename(moved)  # the experiment folder moves: paths still resolve
    loaded = load_settings(moved / "best.pt")
    assert loaded.lm == str(moved / "lm.arpa") and loaded.lm_weight == 1.5 and loaded.beam_size == 8


def test_flags_override_the_tuned_settings(tmp_path):
    checkpoint = tmp_path / "best.pt"
    save_settings(checkpoint, DecoderSettings(decoder="beam", lm="lm.arpa", lm_weight=1.5, lexicon="words.txt"))
    assert load_settings(checkpoint, {"lm_weight": 0.25, "beam_size": None}).lm_weight == 0.25
    greedy = load_settings(checkpoint, {"decoder": "greedy"})
    assert greedy == DecoderSettings(decoder="greedy", lm=None, lm_weight=1.5, lexicon=None)
    assert load_settings(checkpoint, {}, tuned=False) == DecoderSettings()
    # no tuned file: greedy, unless a flag asks for something only the beam search does
    other = tmp_path / "other.pt"
    assert load_settings(other).decoder == "greedy"
    assert load_settings(other, {"lm": "x.arpa"}).decoder == "beam"
    assert load_settings(other, {"beam_size": 4}).decoder == "beam"
    settings_path(other).write_text("{not json")
    with pytest.raises(AsrError, match="other.decoder.json: damaged decoder settings"):
        load_settings(other)


def test_describe():
    assert describe(DecoderSettings()) == "greedy"
    assert describe(DecoderSettings(decoder="beam", lm="/x/lm.arpa", lm_weight=1.0, word_score=-1.0,
                                    lexicon="l.txt")) == "beam 16, LM lm.arpa (weight 1, word score -1), lexicon"


def test_hotwords_from_a_list_or_a_file(tmp_path):
    assert parse_hotwords("Kaldi, Ada Lovelace ,", 5.0) == {"kaldi": 5.0, "ada lovelace": 5.0}
    path = tmp_path / "hot.txt"
    path.write_text("kaldi\t2.5\nESPnet\n\n")
    assert parse_hotwords(str(path), 5.0) == {"kaldi": 2.5, "espnet": 5.0}
    path.write_text("kaldi\tlots\n")
    with pytest.raises(AsrError, match="hot.txt:1: hotword weight 'lots' is not a number"):
        parse_hotwords(str(path), 5.0)


def test_lexicon_files(tmp_path):
    plain = tmp_path / "words.txt"
    plain.write_text("one\ntwo\n\n")
    assert read_lexicon(plain) == ["one", "two"]
    flashlight_style = tmp_path / "lexicon.txt"
    flashlight_style.write_text("one\to n e |\ntwo\tt w o |\n")
    assert read_lexicon(flashlight_style) == ["one", "two"]
    (tmp_path / "empty.txt").write_text("\n")
    with pytest.raises(AsrError, match="empty.txt: lexicon has no words"):
        read_lexicon(tmp_path / "empty.txt")
    with pytest.raises(AsrError, match="lexicon not found"):
        read_lexicon(tmp_path / "none.txt")


def test_tuning_grid_and_random_trials():
    from asr.tune import candidate_settings

    base = DecoderSettings(decoder="beam", lm="lm.arpa")
    grid = candidate_settings(base, [0.0, 0.5, 1.0], [-1.0, 1.0], [8, 16])
    assert len(grid) == 12 and {(s.lm_weight, s.word_score, s.beam_size) for s in grid} == {
        (w, b, k) for w in (0.0, 0.5, 1.0) for b in (-1.0, 1.0) for k in (8, 16)}
    trials = candidate_settings(base, [0.0, 0.5, 1.0], [-1.0, 1.0], [8, 16], trials=5)
    assert len(trials) == 5 and set(trials) <= set(grid)
    assert trials == candidate_settings(base, [0.0, 0.5, 1.0], [-1.0, 1.0], [8, 16], trials=5)  # seeded
    no_lm = candidate_settings(DecoderSettings(decoder="beam"), [0.0, 0.5, 1.0], [0.0], [16])
    assert len(no_lm) == 1  # without an LM its weight changes nothing
