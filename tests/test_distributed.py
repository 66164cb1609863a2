"""torchrun + DistributedDataParallel on the CPU (gloo): two processes sharing each global batch
follow the loss trajectory of one process that takes the whole batch."""

import os
import re
import socket
import subprocess
import sys

import pytest

from test_resume import tiny_config


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def step_losses(exp) -> list[float]:
    return [float(x) for x in re.findall(r"step \d+ loss ([\d.]+)", (exp / "train.log").read_text())]


@pytest.mark.slow
@pytest.mark.parametrize("units", ["char", "bpe", "char, per-speaker features"])
def test_two_gloo_processes_match_one_process(tmp_path, units):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    one = tmp_path / "one"
    unit_args = {"char": [], "bpe": ["units.kind=bpe", "units.size=40"],
                 "char, per-speaker features": ["features.normalize=speaker"]}[units]
    args = tiny_config(tmp_path, one, 8, "log_every=1", "step_threads=1", "tensorboard=false", *unit_args)
    result = subprocess.run([sys.executable, "-m", "asr", "train", *args, "--no-progress"], env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr

    two = tmp_path / "two"
    args = tiny_config(tmp_path, two, 8, "log_every=1", "tensorboard=false", *unit_args)
    result = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
                             f"--master_port={free_port()}", "-m", "asr", "train", *args, "--no-progress"],
                            env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    log = (two / "train.log").read_text()
    assert "distributed: 2 processes (gloo)" in log
    single, shared = step_losses(one), step_losses(two)
    assert len(single) == len(shared) == 8  # one global batch per epoch
    assert shared == pytest.approx(single, rel=2e-3, abs=2e-4)
    # rank 0 alone wrote the files; both decoded their half of dev and scored all of it
    assert (two / "best.pt").is_file() and len(list((two / "state").glob("step-*.pt"))) >= 1
    dev = re.findall(r"dev WER ([\d.]+)%", log)
    assert len(dev) >= 8
    # the training state holds both processes' random generators (each resumes its own)
    import torch

    state = torch.load(sorted((two / "state").glob("step-*.pt"))[-1], weights_only=False)
    rngs = state["rng"]
    assert set(rngs) == {0, 1} and not torch.equal(rngs[0]["augment"], rngs[1]["augment"])


def test_one_device_rule_for_single_and_multi_process_runs(monkeypatch):
    """pick_device serves a single process and each process of a torchrun job (via
    Distributed.from_environment): in a job "auto"/"cuda" mean this process's own GPU."""
    import torch

    from asr.errors import AsrError
    from asr.recognizer import pick_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert pick_device("auto") == torch.device("cpu")
    assert pick_device("auto", local_rank=1) == torch.device("cpu")
    with pytest.raises(AsrError, match="device 'cuda' asked for, but CUDA is not available"):
        pick_device("cuda", local_rank=1)  # no silent fall back to the CPU
    with pytest.raises(AsrError, match="unknown device 'gpu'"):
        pick_device("gpu")

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert pick_device("auto") == torch.device("cuda")
    assert pick_device("cuda:1") == torch.device("cuda", 1)
    assert pick_device("auto", local_rank=3) == torch.device("cuda", 3)
    assert pick_device("cuda", local_rank=2) == torch.device("cuda", 2)
    assert pick_device("cpu", local_rank=2) == torch.device("cpu")
    with pytest.raises(AsrError, match="each takes its own GPU"):
        pick_device("cuda:0", local_rank=1)
