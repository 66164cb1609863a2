"""`asr lm build`, `asr tune-decoder` and the decoder flags of evaluate / transcribe, on real audio."""

import json

import pytest

from asr.cli import main
from asr.provenance import code_version
from conftest import WORDS, fsdd_file, write_fsdd_manifest
from test_cli import assert_one_line_error, run_asr, untrained_checkpoint


@pytest.fixture(scope="module")
def lm_files(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("lm")
    text = tmp / "text.txt"
    text.write_text("\n".join(["zero one two three six eight", "three eight six", "one two", "zero six eight"]) + "\n")
    assert main(["lm", "build", "--text", str(text), "--order", "2", "--out", str(tmp / "lm.arpa")]) == 0
    # the tiny model knows the letters of its six words only
    (tmp / "lexicon.txt").write_text("\n".join(WORDS[d] for d in (0, 1, 2, 3, 6, 8)) + "\n")
    return tmp / "lm.arpa", tmp / "lexicon.txt"


def test_lm_build_writes_an_arpa_file(lm_files, capsys):
    arpa, _ = lm_files
    text = arpa.read_text()
    assert text.startswith("\\data\\\nngram 1=9\n") and "\\2-grams:" in text  # 6 words, </s>, <unk>, <s>
    result = run_asr("lm", "build", "--text", arpa.parent / "missing.txt", "--out", arpa.parent / "x.arpa",
                     check=False)
    assert_one_line_error(result, "missing.txt", "not found")
    assert main(["lm", "build", "--text", str(arpa.parent / "text.txt"), "--out", str(arpa.parent / "z.arpa"),
                 "--lexicon", str(arpa.parent / "words.txt")]) == 0
    assert (arpa.parent / "words.txt").read_text() == "eight\none\nsix\nthree\ntwo\nzero\n"  # sorted, no <s> </s> <unk>
    import shutil

    if not shutil.which("build_binary"):
        result = run_asr("lm", "build", "--text", arpa.parent / "text.txt", "--out", arpa.parent / "y.arpa",
                         "--binary", arpa.parent / "y.bin", check=False)
        assert_one_line_error(result, "build_binary")


@pytest.mark.slow
def test_tune_then_evaluate_and_transcribe_use_the_tuned_settings(tiny_model, lm_files, tmp_path, capsys):
    checkpoint, manifest = tiny_model
    arpa, lexicon = lm_files
    assert main(["tune-decoder", "--model", str(checkpoint), "--manifest", str(manifest), "--lm", str(arpa),
                 "--lexicon", str(lexicon), "--lm-weights", "0,0.5", "--word-scores=-1,1", "--workers", "2"]) == 0
    out = capsys.readouterr().out
    assert "greedy: WER 0.00%" in out and out.count("\n   16 ") == 4 and "best: beam 16" in out
    saved = json.loads(checkpoint.with_name("best.decoder.json").read_text())
    assert saved["settings"]["decoder"] == "beam" and saved["dev_wer"] == 0.0
    assert (checkpoint.parent / saved["settings"]["lm"]).resolve() == arpa.resolve()

    assert main(["evaluate", "--model", str(checkpoint), "--manifest", str(manifest), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["decoder"].startswith("beam 16, LM lm.arpa") and summary["decoder"].endswith("lexicon")
    assert summary["wer"] == 0.0 and summary["model"] == str(checkpoint)
    assert summary["model_code"] == code_version()  # the code that trained it (the tiny model: this code)
    assert main(["evaluate", "--model", str(checkpoint), "--manifest", str(manifest), "--decoder", "greedy",
                 "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["decoder"] == "greedy"

    wav = fsdd_file(8, "jackson", 10)
    assert main(["transcribe", "--model", str(checkpoint), str(wav), "--json"]) == 0
    row = json.loads(capsys.readouterr().out)
    assert row["text"] == "eight" and [w["word"] for w in row["words"]] == ["eight"]
    word = row["words"][0]
    assert 0.0 <= word["start"] < word["end"] <= row["duration"]
    checkpoint.with_name("best.decoder.json").unlink()


@pytest.mark.slow
def test_word_timestamps_are_monotonic_and_inside_the_audio(tiny_model, lm_files, tmp_path, capsys):
    import numpy as np
    import soundfile as sf

    from asr.audio import load_audio

    checkpoint, _ = tiny_model
    # three real recordings with 0.3 s of silence between them
    pieces = [load_audio(fsdd_file(d, "jackson", 10), 8000) for d in (0, 3, 6)]
    gap = np.zeros(2400, dtype=np.float32)
    audio = np.concatenate([pieces[0], gap, pieces[1], gap, pieces[2]])
    wav = tmp_path / "three.wav"
    sf.write(wav, audio, 8000)
    _, lexicon = lm_files
    # The tiny model never heard two words in a row, so it emits no spaces and reads the
    # first digit or more as one long word: what is checked here is the timing, not the words.
    for flags in (["--lexicon", str(lexicon)], ["--decoder", "greedy"]):
        assert main(["transcribe", "--model", str(checkpoint), str(wav), "--json", *flags]) == 0
        row = json.loads(capsys.readouterr().out)
        words = row["words"]
        assert [w["word"] for w in words] == row["text"].split() and words
        times = [t for w in words for t in (w["start"], w["end"])]
        assert times == sorted(times) and times[0] >= 0.0 and times[-1] <= row["duration"]
        assert all(w["end"] > w["start"] for w in words)
        # speech starts in the first recording and ends in the last
        assert words[0]["start"] < len(pieces[0]) / 8000
        assert words[-1]["end"] > len(pieces[0]) / 8000 * 0.8  # the first digit, at least, is covered


@pytest.mark.slow
def test_hotwords_and_nbest_through_the_cli(tiny_model, capsys):
    checkpoint, _ = tiny_model
    wav = fsdd_file(3, "jackson", 10)
    assert main(["transcribe", "--model", str(checkpoint), str(wav), "--json", "--decoder", "beam",
                 "--nbest", "3"]) == 0
    row = json.loads(capsys.readouterr().out)
    assert row["text"] == "three" and row["nbest"][0]["text"] == "three" and len(row["nbest"]) == 3
    scores = [h["score"] for h in row["nbest"]]
    assert scores == sorted(scores, reverse=True)
    # a strong enough boost pulls the runner-up in
    runner_up = row["nbest"][1]["text"]
    if runner_up:
        assert main(["transcribe", "--model", str(checkpoint), str(wav), "--hotwords", runner_up,
                     "--hotword-weight", "100"]) == 0
        assert capsys.readouterr().out.strip() == runner_up


@pytest.mark.parametrize("flags, needles", [
    (["--decoder", "beam", "--beam-size", "0"], ["beam size must be at least 1"]),
    (["--lm", "{t}/missing.arpa"], ["missing.arpa", "language model not found"]),
    (["--lm", "{t}/bad.arpa"], ["bad.arpa", "not a complete ARPA"]),
    (["--lm", "{t}/bad.arpa", "--lexicon", "{t}/one.txt"], ["bad.arpa", "KenLM"]),
    (["--lexicon", "{t}/lexicon.txt"], ["lexicon word 'caf\u00e9'", "outside the model's vocabulary"]),
    (["--lexicon", "{t}/missing.txt"], ["missing.txt", "lexicon not found"]),
    (["--decoder", "greedy", "--lm", "{t}/bad.arpa"], ["need --decoder beam"]),
])
def test_bad_decoder_input_is_one_line(tmp_path, flags, needles):
    (tmp_path / "bad.arpa").write_text("\\data\\\nngram 1=1\n\n\\1-grams:\n-1.0\tone\n")
    (tmp_path / "lexicon.txt").write_text("one\ncaf\u00e9\n")
    (tmp_path / "one.txt").write_text("one\n")
    checkpoint = untrained_checkpoint(tmp_path / "untrained.pt")
    flags = [f.format(t=tmp_path) for f in flags]
    result = run_asr("transcribe", "--model", checkpoint, fsdd_file(1), *flags, check=False)
    assert_one_line_error(result, *needles)
    manifest = write_fsdd_manifest(tmp_path / "m.jsonl", [(1, "jackson", 10)])
    result = run_asr("evaluate", "--model", checkpoint, "--manifest", manifest, *flags, check=False)
    assert_one_line_error(result, *needles)


def test_a_reader_that_goes_away_ends_the_command_quietly(lm_files, tmp_path):
    """`asr ... | head -1`: the output pipe closes early; no traceback, exit 141 (as SIGPIPE), work kept."""
    import subprocess
    import sys

    arpa, _ = lm_files
    out = tmp_path / "lm.arpa"
    process = subprocess.Popen([sys.executable, "-m", "asr", "lm", "build", "--text", str(arpa.parent / "text.txt"),
                                "--out", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    process.stdout.close()  # before it writes a word
    assert process.wait(timeout=60) == 141
    assert process.stderr.read() == b"" and out.read_text().startswith("\\data\\")
