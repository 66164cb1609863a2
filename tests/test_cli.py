"""The `asr` command end to end on real FSDD audio, and its one-line errors."""

import json
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from asr.audio import load_audio, resample
from asr.cli import main
from conftest import OVERFIT_ITEMS, TINY_OVERRIDES, WORDS, fsdd_file, write_fsdd_manifest


def untrained_checkpoint(path, normalize="utterance"):
    from asr.checkpoint import save_checkpoint
    from asr.recognizer import Recognizer
    from asr.config import FeatureConfig, ModelConfig
    from asr.features import FeatureExtractor
    from asr.model import CTCModel
    from asr.text import Vocabulary

    features = FeatureExtractor(FeatureConfig(sample_rate=8000, n_mels=16, normalize=normalize))
    vocab = Vocabulary.from_texts(["one"])
    model = CTCModel(ModelConfig(hidden_size=8, num_layers=1, conv_channels=8), features.dim, len(vocab))
    save_checkpoint(path, Recognizer(features, model, vocab))
    return path


def run_asr(*args, check=True):
    result = subprocess.run([sys.executable, "-m", "asr", *map(str, args)], capture_output=True, text=True,
                            timeout=300)
    if check:
        assert result.returncode == 0, result.stderr
    return result


def assert_one_line_error(result, *needles):
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("asr: error: "), result.stderr
    for needle in needles:
        assert str(needle) in lines[0]


@pytest.mark.parametrize("command", ["train", "evaluate", "transcribe", "tune-decoder"])
def test_every_subcommand_has_help_with_an_example(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    assert "example:" in capsys.readouterr().out


@pytest.mark.slow
def test_train_evaluate_transcribe_end_to_end(tmp_path):
    manifest = write_fsdd_manifest(tmp_path / "six.jsonl", OVERFIT_ITEMS)
    exp = tmp_path / "exp"
    overrides = [o for o in TINY_OVERRIDES if not o.startswith("epochs=")] + ["epochs=2"]
    run_asr("train", *overrides, f"exp_dir={exp}", f"data.train_manifest={manifest}",
            f"data.dev_manifest={manifest}", "--no-progress")
    for name in ("best.pt", "last.pt", "train.log", "config.yaml"):
        assert (exp / name).is_file()
    result = run_asr("evaluate", "--model", exp / "best.pt", "--manifest", manifest, "--json")
    summary = json.loads(result.stdout)
    assert summary["utterances"] == 6 and summary["words"] == 6
    result = run_asr("transcribe", "--model", exp / "best.pt", fsdd_file(0), fsdd_file(1), "--json")
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [x["path"] for x in lines] == [str(fsdd_file(0)), str(fsdd_file(1))]


@pytest.mark.slow
def test_evaluate_prints_summary_and_writes_report(tiny_model, tmp_path, capsys):
    checkpoint, manifest = tiny_model
    report = tmp_path / "report.jsonl"
    assert main(["evaluate", "--model", str(checkpoint), "--manifest", str(manifest), "--report", str(report)]) == 0
    out = capsys.readouterr().out
    assert "WER 0.00%" in out and "6 utterances, 6 words" in out and "0 sub, 0 del, 0 ins" in out
    rows = [json.loads(line) for line in report.read_text().splitlines()]
    assert [r["reference"] for r in rows] == [r["hypothesis"] for r in rows] == [WORDS[d] for d, _, _ in OVERFIT_ITEMS]
    assert {"audio_filepath", "errors"} <= rows[0].keys()
    assert main(["evaluate", "--model", str(checkpoint), "--manifest", str(manifest), "--report", str(report),
                 "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["wer"] == 0.0 and summary["cer"] == 0.0 and summary["substitutions"] == 0


@pytest.mark.slow
def test_transcribe_any_format_and_rate(tiny_model, tmp_path, capsys):
    checkpoint, _ = tiny_model
    wav = fsdd_file(8, "jackson", 10)
    assert main(["transcribe", "--model", str(checkpoint), str(wav)]) == 0
    assert capsys.readouterr().out.strip() == "eight"
    # the same speech as 16 kHz stereo FLAC: resampled and mixed down to the same words
    audio = resample(load_audio(wav, 8000), 8000, 16000)
    flac = tmp_path / "eight.flac"
    sf.write(flac, np.stack([audio, audio], axis=1), 16000)
    three = fsdd_file(3, "jackson", 10)
    assert main(["transcribe", "--model", str(checkpoint), str(flac), str(three), "--json"]) == 0
    out = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [o["text"] for o in out] == ["eight", "three"]
    assert out[0]["duration"] == pytest.approx(len(audio) / 16000, abs=1e-3)


def test_same_speaker_files_are_normalized_by_their_common_mean(tmp_path, capsys):
    """transcribe --same-speaker scores files exactly as evaluate scores a manifest that gives
    them one speaker; without it, as one that gives each file its own."""
    import torch

    from asr.checkpoint import load_checkpoint
    from asr.decoding import GreedyDecoder
    from asr.evaluate import manifest_log_probs
    from asr.transcribe import transcribe_files

    torch.manual_seed(0)
    recognizer = load_checkpoint(untrained_checkpoint(tmp_path / "spk.pt", normalize="speaker"))
    files = [fsdd_file(1, "theo", 3), fsdd_file(7, "theo", 4)]
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF....WAVEfmt garbage" * 3)
    greedy = GreedyDecoder(recognizer.vocab)
    for same, speakers in [(True, ["theo", "theo"]), (False, [None, None])]:
        manifest = tmp_path / f"{same}.jsonl"
        manifest.write_text("".join(json.dumps({"audio_filepath": str(f), "text": "one",
                                                **({"speaker": who} if who else {})}) + "\n"
                                    for f, who in zip(files, speakers)))
        _, outputs = manifest_log_probs(recognizer, manifest, num_workers=0)
        got = transcribe_files(recognizer, [files[0], corrupt, files[1]], greedy, same_speaker=same)
        assert got[1].error and "not a readable audio file" in got[1].error
        scores = [t.nbest[0].score for t in (got[0], got[2])]
        assert scores == pytest.approx([greedy.search(lp)[0].score for lp in outputs], rel=1e-5)
        if same:
            together = scores
    assert together != pytest.approx(scores, rel=1e-3)  # the common mean is not each file's own
    assert main(["transcribe", "--model", str(tmp_path / "spk.pt"), *map(str, files), "--same-speaker"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 2


@pytest.mark.slow
def test_bad_audio_is_reported_and_the_rest_still_transcribed(tiny_model, tmp_path):
    checkpoint, _ = tiny_model
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF....WAVEfmt garbage" * 3)
    result = run_asr("transcribe", "--model", checkpoint, fsdd_file(6, "jackson", 10), corrupt, check=False)
    assert result.returncode == 1
    assert result.stdout.strip() == f"{fsdd_file(6, 'jackson', 10)}\tsix"
    assert_one_line_error(result, corrupt, "not a readable audio file")
    result = run_asr("transcribe", "--model", checkpoint, tmp_path / "missing.wav", check=False)
    assert result.stdout == ""
    assert_one_line_error(result, tmp_path / "missing.wav", "not found")


@pytest.mark.parametrize("make_args, needles", [
    (lambda t, ck, m: ["transcribe", "--model", t / "empty.wav", m], ["empty.wav", "damaged or not an asr"]),
    (lambda t, ck, m: ["evaluate", "--model", ck, "--manifest", t / "nope.jsonl"], ["nope.jsonl", "not found"]),
    (lambda t, ck, m: ["evaluate", "--model", ck, "--manifest", t / "broken.jsonl"], ["broken.jsonl:1", "'text'"]),
    (lambda t, ck, m: ["evaluate", "--model", ck, "--manifest", t / "corrupt.jsonl"],  # read in a loader worker
     ["corrupt.wav", "not a readable audio file"]),
    (lambda t, ck, m: ["train", "model.size=3"], ["unknown config key model.size"]),
    (lambda t, ck, m: ["train", f"exp_dir={t}/x", f"data.train_manifest={m}", f"data.dev_manifest={m}",
                       "model.rnn_type=transformer"], ["model.rnn_type"]),
])
def test_bad_input_gives_one_line_error_and_nonzero_exit(tmp_path, make_args, needles):
    (tmp_path / "empty.wav").write_bytes(b"")
    (tmp_path / "broken.jsonl").write_text(json.dumps({"audio_filepath": str(fsdd_file(1))}) + "\n")
    (tmp_path / "corrupt.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk" * 4)
    (tmp_path / "corrupt.jsonl").write_text(json.dumps({"audio_filepath": "corrupt.wav", "duration": 1.0,
                                                        "text": "one"}) + "\n")
    checkpoint = untrained_checkpoint(tmp_path / "untrained.pt")
    manifest = write_fsdd_manifest(tmp_path / "m.jsonl", [(1, "jackson", 10)])
    args = make_args(tmp_path, checkpoint, manifest)
    result = run_asr(*args, check=False)
    assert_one_line_error(result, *needles)


def test_train_overrides_may_follow_flags(tmp_path):
    # parsed, then rejected for the unknown key: proves both runs of KEY=VALUE reached the config
    result = run_asr("train", "epochs=1", "--no-progress", "model.nonsense=2", check=False)
    assert_one_line_error(result, "unknown config key model.nonsense")
    result = run_asr("evaluate", "--model", "m.pt", "--manifest", "x.jsonl", "stray", check=False)
    assert result.returncode == 2 and "unrecognized arguments: stray" in result.stderr
