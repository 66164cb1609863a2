"""The FSDD recipe on the real recordings in ../shared/data/fsdd."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from asr.synthesis import PROGRAMS
from conftest import FSDD, REPO, TINY_OVERRIDES

sys.path.insert(0, str(REPO / "recipes" / "fsdd"))
import prepare  # noqa: E402

pytestmark = pytest.mark.skipif(not FSDD.is_dir(), reason="FSDD recordings not found")


def read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def take(entry: dict) -> int:
    return int(Path(entry["audio_filepath"]).stem.split("_")[2])


def test_official_split_and_connected_digits(tmp_path):
    prepare.prepare(FSDD, tmp_path, set(), {"train": 30, "dev": 10, "test": 20}, seed=7)
    train, dev = read(tmp_path / "train.jsonl"), read(tmp_path / "dev.jsonl")
    test_iso, test_con = read(tmp_path / "test-isolated.jsonl"), read(tmp_path / "test-connected.jsonl")
    assert len(test_iso) == 300 and {take(e) for e in test_iso} == {0, 1, 2, 3, 4}
    isolated_train = [e for e in train if "sources" not in e]
    assert len(isolated_train) == 6 * 10 * 43 and min(take(e) for e in isolated_train) == 7
    assert {take(e) for e in dev if "sources" not in e} == {5, 6}
    assert len(test_con) == 20 and len(train) == 2580 + 30 and len(dev) == 120 + 10
    for entries, takes in ((test_con, range(0, 5)), ([e for e in train if "sources" in e], range(7, 50))):
        for e in entries:
            words = e["text"].split()
            assert (1 if "sources" in e and e in train else 2) <= len(words) <= 7 and len(e["sources"]) == len(words)
            assert [prepare.WORDS[int(s[0])] for s in e["sources"]] == words
            assert all(int(s.split("_")[2].split(".")[0]) in takes for s in e["sources"])
            assert all(s.split("_")[1] == e["speaker"] for s in e["sources"])
            audio = tmp_path / e["audio_filepath"]
            import soundfile as sf
            assert sf.info(audio).duration == pytest.approx(e["duration"], abs=1e-3)


def test_heldout_speaker_never_reaches_train_or_dev(tmp_path):
    prepare.prepare(FSDD, tmp_path, {"george"}, {"train": 30, "dev": 10, "test": 60}, seed=7)
    for name in ("train", "dev", "test-isolated", "test-connected"):
        assert all(e["speaker"] != "george" for e in read(tmp_path / f"{name}.jsonl")), name
    heldout = read(tmp_path / "test-heldout-isolated.jsonl")  # every recording of theirs, each a test
    assert len(heldout) == 500 and {e["speaker"] for e in heldout} == {"george"}
    assert {take(e) for e in heldout} == set(range(50))
    connected = read(tmp_path / "test-heldout-connected.jsonl")
    assert len(connected) == 100 and {e["speaker"] for e in connected} == {"george"}
    # preparing again without a held-out speaker removes the stale held-out sets
    prepare.prepare(FSDD, tmp_path, set(), {"train": 3, "dev": 1, "test": 2}, seed=7)
    assert not list(tmp_path.glob("test-heldout-*.jsonl"))


def test_robustness_sets_are_built_from_the_official_test_takes(tmp_path):
    prepare.prepare(FSDD, tmp_path, set(), {"train": 3, "dev": 1, "test": 2}, seed=7,
                    conditions=["level-20dB", "telephone"])
    entries = read(tmp_path / "test-conditions.jsonl")
    isolated = read(tmp_path / "test-isolated.jsonl")
    assert len(entries) == 600 and [e["condition"] for e in entries] == ["level-20dB"] * 300 + ["telephone"] * 300
    assert [e["text"] for e in entries[:300]] == [e["text"] for e in isolated]
    assert all((tmp_path / e["audio_filepath"]).is_file() for e in entries)  # relative to the manifest's folder
    prepare.prepare(FSDD, tmp_path, set(), {"train": 3, "dev": 1, "test": 2}, seed=7)  # none asked: none left
    assert not (tmp_path / "test-conditions.jsonl").exists()


def test_preparation_is_deterministic(tmp_path):
    counts = {"train": 5, "dev": 2, "test": 3}
    prepare.prepare(FSDD, tmp_path / "a", set(), counts, seed=7)
    prepare.prepare(FSDD, tmp_path / "b", set(), counts, seed=7)
    for name in ("train", "dev", "test-connected"):
        assert (tmp_path / "a" / f"{name}.jsonl").read_text().replace("/a/", "/b/") == \
            (tmp_path / "b" / f"{name}.jsonl").read_text()
        assert (tmp_path / "a" / "wav" / "connected-train" / "connected-train-00004.wav").read_bytes() == \
            (tmp_path / "b" / "wav" / "connected-train" / "connected-train-00004.wav").read_bytes()


@pytest.mark.skipif(not all(shutil.which(p) for p in PROGRAMS.values()),
                    reason="speech engines not installed (recipes/synth/install_voices.sh)")
def test_synthetic_voices_add_digit_utterances_to_training_only(tmp_path):
    import soundfile as sf

    counts = {"train": 3, "dev": 2, "test": 6}
    prepare.prepare(FSDD, tmp_path, {"george"}, counts, seed=7, n_tts=16)
    train = read(tmp_path / "train.jsonl")
    tts = [e for e in train if "/tts-train/" in e["audio_filepath"]]
    assert len(train) == 5 * 10 * 43 + 3 + 16 and len(tts) == 16
    assert [len(e["text"].split()) == 1 for e in tts] == [True, False] * 8  # single digits and strings
    assert all(set(e["text"].split()) <= set(prepare.WORDS) and 2 <= len(e["text"].split()) <= 7
               for e in tts[1::2])
    assert len({e["speaker"] for e in tts}) > 8 and not {e["speaker"] for e in tts} & {"jackson", "theo"}
    for e in tts:
        info = sf.info(tmp_path / e["audio_filepath"])
        assert info.samplerate == 8000 and info.duration == pytest.approx(e["duration"], abs=1e-3)
        assert 0.2 < e["duration"] < 8.0
    for name in ("dev", "test-isolated", "test-connected", "test-heldout-isolated"):
        assert not any("tts" in e["audio_filepath"] for e in read(tmp_path / f"{name}.jsonl")), name
    # a rerun (an interrupted preparation resumed) keeps every synthesized file and the manifest
    stamps = {p: p.stat().st_mtime_ns for p in (tmp_path / "wav" / "tts-train").iterdir()}
    before = (tmp_path / "train.jsonl").read_text()
    prepare.prepare(FSDD, tmp_path, {"george"}, counts, seed=7, n_tts=16)
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "wav" / "tts-train").iterdir()} == stamps
    assert (tmp_path / "train.jsonl").read_text() == before


def test_synthetic_voices_by_default_only_for_held_out_speakers_and_installed_engines(monkeypatch, capsys):
    from asr import synthesis
    from asr.errors import AsrError

    assert prepare.tts_count("0", {"george"}) == 0 and prepare.tts_count("250", set()) == 250  # a count is a count
    for bad in ("some", "-3"):
        with pytest.raises(AsrError, match="--tts: expected a count"):
            prepare.tts_count(bad, set())
    monkeypatch.setattr(synthesis.shutil, "which", lambda program: f"/usr/bin/{program}")
    monkeypatch.setattr(synthesis, "mbrola_installed", lambda database: True)
    assert prepare.tts_count("auto", set()) == 0  # in-domain: the recipe's own speakers only
    assert prepare.tts_count("auto", {"george"}) == prepare.HELDOUT_TTS
    monkeypatch.setattr(synthesis.shutil, "which", lambda program: None if program == "flite" else f"/usr/bin/{program}")
    assert prepare.tts_count("auto", {"george"}) == 0
    assert "flite not installed" in capsys.readouterr().out
    monkeypatch.setattr(synthesis.shutil, "which", lambda program: f"/usr/bin/{program}")
    monkeypatch.setattr(synthesis, "mbrola_installed", lambda database: database != "de3")
    assert prepare.tts_count("auto", {"george"}) == 0
    assert "mbrola-de3 not installed" in capsys.readouterr().out


def test_bad_arguments_are_one_line_errors(tmp_path, capsys):
    assert prepare.main(["--data-dir", str(FSDD), "--out-dir", str(tmp_path), "--heldout-speakers", "bob"]) == 1
    assert "unknown speaker(s) bob" in capsys.readouterr().err
    assert prepare.main(["--data-dir", str(tmp_path / "none"), "--out-dir", str(tmp_path)]) == 1
    assert "--data-dir not found" in capsys.readouterr().err
    assert prepare.main(["--data-dir", str(FSDD), "--out-dir", str(tmp_path), "--tts", "many"]) == 1
    assert "--tts: expected a count or auto, got 'many'" in capsys.readouterr().err


def test_bad_recipe_options_are_refused_before_any_stage(tmp_path):
    expected = {"--vtln": "a number in [0, 0.5)", "--tts": "a count or auto", "--connected": "TRAIN,DEV,TEST counts",
                "--word-pieces": "a count"}
    for option, value in [("--vtln", "x"), ("--vtln", "0.7"), ("--vtln", "-0.1"), ("--tts", "many"),
                          ("--tts", "-5"), ("--connected", "1000,100"), ("--word-pieces", "all")]:
        result = subprocess.run(["bash", str(REPO / "recipes" / "fsdd" / "run.sh"), "--data-dir", str(FSDD),
                                 "--exp-dir", str(tmp_path / "exp"), option, value],
                                capture_output=True, text=True, timeout=60)
        assert result.returncode == 2 and f"{option}: expected {expected[option]}, got '{value}'" in result.stderr
        assert "stage" not in result.stdout and not (tmp_path / "exp").exists()


def test_held_out_speakers_train_with_the_whole_utterance_level(tmp_path):
    """With --heldout-speakers the recipe trains as the held-out table was measured (stage 3
    alone, without manifests: the command is shown, then refused)."""
    for extra, shown in [([], "stage 3: train epochs=1\n"),
                         (["--heldout-speakers", "george"], "stage 3: train features.level_window=0 epochs=1\n")]:
        result = subprocess.run(["bash", str(REPO / "recipes" / "fsdd" / "run.sh"), "--data-dir", str(FSDD),
                                 "--exp-dir", str(tmp_path / "exp"), *extra, "--stage", "3", "--stop-stage", "3",
                                 "--", "epochs=1"], capture_output=True, text=True, timeout=120)
        assert shown in result.stdout
        assert result.returncode == 1 and "train.jsonl: manifest not found" in result.stderr


@pytest.mark.slow
def test_run_sh_end_to_end_and_resumable(tmp_path):
    # a small copy of FSDD: two speakers, the takes each split needs
    data = tmp_path / "recordings"
    data.mkdir()
    for wav in FSDD.glob("*.wav"):
        digit, speaker, take_ = wav.stem.split("_")
        if speaker in ("jackson", "theo") and int(take_) in (0, 5, 7, 8, 9):
            os.symlink(wav, data / wav.name)
    exp = tmp_path / "exp"
    overrides = [o for o in TINY_OVERRIDES if not o.startswith("epochs=")] + ["epochs=1"]
    cmd = ["bash", str(REPO / "recipes" / "fsdd" / "run.sh"), "--data-dir", str(data), "--exp-dir", str(exp),
           "--connected", "8,2,4", "--conditions", "clean,level-20dB", "--word-pieces", "24", "--", *overrides]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    table = (exp / "RESULTS.md").read_text()
    assert "| test-isolated | greedy | 20 | 20 |" in table and "| test-connected | greedy | 4 |" in table
    assert "| test-conditions | greedy | 40 | 40 |" in table
    assert "| condition | utterances | test-conditions beam | test-conditions greedy |" in table
    assert any(line.startswith("| level-20dB | 20 |") for line in table.splitlines())
    beam_rows = [line for line in table.splitlines() if "| beam 16, LM lm.arpa" in line]
    assert len(beam_rows) == 3 and all("lexicon |" in line for line in beam_rows)
    assert all((exp / f".done.{n}").exists() for n in range(7))
    assert (exp / "lm.arpa").read_text().startswith("\\data\\") and (exp / "best.pt").is_file()
    # then 4 epochs to word pieces from that model, which stages 4-5 tuned and evaluated
    finetuned = yaml.safe_load((exp / "finetune" / "config.yaml").read_text())
    assert finetuned["units"] == {"kind": "bpe", "size": 24} and finetuned["epochs"] == 4
    assert finetuned["init_from"] == str(exp / "best.pt") and (exp / "finetune" / "best.decoder.json").is_file()
    assert "stage 3: fine-tune units.kind=bpe units.size=24 epochs=4 optim.lr=0.002" in result.stdout
    assert finetuned["optim"]["lr"] == 0.002
    lexicon = (exp / "lexicon.txt").read_text().split()
    assert lexicon == sorted(lexicon) and set(lexicon) <= set(prepare.WORDS)
    # a second run finds every stage done and does nothing
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert again.returncode == 0 and "stage" not in again.stdout
    # stages 4-6 again with the warp search: the tuned settings keep it and both decoders read with it
    split = cmd.index("--")
    vtln = subprocess.run(cmd[:split] + ["--stage", "4", "--vtln", "0.1"] + cmd[split:], capture_output=True,
                          text=True, timeout=600)
    assert vtln.returncode == 0, vtln.stderr
    assert json.loads((exp / "finetune" / "best.decoder.json").read_text())["settings"]["vtln"] == 0.1
    table = (exp / "RESULTS.md").read_text()
    assert "| test-isolated | greedy, VTLN 0.1 | 20 | 20 |" in table
    assert "stage 3" not in vtln.stdout and "Model: `" + str(exp / "finetune" / "best.pt") + "`" in table


def _zip(path: Path, members: dict[str, bytes]) -> str:
    import zipfile

    with zipfile.ZipFile(path, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    return path.as_uri()  # urllib reads file:// URLs: no network in tests


def test_download_unpacks_the_archive_and_refuses_escaping_members(tmp_path, monkeypatch):
    monkeypatch.setattr(prepare, "RECORDINGS", 1)  # a one-recording archive (the count: test_download.py)
    wav = (FSDD / "3_theo_7.wav").read_bytes()
    good = _zip(tmp_path / "good.zip", {"free-spoken-digit-dataset-master/recordings/3_theo_7.wav": wav})
    recordings = prepare.download(tmp_path / "dl", good)
    assert (recordings / "3_theo_7.wav").read_bytes() == wav
    assert prepare.download(tmp_path / "dl", "file:///nowhere") == recordings  # already there: no fetch
    evil = _zip(tmp_path / "evil.zip", {"../escaped.wav": wav})
    with pytest.raises(prepare.AsrError, match="refusing member with a '..' component"):
        prepare.download(tmp_path / "dl2", evil)
    assert not (tmp_path / "escaped.wav").exists()
    with pytest.raises(prepare.AsrError, match="cannot download .*--data-dir"):
        prepare.download(tmp_path / "dl3", (tmp_path / "missing.zip").as_uri())
