"""The offline voices (asr.synthesis): every engine speaks, at the rate asked, into the
sample rate asked; installed by recipes/synth/install_voices.sh."""

import random
import shutil

import librosa
import numpy as np
import pytest
import soundfile as sf

from asr.errors import AsrError
from asr.synthesis import PROGRAMS, Voice, check_engines, draw_voice, synthesize, voice_families

engines_missing = [p for p in PROGRAMS.values() if shutil.which(p) is None]
needs_engines = pytest.mark.skipif(bool(engines_missing), reason=f"not installed: {engines_missing}")


def test_catalogue_has_every_family_and_unique_names():
    families = voice_families()
    assert {k: len(v) for k, v in families.items()} == {
        "espeak": 8 * 35, "mbrola": 4, "mbrola-accented": 16, "flite": 5, "pico": 2, "rhvoice": 6, "festival": 5}
    names = [v.name for group in families.values() for v in group]
    assert len(names) == len(set(names)) == 318
    first, again = random.Random(1), random.Random(1)
    assert [draw_voice(first, families) for _ in range(5)] == [draw_voice(again, families) for _ in range(5)]
    rng = random.Random(2)
    counts = {}
    for _ in range(2000):
        v = draw_voice(rng, families)
        family = next(k for k, group in families.items() if v in group)
        counts[family] = counts.get(family, 0) + 1
    assert counts["espeak"] < 700 and counts["pico"] > 100  # shares, not voice counts, pick the family


@needs_engines
@pytest.mark.parametrize("family", ["espeak", "mbrola", "mbrola-accented", "flite", "pico", "rhvoice", "festival"])
def test_every_engine_speaks_at_the_rate_asked(tmp_path, family):
    voice = voice_families()[family][0]
    slow = synthesize(voice, "three seven one nine", tmp_path / "slow.wav", 8000, rate=0.8, pitch=40)
    fast = synthesize(voice, "three seven one nine", tmp_path / "fast.wav", 8000, rate=1.25, pitch=60)
    for path, duration in ((tmp_path / "slow.wav", slow), (tmp_path / "fast.wav", fast)):
        info = sf.info(path)
        assert info.samplerate == 8000 and info.duration == pytest.approx(duration, abs=1e-3)
        assert 0.5 < duration < 5.0
    assert slow > 1.2 * fast


@needs_engines
@pytest.mark.parametrize("family", ["espeak", "mbrola", "mbrola-accented", "pico", "rhvoice"])
def test_engines_with_pitch_control_speak_at_the_pitch_asked(tmp_path, family):
    voice = voice_families()[family][0]
    medians = []
    for pitch in (30, 70):
        synthesize(voice, "and the lord spake unto moses", tmp_path / f"{pitch}.wav", 16000, pitch=pitch)
        audio, rate = sf.read(tmp_path / f"{pitch}.wav")
        f0 = librosa.yin(audio, fmin=50, fmax=500, sr=rate)
        medians.append(np.median(f0))
    assert medians[1] > 1.2 * medians[0]


@pytest.mark.skipif(shutil.which("pico2wave") is None, reason="pico not installed (install_voices.sh)")
def test_pico_reads_the_text_itself_inside_its_rate_and_pitch_markup(tmp_path):
    voice = voice_families()["pico"][0]
    plain = synthesize(voice, "salt and pepper", tmp_path / "and.wav", 16000)
    assert synthesize(voice, "salt & pepper", tmp_path / "ampersand.wav", 16000) == pytest.approx(plain, abs=0.05)
    # "<" and ">" do not reach pico's markup parser: "<b>" is read as the letter (as it was, 1.1 s longer)
    letter = synthesize(voice, "salt b pepper", tmp_path / "b.wav", 16000)
    assert synthesize(voice, "salt <b> pepper", tmp_path / "tag.wav", 16000) == pytest.approx(letter, abs=0.05)


def test_missing_engine_and_failed_synthesis_are_one_line_errors(tmp_path, monkeypatch):
    monkeypatch.setitem(PROGRAMS, "espeak", "no-such-engine-here")
    with pytest.raises(AsrError, match=r"speech engine\(s\) not installed: no-such-engine-here \(run recipes"):
        check_engines([Voice("espeak-en", "espeak", "en")])


def test_mbrola_voices_need_the_program_and_their_diphone_set(tmp_path, monkeypatch):
    from asr import synthesis

    (tmp_path / "us1").mkdir()
    (tmp_path / "us1" / "us1").write_bytes(b"diphones")
    monkeypatch.setattr(synthesis, "MBROLA_PATHS", (str(tmp_path / "{0}"), str(tmp_path / "{0}" / "{0}")))
    monkeypatch.setattr(synthesis.shutil, "which", lambda program: f"/usr/bin/{program}")
    voices = [Voice("espeak-en", "espeak", "en"), *synthesis.espeak_voices("mb-us1", "mb-de1-en")]
    assert [synthesis.mbrola_database(v) for v in voices] == [None, "us1", "de1"]
    assert synthesis.missing_engines(voices) == ["mbrola-de1"]  # us1 is at {0}/{0}, de1 nowhere
    monkeypatch.setattr(synthesis.shutil, "which", lambda program: None if program == "mbrola" else "/usr/bin/x")
    with pytest.raises(AsrError, match=r"not installed: mbrola, mbrola-de1 \(run recipes/synth/install_voices.sh\)"):
        check_engines(voices)
    assert synthesis.missing_engines(voices[:1]) == []  # plain espeak-ng needs neither


@needs_engines
def test_unknown_voice_fails_with_the_voice_named(tmp_path):
    with pytest.raises(AsrError, match="espeak-nobody: synthesis failed for 'one' .*voice does not exist"):
        synthesize(Voice("espeak-nobody", "espeak", "nobody"), "one", tmp_path / "x.wav", 8000)
    assert not (tmp_path / "x.wav").exists()


def test_a_hung_engine_is_killed_and_reported(tmp_path, monkeypatch):
    import asr.synthesis

    monkeypatch.setattr(asr.synthesis, "synth_command", lambda *args: ["sleep", "30"])  # an engine that hangs
    with pytest.raises(AsrError, match=r"espeak-en: espeak did not finish 'one' within 0.5 s \(killed\)"):
        synthesize(Voice("espeak-en", "espeak", "en"), "one", tmp_path / "x.wav", 8000, timeout=0.5)
    assert not (tmp_path / "x.wav").exists()
