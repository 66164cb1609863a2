"""Training-step throughput on the CPU: one pass per batch vs. the batch cut into chunks
that run in parallel threads (asr.train_step.ctc_gradients), on the same batches in one run.

    python scripts/bench_step_threads.py --manifest exp/fsdd/data/train.jsonl \\
        --config recipes/fsdd/conf.yaml [--audio-seconds 600] [--chunks 2]

Prints audio-seconds per second of each and their ratio.
"""

import argparse
import time
from concurrent.futures import ThreadPoolExecutor

import torch

from asr.augment import spec_augment
from asr.config import load_train_config
from asr.data import SpeechDataset, make_loader, read_manifest
from asr.features import FeatureExtractor
from asr.model import CTCModel
from asr.text import Vocabulary
from asr.train_step import ctc_gradients


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--manifest", required=True)
    parser.add_argument("--config", required=True)
    parser.add_argument("--audio-seconds", type=float, default=600.0, help="audio per measurement")
    parser.add_argument("--chunks", type=int, default=2)
    args = parser.parse_args()
    torch.manual_seed(0)
    torch.set_flush_denormal(True)
    config = load_train_config(args.config)
    utterances = read_manifest(args.manifest)
    vocab = Vocabulary.from_texts(u.text for u in utterances)
    features = FeatureExtractor(config.features)
    model = CTCModel(config.model, features.dim, len(vocab))
    dataset = SpeechDataset(utterances, config.features.sample_rate, vocab, features.min_samples)
    loader = make_loader(dataset, config.data.batch_seconds, config.data.max_batch_size, shuffle=True, seed=0)
    loader.batch_sampler.set_epoch(2)  # shuffled, as after the first epoch
    batches, audio = [], 0.0
    for batch in loader:
        feats, frames = features(batch.waveforms, batch.wave_lengths)
        batches.append((spec_augment(feats, frames, config.specaugment), frames, batch.targets, batch.target_lengths))
        audio += float(batch.wave_lengths.sum()) / config.features.sample_rate
        if audio >= args.audio_seconds:
            break
    ctc = torch.nn.CTCLoss(zero_infinity=True)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def run(pool, chunks) -> float:
        ctc_gradients(model, ctc, *batches[0], pool, chunks)  # warm-up
        start = time.perf_counter()
        for b in batches:
            optimizer.zero_grad(set_to_none=True)
            ctc_gradients(model, ctc, *b, pool, chunks)
            optimizer.step()
        return audio / (time.perf_counter() - start)

    default_threads = torch.get_num_threads()
    one_pass = run(None, 1)
    torch.set_num_threads(1)
    with ThreadPoolExecutor(args.chunks) as pool:
        chunked = run(pool, args.chunks)
    print(f"{len(batches)} batches, {audio:.0f} audio-s, model {model.num_parameters() / 1e6:.2f}M parameters")
    print(f"one pass, {default_threads} torch threads : {one_pass:7.1f} audio-s/s")
    print(f"{args.chunks} chunks in threads, 1 torch thread: {chunked:7.1f} audio-s/s  (ratio {chunked / one_pass:.2f}x)")


if __name__ == "__main__":
    main()
