"""A multi-process job whose other process fails or hangs: this one stops within the timeout,
with one line, instead of waiting forever."""

import os
import subprocess
import sys
import time

import pytest

from test_distributed import free_port

SCRIPT = """
import sys, time
from asr.distributed import Distributed
from asr.errors import AsrError
dist = Distributed.from_environment("cpu", timeout=float(sys.argv[1]))
if dist.rank == 1:
    if sys.argv[2] == "hang":
        time.sleep(120)
    raise SystemExit("rank 1 failed")
try:
    dist.reduce_step(1.0, 1, 1.0, False)
    print("no error")
except AsrError as e:
    print("asr: error:", e)
    sys.exit(1)
"""


@pytest.mark.parametrize("other", ["hang", "fail"])
def test_a_failed_or_hung_process_stops_the_others_within_the_timeout(other):
    env = {**os.environ, "WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(free_port()),
           "OMP_NUM_THREADS": "1"}
    procs = [subprocess.Popen([sys.executable, "-c", SCRIPT, "5", other], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env={**env, "RANK": str(r), "LOCAL_RANK": str(r)})
             for r in (0, 1)]
    start = time.monotonic()
    try:
        out, err = procs[0].communicate(timeout=90)
    finally:
        procs[1].kill()
        procs[1].wait()
    assert procs[0].returncode == 1, err[-2000:]
    assert time.monotonic() - start < 60
    (line,) = [x for x in out.splitlines() if x.startswith("asr: error:")]
    assert "process 0 of 2: reducing a step failed: another process failed or did not answer within 5 s" in line
