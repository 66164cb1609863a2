"""Prepare LibriSpeech (or Mini LibriSpeech): download, verify, extract, manifests.

Layout: ``LibriSpeech/<part>/<speaker>/<chapter>/<speaker>-<chapter>.trans.txt`` with
lines ``<utterance-id> <TRANSCRIPT>`` beside ``<utterance-id>.flac`` (16 kHz). The
FLAC files are used as they are. Each part's manifest is cached in
OUT_DIR/parts/<part>.jsonl, so an interrupted preparation of the 960 hours resumes
with the parts still missing.

Writes OUT_DIR/train.jsonl (the --train parts), dev.jsonl (the --dev parts) and
test-<part>.jsonl for every --test part.
"""

from __future__ import annotations

import argparse
import json
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from asr.audio import audio_duration
from asr.corpus import corpus_folder, entry, recipe_main, write_manifests
from asr.data import write_manifest
from asr.download import Archive, fetch_and_extract
from asr.errors import AsrError

_SLR12 = "https://www.openslr.org/resources/12/"
_SLR31 = "https://www.openslr.org/resources/31/"
ARCHIVES = {  # published digests of the archives
    "dev-clean": Archive(_SLR12 + "dev-clean.tar.gz", "sha256:76f87d090650617fca0cac8f88b9416e0ebf80350acb97b343a85fa903728ab3"),
    "dev-other": Archive(_SLR12 + "dev-other.tar.gz", "sha256:12661c48e8c3fe1de2c1caa4c3e135193bfb1811584f11f569dd12645aa84365"),
    "test-clean": Archive(_SLR12 + "test-clean.tar.gz", "sha256:39fde525e59672dc6d1551919b1478f724438a95aa55f874b576be21967e6c23"),
    "test-other": Archive(_SLR12 + "test-other.tar.gz", "sha256:d09c181bba5cf717b3dee7d4d592af11a3ee3a09e08ae025c5506f6ebe961c29"),
    "train-clean-100": Archive(_SLR12 + "train-clean-100.tar.gz", "sha256:d4ddd1d5a6ab303066f14971d768ee43278a5f2a0aa43dc716b0e64ecbbbf6e2"),
    "train-clean-360": Archive(_SLR12 + "train-clean-360.tar.gz", "sha256:146a56496217e96c14334a160df97fffedd6e0a04e66b9c5af0d40be3c792ecf"),
    "train-other-500": Archive(_SLR12 + "train-other-500.tar.gz", "sha256:ddb22f27f96ec163645d53215559df6aa36515f26e01dd70798188350adcb6d2"),
    "train-clean-5": Archive(_SLR31 + "train-clean-5.tar.gz", "md5:5df7d4e78065366204ca6845bb08f490"),
    "dev-clean-2": Archive(_SLR31 + "dev-clean-2.tar.gz", "md5:6d7ab67ac6a1d2c993d050e16d61080d"),
}


def download(download_dir: Path, parts: list[str]) -> Path:
    """Fetch, verify and extract ``parts``; returns the LibriSpeech/ folder."""
    for part in parts:
        fetch_and_extract(ARCHIVES[part], download_dir)  # once: a marker, written when complete, says so
    return download_dir / "LibriSpeech"


def part_entries(root: Path, part: str, workers: int = 4) -> list[dict]:
    """One entry per transcript line of ``part``, in sorted utterance order."""
    folder = root / part
    if not folder.is_dir():
        raise AsrError(f"{folder}: LibriSpeech part not found (download it, or check --data-dir)")
    items = []
    for trans in sorted(folder.glob("*/*/*.trans.txt")):
        speaker = trans.parent.parent.name
        for number, line in enumerate(trans.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            utt, _, text = line.strip().partition(" ")
            audio = trans.parent / f"{utt}.flac"
            if not text.strip():
                raise AsrError(f"{trans}:{number}: no transcript after the utterance id {utt!r}")
            if not audio.is_file():
                raise AsrError(f"{trans}:{number}: audio file not found: {audio}")
            items.append((audio, text.strip().lower(), speaker))
    if not items:
        raise AsrError(f"{folder}: no <speaker>/<chapter>/*.trans.txt transcripts found")
    with ThreadPoolExecutor(workers) as pool:
        durations = list(pool.map(lambda item: audio_duration(item[0]), items))
    return [entry(audio.resolve(), text, d, speaker=speaker) for (audio, text, speaker), d in zip(items, durations)]


def cached_part(root: Path, part: str, out_dir: Path) -> list[dict]:
    cache = out_dir / "parts" / f"{part}.jsonl"
    if cache.is_file():
        return [json.loads(line) for line in cache.read_text(encoding="utf-8").splitlines()]
    entries = part_entries(root, part)
    write_manifest(cache, entries)
    return entries


def prepare(root: Path, out_dir: Path, train: list[str], dev: list[str], test: list[str]) -> None:
    parts = {p: cached_part(root, p, out_dir) for p in dict.fromkeys(train + dev + test)}
    manifests = {"train": [e for p in train for e in parts[p]], "dev": [e for p in dev for e in parts[p]]}
    manifests.update({f"test-{p}": parts[p] for p in test})
    for stale in out_dir.glob("test-*.jsonl"):
        if stale.stem not in manifests:
            stale.unlink()
    write_manifests(out_dir, manifests)


def parts_of(args) -> dict[str, list[str]]:
    split = {k: [p for p in getattr(args, k).split(",") if p] for k in ("train", "dev", "test")}
    unknown = [p for ps in split.values() for p in ps if p not in ARCHIVES]
    if unknown:
        raise AsrError(f"unknown LibriSpeech part(s) {', '.join(unknown)} (known: {', '.join(ARCHIVES)})")
    return split


def options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--train", default="train-clean-100,train-clean-360,train-other-500", help="comma-separated parts")
    p.add_argument("--dev", default="dev-clean", help="comma-separated parts for model selection and tuning")
    p.add_argument("--test", default="test-clean,test-other,dev-clean,dev-other", help="comma-separated parts")


def main(argv=None) -> int:
    def get(download_dir: Path, args) -> Path:
        return download(download_dir, list(dict.fromkeys(p for ps in parts_of(args).values() for p in ps)))

    def prep(root: Path, out_dir: Path, args) -> None:
        split = parts_of(args)
        prepare(corpus_folder(root, "LibriSpeech"), out_dir, split["train"], split["dev"], split["test"])

    return recipe_main(__doc__, prep, get, options, argv)


if __name__ == "__main__":
    sys.exit(main())
