"""Markdown WER tables from `asr evaluate --json` outputs.

One experiment, a row per test set and decoder (under the model they scored), then (for summaries of manifests with a
``condition`` or ``speaker`` field) a row per condition and per speaker:

    python scripts/results_table.py --title "FSDD" exp/fsdd/eval-*.json > exp/fsdd/RESULTS.md

Several experiments side by side (e.g. each speaker held out in turn), a row per
experiment folder, a column per test set, and the mean of each column:

    python scripts/results_table.py --across exp/fsdd-heldout-* --decoder greedy
"""

import argparse
import json
import sys
from pathlib import Path


KEYS = ("manifest", "utterances", "words", "wer", "cer", "substitutions", "deletions", "insertions")


def load(path) -> dict:
    """One summary, or a one-line error naming the file."""
    try:
        summary = json.loads(Path(path).read_text())
    except FileNotFoundError:
        sys.exit(f"results_table.py: error: {path}: no such file (asr evaluate --json writes it)")
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        sys.exit(f"results_table.py: error: {path}: not a readable JSON summary ({e})")
    missing = [k for k in KEYS if not isinstance(summary, dict) or k not in summary]
    if missing:
        sys.exit(f"results_table.py: error: {path}: not an asr evaluate summary (no {', '.join(missing)})")
    return summary


def per_file(title: str, files: list[str]) -> None:
    summaries = [load(path) for path in files]  # all read before anything is printed
    print(f"## {title}\n")
    models = list(dict.fromkeys(s.get("model", "") for s in summaries))
    several = len(models) > 1  # then a column says which model each row scored
    if not several and models[0]:
        print(f"Model: `{models[0]}`\n")
    print(f"| test set |{' model |' if several else ''} decoder | utterances | words | WER % | CER % | sub | del | ins |")
    print(f"| --- |{' --- |' if several else ''} --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for s in summaries:
        name = Path(s["manifest"]).stem
        model = f" {s.get('model', '')} |" if several else ""
        print(f"| {name} |{model} {s.get('decoder', 'greedy')} | {s['utterances']} | {s['words']} | {s['wer']:.2f} | "
              f"{s['cer']:.2f} | {s['substitutions']} | {s['deletions']} | {s['insertions']} |")
    for key in ("condition", "speaker"):
        breakdown(key, summaries)


def breakdown(key: str, summaries: list[dict]) -> None:
    """A row per condition (or speaker) of the summaries that carry ``by_<key>``, a WER column per
    test set and decoder."""
    columns = [(Path(s["manifest"]).stem, s.get("decoder", "greedy").split(" ")[0].strip(","), s[f"by_{key}"])
               for s in summaries if f"by_{key}" in s]
    if not columns:
        return
    values = list(dict.fromkeys(v for _, _, by in columns for v in by))
    print(f"\n### WER % by {key}\n")
    print(f"| {key} | utterances | " + " | ".join(f"{name} {decoder}" for name, decoder, _ in columns) + " |")
    print("| --- | ---: |" + " ---: |" * len(columns))
    for v in values:
        count = next(by[v]["utterances"] for _, _, by in columns if v in by)
        print(f"| {v} | {count} | " + " | ".join(f"{by[v]['wer']:.2f}" if v in by else "" for _, _, by in columns) + " |")


def across(title: str, folders: list[str], decoder: str) -> None:
    """WER % per experiment folder (rows) and test set (columns), then each column's mean."""
    table: dict[str, dict[str, float]] = {}
    for folder in folders:
        for path in sorted(Path(folder).glob(f"eval-test-*-{decoder}.json")):
            s = load(path)
            table.setdefault(Path(folder).name, {})[Path(s["manifest"]).stem] = s["wer"]
    if not table:
        sys.exit(f"results_table.py: error: no eval-test-*-{decoder}.json in {', '.join(folders)}")
    sets = sorted({name for row in table.values() for name in row})
    print(f"## {title} ({decoder} WER %)\n")
    print("| experiment | " + " | ".join(sets) + " |")
    print("| --- |" + " ---: |" * len(sets))
    for folder, row in table.items():
        print(f"| {folder} | " + " | ".join(f"{row[n]:.2f}" if n in row else "" for n in sets) + " |")
    means = [[row[n] for row in table.values() if n in row] for n in sets]
    print(f"| mean of {len(table)} | " + " | ".join(f"{sum(m) / len(m):.2f}" for m in means) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--title", default="Results")
    parser.add_argument("--across", action="store_true", help="the arguments are experiment folders")
    parser.add_argument("--decoder", default="greedy", help="with --across: greedy or beam")
    parser.add_argument("paths", nargs="+", help="JSON summaries written by asr evaluate --json (or, with "
                                                 "--across, experiment folders)")
    args = parser.parse_args()
    if args.across:
        across(args.title, args.paths, args.decoder)
    else:
        per_file(args.title, args.paths)


if __name__ == "__main__":
    main()
