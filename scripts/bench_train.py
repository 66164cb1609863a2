"""Training throughput: the full pipeline against the bare model step, on the same batches.

Full pipeline: read and decode audio (DataLoader), collate, waveform augmentation,
features (in chunks on parallel threads, as training does), VTLP, SpecAugment, forward +
backward, clipping, optimizer step. Bare step: the same batches' features computed
beforehand, then only forward + backward + clipping + optimizer step. Both are the
trainer's own step (asr.train_step.TrainStep: chunked threads on the CPU, the config's
autocast dtype on CUDA). Prints audio-seconds per
second for each and their ratio; on CUDA also how busy the GPU was during each (NVML
utilization sampled every 50 ms, peak memory).

    python scripts/bench_train.py --manifest exp/fsdd/data/train.jsonl --config recipes/fsdd/conf.yaml
    python scripts/bench_train.py ... augment.enabled=false   # or any augment.* key
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from asr.config import load_train_config  # noqa: E402
from asr.data import SpeechDataset, read_manifest  # noqa: E402
from asr.monitor import GpuUtilization  # noqa: E402
from asr.recognizer import pick_device  # noqa: E402
from asr.text import Vocabulary  # noqa: E402
from asr.train_step import TrainStep, build_modules, build_optimizer, build_train_loader, step_threads_for  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--manifest", required=True, help="training manifest")
    parser.add_argument("--config", help="training config (YAML)")
    parser.add_argument("--audio-seconds", type=float, default=900.0, help="audio to time, seconds (default 900)")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE")
    args = parser.parse_args()
    config = load_train_config(args.config, args.overrides + [f"data.train_manifest={args.manifest}"])
    device = pick_device(config.device)
    step_threads = step_threads_for(config, device)
    if step_threads > 1:
        torch.set_num_threads(1)
    torch.manual_seed(config.seed)
    torch.set_flush_denormal(True)

    utterances = [u for u in read_manifest(args.manifest) if u.duration <= config.data.max_duration]
    vocab = Vocabulary.from_texts(u.text for u in utterances)
    features, model = build_modules(config, vocab, device)
    model.train()
    dataset = SpeechDataset(utterances, config.features.sample_rate, vocab, features.min_samples)
    loader = build_train_loader(config, dataset, device)
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
    optimizer, scheduler = build_optimizer(config, model, len(batches))

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    with ThreadPoolExecutor(step_threads) as pool:
        step = TrainStep(config, features, model, optimizer, scheduler, device, pool, step_threads,
                         torch.Generator().manual_seed(config.seed))

        def model_step(feats, frames, batch):
            step.gradients(feats, frames, batch)
            step.apply()

        def prepare(batch):
            batch = batch.to(device)
            return (batch, *step.inputs(batch))

        for batch in itertools.islice(subset, 2):  # warm-up: allocator, kernels, thread pool
            batch, feats, frames = prepare(batch)
            model_step(feats, frames, batch)
        sync()

        with GpuUtilization(device) as gpu_full:
            start = time.perf_counter()
            for batch in subset:
                step(batch.to(device))
                step.apply()
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
          f"{config.data.num_workers} loader worker(s), waveform augmentation {'on' if step.wave_augment.active else 'off'}, "
          f"VTLP {'on' if step.vtlp.active else 'off'}")
    print(f"full pipeline : {audio / full:8.1f} audio-s/s ({full:.1f} s)")
    print(f"bare step     : {audio / bare:8.1f} audio-s/s ({bare:.1f} s)")
    print(f"ratio full / bare: {bare / full:.2f} (target >= 0.90)")
    if device.type == "cuda":
        print(f"GPU busy with the model step for about {100 * bare / full:.0f}% of the full pipeline's time")
        print(f"full pipeline : {gpu_full.summary()}")
        print(f"bare step     : {gpu_bare.summary()}")


if __name__ == "__main__":
    main()
