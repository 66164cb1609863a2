"""Vocal tract length normalization at inference (asr.vtln): each recording read at a few warp
factors, the reading the model is surest of kept; the same in the checkpoint and the export, and
through every command that reads audio."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from asr import vtln
from asr.audio import load_audio
from asr.checkpoint import load_checkpoint
from asr.cli import main
from asr.errors import AsrError
from conftest import OVERFIT_ITEMS, WORDS, fsdd_file


def test_factors_start_unwarped_and_widen_in_steps():
    assert vtln.factors(0) == [1.0]
    assert vtln.factors(0.1) == [1.0, 0.95, 1.05, 0.9, 1.1]
    assert vtln.factors(0.15)[-2:] == [0.85, 1.15]


def test_factor_one_reads_every_bin_where_it_is_and_others_move_them():
    assert np.allclose(vtln.source_bins([1.0], 8000, 64)[0], np.arange(64))
    shorter, longer = vtln.source_bins([1.1, 0.9], 8000, 64)
    below = slice(1, 50)  # under the knee (0.8 x Nyquist), the warp only scales
    assert (shorter[below] < np.arange(64)[below]).all() and (longer[below] > np.arange(64)[below]).all()
    for bins in (shorter, longer):  # in order, and nothing read from outside the filterbank
        assert (np.diff(bins) > 0).all() and bins[0] >= 0 and bins[-1] <= 63


def test_surest_is_the_highest_mean_best_label_log_probability_first_on_a_tie():
    sure, unsure = np.log([[0.9, 0.1], [0.8, 0.2]]), np.log([[0.6, 0.4], [0.5, 0.5]])
    assert vtln.surest([unsure, sure, sure.copy()])[0] == 1


@pytest.mark.parametrize("bad", [-0.1, 0.5])
def test_out_of_range_or_on_mfcc_features_is_a_one_line_error(bad):
    with pytest.raises(AsrError, match="vtln must be in"):
        vtln.check(bad, "logmel")
    with pytest.raises(AsrError, match="vtln warps log-mel features; this model's features are 'mfcc'"):
        vtln.check(0.1, "mfcc")
    vtln.check(0.0, "mfcc")  # off is fine anywhere


def test_each_row_gets_its_own_surest_reading(tiny_model):
    """log_probs(vtln=...) equals, row by row, the reading at the factor with the highest confidence,
    computed here one factor at a time."""
    checkpoint, _ = tiny_model
    recognizer = load_checkpoint(checkpoint).eval()
    waves = [load_audio(fsdd_file(d, s, t), 8000) for d, s, t in OVERFIT_ITEMS[:3]]
    waves += [load_audio(fsdd_file(d, s, 3), 8000) for d, s in ((5, "theo"), (7, "george"), (9, "nicolas"),
                                                               (4, "lucas"), (2, "yweweler"))]  # voices it never heard
    lengths = torch.tensor([len(w) for w in waves])
    batch = torch.zeros(len(waves), int(lengths.max()))
    for row, w in enumerate(waves):
        batch[row, :len(w)] = torch.from_numpy(w)
    with torch.no_grad():
        feats, frames = recognizer.features(batch, lengths)
        readings = []
        for factor in vtln.factors(0.1):
            warped = recognizer.features.warp(feats, frames, torch.full((len(waves),), factor))
            if factor == 1:
                assert torch.allclose(warped, feats, atol=1e-5)  # a warp by 1 changes nothing
                warped = feats
            readings.append(recognizer.model(warped, frames))
        got, got_frames = recognizer.log_probs(batch, lengths, vtln=0.1)
        plain, _ = recognizer.log_probs(batch, lengths)
    assert torch.equal(plain, readings[0][0])
    chosen = []
    for row in range(len(waves)):
        n = int(got_frames[row])
        options = [lp[row, :n].numpy() for lp, _ in readings]
        index, expected = vtln.surest(options)
        chosen.append(index)
        np.testing.assert_array_equal(got[row, :n].numpy(), expected)
    assert set(chosen) > {0}  # some of the voices it never heard read surest warped
    assert torch.equal(got_frames, readings[0][1])
    # the batch path (rows dealt to threads) gives the same readings
    for row, array in enumerate(recognizer.batch_log_probs(waves, vtln=0.1)):
        np.testing.assert_allclose(array, got[row, :len(array)].numpy(), atol=1e-5)


def test_the_export_reads_alike(tiny_model, tmp_path):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    from asr.export import export_onnx
    from asr.runtime import load_onnx

    checkpoint, _ = tiny_model
    onnx_path = tmp_path / "tiny.onnx"
    export_onnx(checkpoint, onnx_path)
    recognizer, runtime = load_checkpoint(checkpoint), load_onnx(onnx_path)
    waves = [load_audio(fsdd_file(d, s, t), 8000) for d, s, t in OVERFIT_ITEMS[:2]]
    waves.append(load_audio(fsdd_file(5, "theo", 3), 8000) * 0.3)
    for a, b in zip(recognizer.batch_log_probs(waves, vtln=0.1), runtime.batch_log_probs(waves, vtln=0.1)):
        assert a.shape == b.shape and np.abs(a - b).max() < 1e-3


def test_commands_take_vtln_and_the_tuned_settings_keep_it(tiny_model, tmp_path, capsys):
    checkpoint, manifest = tiny_model
    assert main(["evaluate", "--model", str(checkpoint), "--manifest", str(manifest), "--vtln", "0.1",
                 "--report", str(tmp_path / "r.jsonl"), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["decoder"] == "greedy, VTLN 0.1" and summary["decoder_settings"]["vtln"] == 0.1
    assert summary["wer"] == 0.0  # the six recordings it knows still read right

    model = tmp_path / "best.pt"
    model.write_bytes(checkpoint.read_bytes())
    assert main(["tune-decoder", "--model", str(model), "--manifest", str(manifest), "--vtln", "0.1",
                 "--lm-weights", "0", "--word-scores", "0", "--workers", "1"]) == 0
    saved = json.loads(model.with_name("best.decoder.json").read_text())
    assert saved["settings"]["vtln"] == 0.1
    capsys.readouterr()
    assert main(["transcribe", str(fsdd_file(3)), "--model", str(model), "--decoder", "greedy", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["text"] == WORDS[3]

    import asr

    with asr.load(model, decoder="greedy") as loaded:
        assert loaded.decoder_settings.vtln == 0.1  # greedy on top of the tuned file keeps the warp search
    with asr.load(model, vtln=0.0) as loaded:
        assert loaded.decoder_settings.vtln == 0.0


def test_a_bad_vtln_is_a_one_line_error_from_the_command(tiny_model, capsys):
    checkpoint, manifest = tiny_model
    assert main(["evaluate", "--model", str(checkpoint), "--manifest", str(manifest), "--vtln", "0.7"]) != 0
    err = capsys.readouterr().err.strip()
    assert err.startswith("asr: error:") and "vtln must be in [0, 0.5), got 0.7" in err and "\n" not in err
