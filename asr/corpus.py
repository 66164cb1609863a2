"""What recipes' data preparation shares: manifest entries, resumable audio conversion, summaries.

A recipe's ``prepare.py`` parses its corpus's own layout (transcript files, TSV, STM,
...) into entries and calls these helpers; the manifests are the contract with the
rest of the toolkit (see ``asr.data``). Preparation is idempotent and resumable:
converted files are written atomically under names fixed by the corpus, a file that
exists is kept, and manifests are replaced whole.
"""

from __future__ import annotations

import os
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import soundfile as sf

from asr.audio import audio_duration, load_audio
from asr.data import write_manifest
from asr.errors import AsrError
from asr.files import atomic_write


@dataclass(frozen=True)
class Conversion:
    """Audio to write as 16-bit WAV: all of ``source``, or [start, end) seconds of it."""

    source: Path
    target: Path
    sample_rate: int  # Hz of the target
    start: float = 0.0  # seconds
    end: float | None = None  # seconds; None: to the end
    raw: dict | None = None  # soundfile's format arguments for headerless files


def convert(job: Conversion) -> float:
    """Write ``job.target`` unless it exists (atomically); returns its duration in seconds."""
    if job.target.is_file():
        return audio_duration(job.target)
    samples = load_audio(job.source, job.sample_rate, job.start, job.end, job.raw)
    with atomic_write(job.target) as partial:
        sf.write(str(partial), samples, job.sample_rate, subtype="PCM_16", format="WAV")
    return len(samples) / job.sample_rate


def convert_all(jobs: list[Conversion], workers: int = os.cpu_count() or 1) -> list[float]:
    """Run conversions in threads (decoders release the GIL); durations in job order."""
    if not jobs:
        return []
    durations = []
    with ThreadPoolExecutor(max(1, workers)) as pool:
        for done, duration in enumerate(pool.map(convert, jobs), 1):
            durations.append(duration)
            if done % 5000 == 0:
                print(f"  converted {done:,} of {len(jobs):,} files", file=sys.stderr)
    return durations


def corpus_folder(root: Path, name: str) -> Path:
    """``root/name`` when ``root`` is the folder that holds the corpus's top folder, else ``root``:
    --data-dir may name either."""
    return root / name if (root / name).is_dir() else root


def entry(audio: Path, text: str, duration: float | None = None, **extra) -> dict:
    """A manifest line; the duration is read from the header when not given."""
    seconds = audio_duration(audio) if duration is None else duration
    return {"audio_filepath": str(audio), "duration": round(seconds, 4), "text": text, **extra}


def write_manifests(out_dir: Path, manifests: dict[str, list[dict]]) -> None:
    """Write ``{name: entries}`` as OUT_DIR/name.jsonl (each atomically) and print a summary line each."""
    for name, entries in manifests.items():
        if not entries:
            raise AsrError(f"{name}: no utterances found for this set; is the corpus complete?")
        write_manifest(Path(out_dir) / f"{name}.jsonl", entries)
        hours = sum(e["duration"] for e in entries) / 3600
        speakers = {e["speaker"] for e in entries if "speaker" in e}
        print(f"{Path(out_dir) / name}.jsonl: {len(entries):,} utterances, {hours:.2f} h"
              + (f", {len(speakers)} speakers" if speakers else ""))


def recipe_main(doc: str, prepare, download=None, add_arguments=None, argv=None) -> int:
    """The command line every recipe's prepare.py shares.

    ``prepare(root, out_dir, args)`` writes the manifests from the corpus folder ``root``;
    ``download(download_dir, args) -> root`` fetches, verifies and extracts it (None: the
    corpus cannot be downloaded automatically, so --data-dir is required);
    ``add_arguments(parser)`` adds the recipe's own options. An ``AsrError`` becomes one
    line on stderr and exit status 1.
    """
    import argparse

    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", required=download is None,
                        help="an existing copy of the corpus" + ("; default: download it" if download else ""))
    if download:
        parser.add_argument("--download-dir", default="downloads", help="where archives go and are extracted")
        parser.add_argument("--download-only", action="store_true", help="download, verify, extract; no manifests")
    parser.add_argument("--out-dir", help="where manifests (and converted audio) go")
    if add_arguments:
        add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        if args.data_dir:
            root = Path(args.data_dir)
            if not root.exists():
                raise AsrError(f"{root}: --data-dir not found")
        else:
            root = download(Path(args.download_dir), args)
        if not getattr(args, "download_only", False):
            if not args.out_dir:
                raise AsrError("--out-dir is required")
            prepare(root, Path(args.out_dir), args)
    except AsrError as e:
        print(f"{Path(sys.argv[0]).name}: error: {e}", file=sys.stderr)
        return 1
    return 0
