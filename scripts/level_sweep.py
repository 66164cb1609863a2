"""WER against recording level: a test set played back at each gain, stored as 16-bit files (as a
quiet or loud recorder would store it), each file transcribed on its own, in one run.

    python scripts/level_sweep.py --model exp/fsdd/best.pt --manifest exp/fsdd/data/test-isolated.jsonl
    python scripts/level_sweep.py ... --gains -40,-30,-20,-10,0,6,10 --decoder beam

Prints one row per gain: WER, CER, and the change from 0 dB (the recording as it is).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from asr.checkpoint import load_checkpoint  # noqa: E402
from asr.conditions import pick, write_condition_manifest  # noqa: E402
from asr.data import read_manifest  # noqa: E402
from asr.decoder_settings import build_decoder, load_settings  # noqa: E402
from asr.errors import AsrError  # noqa: E402
from asr.evaluate import evaluate_manifest, group_summaries  # noqa: E402


def name(gain: float) -> str:
    return f"level{gain:+g}dB"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True)
    parser.add_argument("--manifest", required=True, help="the test set (JSON Lines)")
    parser.add_argument("--gains", default="-40,-35,-30,-20,-10,0,6,10", help="dB, comma-separated")
    parser.add_argument("--decoder", default="greedy", choices=("greedy", "beam"),
                        help="beam: the tuned settings beside the model (best.decoder.json)")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    try:
        gains = sorted({float(g) for g in args.gains.split(",")} | {0.0})
        recognizer = load_checkpoint(args.model)
        settings = load_settings(args.model, {"decoder": args.decoder}, tuned=args.decoder == "beam")
        rate = recognizer.features.config.sample_rate
        with tempfile.TemporaryDirectory(prefix="level-sweep-") as tmp:
            manifest = Path(tmp) / "levels.jsonl"
            write_condition_manifest(read_manifest(args.manifest), tmp, manifest, rate, args.seed,
                                     pick(",".join(name(g) for g in gains)))
            _, rows = evaluate_manifest(recognizer, manifest, build_decoder(settings, recognizer.vocab),
                                        vtln=settings.vtln)
    except AsrError as e:
        sys.exit(f"level_sweep.py: error: {e}")
    by = group_summaries(rows)["condition"]
    reference = by[name(0.0)].wer
    print(f"{args.manifest}, {args.decoder} decoding, {by[name(0.0)].utterances} recordings a level, each on its own")
    print("| gain dB | WER % | CER % | WER change from 0 dB (points) |")
    print("| ---: | ---: | ---: | ---: |")
    for g in gains:
        s = by[name(g)]
        print(f"| {g:+g} | {s.wer:.2f} | {s.cer:.2f} | {s.wer - reference:+.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
