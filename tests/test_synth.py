"""The synthetic multi-voice corpus: the split holds out voices and sentences, and real
engines speak the sentences (espeak-ng, installed by recipes/synth/install_voices.sh)."""

import json
import shutil

import pytest
import soundfile as sf

from asr.errors import AsrError
from conftest import load_recipe

synth = load_recipe("synth")

SENTENCES = [f"the {a} {b} walked over the {c} hill" for a in ("old", "young", "tall", "small", "kind", "wise")
             for b in ("man", "woman", "shepherd", "king") for c in ("green", "high", "far", "little", "stony",
                                                                    "quiet")]


def test_sentences_are_cut_normalized_and_deduplicated():
    lines = ["And God said, Let there be light: and there was light.",
             "In the beginning God created the heaven and the earth.",
             "In the beginning God created the heaven and the earth.",  # a repeat
             "Jesus wept.",  # too short
             "He had 12 sons; and they were all named Zeb-ul-un."]
    assert synth.sentences_from(lines) == [
        "and god said let there be light", "and there was light", "in the beginning god created the heaven and the earth",
        "he had twelve sons", "and they were all named zeb ul un"]


def test_split_holds_out_voices_and_sentences():
    splits, lm_text = synth.plan(SENTENCES, hours=0.2, n_dev=10, n_test=12, seed=3)
    texts = {name: {item[2] for item in items} for name, items in splits.items()}
    voices = {name: {item[1].name for item in items} for name, items in splits.items()}
    assert texts["test-heldout"] == texts["test-seen"] and len(texts["test-heldout"]) == 12
    assert not texts["test-heldout"] & set(lm_text) and not texts["dev"] & set(lm_text)
    assert not texts["test-heldout"] & texts["train"] and not texts["dev"] & texts["train"]
    assert not texts["dev"] & texts["test-heldout"] and texts["train"] <= set(lm_text)
    train_voices = {v.name for group in synth.TRAIN_GROUPS.values() for v in group}
    assert voices["test-heldout"] == {v.name for v in synth.TEST_VOICES}
    assert voices["dev"] == {v.name for v in synth.DEV_VOICES}
    assert not (voices["test-heldout"] | voices["dev"]) & train_voices and voices["train"] <= train_voices
    assert voices["test-seen"] <= train_voices
    # espeak-ng accent x variant, + 2 English and 16 accented MBROLA, 4 flite, 1 pico, 6 RHVoice, 5 Festival
    assert len(train_voices) == len(synth.TRAIN_ACCENTS) * len(synth.TRAIN_VARIANTS) + 34
    # the test's espeak-ng variant and the dev accent and variant are never heard in training
    assert not any(v.endswith("-m3") or "gbcwmd" in v or v.endswith("-m4") for v in train_voices)
    families = {v.split("-")[0] + ("-mb" if "-mb-" in v else "") for v in voices["train"]}
    assert families == {"espeak", "espeak-mb", "flite", "pico", "rhvoice", "festival"}
    rates = [item[3] for item in splits["train"]]
    assert min(rates) >= 0.8 and max(rates) <= 1.25 and len(set(rates)) > 1
    assert synth.plan(SENTENCES, 0.2, 10, 12, seed=3) == (splits, lm_text)  # seeded
    with pytest.raises(AsrError, match="only 144 usable sentences"):
        synth.plan(SENTENCES, 0.2, 100, 100, seed=3)


def test_more_hours_extend_training_and_leave_dev_and_test_alone():
    small, _ = synth.plan(SENTENCES, 0.2, 10, 12, seed=3)
    big, _ = synth.plan(SENTENCES, 0.5, 10, 12, seed=3)
    assert len(big["train"]) > len(small["train"]) and big["train"][:len(small["train"])] == small["train"]
    for split in ("dev", "test-heldout", "test-seen"):
        assert big[split] == small[split]


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed (install_voices.sh)")
def test_espeak_voices_speak_and_preparation_resumes(tmp_path, monkeypatch):
    espeak = [v for v in synth.ALL_VOICES.values() if v.engine == "espeak" and not v.id.startswith("mb-")][::29]
    monkeypatch.setattr(synth, "TRAIN_GROUPS", {"espeak": espeak[:4]})
    monkeypatch.setattr(synth, "DEV_VOICES", espeak[4:6])
    monkeypatch.setattr(synth, "TEST_VOICES", espeak[6:8])
    out = tmp_path / "synth"
    synth.prepare(out, SENTENCES, hours=0.01, n_dev=2, n_test=2, seed=1, workers=2)
    train = [json.loads(line) for line in (out / "train.jsonl").read_text().splitlines()]
    assert len(train) == int(0.01 * 3600 / (synth.SECONDS_PER_WORD * 8))
    for e in train:
        info = sf.info(out / e["audio_filepath"])
        assert info.samplerate == 16000 and e["duration"] == pytest.approx(info.duration, abs=1e-3)
        assert 1.0 < e["duration"] < 6.0 and e["speaker"] in {v.name for v in espeak[:4]}
    # a rerun keeps every file (same names from the seed) and writes the same manifests
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("*.wav")}
    before = (out / "test-heldout.jsonl").read_text()
    synth.prepare(out, SENTENCES, hours=0.01, n_dev=2, n_test=2, seed=1, workers=2)
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*.wav")} == stamps
    assert (out / "test-heldout.jsonl").read_text() == before
