"""Prepare the Free Spoken Digit Dataset: official split, connected-digit utterances, manifests.

Isolated digits: takes 0-4 of every digit and speaker are the test set (official),
takes 5-6 the dev set (carved from train), takes 7-49 train. Connected digits:
2 to 7 recordings of one speaker from the same split, joined with short random
pauses (fixed seed), so the model learns word boundaries; the training set's
also include single digits with pauses around them.

With ``--heldout-speakers``, those speakers contribute nothing to train or dev; all their
recordings (50 takes of each digit) form separate test sets: isolated, and 100 connected
strings a speaker.

Unless ``--conditions none``, the official test takes are also changed the way real
recordings differ (``asr.conditions``: level, noise, speed, telephone, room, formats; seeds
of their own) into test-conditions.jsonl, whose ``condition`` field ``asr evaluate`` scores
one by one.

With ``--tts N``, training also gets N synthesized utterances (half single digits, half
strings of 2-7 digits) spoken by the offline voices of ``asr.synthesis`` (espeak-ng
accents and variants, MBROLA, flite, pico, RHVoice, Festival; rate and pitch varied):
hundreds of voices where FSDD has six speakers. Dev and test stay real recordings. The
default, ``--tts auto``, is 1,000 of them with ``--heldout-speakers`` when every engine is
installed (they read a voice never heard better), and none otherwise.

Writes into OUT_DIR: train.jsonl, dev.jsonl, test-isolated.jsonl,
test-connected.jsonl (+ test-heldout-isolated.jsonl, test-heldout-connected.jsonl,
test-conditions.jsonl), the connected utterances' audio under wav/ and the changed
recordings under conditions/.
"""

from __future__ import annotations

import random
import re
from collections import defaultdict
from pathlib import Path

import numpy as np

from asr.audio import audio_duration, load_audio, write_audio
from asr.conditions import pick, write_condition_manifest
from asr.corpus import recipe_main
from asr.data import read_manifest, write_manifest
from asr.download import Archive, fetch_and_extract
from asr.errors import AsrError
from asr.synthesis import Utterance, draw_voice, missing_engines, synthesize_all, voice_families

ARCHIVE_URL = "https://github.com/Jakobovski/free-spoken-digit-dataset/archive/refs/heads/master.zip"
SAMPLE_RATE = 8000  # Hz, FSDD's native rate
WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
NAME = re.compile(r"^(\d)_([a-z]+)_(\d+)\.wav$")
TEST_TAKES, DEV_TAKES = range(0, 5), range(5, 7)
HELDOUT_CONNECTED = 100  # connected-digit test strings per held-out speaker
HELDOUT_TTS = 1000  # synthetic-voice training utterances with --heldout-speakers (--tts auto)
RECORDINGS = 3000  # in the published archive: 6 speakers x 10 digits x 50 takes


def download(download_dir: Path, url: str = ARCHIVE_URL) -> Path:
    """Fetch and unpack the public archive (once); returns its recordings/ folder. The archive
    is a branch snapshot, so no fixed checksum is published for it: instead the download is
    checked against its length and read through (asr.download), and the recordings counted."""
    recordings = download_dir / "free-spoken-digit-dataset-master" / "recordings"
    if not (recordings.is_dir() and any(download_dir.glob(".extracted-*"))):  # a marker: extracted whole
        fetch_and_extract(Archive(url, ""), download_dir)
    if not recordings.is_dir():
        raise AsrError(f"{download_dir}: the archive has no free-spoken-digit-dataset-master/recordings/ folder")
    found = sum(1 for path in recordings.glob("*.wav") if NAME.match(path.name))
    if found < RECORDINGS:
        raise AsrError(f"{recordings}: {found:,} recordings, expected {RECORDINGS:,} (6 speakers x 10 digits x 50 "
                       f"takes): an incomplete copy; delete {download_dir} and rerun, or pass --data-dir")
    return recordings


def scan(data_dir: Path) -> list[dict]:
    """All recordings as {path, digit, speaker, take}."""
    if not data_dir.is_dir():
        raise AsrError(f"{data_dir}: FSDD recordings folder not found")
    items = []
    for path in sorted(data_dir.glob("*.wav")):
        m = NAME.match(path.name)
        if m:
            items.append({"path": path.resolve(), "digit": int(m[1]), "speaker": m[2], "take": int(m[3])})
    if not items:
        raise AsrError(f"{data_dir}: no FSDD recordings ({{digit}}_{{speaker}}_{{take}}.wav) found")
    return items


def split_of(item: dict, heldout: set[str]) -> str:
    if item["speaker"] in heldout:
        return "test-heldout"
    if item["take"] in TEST_TAKES:
        return "test"
    return "dev" if item["take"] in DEV_TAKES else "train"


def isolated_entries(items: list[dict]) -> list[dict]:
    return [{"audio_filepath": str(i["path"]), "duration": round(audio_duration(i["path"]), 4),
             "text": WORDS[i["digit"]], "speaker": i["speaker"]} for i in items]


def connected_entries(items: list[dict], count: int, seed: int, out_dir: Path, name: str,
                      min_digits: int = 2) -> list[dict]:
    """``count`` utterances of ``min_digits``-7 digits by one speaker, joined by 50-300 ms
    pauses, with 0-250 ms of pause before and after.

    Pauses hold faint noise (RMS 0.0003-0.003), not digital zeros: real pauses are
    never exactly silent. Edge pauses teach the model that a digit reads the same
    with or without silence around it (FSDD's own recordings are trimmed)."""
    rng = random.Random(seed)
    noise = np.random.default_rng(seed)
    by_speaker = defaultdict(list)
    for item in items:
        by_speaker[item["speaker"]].append(item)
    speakers = sorted(by_speaker)
    entries = []
    for n in range(count):
        speaker = speakers[n % len(speakers)]
        picks = [rng.choice(by_speaker[speaker]) for _ in range(rng.randint(min_digits, 7))]
        level = rng.uniform(3e-4, 3e-3)

        def pause(low: float, high: float) -> np.ndarray:
            """Faint noise at this utterance's level, ``low``-``high`` seconds long."""
            return (noise.standard_normal(int(rng.uniform(low, high) * SAMPLE_RATE)) * level).astype(np.float32)

        pieces = [pause(0.0, 0.25)]
        for k, item in enumerate(picks):
            if k:
                pieces.append(pause(0.05, 0.3))
            pieces.append(load_audio(item["path"], SAMPLE_RATE))
        audio = np.concatenate(pieces + [pause(0.0, 0.25)])
        rel = Path("wav") / name / f"{name}-{n:05d}.wav"
        write_audio(out_dir / rel, audio, SAMPLE_RATE)
        entries.append({"audio_filepath": str(rel), "duration": round(len(audio) / SAMPLE_RATE, 4),
                        "text": " ".join(WORDS[i["digit"]] for i in picks), "speaker": speaker,
                        "sources": [i["path"].name for i in picks]})
    return entries


def tts_count(option: str, heldout: set[str]) -> int:
    """``--tts``: a count, or ``auto``: HELDOUT_TTS synthetic utterances when speakers are held out
    (hundreds of voices are what voices never heard are read with best; docs/experiments.md) and
    every engine of ``asr.synthesis`` is installed, else none, with a line that says so."""
    if option != "auto":
        try:
            count = int(option)
        except ValueError:
            raise AsrError(f"--tts: expected a count or auto, got {option!r}") from None
        if count < 0:
            raise AsrError(f"--tts: expected a count >= 0, got {count}")
        return count
    if not heldout:
        return 0
    missing = missing_engines(voice for family in voice_families().values() for voice in family)
    if missing:
        print(f"--tts auto: no synthetic voices in training ({', '.join(missing)} not installed; "
              "recipes/synth/install_voices.sh installs them)")
        return 0
    return HELDOUT_TTS


def tts_entries(count: int, seed: int, out_dir: Path) -> list[dict]:
    """``count`` digit utterances by synthetic voices, at FSDD's rate, under wav/tts-train/. Names
    follow from the seed and an existing file is kept, so an interrupted preparation resumes."""
    rng = random.Random(seed)
    families = voice_families()
    utterances = []
    for n in range(count):
        voice = draw_voice(rng, families)
        digits = 1 if n % 2 == 0 else rng.randint(2, 7)
        text = " ".join(rng.choice(WORDS) for _ in range(digits))
        utterances.append(Utterance(Path("wav") / "tts-train" / f"tts-{n:05d}-{voice.name}.wav", voice, text,
                                    round(rng.uniform(0.8, 1.3), 3), rng.randint(25, 75)))
    return synthesize_all(utterances, out_dir, SAMPLE_RATE)


def prepare(data_dir: Path, out_dir: Path, heldout: set[str], n_connected: dict[str, int], seed: int,
            n_tts: int = 0, conditions: list[str] | None = None) -> None:
    """``conditions``: the names of asr.conditions to build test-conditions.jsonl from (None: none)."""
    items = scan(data_dir)
    speakers = {i["speaker"] for i in items}
    unknown = sorted(heldout - speakers)
    if unknown:
        raise AsrError(f"--heldout-speakers: unknown speaker(s) {', '.join(unknown)} "
                       f"(FSDD has {', '.join(sorted(speakers))})")
    if heldout == speakers:
        raise AsrError("--heldout-speakers: at least one speaker must remain for training")
    splits = defaultdict(list)
    for item in items:
        splits[split_of(item, heldout)].append(item)
    out_dir.mkdir(parents=True, exist_ok=True)
    manifests = {
        "train": isolated_entries(splits["train"]) + connected_entries(
            splits["train"], n_connected["train"], seed, out_dir, "connected-train", min_digits=1)
        + tts_entries(n_tts, seed + 4, out_dir),
        "dev": isolated_entries(splits["dev"]) + connected_entries(
            splits["dev"], n_connected["dev"], seed + 1, out_dir, "connected-dev"),
        "test-isolated": isolated_entries(splits["test"]),
        "test-connected": connected_entries(splits["test"], n_connected["test"], seed + 2, out_dir,
                                            "connected-test"),
    }
    if heldout:
        manifests["test-heldout-isolated"] = isolated_entries(splits["test-heldout"])
        manifests["test-heldout-connected"] = connected_entries(
            splits["test-heldout"], HELDOUT_CONNECTED * len(heldout), seed + 3, out_dir, "connected-test-heldout")
    for stale in [*out_dir.glob("test-heldout-*.jsonl"), out_dir / "test-conditions.jsonl"]:
        if stale.stem not in manifests and stale.exists():
            stale.unlink()
    for name, entries in manifests.items():
        write_manifest(out_dir / f"{name}.jsonl", entries)
        print(f"{out_dir / name}.jsonl: {len(entries)} utterances, "
              f"{sum(e['duration'] for e in entries) / 60:.1f} min")
    if conditions:
        count = write_condition_manifest(read_manifest(out_dir / "test-isolated.jsonl"), out_dir / "conditions",
                                         out_dir / "test-conditions.jsonl", SAMPLE_RATE, seed + 5, conditions)
        print(f"{out_dir / 'test-conditions.jsonl'}: {count} utterances in {len(conditions)} conditions")


def main(argv=None) -> int:
    def options(p) -> None:
        p.add_argument("--heldout-speakers", default="", help="comma-separated speakers kept out of training")
        p.add_argument("--connected-train", type=int, default=1000, help="connected-digit training utterances")
        p.add_argument("--connected-dev", type=int, default=100)
        p.add_argument("--connected-test", type=int, default=300)
        p.add_argument("--tts", default="auto", metavar="N",
                       help="N synthesized digit utterances added to training (needs recipes/synth/install_voices.sh); "
                            f"auto: {HELDOUT_TTS} with --heldout-speakers when every speech engine is installed, else 0")
        p.add_argument("--seed", type=int, default=7)
        p.add_argument("--conditions", default="all",
                       help="robustness test sets from the test takes: all, none, or comma-separated names "
                            "(asr conditions --help lists them)")

    def prep(data_dir: Path, out_dir: Path, args) -> None:
        heldout = {s.strip() for s in args.heldout_speakers.split(",") if s.strip()}
        counts = {"train": args.connected_train, "dev": args.connected_dev, "test": args.connected_test}
        conditions = None if args.conditions == "none" else pick("" if args.conditions == "all" else args.conditions)
        prepare(data_dir, out_dir, heldout, counts, args.seed, tts_count(args.tts, heldout), conditions)

    return recipe_main(__doc__, prep, lambda download_dir, args: download(download_dir), options, argv)


if __name__ == "__main__":
    raise SystemExit(main())
