"""Markdown WER table from `asr evaluate --json` outputs.

    python scripts/results_table.py --title "FSDD" exp/fsdd/eval-*.json > exp/fsdd/RESULTS.md
"""

import argparse
import json
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--title", default="Results")
    parser.add_argument("files", nargs="+", help="JSON summaries written by asr evaluate --json")
    args = parser.parse_args()
    print(f"## {args.title}\n")
    print("| test set | decoder | utterances | words | WER % | CER % | sub | del | ins |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for path in args.files:
        s = json.loads(Path(path).read_text())
        name = Path(s["manifest"]).stem
        print(f"| {name} | {s.get('decoder', 'greedy')} | {s['utterances']} | {s['words']} | {s['wer']:.2f} | "
              f"{s['cer']:.2f} | {s['substitutions']} | {s['deletions']} | {s['insertions']} |")


if __name__ == "__main__":
    main()
