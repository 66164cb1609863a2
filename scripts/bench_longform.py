"""Long recordings: accuracy, word times, speed and memory of `asr transcribe`, from one run.

Builds a recording from FSDD's official test takes (takes 0-4): runs of 1-8 digits of one
speaker, 50-300 ms apart within a run, 0.1-1.5 s of pause between runs, faint noise,
resampled to 16 kHz, with the true position of every digit. Then prints:

- WER of the long recording against the same audio cut at the reference pauses (each run a
  file of its own), greedy and with the decoder settings tuned beside the checkpoint;
  "whole" is the recording read by the model in one piece (what `asr transcribe` did
  before it cut at pauses; ``--whole-minutes`` of it, as it needs memory in proportion);
- word boundary errors against the true positions (median, 95th percentile);
- speed as a multiple of real time, greedy and tuned, on this machine's cores;
- peak RSS of `asr transcribe --format all --output-dir` in a fresh process, on the
  recording and on one twice as long;
- 300 short files transcribed in one call against one call per file, same process.

    python3 scripts/bench_longform.py --model exp/fsdd/best.pt --data-dir ../shared/data/fsdd/recordings
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from asr.audio import load_audio, resample
from asr.checkpoint import load_checkpoint
from asr.decoder_settings import build_decoder, describe, load_settings
from asr.decoding import GreedyDecoder
from asr.metrics import score
from asr.segment import SegmentOptions
from asr.transcribe import Transcriber, transcribe_files

WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
RATE = 16000


def test_takes(data_dir: Path) -> dict[str, list[tuple[int, np.ndarray]]]:
    """{speaker: [(digit, 16 kHz audio)]} of the official test takes (0-4)."""
    takes: dict[str, list] = {}
    for path in sorted(data_dir.glob("*.wav")):
        digit, speaker, take = path.stem.split("_")
        if int(take) < 5:
            takes.setdefault(speaker, []).append((int(digit), resample(load_audio(path, 8000), 8000, RATE)))
    return takes


def build_recording(takes, seconds: float, seed: int, out: Path, clips: Path | None = None):
    """Writes ``out`` (16 kHz WAV of about ``seconds``) and, if ``clips`` is given, every run cut at
    the reference pauses (the middle of each pause) as clips/NNNNN.wav. Returns the true words
    [(word, start, end)] and the clip paths."""
    rng = np.random.default_rng(seed)
    speakers = sorted(takes)
    truth, clip_paths, position = [], [], 0
    pending = np.zeros(0, np.float32)  # audio of the current run and its pause, not yet written
    run_start = 0  # sample where the current clip begins (the middle of the pause before it)
    with sf.SoundFile(out, "w", RATE, 1, "PCM_16") as f:
        while position < seconds * RATE:
            speaker = speakers[rng.integers(len(speakers))]
            pieces = []
            for k in range(int(rng.integers(1, 9))):
                if k:
                    pieces.append(np.zeros(int(rng.uniform(0.05, 0.3) * RATE), np.float32))
                digit, audio = takes[speaker][rng.integers(len(takes[speaker]))]
                start = position + sum(len(p) for p in pieces)
                truth.append((WORDS[digit], start / RATE, (start + len(audio)) / RATE))
                pieces.append(audio)
            pause = int(rng.uniform(0.1, 1.5) * RATE)
            run = np.concatenate(pieces + [np.zeros(pause, np.float32)])
            run += rng.normal(0, 0.0005, len(run)).astype(np.float32)  # faint noise (about -66 dBFS)
            f.write(np.clip(run, -1, 1))
            if clips is not None:
                cut = position + len(run) - pause // 2
                pending = np.concatenate([pending, run])
                clip, pending = pending[:cut - run_start], pending[cut - run_start:]
                clip_paths.append(clips / f"{len(clip_paths):05d}.wav")
                sf.write(clip_paths[-1], clip, RATE, subtype="PCM_16")
                run_start = cut
            position += len(run)
    return truth, clip_paths


def wer(truth, hypothesis_words) -> float:
    return score([" ".join(w for w, _, _ in truth)], [" ".join(hypothesis_words)])[0].wer


def boundary_errors(truth, words) -> np.ndarray:
    """|hypothesis - truth| of the start and end of every correctly recognized word, seconds."""
    matcher = difflib.SequenceMatcher(a=[w for w, _, _ in truth], b=[w.word for w in words], autojunk=False)
    errors = []
    for block in matcher.get_matching_blocks():
        for k in range(block.size):
            _, start, end = truth[block.a + k]
            word = words[block.b + k]
            errors += [abs(word.start - start), abs(word.end - end)]
    return np.array(errors)


def transcribe(recognizer, decoder, paths, segments=SegmentOptions(), vtln=0.0):
    start = time.perf_counter()
    with Transcriber(recognizer, decoder, segments, vtln=vtln) as transcriber:
        results = list(transcriber.run(paths))
    return results, time.perf_counter() - start


def peak_rss_mb(model: str, audio: Path, out_dir: Path) -> tuple[float, float]:
    """(peak RSS in MB, seconds) of `asr transcribe --format all` on ``audio`` in a fresh process."""
    # VmHWM, not ru_maxrss: the latter survives exec, so a forked child starts at its parent's peak
    script = ("import sys; from asr.cli import main; code = main(sys.argv[1:]); "
              "print([l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM')][0]); "
              "sys.exit(code)")
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-c", script, "transcribe", "--model", model, "--format", "all",
                             "--output-dir", str(out_dir), str(audio)], capture_output=True, text=True)
    if result.returncode:
        raise SystemExit(f"asr transcribe failed on {audio}: {result.stderr.strip()}")
    return int(result.stdout.split()[-1]) / 1024, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True)
    parser.add_argument("--data-dir", required=True, type=Path, help="FSDD recordings/")
    parser.add_argument("--minutes", type=float, default=60.0, help="length of the long recording")
    parser.add_argument("--whole-minutes", type=float, default=10.0,
                        help="read this much in one piece for the 'whole' row (0: skip)")
    parser.add_argument("--rss-hours", type=float, nargs="*", default=[],
                        help="also measure peak RSS on recordings this many hours long")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work-dir", type=Path, help="keep the recordings here (default: a temporary folder)")
    args = parser.parse_args()

    work = args.work_dir or Path(tempfile.mkdtemp(prefix="bench_longform_"))
    (work / "clips").mkdir(parents=True, exist_ok=True)
    recognizer = load_checkpoint(args.model)
    greedy = GreedyDecoder(recognizer.vocab)
    settings = load_settings(args.model)
    tuned = build_decoder(settings, recognizer.vocab)
    takes = test_takes(args.data_dir)
    long_wav = work / "long.wav"
    truth, clips = build_recording(takes, args.minutes * 60, args.seed, long_wav, work / "clips")
    seconds = sf.info(long_wav).duration
    print(f"recording: {seconds / 60:.1f} min, {len(truth)} digits in {len(clips)} runs, 16 kHz; "
          f"tuned decoder: {describe(settings)}; {os.cpu_count()} cores")

    print(f"\n{'decoder':<8} {'long WER %':>10} {'cut at pauses %':>15} {'x real time':>11}")
    readers = [("greedy", greedy, 0.0), ("tuned", tuned, settings.vtln)]  # tuned: with its VTLN, if any
    for name, decoder, vtln in readers:
        (long,), elapsed = transcribe(recognizer, decoder, [long_wav], vtln=vtln)
        cut, _ = transcribe(recognizer, decoder, clips, vtln=vtln)
        words = long.text.split()
        print(f"{name:<8} {wer(truth, words):10.2f} {wer(truth, ' '.join(c.text for c in cut).split()):15.2f} "
              f"{seconds / elapsed:11.0f}")
        if name == "greedy":
            errors = boundary_errors(truth, long.words)
    print(f"\nword boundaries (greedy, {len(errors) // 2} words right): median error {np.median(errors) * 1000:.0f} ms, "
          f"95th percentile {np.percentile(errors, 95) * 1000:.0f} ms")

    if args.whole_minutes:
        whole_wav = work / "whole.wav"
        whole_truth, _ = build_recording(takes, args.whole_minutes * 60, args.seed, whole_wav)
        one_piece = SegmentOptions(max_seconds=1e9)
        for name, decoder, vtln in readers:
            (piece,), _ = transcribe(recognizer, decoder, [whole_wav], one_piece, vtln)
            (cut,), _ = transcribe(recognizer, decoder, [whole_wav], vtln=vtln)
            print(f"first {args.whole_minutes:g} min, {name}: WER {wer(whole_truth, piece.text.split()):.2f}% "
                  f"read whole, {wer(whole_truth, cut.text.split()):.2f}% cut at pauses")

    print("\npeak RSS of `asr transcribe --format all --output-dir` (fresh process):")
    shutil.rmtree(work / "out", ignore_errors=True)
    rss, elapsed = peak_rss_mb(args.model, long_wav, work / "out")
    print(f"  {seconds / 60:6.1f} min: {rss:6.0f} MB ({elapsed:.0f} s, formats: "
          f"{', '.join(sorted(p.suffix for p in (work / 'out').iterdir()))})")
    for hours in [2 * args.minutes / 60] + args.rss_hours:
        longer = work / f"long-{hours:g}h.wav"
        build_recording(takes, hours * 3600, args.seed + 1, longer)
        rss, elapsed = peak_rss_mb(args.model, longer, work / "out")
        print(f"  {hours * 60:6.1f} min: {rss:6.0f} MB ({elapsed:.0f} s)")
        longer.unlink()

    files = sorted(p for p in args.data_dir.glob("*.wav") if int(p.stem.split("_")[2]) < 5)
    start = time.perf_counter()
    one_call = transcribe_files(recognizer, files, tuned, vtln=settings.vtln)
    together = time.perf_counter() - start
    start = time.perf_counter()
    apart = [transcribe_files(recognizer, [f], tuned, vtln=settings.vtln)[0] for f in files]
    alone = time.perf_counter() - start
    assert [t.text for t in one_call] == [t.text for t in apart]
    print(f"\n{len(files)} short files, tuned decoder: one call {together:.1f} s, one call per file {alone:.1f} s: "
          f"{alone / together:.1f}x the throughput (same transcripts)")


if __name__ == "__main__":
    main()
