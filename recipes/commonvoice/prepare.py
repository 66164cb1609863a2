"""Prepare a Common Voice language (MP3 clips with tab-separated metadata, any language).

Layout of one language folder (e.g. ``cv-corpus-17.0-2024-03-15/en``): ``clips/*.mp3``,
``train.tsv``, ``dev.tsv``, ``test.tsv`` and ``validated.tsv``, each with a header line
that names at least the ``path`` and ``sentence`` columns (``client_id`` is the speaker).
Common Voice is downloaded by hand after accepting its terms, so --data-dir is required.
The MP3 clips are decoded once into 16 kHz WAV files (atomically, kept on a rerun, so an
interrupted preparation resumes).

Writes OUT_DIR/train.jsonl (train.tsv, or with --train-from validated every validated clip
whose speaker and sentence are in neither dev nor test), dev.jsonl, test-commonvoice.jsonl
and the audio under OUT_DIR/wav/.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

from asr.corpus import Conversion, convert_all, entry, recipe_main, write_manifests
from asr.errors import AsrError

SAMPLE_RATE = 16000  # Hz


def read_tsv(path: Path) -> list[dict]:
    """Rows of a Common Voice TSV file (quotes are text, not quoting)."""
    if not path.is_file():
        raise AsrError(f"{path}: Common Voice TSV file not found (is --data-dir a language folder?)")
    csv.field_size_limit(1 << 24)
    with open(path, encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    if rows and not {"path", "sentence"} <= set(rows[0]):
        raise AsrError(f"{path}: header lacks the 'path' and 'sentence' columns")
    for number, row in enumerate(rows, 2):
        if not (row.get("path") or "").strip() or row.get("sentence") is None:
            raise AsrError(f"{path}:{number}: empty 'path' or missing 'sentence'")
    return rows


def split_entries(rows: list[dict], root: Path, out_dir: Path, name: str, tsv: str) -> list[dict]:
    jobs, meta = [], []
    for number, row in enumerate(rows, 2):
        clip = root / "clips" / row["path"]
        if not clip.is_file():
            raise AsrError(f"{root / tsv}:{number}: audio file not found: {clip}")
        text = " ".join(row["sentence"].split())
        if not text:
            continue
        jobs.append(Conversion(clip, out_dir / "wav" / name / f"{Path(row['path']).stem}.wav", SAMPLE_RATE))
        meta.append((text, row.get("client_id", "")))
    durations = convert_all(jobs)
    return [entry(job.target.resolve(), text, d, speaker=speaker)
            for job, (text, speaker), d in zip(jobs, meta, durations)]


def prepare(root: Path, out_dir: Path, train_from: str = "train") -> None:
    dev, test = read_tsv(root / "dev.tsv"), read_tsv(root / "test.tsv")
    train = read_tsv(root / f"{train_from}.tsv")
    if train_from == "validated":
        held = dev + test
        speakers = {r.get("client_id") for r in held}
        sentences = {r["sentence"] for r in held}
        clips = {r["path"] for r in held}
        train = [r for r in train if r["path"] not in clips and r.get("client_id") not in speakers
                 and r["sentence"] not in sentences]
    write_manifests(out_dir, {
        "dev": split_entries(dev, root, out_dir, "dev", "dev.tsv"),
        "test-commonvoice": split_entries(test, root, out_dir, "test", "test.tsv"),
        "train": split_entries(train, root, out_dir, "train", f"{train_from}.tsv"),
    })


def main(argv=None) -> int:
    def options(p: argparse.ArgumentParser) -> None:
        p.add_argument("--train-from", choices=["train", "validated"], default="train",
                       help="train.tsv, or validated.tsv minus dev/test speakers and sentences")

    # Common Voice is downloaded by hand after accepting its terms: no download function.
    return recipe_main(__doc__, lambda root, out_dir, args: prepare(root, out_dir, args.train_from), None, options,
                       argv)


if __name__ == "__main__":
    sys.exit(main())
