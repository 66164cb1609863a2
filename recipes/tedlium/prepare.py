"""Prepare TED-LIUM release 3 (TED talks, 16 kHz SPHERE audio with STM segment files).

Layout: ``TEDLIUM_release-3/legacy/{train,dev,test}/{sph,stm}/<talk>.{sph,stm}`` (the
release-2 split) and ``TEDLIUM_release-3/data/{sph,stm}`` (all 452 h of training talks).
STM lines are ``<talk> <channel> <speaker> <start> <end> <label> <words...>``. Segments
labelled ``ignore_time_segment_in_scoring`` are dropped, ``<unk>`` and bracketed noise
tokens removed, and split contractions joined (``it 's`` -> ``it's``). Every kept segment
is cut into its own WAV file (written atomically, kept on a rerun, so an interrupted
preparation resumes).

Writes OUT_DIR/train.jsonl (``data/``, or ``legacy/train`` with --legacy-train), dev.jsonl
(legacy dev), test-tedlium.jsonl (legacy test) and the segments under OUT_DIR/wav/.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from asr.corpus import Conversion, convert_all, corpus_folder, entry, recipe_main, write_manifests
from asr.download import Archive, fetch_and_extract
from asr.errors import AsrError

ARCHIVE = Archive("https://www.openslr.org/resources/51/TEDLIUM_release-3.tgz",
                  "sha256:ad1e454d14d1ad550bc2564c462d87c7a7ec83d4dc2b9210f22ab4973b9eccdb")
SAMPLE_RATE = 16000  # Hz
IGNORE = "ignore_time_segment_in_scoring"
_NOISE = re.compile(r"^(<[^>]*>|\{[^}]*\}|\[[^\]]*\]|\([^)]*\))$")  # <unk>, {NOISE}, [laughter], (2)


def clean_words(words: list[str]) -> str:
    kept = []
    for word in words:
        if _NOISE.match(word):
            continue
        if word.startswith("'") and kept:
            kept[-1] += word  # it 's -> it's
        else:
            kept.append(word)
    return " ".join(kept).lower()


def stm_segments(stm: Path) -> list[tuple[str, float, float, str]]:
    """(speaker, start, end, text) of the scored segments of one STM file."""
    segments = []
    for number, line in enumerate(stm.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.startswith(";;"):
            continue
        fields = line.split()
        if len(fields) < 6:
            raise AsrError(f"{stm}:{number}: expected '<talk> <channel> <speaker> <start> <end> <label> words'")
        try:
            start, end = float(fields[3]), float(fields[4])
        except ValueError:
            raise AsrError(f"{stm}:{number}: start/end times are not numbers: {fields[3]!r} {fields[4]!r}") from None
        words = fields[6:] if fields[5].startswith("<") else fields[5:]
        text = clean_words(words)
        if IGNORE in words or not text or end <= start:
            continue
        segments.append((fields[2], start, end, text))
    return segments


def split_entries(folder: Path, out_dir: Path, name: str) -> list[dict]:
    stms = sorted((folder / "stm").glob("*.stm"))
    if not stms:
        raise AsrError(f"{folder / 'stm'}: no .stm files (is --data-dir the TEDLIUM_release-3 folder?)")
    jobs, meta = [], []
    for stm in stms:
        sph = folder / "sph" / f"{stm.stem}.sph"
        if not sph.is_file():
            raise AsrError(f"{stm}: its audio file is missing: {sph}")
        for speaker, start, end, text in stm_segments(stm):
            target = out_dir / "wav" / name / stm.stem / f"{stm.stem}-{round(start * 100):07d}-{round(end * 100):07d}.wav"
            jobs.append(Conversion(sph, target, SAMPLE_RATE, start, end))
            meta.append((target, text, speaker))
    durations = convert_all(jobs)
    return [entry(t.resolve(), text, d, speaker=s) for (t, text, s), d in zip(meta, durations)]


def prepare(root: Path, out_dir: Path, legacy_train: bool = False) -> None:
    root = corpus_folder(root, "TEDLIUM_release-3")
    legacy = root / "legacy"
    train = legacy / "train" if legacy_train or not (root / "data" / "stm").is_dir() else root / "data"
    write_manifests(out_dir, {
        "dev": split_entries(legacy / "dev", out_dir, "dev"),
        "test-tedlium": split_entries(legacy / "test", out_dir, "test"),
        "train": split_entries(train, out_dir, "train"),
    })


def main(argv=None) -> int:
    def options(p: argparse.ArgumentParser) -> None:
        p.add_argument("--legacy-train", action="store_true", help="train on legacy/train (207 h) instead of data/")

    return recipe_main(__doc__, lambda root, out_dir, args: prepare(root, out_dir, args.legacy_train),
                       lambda download_dir, args: fetch_and_extract(ARCHIVE, download_dir), options, argv)


if __name__ == "__main__":
    sys.exit(main())
