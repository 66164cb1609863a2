"""Leave one speaker out on FSDD: the recipe once per speaker (trained without them), for each
seed, then each held-out speaker's per-file WER (every recording transcribed on its own) and the
mean over speakers and seeds.

    python scripts/loso.py --data-dir ../shared/data/fsdd/recordings --seeds 1234,2
    python scripts/loso.py ... --speakers george,theo --jobs 6   # runs in parallel (on a GPU, say)
    python scripts/loso.py ... --word-pieces 64 --exp-root exp/fsdd-loso-pieces   # whole-digit units
    python scripts/loso.py ... --stage 4 --vtln 0   # the trained runs tuned and scored again, here without VTLN

Each run is ``recipes/fsdd/run.sh --heldout-speakers S --conditions none --word-pieces W -- seed=N`` into
EXP_ROOT/seed<N>-<S> (a finished run is not run again). ``--jobs`` defaults to 1 on the CPU
(a run uses every core) and to 6 when CUDA is available (six small models share one GPU well).
Prints the table of recipes/fsdd/RESULTS.md: WER % per speaker and seed, isolated / connected.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SPEAKERS = ("george", "jackson", "lucas", "nicolas", "theo", "yweweler")
SETS = ("test-heldout-isolated", "test-heldout-connected")


def default_jobs() -> int:
    try:
        import torch

        return 6 if torch.cuda.is_available() else 1
    except ImportError:
        return 1


def count(text: str) -> int:
    """An argparse type: a whole number, 0 or more."""
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"expected a count (0 or more), got {text!r}")
    return int(text)


def run(speaker: str, seed: int, args, log_dir: Path) -> tuple[str, int, float, int]:
    exp = Path(args.exp_root) / f"seed{seed}-{speaker}"
    command = [str(REPO / "recipes" / "fsdd" / "run.sh"), "--heldout-speakers", speaker, "--exp-dir", str(exp),
               "--conditions", "none", "--word-pieces", str(args.word_pieces),
               *(["--data-dir", args.data_dir] if args.data_dir else []),
               *(["--stage", str(args.stage)] if args.stage is not None else []),
               *(["--vtln", args.vtln] if args.vtln is not None else []),
               "--", f"seed={seed}", *args.overrides]
    start = time.time()
    with open(log_dir / f"seed{seed}-{speaker}.log", "a") as log:  # a rerun of later stages adds to it
        code = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, cwd=REPO).returncode
    return speaker, seed, time.time() - start, code


def wer(exp: Path, name: str, decoder: str) -> float | None:
    path = exp / f"eval-{name}-{decoder}.json"
    return json.loads(path.read_text())["wer"] if path.is_file() else None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", help="a local copy of FSDD's recordings (default: the recipe downloads it)")
    parser.add_argument("--exp-root", default="exp/fsdd-loso")
    parser.add_argument("--speakers", default=",".join(SPEAKERS))
    parser.add_argument("--seeds", default="1234,2")
    parser.add_argument("--jobs", type=count, default=None, help="runs at once (default: 1 on the CPU, 6 with CUDA)")
    parser.add_argument("--decoder", default="greedy", choices=("greedy", "beam"))
    parser.add_argument("--word-pieces", type=count, default=0, help="the recipe's --word-pieces (default 0: characters)")
    parser.add_argument("--stage", type=count, help="the recipe's --stage: rerun stages N.. of each run (e.g. 4: "
                        "tune and score the trained models again after a decoding change)")
    parser.add_argument("--vtln", help="the recipe's --vtln (default: its own, 0.1 with held-out speakers)")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="config overrides for every run")
    args = parser.parse_args()
    speakers = [s.strip() for s in args.speakers.split(",") if s.strip()]
    unknown = sorted(set(speakers) - set(SPEAKERS))
    if unknown:
        sys.exit(f"loso.py: error: unknown speaker(s) {', '.join(unknown)} (FSDD has {', '.join(SPEAKERS)})")
    try:
        seeds = [int(s) for s in args.seeds.split(",")]
    except ValueError:
        parser.error(f"--seeds: expected comma-separated whole numbers, got {args.seeds!r}")
    log_dir = Path(args.exp_root) / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    jobs = args.jobs or default_jobs()
    start = time.time()
    with ThreadPoolExecutor(jobs) as pool:
        for speaker, seed, seconds, code in pool.map(lambda job: run(*job, args, log_dir),
                                                      [(s, n) for n in seeds for s in speakers]):
            status = "ok" if code == 0 else f"FAILED (exit {code}; see {log_dir}/seed{seed}-{speaker}.log)"
            print(f"seed {seed}, {speaker} held out: {seconds / 60:.1f} min, {status}", flush=True)
    total = time.time() - start

    print(f"\n{args.decoder} WER %, each held-out recording on its own (isolated / connected)\n")
    print("| held out | " + " | ".join(f"seed {n}" for n in seeds) + " |")
    print("| --- |" + " ---: |" * len(seeds))
    means = []
    for speaker in speakers:
        cells = []
        for seed in seeds:
            values = [wer(Path(args.exp_root) / f"seed{seed}-{speaker}", name, args.decoder) for name in SETS]
            cells.append(" / ".join("-" if v is None else f"{v:.2f}" for v in values))
            means += [v for v in values if v is not None]
        print(f"| {speaker} | " + " | ".join(cells) + " |")
    if means:
        print(f"\nmean over {len(speakers)} speakers x {len(seeds)} seeds x isolated and connected: "
              f"{sum(means) / len(means):.2f}% WER ({len(means)} figures)")
    print(f"whole loop: {total / 60:.1f} min, {jobs} run(s) at a time")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
