"""Prepare YESNO (60 recordings of one man saying eight Hebrew yes/no words; 8 kHz).

Layout: ``waves_yesno/<b1>_<b2>_..._<b8>.wav``, where each 0/1 in the name is a "no"
("lo") or "yes" ("ken"), in order. Transcripts are the English words ``yes``/``no``.
In sorted order, odd-numbered recordings are the test set (30), and of the even ones
the last 6 are dev and the rest (24) train.

Writes OUT_DIR/train.jsonl, dev.jsonl, test-yesno.jsonl.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from asr.corpus import corpus_folder, entry, recipe_main, write_manifests
from asr.download import Archive, fetch_and_extract
from asr.errors import AsrError

ARCHIVE = Archive("https://www.openslr.org/resources/1/waves_yesno.tar.gz",
                  "sha256:c3f49e0cca421f96b75b41640749167b52118f232498667ca7a5f9416aef8e73")
NAME = re.compile(r"^[01](_[01]){7}\.wav$")
DEV = 6


def prepare(root: Path, out_dir: Path) -> None:
    root = corpus_folder(root, "waves_yesno")
    if not root.is_dir():
        raise AsrError(f"{root}: YESNO folder not found")
    waves = sorted(p for p in root.glob("*.wav") if NAME.match(p.name))
    if not waves:
        raise AsrError(f"{root}: no YESNO recordings (named like 0_1_0_0_1_0_1_1.wav) found")
    entries = [entry(w.resolve(), " ".join("yes" if b == "1" else "no" for b in w.stem.split("_")),
                     speaker="yesno") for w in waves]
    even, odd = entries[0::2], entries[1::2]
    write_manifests(out_dir, {"train": even[:-DEV] or even, "dev": even[-DEV:], "test-yesno": odd})


def main(argv=None) -> int:
    return recipe_main(__doc__, lambda root, out_dir, args: prepare(root, out_dir),
                       lambda download_dir, args: fetch_and_extract(ARCHIVE, download_dir), None, argv)


if __name__ == "__main__":
    sys.exit(main())
