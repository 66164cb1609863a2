"""Every recipe's data preparation, on fixtures written here in the corpus's own layout and
audio format (FLAC, SPHERE, big-endian raw, STM, MP3 + TSV, metadata.csv, YESNO names),
and on the real LibriSpeech sample in ../shared/data. Manifests are checked line by line."""

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from asr.config import load_train_config
from asr.corpus import Conversion, convert_all
from asr.data import read_manifest
from asr.errors import AsrError
from asr.features import FeatureExtractor
from conftest import LIBRISPEECH, REPO, load_recipe


def read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def tone(seconds: float, rate: int, freq: float = 220.0) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


# --- LibriSpeech ------------------------------------------------------------------------------

@pytest.mark.skipif(not LIBRISPEECH.is_dir(), reason="LibriSpeech sample not found")
def test_librispeech_real_sample(tmp_path):
    ls = load_recipe("librispeech")
    # the sample's transcript files have no final newline; --data-dir may name LibriSpeech/ or its parent
    assert ls.main(["--data-dir", str(LIBRISPEECH.parent), "--out-dir", str(tmp_path),
                    "--train", "test-clean", "--dev", "test-clean", "--test", "test-clean"]) == 0
    expected = {}
    for trans in sorted(LIBRISPEECH.glob("test-clean/*/*/*.trans.txt")):
        for line in trans.read_text().splitlines():
            utt, text = line.split(" ", 1)
            expected[utt] = (trans.parent / f"{utt}.flac", text.lower())
    entries = read(tmp_path / "test-test-clean.jsonl")
    assert len(entries) == len(expected) == 4
    for e in entries:
        audio, text = expected[Path(e["audio_filepath"]).stem]
        assert Path(e["audio_filepath"]) == audio.resolve() and e["text"] == text and e["speaker"] == "1089"
        assert e["duration"] == pytest.approx(sf.info(audio).duration, abs=1e-3)
    assert read(tmp_path / "train.jsonl") == entries == read(tmp_path / "dev.jsonl")
    assert len(read_manifest(tmp_path / "train.jsonl")) == 4  # the toolkit reads what it wrote
    assert entries[1]["text"] == "stuff it into you his belly counselled him"  # the line without a newline


def _librispeech_fixture(root: Path, part: str, speaker: str, chapter: str, texts: list[str]) -> None:
    folder = root / "LibriSpeech" / part / speaker / chapter
    folder.mkdir(parents=True)
    lines = []
    for n, text in enumerate(texts):
        utt = f"{speaker}-{chapter}-{n:04d}"
        sf.write(folder / f"{utt}.flac", tone(0.5 + n / 10, 16000), 16000, format="FLAC")
        lines.append(f"{utt} {text}")
    (folder / f"{speaker}-{chapter}.trans.txt").write_text("\n".join(lines) + "\n")


def test_librispeech_parts_splits_and_resume(tmp_path):
    ls = load_recipe("librispeech")
    data = tmp_path / "corpus"
    _librispeech_fixture(data, "train-clean-5", "19", "198", ["NORTHANGER ABBEY", "CHAPTER ONE"])
    _librispeech_fixture(data, "dev-clean-2", "84", "121", ["WHAT IS IT"])
    out = tmp_path / "out"
    assert ls.main(["--data-dir", str(data), "--out-dir", str(out), "--train", "train-clean-5",
                    "--dev", "dev-clean-2", "--test", "dev-clean-2"]) == 0
    train = read(out / "train.jsonl")
    assert [e["text"] for e in train] == ["northanger abbey", "chapter one"]
    assert [e["duration"] for e in train] == [0.5, 0.6]
    assert [e["text"] for e in read(out / "test-dev-clean-2.jsonl")] == ["what is it"]
    # a rerun reuses the cached parts and writes the same manifests
    before = (out / "train.jsonl").read_text()
    (out / "parts" / "dev-clean-2.jsonl").unlink()  # as if interrupted before this part
    assert ls.main(["--data-dir", str(data), "--out-dir", str(out), "--train", "train-clean-5",
                    "--dev", "dev-clean-2", "--test", "dev-clean-2"]) == 0
    assert (out / "train.jsonl").read_text() == before and (out / "parts" / "dev-clean-2.jsonl").is_file()


def test_librispeech_errors_name_the_file_and_line(tmp_path, capsys):
    ls = load_recipe("librispeech")
    data = tmp_path / "corpus"
    _librispeech_fixture(data, "train-clean-5", "19", "198", ["ONE", "TWO"])
    (data / "LibriSpeech/train-clean-5/19/198/19-198-0001.flac").unlink()
    assert ls.main(["--data-dir", str(data), "--out-dir", str(tmp_path / "o"), "--train", "train-clean-5",
                    "--dev", "train-clean-5", "--test", "train-clean-5"]) == 1
    err = capsys.readouterr().err
    assert "19-198.trans.txt:2: audio file not found" in err and err.count("\n") == 1
    assert ls.main(["--data-dir", str(data), "--out-dir", str(tmp_path / "o"), "--train", "train-clean-9"]) == 1
    assert "unknown LibriSpeech part(s) train-clean-9" in capsys.readouterr().err
    assert ls.main(["--data-dir", str(data), "--out-dir", str(tmp_path / "o"), "--train", "dev-clean",
                    "--dev", "dev-clean", "--test", "dev-clean"]) == 1
    assert "dev-clean: LibriSpeech part not found" in capsys.readouterr().err


# --- AN4 -----------------------------------------------------------------------------------------

def _an4_fixture(root: Path, raw: bool) -> dict:
    """Five training speakers, one test speaker; SPHERE files or headerless big-endian raw."""
    etc = root / "an4" / "etc"
    etc.mkdir(parents=True)
    texts = {}
    splits = {"train": [("fash", "an251-fash-b", "<s> RUBOUT G M E F THREE NINE </s>"),
                        ("fbbh", "cen1-fbbh-b", "<s> YES </s>"),
                        ("fclc", "an76-fclc-b", "<s> ENTER SIX TWO </s>"),
                        ("fejs", "cen2-fejs-b", "<s> NO </s>"),
                        ("ffmm", "cen3-ffmm-b", "<s> GO </s>")],
              "test": [("fcaw", "an406-fcaw-b", "<s> RUBOUT N Z V C FIFTY FOUR </s>"),
                       ("fcaw", "cen7-fcaw-b", "FIVE SIX")]}  # some test lines lack <s> </s>
    for split, items in splits.items():
        folder = "an4_clstk" if split == "train" else "an4test_clstk"
        (etc / f"an4_{split}.transcription").write_text("".join(f"{t} ({u})\n" for _, u, t in items))
        (etc / f"an4_{split}.fileids").write_text("".join(f"{folder}/{s}/{u}\n" for s, u, _ in items))
        for n, (speaker, utt, text) in enumerate(items):
            audio = tone(0.4 + n / 20, 16000)
            wav = root / "an4" / "wav" / folder / speaker
            wav.mkdir(parents=True, exist_ok=True)
            if raw:
                (wav / f"{utt}.raw").write_bytes((audio * 32767).astype(">i2").tobytes())
            else:
                sf.write(wav / f"{utt}.sph", audio, 16000, format="NIST", subtype="PCM_16")
            texts[utt] = text.replace("<s>", "").replace("</s>", "").strip().lower()
    return texts


@pytest.mark.parametrize("raw", [False, True], ids=["sphere", "raw-bigendian"])
def test_an4(tmp_path, raw):
    an4 = load_recipe("an4")
    texts = _an4_fixture(tmp_path / "corpus", raw)
    out = tmp_path / "out"
    assert an4.main(["--data-dir", str(tmp_path / "corpus"), "--out-dir", str(out)]) == 0
    train, dev, test = (read(out / f"{n}.jsonl") for n in ("train", "dev", "test-an4"))
    assert [e["speaker"] for e in train] == ["fash", "fbbh"] and [e["speaker"] for e in dev] == ["fclc", "fejs", "ffmm"]
    assert [e["text"] for e in test] == ["rubout n z v c fifty four", "five six"]
    for e in train + dev + test:
        utt = Path(e["audio_filepath"]).stem
        assert e["text"] == texts[utt]
        assert Path(e["audio_filepath"]).suffix == (".wav" if raw else ".sph")
        samples, rate = sf.read(e["audio_filepath"])
        assert rate == 16000 and e["duration"] == pytest.approx(len(samples) / 16000, abs=1e-4)
        expected = tone(e["duration"], 16000)
        assert np.abs(samples - expected[: len(samples)]).max() < 1e-3  # big-endian read as such
    first = (out / "train.jsonl").read_text()
    assert an4.main(["--data-dir", str(tmp_path / "corpus"), "--out-dir", str(out)]) == 0
    assert (out / "train.jsonl").read_text() == first  # idempotent


def test_an4_errors(tmp_path, capsys):
    an4 = load_recipe("an4")
    _an4_fixture(tmp_path / "corpus", raw=False)
    etc = tmp_path / "corpus" / "an4" / "etc"
    (etc / "an4_test.fileids").write_text("an4test_clstk/fcaw/an999-fcaw-b\n")
    assert an4.main(["--data-dir", str(tmp_path / "corpus"), "--out-dir", str(tmp_path / "o")]) == 1
    assert "an4_test.fileids:1: an999-fcaw-b has no line in an4_test.transcription" in capsys.readouterr().err
    (etc / "an4_test.transcription").write_text("no utterance id here\n")
    assert an4.main(["--data-dir", str(tmp_path / "corpus"), "--out-dir", str(tmp_path / "o")]) == 1
    assert "an4_test.transcription:1: expected" in capsys.readouterr().err


# --- TED-LIUM 3 ----------------------------------------------------------------------------------

STM = """\
TalkA 1 TalkA 0.00 1.50 <o,f0,male> i 'm here today to <unk> show
TalkA 1 inter_segment_gap 1.50 2.00 <o,,unknown> ignore_time_segment_in_scoring
TalkA 1 TalkA 2.00 3.25 <o,f0,male> it 's {NOISE} the lakota
TalkA 1 TalkA 3.25 3.50 <o,f0,male> <unk>
"""


def _tedlium_fixture(root: Path) -> None:
    base = root / "TEDLIUM_release-3"
    for folder in (base / "data", base / "legacy" / "dev", base / "legacy" / "test"):
        (folder / "stm").mkdir(parents=True)
        (folder / "sph").mkdir(parents=True)
        sf.write(folder / "sph" / "TalkA.sph", tone(4.0, 16000), 16000, format="NIST", subtype="PCM_16")
        (folder / "stm" / "TalkA.stm").write_text(STM)


def test_tedlium_segments_stm_and_resumes(tmp_path, monkeypatch):
    ted = load_recipe("tedlium")
    _tedlium_fixture(tmp_path / "corpus")
    out = tmp_path / "out"
    # interrupt the first run after three cut segments
    import asr.corpus
    real, done = asr.corpus.convert, []

    def flaky(job):
        if len(done) == 3:
            raise KeyboardInterrupt
        done.append(job.target)
        return real(job)

    monkeypatch.setattr(asr.corpus, "convert", flaky)
    with pytest.raises(KeyboardInterrupt):
        ted.prepare(tmp_path / "corpus", out)
    assert not list(out.glob("*.jsonl")) and not list(out.rglob("*.tmp"))
    monkeypatch.setattr(asr.corpus, "convert", real)
    written = {p: p.stat().st_mtime_ns for p in done}
    assert ted.main(["--data-dir", str(tmp_path / "corpus"), "--out-dir", str(out)]) == 0
    assert all(p.stat().st_mtime_ns == t for p, t in written.items())  # kept, not cut again
    for name in ("train", "dev", "test-tedlium"):
        entries = read(out / f"{name}.jsonl")
        assert [e["text"] for e in entries] == ["i'm here today to show", "it's the lakota"]
        assert [e["duration"] for e in entries] == [1.5, 1.25]
        assert [Path(e["audio_filepath"]).name for e in entries] == ["TalkA-0000000-0000150.wav",
                                                                       "TalkA-0000200-0000325.wav"]
        samples, rate = sf.read(entries[1]["audio_filepath"])
        assert rate == 16000 and np.abs(samples - tone(4.0, 16000)[32000:52000]).max() < 1e-3
    assert len(list(out.rglob("*.wav"))) == 6


def test_tedlium_errors(tmp_path, capsys):
    ted = load_recipe("tedlium")
    _tedlium_fixture(tmp_path / "corpus")
    stm = tmp_path / "corpus/TEDLIUM_release-3/legacy/dev/stm/TalkA.stm"
    stm.write_text("TalkA 1 TalkA zero 1.0 <o,f0,male> words\n")
    assert ted.main(["--data-dir", str(tmp_path / "corpus"), "--out-dir", str(tmp_path / "o")]) == 1
    assert "TalkA.stm:1: start/end times are not numbers" in capsys.readouterr().err
    stm.write_text(STM)
    (tmp_path / "corpus/TEDLIUM_release-3/legacy/test/sph/TalkA.sph").unlink()
    assert ted.main(["--data-dir", str(tmp_path / "corpus"), "--out-dir", str(tmp_path / "o")]) == 1
    assert "its audio file is missing" in capsys.readouterr().err


# --- Common Voice --------------------------------------------------------------------------------

CV_HEADER = "client_id\tpath\tsentence_id\tsentence\tsentence_domain\tup_votes\tdown_votes\tage\tgender\taccents\tvariant\tlocale\tsegment\n"


def _cv_fixture(root: Path) -> None:
    clips = root / "clips"
    clips.mkdir(parents=True)
    rows = {"train": [("spk1", "common_voice_en_1.mp3", 'He said "hello" to me.'),
                      ("spk2", "common_voice_en_2.mp3", "It's 5 o'clock")],
            "dev": [("spk3", "common_voice_en_3.mp3", "Where is the station?")],
            "test": [("spk4", "common_voice_en_4.mp3", "Café au lait, s'il vous plaît.")]}
    rows["validated"] = rows["train"] + rows["dev"] + rows["test"] + [
        ("spk5", "common_voice_en_5.mp3", "A new sentence."),
        ("spk3", "common_voice_en_6.mp3", "Said by a dev speaker."),
        ("spk6", "common_voice_en_7.mp3", "Where is the station?")]
    for n, (_, clip, _) in enumerate(rows["validated"]):
        sf.write(clips / clip, tone(1.0 + n / 10, 48000, 200 + 50 * n), 48000, format="MP3")
    for name, items in rows.items():
        (root / f"{name}.tsv").write_text(CV_HEADER + "".join(
            f"{c}\t{p}\tid\t{s}\t\t2\t0\t\t\t\t\ten\t\n" for c, p, s in items), encoding="utf-8")


def test_common_voice_mp3_and_tsv(tmp_path):
    cv = load_recipe("commonvoice")
    _cv_fixture(tmp_path / "en")
    out = tmp_path / "out"
    assert cv.main(["--data-dir", str(tmp_path / "en"), "--out-dir", str(out)]) == 0
    train = read(out / "train.jsonl")
    assert [e["text"] for e in train] == ['He said "hello" to me.', "It's 5 o'clock"]  # quotes are text
    assert [e["speaker"] for e in train] == ["spk1", "spk2"]
    assert [e["text"] for e in read(out / "test-commonvoice.jsonl")] == ["Café au lait, s'il vous plaît."]
    for e in train:
        samples, rate = sf.read(e["audio_filepath"])
        assert rate == 16000 and Path(e["audio_filepath"]).suffix == ".wav"
        assert e["duration"] == pytest.approx(len(samples) / 16000, abs=1e-4)
    assert train[0]["duration"] == pytest.approx(1.0, abs=0.06)  # MP3 adds a few ms of padding
    texts = [u.text for u in read_manifest(out / "train.jsonl")]
    assert texts == ["he said hello to me", "it's five o'clock"]
    # validated.tsv minus dev/test clips, speakers and sentences
    assert cv.main(["--data-dir", str(tmp_path / "en"), "--out-dir", str(out), "--train-from", "validated"]) == 0
    assert [e["text"] for e in read(out / "train.jsonl")] == [
        'He said "hello" to me.', "It's 5 o'clock", "A new sentence."]


def test_common_voice_errors(tmp_path, capsys):
    cv = load_recipe("commonvoice")
    _cv_fixture(tmp_path / "en")
    (tmp_path / "en" / "clips" / "common_voice_en_3.mp3").unlink()
    assert cv.main(["--data-dir", str(tmp_path / "en"), "--out-dir", str(tmp_path / "o")]) == 1
    assert "dev.tsv:2: audio file not found" in capsys.readouterr().err
    (tmp_path / "en" / "clips" / "common_voice_en_3.mp3").write_bytes(b"not an mp3")
    assert cv.main(["--data-dir", str(tmp_path / "en"), "--out-dir", str(tmp_path / "o")]) == 1
    assert "common_voice_en_3.mp3: not a readable audio file" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # no automatic download: --data-dir is required
        cv.main(["--out-dir", str(tmp_path / "o")])


# --- LJSpeech ------------------------------------------------------------------------------------

def test_ljspeech_metadata_and_resampling(tmp_path):
    lj = load_recipe("ljspeech")
    root = tmp_path / "LJSpeech-1.1"
    (root / "wavs").mkdir(parents=True)
    lines = []
    for n in range(20):
        clip = f"LJ001-{n + 1:04d}"
        sf.write(root / "wavs" / f"{clip}.wav", tone(0.5, 22050), 22050, subtype="PCM_16")
        lines.append(f'{clip}|Printing, in the only sense with which we are at present concerned, "{n}"|'
                     f'Printing, in the only sense with which we are at present concerned, "{n}"')
    (root / "metadata.csv").write_text("\n".join(lines) + "\n")
    out = tmp_path / "out"
    assert lj.main(["--data-dir", str(tmp_path), "--out-dir", str(out)]) == 0
    train, dev, test = (read(out / f"{n}.jsonl") for n in ("train", "dev", "test-ljspeech"))
    assert (len(train), len(dev), len(test)) == (16, 2, 2)
    ids = sorted(Path(e["audio_filepath"]).stem for e in train + dev + test)
    assert ids == [f"LJ001-{n + 1:04d}" for n in range(20)]
    for e in train + dev + test:
        n = int(Path(e["audio_filepath"]).stem[-4:]) - 1
        assert e["text"].endswith(f'concerned, "{n}"') and e["speaker"] == "LJ"
        assert sf.info(e["audio_filepath"]).samplerate == 16000 and e["duration"] == pytest.approx(0.5, abs=1e-3)
    (root / "metadata.csv").write_text("LJ001-0001|only two fields\n")
    with pytest.raises(AsrError, match=r"metadata.csv:1: expected 'id\|raw text\|normalized text'"):
        lj.prepare(tmp_path, out)


# --- YESNO ---------------------------------------------------------------------------------------

def test_yesno_names_become_words(tmp_path):
    yesno = load_recipe("yesno")
    root = tmp_path / "waves_yesno"
    root.mkdir()
    names = [f"{n >> 7 & 1}_{n >> 6 & 1}_{n >> 5 & 1}_{n >> 4 & 1}_{n >> 3 & 1}_{n >> 2 & 1}_{n >> 1 & 1}_{n & 1}"
             for n in range(0, 256, 13)][:16]
    for name in names:
        sf.write(root / f"{name}.wav", tone(0.3, 8000), 8000, subtype="PCM_16")
    (root / "README").write_text("not a recording")
    out = tmp_path / "out"
    assert yesno.main(["--data-dir", str(tmp_path), "--out-dir", str(out)]) == 0
    train, dev, test = (read(out / f"{n}.jsonl") for n in ("train", "dev", "test-yesno"))
    assert (len(train), len(dev), len(test)) == (2, 6, 8)
    for e in train + dev + test:
        bits = Path(e["audio_filepath"]).stem.split("_")
        assert e["text"].split() == ["yes" if b == "1" else "no" for b in bits]
    assert Path(test[0]["audio_filepath"]).stem == sorted(names)[1]


# --- shared helpers ------------------------------------------------------------------------------

def test_conversion_is_atomic_and_kept(tmp_path):
    source = tmp_path / "in.wav"
    sf.write(source, tone(1.0, 8000), 8000)
    jobs = [Conversion(source, tmp_path / "out" / f"{n}.wav", 16000, start=n / 10, end=n / 10 + 0.5) for n in range(3)]
    assert convert_all(jobs) == [0.5, 0.5, 0.5]
    assert sf.info(jobs[0].target).samplerate == 16000 and not list(tmp_path.rglob("*.tmp"))
    jobs[0].target.write_bytes(b"")  # an existing target is never rewritten...
    with pytest.raises(AsrError):  # ...so a damaged one is reported, not silently replaced
        convert_all(jobs[:1])


# --- run.sh --------------------------------------------------------------------------------------

RECIPES = sorted(p.parent.name for p in (REPO / "recipes").glob("*/run.sh"))


def test_every_recipe_has_the_same_interface():
    assert RECIPES == ["an4", "commonvoice", "fsdd", "librispeech", "ljspeech", "mini_librispeech", "synth",
                       "tedlium", "yesno"]
    for name in RECIPES:
        run_sh = REPO / "recipes" / name / "run.sh"
        help_ = subprocess.run(["bash", str(run_sh), "--help"], capture_output=True, text=True, timeout=30)
        assert help_.returncode == 0 and "--data-dir DIR --exp-dir DIR" in help_.stdout, name
        bad = subprocess.run(["bash", str(run_sh), "--no-such-option"], capture_output=True, text=True, timeout=30)
        assert bad.returncode == 2 and "unknown option --no-such-option" in bad.stderr, name
        assert (REPO / "recipes" / name / "conf.yaml").is_file() and (REPO / "recipes" / name / "RESULTS.md").is_file()


@pytest.mark.parametrize("name", RECIPES)
def test_recipe_config_loads(name):
    """Every key of a recipe's conf.yaml is one the trainer knows, and its features are ones the
    feature extractor accepts (its own checks: kind, normalization, MFCC count)."""
    config = load_train_config(str(REPO / "recipes" / name / "conf.yaml"))
    assert config.epochs > 0 and FeatureExtractor(config.features).dim > 0


@pytest.mark.slow
def test_yesno_run_sh_end_to_end(tmp_path):
    root = tmp_path / "waves_yesno"
    root.mkdir()
    rng = np.random.default_rng(0)
    for n in range(0, 256, 8):
        bits = [n >> k & 1 for k in range(7, -1, -1)]
        # "yes" a high tone, "no" a low one, with silence between: learnable in a few epochs
        audio = np.concatenate([np.concatenate([tone(0.25, 8000, 600 if b else 200), np.zeros(800, np.float32)])
                                for b in bits]) + rng.normal(0, 0.01, 8 * 2800).astype(np.float32)
        sf.write(root / ("_".join(map(str, bits)) + ".wav"), audio, 8000, subtype="PCM_16")
    exp = tmp_path / "exp"
    cmd = ["bash", str(REPO / "recipes" / "yesno" / "run.sh"), "--data-dir", str(root), "--exp-dir", str(exp),
           "--", "epochs=3", "log_every=1000"]
    env = {**os.environ, "beam_sizes": "4,8"}  # a recipe's tune grid, as recipes/synth/run.sh sets it
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert result.returncode == 0, result.stderr
    table = (exp / "RESULTS.md").read_text()
    assert "| test-yesno | greedy | 16 | 128 |" in table and "lexicon |" in table
    rows = [line.split() for line in (exp / "tune.log").read_text().splitlines()]
    assert {row[0] for row in rows if len(row) == 5 and row[0].isdigit()} == {"4", "8"}
    assert (exp / "lexicon.txt").read_text().split() == ["no", "yes"]
    assert all((exp / f".done.{n}").exists() for n in range(7))
