"""Prepare LJSpeech 1.1 (one speaker reading non-fiction, 13,100 clips, 24 h, 22.05 kHz).

Layout: ``LJSpeech-1.1/metadata.csv`` with lines ``<id>|<raw text>|<normalized text>``
(pipe-separated, no quoting) beside ``LJSpeech-1.1/wavs/<id>.wav``. The normalized
text (numbers and abbreviations spelled out) is the transcript. LJSpeech has no
official split: a fixed seed puts 500 clips in dev and 500 in test. Clips are resampled
to 16 kHz WAV once (atomically, kept on a rerun).

Writes OUT_DIR/train.jsonl, dev.jsonl, test-ljspeech.jsonl and OUT_DIR/wav/.
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

from asr.corpus import Conversion, convert_all, corpus_folder, entry, recipe_main, write_manifests
from asr.download import Archive, fetch_and_extract
from asr.errors import AsrError

ARCHIVE = Archive("https://data.keithito.com/data/speech/LJSpeech-1.1.tar.bz2",
                  "sha256:be1a30453f28eb8dd26af4101ae40cbf2c50413b1bb21936cbcdc6fae3de8aa5")
SAMPLE_RATE = 16000  # Hz
HELD_OUT = 500  # clips each in dev and test


def read_metadata(path: Path) -> list[tuple[str, str]]:
    """(clip id, normalized text) per line."""
    if not path.is_file():
        raise AsrError(f"{path}: LJSpeech metadata.csv not found (is --data-dir the LJSpeech-1.1 folder?)")
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        fields = line.split("|")
        if len(fields) != 3 or not fields[0]:
            raise AsrError(f"{path}:{number}: expected 'id|raw text|normalized text', got {len(fields)} fields")
        rows.append((fields[0], fields[2] or fields[1]))
    return rows


def prepare(root: Path, out_dir: Path, seed: int = 0) -> None:
    root = corpus_folder(root, "LJSpeech-1.1")
    rows = read_metadata(root / "metadata.csv")
    jobs = []
    for clip, _ in rows:
        wav = root / "wavs" / f"{clip}.wav"
        if not wav.is_file():
            raise AsrError(f"{root / 'metadata.csv'}: audio file not found for {clip}: {wav}")
        jobs.append(Conversion(wav, out_dir / "wav" / f"{clip}.wav", SAMPLE_RATE))
    durations = convert_all(jobs)
    entries = [entry(job.target.resolve(), text, d, speaker="LJ") for job, (_, text), d in zip(jobs, rows, durations)]
    order = list(range(len(entries)))
    random.Random(seed).shuffle(order)
    held = min(HELD_OUT, len(entries) // 10 or 1)
    dev, test = set(order[:held]), set(order[held:2 * held])
    write_manifests(out_dir, {
        "train": [e for i, e in enumerate(entries) if i not in dev and i not in test],
        "dev": [e for i, e in enumerate(entries) if i in dev],
        "test-ljspeech": [e for i, e in enumerate(entries) if i in test],
    })


def main(argv=None) -> int:
    return recipe_main(__doc__, lambda root, out_dir, args: prepare(root, out_dir),
                       lambda download_dir, args: fetch_and_extract(ARCHIVE, download_dir), None, argv)


if __name__ == "__main__":
    sys.exit(main())
