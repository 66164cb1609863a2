"""ONNX export against the checkpoint it came from, on test manifests, from one run.

Exports ``--model`` to a temporary folder, then for every manifest prints: the largest
difference between the two models' log-probabilities, the share of utterances whose greedy
transcript is the same, greedy WER of each, and throughput (seconds of audio per second)
of each, on the same padded batches and this machine's cores. Then the cold start of
``asr transcribe`` on a 10 s file, in fresh processes, for the checkpoint and the export.

    python3 scripts/bench_onnx.py --model exp/fsdd/best.pt \\
        --manifests exp/fsdd/data/test-isolated.jsonl exp/fsdd/data/test-connected.jsonl
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from asr.audio import load_audio
from asr.checkpoint import load_checkpoint
from asr.data import read_manifest
from asr.decoder_settings import build_decoder, describe, load_settings
from asr.decoding import GreedyDecoder, decode_batch
from asr.export import export_onnx
from asr.metrics import score
from asr.runtime import load_onnx

BATCH_SECONDS = 200.0


def batches(waves: list[np.ndarray], rate: int) -> list[list[int]]:
    """Indices in length order, in batches of about BATCH_SECONDS of audio."""
    order = sorted(range(len(waves)), key=lambda i: len(waves[i]))
    out, current, total = [], [], 0.0
    for i in order:
        current.append(i)
        total += len(waves[i]) / rate
        if total >= BATCH_SECONDS:
            out.append(current)
            current, total = [], 0.0
    return out + ([current] if current else [])


def run(recognizer, waves, groups, repeats: int, vtln: float = 0.0) -> tuple[list[np.ndarray], float]:
    """Log-probs per utterance, and the best of ``repeats`` timings of the whole set (seconds)."""
    outputs: list = [None] * len(waves)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for group in groups:
            for i, lp in zip(group, recognizer.batch_log_probs([waves[i] for i in group], vtln=vtln)):
                outputs[i] = lp
        best = min(best, time.perf_counter() - start)
    return outputs, best


def cold_start(model: str, audio: Path) -> float:
    """Median wall time of `asr transcribe --model MODEL AUDIO` in a fresh process (of 3)."""
    times = []
    for _ in range(3):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "asr", "transcribe", "--model", model, str(audio)], check=True,
                       capture_output=True)
        times.append(time.perf_counter() - start)
    return sorted(times)[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="checkpoint (.pt)")
    parser.add_argument("--manifests", nargs="+", required=True)
    parser.add_argument("--repeats", type=int, default=3, help="timings per model; the best counts")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench_onnx_"))
    exported = export_onnx(args.model, work / "model.onnx")[0]
    torch_model, onnx_model = load_checkpoint(args.model), load_onnx(exported)
    greedy = GreedyDecoder(torch_model.vocab)
    settings = load_settings(args.model)
    # the tuned decoder as each model gets it: a lexicon goes to flashlight beside a checkpoint
    # (when installed), to our own beam search beside an export
    tuned_torch = build_decoder(settings, torch_model.vocab)
    tuned_onnx = build_decoder(load_settings(exported), onnx_model.vocab, flashlight=False)
    rate = torch_model.sample_rate
    print(f"{args.model} -> {exported} ({exported.stat().st_size / 1e6:.1f} MB); {os.cpu_count()} cores; "
          f"tuned decoder: {describe(settings)} ({type(tuned_torch).__name__} for the checkpoint, "
          f"{type(tuned_onnx).__name__} for the export)")
    print(f"{'manifest':<22} {'utts':>5} {'max |dlogp|':>11} {'same text %':>11} {'WER torch':>9} "
          f"{'WER onnx':>8} {'tuned torch':>11} {'tuned onnx':>10} {'torch x RT':>10} {'onnx x RT':>9} {'ratio':>5}")
    for manifest in args.manifests:
        utterances = read_manifest(manifest)
        waves = [load_audio(u.audio_filepath, rate) for u in utterances]
        seconds = sum(len(w) for w in waves) / rate
        groups = batches(waves, rate)
        a, torch_time = run(torch_model, waves, groups, args.repeats)
        b, onnx_time = run(onnx_model, waves, groups, args.repeats)
        diff = max(float(np.abs(x - y).max()) for x, y in zip(a, b))
        text_a = [greedy.search(x)[0].text for x in a]
        text_b = [greedy.search(x)[0].text for x in b]
        same = 100 * np.mean([x == y for x, y in zip(text_a, text_b)])
        references = [u.text for u in utterances]
        if settings.vtln:  # the tuned settings read with their warp search (asr.vtln)
            a = run(torch_model, waves, groups, 1, settings.vtln)[0]
            b = run(onnx_model, waves, groups, 1, settings.vtln)[0]
        beam_a = [h[0].text for h in decode_batch(tuned_torch, a)]
        beam_b = [h[0].text for h in decode_batch(tuned_onnx, b)]
        print(f"{Path(manifest).stem:<22} {len(utterances):5d} {diff:11.2e} {same:11.1f} "
              f"{score(references, text_a)[0].wer:9.2f} {score(references, text_b)[0].wer:8.2f} "
              f"{score(references, beam_a)[0].wer:11.2f} {score(references, beam_b)[0].wer:10.2f} "
              f"{seconds / torch_time:10.0f} {seconds / onnx_time:9.0f} {torch_time / onnx_time:5.2f}")

    ten = work / "ten-seconds.wav"
    first = read_manifest(args.manifests[-1])
    audio = np.concatenate([load_audio(u.audio_filepath, rate) for u in first[:12]])[:10 * rate]
    sf.write(ten, np.pad(audio, (0, 10 * rate - len(audio))), rate)
    print(f"\ncold `asr transcribe` of a 10 s file (fresh process, median of 3): "
          f"checkpoint {cold_start(args.model, ten):.2f} s, export {cold_start(str(exported), ten):.2f} s")


if __name__ == "__main__":
    main()
