"""Training throughput: the full pipeline against the bare model step, on the same batches.

Full pipeline: read and decode audio (DataLoader), collate, waveform augmentation,
features (in chunks on parallel threads, as training does), VTLP, SpecAugment, forward +
backward, clipping, optimizer step. Bare step: the same batches' features computed
beforehand, then only forward + backward + clipping + optimizer step. Both use the
trainer's own pieces (chunked threads on the CPU, bf16 on CUDA). Prints audio-seconds per
second for each and their ratio; on CUDA also how busy the GPU was during each (NVML
utilization sampled every 50 ms, peak memory).

    python scripts/bench_train.py --manifest exp/fsdd/data/train.jsonl --config recipes/fsdd/conf.yaml
    python scripts/bench_train.py ... augment.enabled=false   # or any augment.* key
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from asr.augment import augment_features, build_augmentation  # noqa: E402
from asr.recognizer import pick_device  # noqa: E402
from asr.config import load_train_config  # noqa: E402
from asr.data import SpeechDataset, make_loader, read_manifest  # noqa: E402
from asr.features import FeatureExtractor  # noqa: E402
from asr.model import CTCModel  # noqa: E402
from asr.monitor import GpuUtilization  # noqa: E402
from asr.text import Vocabulary  # noqa: E402
from asr.train import chunked_features, ctc_gradients  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--manifest", required=True, help="training manifest")
    parser.add_argument("--config", help="training config (YAML)")
    parser.add_argument("--audio-seconds", type=float, default=900.0, help="audio to time, seconds (default 900)")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE")
    args = parser.parse_args()
    config = load_train_config(args.config, args.overrides + [f"data.train_manifest={args.manifest}"])
    device = pick_device(config.device)
    step_threads = 1 if device.type == "cuda" else (config.step_threads or os.cpu_count() or 1)
    if step_threads > 1:
        torch.set_num_threads(1)
    torch.manual_seed(config.seed)
    torch.set_flush_denormal(True)

    utterances = [u for u in read_manifest(args.manifest) if u.duration <= config.data.max_duration]
    vocab = Vocabulary.from_texts(u.text for u in utterances)
    features = FeatureExtractor(config.features).to(device)
    model = CTCModel(config.model, features.dim, len(vocab)).to(device).train()
    dataset = SpeechDataset(utterances, config.features.sample_rate, vocab, features.min_samples)
    loader = make_loader(dataset, config.data.batch_seconds, config.data.max_batch_size, shuffle=True,
                         seed=config.seed, num_workers=config.data.num_workers, pin_memory=device.type == "cuda")
    loader.batch_sampler.set_epoch(config.data.sorted_epochs + 1)  # shuffled batches, as in most epochs
    batches, seconds = [], 0.0
    for indices in loader.batch_sampler:
        batches.append(indices)
        seconds += sum(utterances[i].duration for i in indices)
        if seconds >= args.audio_seconds:
            break
    subset = torch.utils.data.DataLoader(dataset, batch_sampler=batches, collate_fn=dataset.collate,
                                         num_workers=config.data.num_workers,
                                         pin_memory=device.type == "cuda")
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.optim.lr)
    ctc = torch.nn.CTCLoss(blank=0, zero_infinity=True)
    generator = torch.Generator().manual_seed(config.seed)
    augment, vtlp = build_augmentation(config.augment, features, generator)
    use_amp = config.amp and device.type == "cuda"

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    with ThreadPoolExecutor(step_threads) as pool:
        def model_step(feats, frames, batch):
            optimizer.zero_grad(set_to_none=True)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
                ctc_gradients(model, ctc, feats, frames, batch.targets, batch.target_lengths, pool, step_threads)
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.optim.grad_clip)
            optimizer.step()

        def prepare(batch):
            batch = batch.to(device)
            waves, lengths = batch.waveforms, batch.wave_lengths
            if augment.active:
                waves, lengths = augment(waves, lengths)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
                feats, frames = chunked_features(features, waves, lengths, pool, step_threads)
                feats = augment_features(feats, frames, vtlp, config.specaugment, generator)
            return batch, feats, frames

        for batch in itertools.islice(subset, 2):  # warm-up: allocator, kernels, thread pool
            model_step(*prepare(batch)[1:], batch.to(device))
        sync()

        with GpuUtilization(device) as gpu_full:
            start = time.perf_counter()
            for batch in subset:
                batch, feats, frames = prepare(batch)
                model_step(feats, frames, batch)
            sync()
            full = time.perf_counter() - start

        prepared = [prepare(batch) for batch in subset]  # the same batches, features ready
        sync()
        with GpuUtilization(device) as gpu_bare:
            start = time.perf_counter()
            for batch, feats, frames in prepared:
                model_step(feats, frames, batch)
            sync()
            bare = time.perf_counter() - start

    audio = sum(utterances[i].duration for b in batches for i in b)
    print(f"{len(batches)} batches, {audio:.0f} s of audio, device {device}, {step_threads} step thread(s), "
          f"{config.data.num_workers} loader worker(s), waveform augmentation {'on' if augment.active else 'off'}, "
          f"VTLP {'on' if vtlp.active else 'off'}")
    print(f"full pipeline : {audio / full:8.1f} audio-s/s ({full:.1f} s)")
    print(f"bare step     : {audio / bare:8.1f} audio-s/s ({bare:.1f} s)")
    print(f"ratio full / bare: {bare / full:.2f} (target >= 0.90)")
    if device.type == "cuda":
        print(f"GPU busy with the model step for about {100 * bare / full:.0f}% of the full pipeline's time")
        print(f"full pipeline : {gpu_full.summary()}")
        print(f"bare step     : {gpu_bare.summary()}")


if __name__ == "__main__":
    main()
