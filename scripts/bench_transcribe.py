"""Cold-start latency of `asr transcribe` on one 10-second file, against the cost of
importing torch + torchaudio alone, measured in the same run.

    python scripts/bench_transcribe.py --model exp/fsdd/best.pt [--audio FILE] [--runs 5]

Without --audio, a 10 s file is built from FSDD recordings (../shared/data/fsdd).
Prints the median wall time of each, their ratio, and the margin to the 5 s target.
"""

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

FSDD = Path(__file__).resolve().parents[2] / "shared" / "data" / "fsdd" / "recordings"
TARGET_S = 5.0


def ten_second_file(folder: Path) -> Path:
    pieces, total = [], 0
    for wav in sorted(FSDD.glob("*_theo_*.wav")):
        audio, rate = sf.read(wav, dtype="float32")
        pieces += [audio, np.zeros(rate // 5, dtype=np.float32)]
        total += len(audio) + rate // 5
        if total >= 10 * rate:
            break
    path = folder / "ten_seconds.wav"
    sf.write(path, np.concatenate(pieces)[: 10 * rate], rate)
    return path


def timed(cmd: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True)
    parser.add_argument("--audio")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        audio = Path(args.audio) if args.audio else ten_second_file(Path(tmp))
        duration = sf.info(audio).duration
        reference_cmd = [sys.executable, "-c", "import torch, torchaudio"]
        asr_cmd = [sys.executable, "-m", "asr", "transcribe", "--model", args.model, str(audio), "--device", "cpu"]
        timed(asr_cmd)  # warm the page cache once, like any second use of the command
        reference = statistics.median(timed(reference_cmd) for _ in range(args.runs))
        ours = statistics.median(timed(asr_cmd) for _ in range(args.runs))
    print(f"audio: {duration:.1f} s; median of {args.runs} cold starts")
    print(f"import torch+torchaudio : {reference:.2f} s")
    print(f"asr transcribe          : {ours:.2f} s  (ratio to the import alone: {ours / reference:.2f}x)")
    print(f"target {TARGET_S:.1f} s: {'met' if ours <= TARGET_S else 'MISSED'} ({ours / TARGET_S:.2f} of it)")


if __name__ == "__main__":
    main()
