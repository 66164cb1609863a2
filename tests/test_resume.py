"""Kill-safe training: resumable states, SIGTERM/SIGKILL, damaged states, NaN steps."""

import random
import re
import signal
import subprocess
import sys
import time

import pytest
import torch

from asr.config import load_train_config
from asr.errors import AsrError
from asr.train import train
from asr.train_state import load_latest_state, save_state, set_aside, state_files
from conftest import OVERFIT_ITEMS, TINY_OVERRIDES, write_fsdd_manifest


def tiny_config(tmp_path, exp, epochs, *extra):
    manifest = tmp_path / "six.jsonl"
    if not manifest.exists():
        write_fsdd_manifest(manifest, OVERFIT_ITEMS)
    overrides = [o for o in TINY_OVERRIDES if not o.startswith("epochs=")] + [
        f"epochs={epochs}", f"exp_dir={exp}", f"data.train_manifest={manifest}", f"data.dev_manifest={manifest}",
        *extra]
    return overrides


def weights(path):
    return torch.load(path, map_location="cpu", weights_only=True)["model_state"]


def test_a_fresh_run_sets_the_earlier_runs_states_aside_instead_of_deleting_them(tmp_path):
    assert set_aside(tmp_path) is None  # nothing to move
    for step in (5, 10):
        save_state(tmp_path, step, {"value": step}, keep=3)
    aside = set_aside(tmp_path)
    assert aside == tmp_path / "state.old" and load_latest_state(tmp_path) is None
    assert sorted(p.name for p in aside.iterdir()) == ["step-00000005.pt", "step-00000010.pt"]
    save_state(tmp_path, 1, {"value": 1}, keep=3)
    set_aside(tmp_path)  # the next fresh run replaces the one set aside before
    assert [p.name for p in (tmp_path / "state.old").iterdir()] == ["step-00000001.pt"]


def test_states_are_kept_newest_first_and_damaged_ones_skipped(tmp_path, caplog):
    for step in (5, 10, 15, 20):
        save_state(tmp_path, step, {"value": step}, keep=3)
    files = state_files(tmp_path)
    assert [f.name for f in files] == ["step-00000020.pt", "step-00000015.pt", "step-00000010.pt"]
    files[0].write_bytes(files[0].read_bytes()[:100])  # cut short
    (tmp_path / "state" / "step-00000025.pt.tmp").write_bytes(b"partial")  # a write a kill interrupted
    state = load_latest_state(tmp_path)
    assert state["step"] == 15 and state["value"] == 15
    assert "step-00000020.pt: damaged training state" in caplog.text
    assert not list((tmp_path / "state").glob("*.tmp"))
    assert load_latest_state(tmp_path / "nothing-here") is None


@pytest.mark.slow
def test_sigterm_saves_a_state_and_resuming_ends_where_an_unbroken_run_ends(tmp_path):
    unbroken = tmp_path / "unbroken"
    args = tiny_config(tmp_path, unbroken, 40, "checkpoint_every=3", "average_last=3")
    train(load_train_config(None, args), show_progress=False)

    for attempt in range(3):  # on a loaded machine the run may finish before the signal arrives: again
        broken = tmp_path / f"broken-{attempt}"
        args = tiny_config(tmp_path, broken, 40, "checkpoint_every=3", "average_last=3")
        cmd = [sys.executable, "-m", "asr", "train", *args, "--no-progress"]
        process = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 120
        while not state_files(broken) and time.monotonic() < deadline:
            time.sleep(0.01)
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=120)
        if process.returncode != 0:
            break
    assert process.returncode == 128 + signal.SIGTERM, err
    assert "interrupted by SIGTERM; training state saved in" in err and "Traceback" not in err
    saved = load_latest_state(broken)
    assert 0 < saved["step"] < 40

    train(load_train_config(None, args), show_progress=False, resume=True)
    assert "resumed from" in (broken / "train.log").read_text()
    for name in ("last.pt", "averaged.pt", "best.pt"):
        ours, theirs = weights(broken / name), weights(unbroken / name)
        assert all(torch.equal(ours[k], theirs[k]) for k in theirs), name


@pytest.mark.slow
def test_sigkill_at_random_moments_then_resume(tmp_path):
    exp = tmp_path / "exp"
    args = tiny_config(tmp_path, exp, 400, "checkpoint_every=5", "keep_checkpoints=2")
    cmd = [sys.executable, "-m", "asr", "train", *args, "--no-progress", "--resume"]
    rng = random.Random(0)

    def newest_step():
        newest = state_files(exp)
        return int(newest[0].stem.split("-")[1]) if newest else 0

    def resumed_steps():
        log = exp / "train.log"
        return [int(s) for s in re.findall(r"resumed from \S+: step (\d+)", log.read_text())] if log.exists() else []

    progress = []
    for _ in range(6):
        before, logged = newest_step(), len(resumed_steps())
        process = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        # once this run has saved a state of its own (however slow the machine), kill it at a
        # random moment: states are written every few hundred milliseconds, so some kills land
        # in the middle of a write
        deadline = time.monotonic() + 180
        while newest_step() <= before and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(rng.uniform(0.0, 0.6))
        process.kill()
        process.wait()
        for path in state_files(exp):  # whatever the moment, every state on disk loads
            assert torch.load(path, map_location="cpu", weights_only=False)["step"] > 0
        if len(resumed_steps()) > logged:  # the run got as far as resuming: from the newest state
            assert resumed_steps()[-1] == before
        progress.append(newest_step())
    assert all(a < b for a, b in zip(progress, progress[1:])) and progress[0] > 0  # every run went on
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert (exp / "best.pt").is_file() and (exp / "last.pt").is_file()
    assert resumed_steps()[-1] == progress[-1]
    assert load_latest_state(exp)["step"] >= 400  # one step per epoch: the whole run was done


def test_nan_steps_are_skipped_and_too_many_stop_the_run(tmp_path, monkeypatch, caplog):
    import asr.train_step as train_module

    real = train_module.ctc_gradients
    calls = {"n": 0}

    def sometimes_nan(*args, **kwargs):
        calls["n"] += 1
        loss = real(*args, **kwargs)
        return float("nan") if calls["n"] in (2, 3) else loss

    monkeypatch.setattr(train_module, "ctc_gradients", sometimes_nan)
    args = tiny_config(tmp_path, tmp_path / "exp", 6, "max_bad_steps=3", "average_last=0")
    train(load_train_config(None, args), show_progress=False)
    assert caplog.text.count("step skipped") == 2
    assert load_latest_state(tmp_path / "exp")["step"] == 4  # 6 batches, 2 of them skipped

    monkeypatch.setattr(train_module, "ctc_gradients", lambda *a, **k: float("nan"))
    with pytest.raises(AsrError, match="3 steps in a row had a NaN/inf loss"):
        train(load_train_config(None, tiny_config(tmp_path, tmp_path / "exp2", 6, "max_bad_steps=3")),
              show_progress=False)


def test_out_of_memory_batch_is_skipped(tmp_path, monkeypatch, caplog):
    import asr.train_step as train_module

    real = train_module.ctc_gradients
    calls = {"n": 0}

    def sometimes_oom(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return real(*args, **kwargs)

    monkeypatch.setattr(train_module, "ctc_gradients", sometimes_oom)
    args = tiny_config(tmp_path, tmp_path / "exp", 4, "average_last=0")
    train(load_train_config(None, args), show_progress=False)
    assert "out of memory with 6 utterances" in caplog.text and "batch skipped" in caplog.text
    assert load_latest_state(tmp_path / "exp")["step"] == 3  # 4 batches, one skipped


def test_bad_amp_dtype(tmp_path):
    args = tiny_config(tmp_path, tmp_path / "exp", 1, "amp_dtype=float8")
    with pytest.raises(AsrError, match="amp_dtype: expected one of 'bfloat16', 'float16', got 'float8'"):
        train(load_train_config(None, args), show_progress=False)
