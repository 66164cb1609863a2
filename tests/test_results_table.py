"""scripts/results_table.py: a table per experiment, and experiments side by side with means."""

import json
import subprocess
import sys

from conftest import REPO

SCRIPT = REPO / "scripts" / "results_table.py"


def write_eval(folder, name, decoder, wer):
    folder.mkdir(parents=True, exist_ok=True)
    summary = {"wer": wer, "cer": wer / 2, "utterances": 50, "words": 60, "substitutions": 3, "deletions": 1,
               "insertions": 0, "manifest": f"{folder}/data/{name}.jsonl", "decoder": decoder}
    path = folder / f"eval-{name}-{decoder}.json"
    path.write_text(json.dumps(summary))
    return path


def run(*args):
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], capture_output=True, text=True)


def test_one_experiment_has_a_row_per_set_and_decoder(tmp_path):
    files = [write_eval(tmp_path, "test-a", "greedy", 10.0), write_eval(tmp_path, "test-a", "beam", 5.0)]
    out = run("--title", "T", *files)
    assert out.returncode == 0
    assert "| test-a | greedy | 50 | 60 | 10.00 | 5.00 | 3 | 1 | 0 |" in out.stdout
    assert "| test-a | beam | 50 | 60 | 5.00 | 2.50 | 3 | 1 | 0 |" in out.stdout


def test_summaries_by_condition_get_a_row_per_condition_and_a_column_per_decoder(tmp_path):
    files = []
    for decoder, wers in (("greedy", (1.0, 30.0)), ("beam", (0.5, 20.0))):
        path = write_eval(tmp_path, "test-conditions", decoder, 9.0)
        summary = json.loads(path.read_text())
        summary["by_condition"] = {name: {**summary, "wer": wer, "utterances": 300}
                                   for name, wer in zip(("clean", "level-30dB"), wers)}
        path.write_text(json.dumps(summary))
        files.append(path)
    out = run(*files)
    assert out.returncode == 0
    assert "| condition | utterances | test-conditions greedy | test-conditions beam |" in out.stdout
    assert "| clean | 300 | 1.00 | 0.50 |" in out.stdout and "| level-30dB | 300 | 30.00 | 20.00 |" in out.stdout


def test_experiments_side_by_side_with_column_means(tmp_path):
    write_eval(tmp_path / "held-a", "test-heldout", "greedy", 20.0)
    write_eval(tmp_path / "held-a", "test-in", "greedy", 1.0)
    write_eval(tmp_path / "held-a", "test-in", "beam", 0.5)  # another decoder: not in the greedy table
    write_eval(tmp_path / "held-b", "test-heldout", "greedy", 10.0)
    write_eval(tmp_path / "held-b", "test-in", "greedy", 0.0)
    out = run("--across", "--title", "Held out", tmp_path / "held-a", tmp_path / "held-b")
    assert out.returncode == 0
    lines = out.stdout.splitlines()
    assert lines[0] == "## Held out (greedy WER %)"
    assert "| experiment | test-heldout | test-in |" in lines
    assert "| held-a | 20.00 | 1.00 |" in lines and "| held-b | 10.00 | 0.00 |" in lines
    assert lines[-1] == "| mean of 2 | 15.00 | 0.50 |"
    empty = run("--across", tmp_path / "nothing")
    assert empty.returncode != 0 and "no eval-test-*-greedy.json" in empty.stderr


def test_missing_or_damaged_summaries_are_one_line_errors(tmp_path):
    good = write_eval(tmp_path, "test-a", "greedy", 10.0)
    missing = run(good, tmp_path / "eval-*.json")  # the recipe's glob when nothing was evaluated
    assert missing.returncode != 0 and missing.stdout == ""
    assert missing.stderr.strip() == (f"results_table.py: error: {tmp_path}/eval-*.json: no such file "
                                      "(asr evaluate --json writes it)")
    (tmp_path / "broken.json").write_text('{"wer": 1')
    broken = run(good, tmp_path / "broken.json")
    assert broken.returncode != 0 and "broken.json: not a readable JSON summary" in broken.stderr
    assert "Traceback" not in broken.stderr
    (tmp_path / "other.json").write_text('{"wer": 1}')
    other = run(tmp_path / "other.json")
    assert other.returncode != 0 and "other.json: not an asr evaluate summary (no manifest, utterances" in other.stderr


def test_the_table_names_the_model_it_scored(tmp_path):
    files = [write_eval(tmp_path, "test-a", "greedy", 10.0), write_eval(tmp_path, "test-a", "beam", 5.0)]
    for path in files:
        path.write_text(json.dumps({**json.loads(path.read_text()), "model": "exp/x/finetune/best.pt"}))
    out = run("--title", "T", *files)
    assert out.returncode == 0 and "Model: `exp/x/finetune/best.pt`" in out.stdout

    other = write_eval(tmp_path / "y", "test-a", "greedy", 7.0)
    other.write_text(json.dumps({**json.loads(other.read_text()), "model": "exp/y/best.pt"}))
    out = run("--title", "T", *files, other)
    assert out.returncode == 0 and "Model:" not in out.stdout  # two models: a column instead
    assert "| test-a | exp/x/finetune/best.pt | greedy | 50 | 60 | 10.00 |" in out.stdout
    assert "| test-a | exp/y/best.pt | greedy | 50 | 60 | 7.00 |" in out.stdout
