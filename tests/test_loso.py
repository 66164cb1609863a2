"""scripts/loso.py: one recipe run per held-out speaker and seed, then the per-speaker table and mean."""

import json
import subprocess
import sys

from conftest import REPO

SCRIPT = REPO / "scripts" / "loso.py"


def finished_run(folder, wers):
    """An experiment folder whose recipe stages are all done (run.sh then does nothing)."""
    folder.mkdir(parents=True)
    for stage in range(7):
        (folder / f".done.{stage}").touch()
    for name, wer in zip(("test-heldout-isolated", "test-heldout-connected"), wers):
        (folder / f"eval-{name}-greedy.json").write_text(json.dumps({"wer": wer}))


def test_table_and_mean_over_speakers_seeds_and_sets(tmp_path):
    finished_run(tmp_path / "seed1-george", (10.0, 20.0))
    finished_run(tmp_path / "seed1-theo", (0.0, 6.0))
    finished_run(tmp_path / "seed2-george", (4.0, 8.0))
    out = subprocess.run([sys.executable, str(SCRIPT), "--exp-root", str(tmp_path), "--speakers", "george,theo",
                          "--seeds", "1,2", "--jobs", "2", "--data-dir", str(tmp_path / "none")], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "| george | 10.00 / 20.00 | 4.00 / 8.00 |" in out.stdout
    assert "| theo | 0.00 / 6.00 | - / - |" in out.stdout  # seed 2 of theo: its run failed (no such data)
    assert "seed 2, theo held out" in out.stdout and "FAILED" in out.stdout
    assert "mean over 2 speakers x 2 seeds x isolated and connected: 8.00% WER (6 figures)" in out.stdout


def test_unknown_speaker_is_a_one_line_error(tmp_path):
    out = subprocess.run([sys.executable, str(SCRIPT), "--exp-root", str(tmp_path), "--speakers", "bob"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 1 and "unknown speaker(s) bob" in out.stderr


def test_bad_counts_and_seeds_are_refused_before_any_run(tmp_path):
    for flags, message in ((["--word-pieces", "-3"], "--word-pieces: expected a count (0 or more), got '-3'"),
                           (["--seeds", "1,x"], "--seeds: expected comma-separated whole numbers, got '1,x'")):
        out = subprocess.run([sys.executable, str(SCRIPT), "--exp-root", str(tmp_path / "exp"), *flags],
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 2 and message in out.stderr
        assert not (tmp_path / "exp").exists()  # nothing started, nothing written
