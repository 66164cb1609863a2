"""Robustness test sets (asr.conditions), WER per condition, and level invariance on real speech."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from asr.audio import load_audio
from asr.conditions import CONDITIONS, build_conditions, pick
from asr.data import read_manifest
from asr.errors import AsrError
from conftest import OVERFIT_ITEMS, WORDS, write_fsdd_manifest

RATE = 8000


@pytest.fixture(scope="module")
def three(tmp_path_factory):
    path = tmp_path_factory.mktemp("three") / "three.jsonl"
    return read_manifest(write_fsdd_manifest(path, [(3, "george", 1), (7, "theo", 2), (9, "lucas", 3)]))


def by_condition(entries):
    out = {}
    for e in entries:
        out.setdefault(e["condition"], []).append(e)
    return out


def test_every_condition_is_built_as_named_and_reproducibly(three, tmp_path):
    entries = build_conditions(three, tmp_path / "a", RATE, seed=7)
    sets = by_condition(entries)
    assert list(sets) == list(CONDITIONS) and all(len(v) == 3 for v in sets.values())
    clean = [load_audio(u.audio_filepath, RATE) for u in three]
    for i, original in enumerate(clean):
        def read(name):
            return load_audio(sets[name][i]["audio_filepath"], RATE)

        rms = lambda x: float(np.sqrt(np.mean(x.astype(np.float64) ** 2)))  # noqa: E731
        for name, db in (("level-30dB", -30), ("level-20dB", -20), ("level-10dB", -10)):
            assert 20 * np.log10(rms(read(name)) / rms(original)) == pytest.approx(db, abs=0.2)
        for kind in ("white", "pink", "babble"):
            for snr in (20, 10):
                noisy = read(f"{kind}-snr{snr}")
                noise = noisy - original
                assert 10 * np.log10(rms(original) ** 2 / rms(noise) ** 2) == pytest.approx(snr, abs=0.3)
        assert len(read("speed-0.9")) == pytest.approx(len(original) / 0.9, abs=2)
        assert len(read("speed-1.1")) == pytest.approx(len(original) / 1.1, abs=2)
        phone = read("telephone")
        spectrum = np.abs(np.fft.rfft(phone)) ** 2
        hz = np.fft.rfftfreq(len(phone), 1 / RATE)
        assert spectrum[(hz < 150) | (hz > 3700)].sum() < 0.02 * spectrum.sum()
        assert len(read("room")) > len(original)  # the reverberant tail
    info = {name: sf.info(sets[name][0]["audio_filepath"]) for name in CONDITIONS}
    assert (info["telephone"].samplerate, info["telephone"].subtype) == (8000, "ULAW")
    assert (info["wav-44k-stereo"].samplerate, info["wav-44k-stereo"].channels) == (44100, 2)
    assert (info["flac-22k-24bit"].samplerate, info["flac-22k-24bit"].subtype) == (22050, "PCM_24")
    assert (info["wav-48k-float"].samplerate, info["wav-48k-float"].subtype) == (48000, "FLOAT")
    assert info["ogg-16k"].format == "OGG" and info["level-30dB"].subtype == "PCM_16"
    assert all(e["text"] == u.text and e["speaker"] == u.speaker for name in CONDITIONS
               for e, u in zip(sets[name], three))

    again = by_condition(build_conditions(three[1:], tmp_path / "b", RATE, seed=7, names=["white-snr10", "room"]))
    other = by_condition(build_conditions(three, tmp_path / "c", RATE, seed=8, names=["white-snr10"]))
    for name in ("white-snr10", "room"):  # each recording's draw is its own: the same from a subset
        assert np.array_equal(sf.read(again[name][0]["audio_filepath"])[0], sf.read(sets[name][1]["audio_filepath"])[0])
    assert not np.array_equal(sf.read(other["white-snr10"][0]["audio_filepath"])[0],
                              sf.read(sets["white-snr10"][0]["audio_filepath"])[0])


def test_condition_names_are_checked_and_any_level_can_be_asked_for():
    assert pick("") == list(CONDITIONS)
    assert pick("level-25dB, room") == ["level-25dB", "room"]
    with pytest.raises(AsrError, match="unknown condition traffic"):
        pick("traffic")


def test_the_conditions_help_lists_every_condition():
    from asr.cli import CONDITIONS_EXAMPLE  # written out by hand: cli.py does not import numpy or torch to start

    listed = CONDITIONS_EXAMPLE.split("Conditions (asr/conditions.py):")[1].split(";")[0]
    assert [name.strip() for name in listed.split(",")] == list(CONDITIONS)


def test_the_same_recording_at_any_level_gives_the_same_transcript(tiny_model, tmp_path):
    """The tiny model's six recordings stored as 16-bit files at -30 to +6 dB, each transcribed on
    its own: features normalized by the recording's own level make gain invisible to the model."""
    import asr

    checkpoint, manifest = tiny_model
    levels = ["level-30dB", "level-20dB", "level-10dB", "clean", "level+6dB"]
    entries = build_conditions(read_manifest(manifest), tmp_path, RATE, seed=1, names=levels)
    with asr.load(checkpoint) as model:
        for e in entries:
            assert model.transcribe(e["audio_filepath"]).text == e["text"], e["condition"]
    assert {e["text"] for e in entries} == {WORDS[d] for d, _, _ in OVERFIT_ITEMS}


def test_evaluate_json_carries_a_summary_per_condition(tiny_model, tmp_path, capsys):
    from asr.cli import main

    checkpoint, manifest = tiny_model
    out = tmp_path / "robust.jsonl"
    assert main(["conditions", "--manifest", str(manifest), "--out-dir", str(tmp_path / "sets"), "--out", str(out),
                 "--conditions", "clean,level-20dB,white-snr10", "--sample-rate", "8000"]) == 0
    assert "18 recordings" in capsys.readouterr().out
    assert main(["evaluate", "--model", str(checkpoint), "--manifest", str(out), "--json",
                 "--report", str(tmp_path / "report.jsonl")]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert list(summary["by_condition"]) == ["clean", "level-20dB", "white-snr10"]
    assert all(s["utterances"] == 6 for s in summary["by_condition"].values())
    assert summary["by_condition"]["clean"]["wer"] == 0.0 and summary["by_condition"]["level-20dB"]["wer"] == 0.0
    errors = sum(s["substitutions"] + s["deletions"] + s["insertions"] for s in summary["by_condition"].values())
    assert errors == summary["substitutions"] + summary["deletions"] + summary["insertions"]
    assert summary["by_speaker"]["jackson"]["utterances"] == 18
    rows = [json.loads(line) for line in (tmp_path / "report.jsonl").read_text().splitlines()]
    assert {r["condition"] for r in rows} == {"clean", "level-20dB", "white-snr10"}
    assert main(["evaluate", "--model", str(checkpoint), "--manifest", str(out),
                 "--report", str(tmp_path / "report.jsonl")]) == 0
    text = capsys.readouterr().out
    assert "condition level-20dB" in text and "speaker jackson" in text
