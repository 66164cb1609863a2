"""Prepare AN4 (CMU census database: spelled names, numbers, control words; 16 kHz).

Layout: ``an4/etc/an4_{train,test}.transcription`` (lines ``<s> WORDS </s> (utt-id)``),
``an4/etc/an4_{train,test}.fileids`` (``an4_clstk/<speaker>/<utt-id>``) and the audio
under ``an4/wav/``: NIST SPHERE ``.sph`` (an4_sphere.tar.gz, read in place) or
headerless 16-bit big-endian ``.raw`` (an4_raw.bigendian.tar.gz, converted to WAV once,
resumably). Three training speakers (the last in sorted order) form the dev set.

Writes OUT_DIR/train.jsonl, dev.jsonl, test.jsonl (as test-an4.jsonl) and, for raw
audio, OUT_DIR/wav/.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from asr.corpus import Conversion, convert_all, corpus_folder, entry, recipe_main, write_manifests
from asr.download import Archive, fetch_and_extract
from asr.errors import AsrError

# CMU publishes no checksum for AN4: a download is checked by its length, read through, and its
# utterances counted (check_complete); pass --sha256 to pin the one you trust.
ARCHIVE = Archive("http://www.speech.cs.cmu.edu/databases/an4/an4_sphere.tar.gz", "")
SAMPLE_RATE = 16000  # Hz
RAW = {"format": "RAW", "samplerate": SAMPLE_RATE, "channels": 1, "subtype": "PCM_16", "endian": "BIG"}
LINE = re.compile(r"^(?P<text>.*?)\s*\((?P<utt>[^()\s]+)\)\s*$")
DEV_SPEAKERS = 3
UTTERANCES = {"train": 948, "test": 130}  # in the published archive


def transcripts(path: Path) -> dict[str, str]:
    """utt-id -> lower-case words, from an ``.transcription`` file."""
    if not path.is_file():
        raise AsrError(f"{path}: AN4 transcription file not found (is --data-dir the an4/ folder?)")
    texts = {}
    for number, line in enumerate(path.read_text(encoding="latin-1").splitlines(), 1):
        if not line.strip():
            continue
        m = LINE.match(line.strip())
        if not m:
            raise AsrError(f"{path}:{number}: expected '<s> WORDS </s> (utterance-id)', got {line.strip()!r}")
        words = [w for w in m["text"].split() if w not in ("<s>", "</s>", "<sil>")]
        texts[m["utt"]] = " ".join(words).lower()
    return texts


def split_items(root: Path, split: str) -> list[tuple[str, str, Path]]:
    """(utt-id, text, audio path) of ``split`` (train/test), in fileids order."""
    texts = transcripts(root / "etc" / f"an4_{split}.transcription")
    fileids = root / "etc" / f"an4_{split}.fileids"
    if not fileids.is_file():
        raise AsrError(f"{fileids}: AN4 fileids file not found")
    items = []
    for number, line in enumerate(fileids.read_text().splitlines(), 1):
        if not line.strip():
            continue
        utt = Path(line.strip()).name
        if utt not in texts:
            raise AsrError(f"{fileids}:{number}: {utt} has no line in an4_{split}.transcription")
        candidates = [root / "wav" / f"{line.strip()}{ext}" for ext in (".sph", ".raw", ".wav")]
        audio = next((c for c in candidates if c.is_file()), None)
        if audio is None:
            raise AsrError(f"{fileids}:{number}: audio file not found: {candidates[0]} (or .raw)")
        items.append((utt, texts[utt], audio))
    return items


def prepare(root: Path, out_dir: Path) -> None:
    root = corpus_folder(root, "an4")
    sets = {split: split_items(root, split) for split in ("train", "test")}
    entries = {}
    for split, items in sets.items():
        # headerless .raw files become WAV once; SPHERE and WAV files are read where they are
        jobs = [Conversion(a, out_dir / "wav" / split / f"{u}.wav", SAMPLE_RATE, raw=RAW)
                for u, _, a in items if a.suffix == ".raw"]
        converted = dict(zip((j.source for j in jobs), convert_all(jobs)))
        entries[split] = [
            entry((out_dir / "wav" / split / f"{u}.wav").resolve() if a in converted else a.resolve(), text,
                  converted.get(a), speaker=Path(a).parent.name)
            for u, text, a in items]
    speakers = sorted({e["speaker"] for e in entries["train"]})
    dev = set(speakers[-DEV_SPEAKERS:])
    write_manifests(out_dir, {
        "train": [e for e in entries["train"] if e["speaker"] not in dev],
        "dev": [e for e in entries["train"] if e["speaker"] in dev],
        "test-an4": entries["test"],
    })


def check_complete(root: Path) -> None:
    """Raise unless the extracted archive has every utterance AN4 is published with (CMU gives
    no checksum), each with its transcript and audio file."""
    folder = corpus_folder(root, "an4")
    for split, expected in UTTERANCES.items():
        found = len(split_items(folder, split))
        if found < expected:
            raise AsrError(f"{folder}: {found} {split} utterances, expected {expected}: an incomplete copy; "
                           f"delete {root} and rerun, or pass --data-dir")


def main(argv=None) -> int:
    def get(download_dir: Path, args) -> Path:
        root = fetch_and_extract(Archive(ARCHIVE.url, f"sha256:{args.sha256}" if args.sha256 else ""), download_dir)
        check_complete(root)
        return root

    def options(p: argparse.ArgumentParser) -> None:
        p.add_argument("--sha256", default="", help="expected sha256 of an4_sphere.tar.gz (CMU publishes none)")

    return recipe_main(__doc__, lambda root, out_dir, args: prepare(root, out_dir), get, options, argv)


if __name__ == "__main__":
    sys.exit(main())
