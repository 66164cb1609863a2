"""Training: CTC loss, AdamW with warm-up + cosine decay, gradient clipping, SpecAugment,
greedy WER/CER on the dev set every epoch, best-checkpoint saving, resumable states.

Writes to ``exp_dir``: ``config.yaml`` (the resolved config), ``train.log``,
``last.pt`` (end of the latest epoch), ``best.pt`` (lowest dev WER, then CER),
``averaged.pt`` and ``state/step-N.pt`` (what ``--resume`` goes on from).
"""

from __future__ import annotations

import logging
import math
import os
import random
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
import yaml
from tqdm import tqdm

from asr.augment import WaveAugment, spec_augment
from asr.checkpoint import Recognizer, pick_device, save_checkpoint
from asr.config import TrainConfig, to_dict
from asr.data import SpeechDataset, make_loader, read_manifest, total_hours
from asr.decoding import GreedyDecoder
from asr.distributed import Distributed
from asr.errors import AsrError, Interrupted
from asr.evaluate import decode_indexed
from asr.features import FeatureExtractor
from asr.metrics import score
from asr.model import CTCModel
from asr.monitor import Monitor
from asr.text import Vocabulary
from asr.train_state import (load_latest_state, restore_rng_states, rng_states, save_state, state_dir,
                             state_files)

log = logging.getLogger("asr.train")


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def lr_schedule(step: int, warmup: int, total: int, final_ratio: float) -> float:
    """Multiplier of the base learning rate: linear warm-up, then cosine decay to ``final_ratio``."""
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return final_ratio + (1 - final_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def ctc_gradients(model: CTCModel, ctc: torch.nn.CTCLoss, feats: torch.Tensor, frames: torch.Tensor,
                  targets: torch.Tensor, target_lengths: torch.Tensor, pool: ThreadPoolExecutor | None = None,
                  chunks: int = 1, scaler: torch.amp.GradScaler | None = None) -> float:
    """Forward + backward of one batch; sets ``.grad`` and returns the batch's mean CTC loss.

    With a thread pool, the batch (B, T, F) is cut into ``chunks`` chunks of rows,
    each trimmed to its own longest utterance; chunk gradients are weighted by chunk
    size and summed in chunk order, so the result matches one pass over the batch.
    """
    def forward(x, lengths, y, y_lengths):
        log_probs, out_lengths = model(x, lengths)
        return ctc(log_probs.transpose(0, 1), y, out_lengths, y_lengths)  # (B, T', V) -> (T', B, V)

    if pool is None or chunks <= 1:
        loss = forward(feats, frames, targets, target_lengths)
        (scaler.scale(loss) if scaler else loss).backward()
        return loss.item()
    params = [p for p in model.parameters() if p.requires_grad]
    size = math.ceil(feats.shape[0] / chunks)

    def chunk_gradients(start: int):
        rows = slice(start, start + size)
        t_max = int(frames[rows].max())
        loss = forward(feats[rows, :t_max], frames[rows], targets[rows], target_lengths[rows])
        return loss.detach(), torch.autograd.grad(scaler.scale(loss) if scaler else loss, params), len(frames[rows])

    results = list(pool.map(chunk_gradients, range(0, feats.shape[0], size)))
    batch = feats.shape[0]
    for i, p in enumerate(params):
        p.grad = sum(grads[i] * (n / batch) for _, grads, n in results)
    return float(sum(loss * (n / batch) for loss, _, n in results))


def chunked_features(features: FeatureExtractor, waves: torch.Tensor, lengths: torch.Tensor,
                     pool: ThreadPoolExecutor | None = None, chunks: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Features of a batch, computed as ``chunks`` row chunks in parallel threads (on the CPU,
    where one thread each is all torch gets); the result equals one pass over the batch."""
    if pool is None or chunks <= 1 or waves.shape[0] < 2:
        return features(waves, lengths)
    size = math.ceil(waves.shape[0] / chunks)

    def chunk(start: int):
        rows = slice(start, start + size)
        return features(waves[rows, :int(lengths[rows].max())], lengths[rows])

    parts = list(pool.map(chunk, range(0, waves.shape[0], size)))
    frames = max(x.shape[1] for x, _ in parts)
    feats = torch.cat([torch.nn.functional.pad(x, (0, 0, 0, frames - x.shape[1])) for x, _ in parts])
    return feats, torch.cat([n for _, n in parts])


def _setup_logging(exp_dir: Path) -> logging.Handler:
    handler = logging.FileHandler(exp_dir / "train.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%Y-%m-%d %H:%M:%S"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    return handler


class _Signals:
    """Turns SIGINT/SIGTERM into a flag the loop checks between steps (a second signal stops at once)."""

    def __init__(self):
        self.received: int | None = None
        self._previous: dict = {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.received is not None:
            raise KeyboardInterrupt
        self.received = signum

    def __exit__(self, *exc):
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)


def train(config: TrainConfig, show_progress: bool = True, resume: bool = False) -> Path:
    """Train a model as ``config`` says; returns the path of the best checkpoint. With
    ``resume``, go on from the newest training state in ``exp_dir/state``."""
    if not config.data.train_manifest or not config.data.dev_manifest:
        raise AsrError("data.train_manifest and data.dev_manifest must both be set")
    exp_dir = Path(config.exp_dir)
    dist = Distributed.from_environment(config.device)
    if dist.is_main:
        exp_dir.mkdir(parents=True, exist_ok=True)
        (exp_dir / "config.yaml").write_text(yaml.safe_dump(to_dict(config), sort_keys=False))
    handler = _setup_logging(exp_dir) if dist.is_main else None
    try:
        return _train(config, exp_dir, show_progress and dist.is_main, resume, dist)
    finally:
        dist.close()
        if handler:
            log.removeHandler(handler)
            handler.close()


def _train(config: TrainConfig, exp_dir: Path, show_progress: bool, resume: bool, dist: Distributed) -> Path:
    seed_everything(config.seed)
    device = dist.device or pick_device(config.device)
    torch.set_flush_denormal(True)  # tiny weights/gradients late in training slow CPU math as denormals
    # Under DDP the gradients are averaged by backward hooks, which chunked threads would bypass.
    step_threads = 1 if device.type == "cuda" or dist.world_size > 1 else (
        config.step_threads or os.cpu_count() or 1)
    threads_before = torch.get_num_threads()
    if config.threads > 0 or step_threads > 1:
        torch.set_num_threads(1 if step_threads > 1 else config.threads)
    try:
        with ThreadPoolExecutor(step_threads, thread_name_prefix="asr-step") as pool, _Signals() as signals:
            return _train_loop(config, exp_dir, show_progress, device, pool, step_threads, resume, signals, dist)
    finally:
        torch.set_num_threads(threads_before)


def _train_loop(config: TrainConfig, exp_dir: Path, show_progress: bool, device: torch.device,
                pool: ThreadPoolExecutor, step_threads: int, resume: bool, signals: _Signals,
                dist: Distributed) -> Path:
    use_amp = config.amp and device.type == "cuda"

    train_utts = read_manifest(config.data.train_manifest)
    dev_utts = read_manifest(config.data.dev_manifest)
    kept = [u for u in train_utts if u.duration <= config.data.max_duration]
    if len(kept) < len(train_utts):
        log.info("skipped %d training utterances longer than %.1f s", len(train_utts) - len(kept),
                 config.data.max_duration)
    if not kept:
        raise AsrError(f"{config.data.train_manifest}: no utterance is at most {config.data.max_duration} s long")
    vocab = Vocabulary.from_texts(u.text for u in kept)
    state = load_latest_state(exp_dir) if resume else None
    if not resume and dist.is_main:
        for old in state_files(exp_dir):  # a fresh run: an older run's states must not pass for its own
            old.unlink()
    if resume and state is None:
        _report(f"no training state in {state_dir(exp_dir)}: starting from the beginning", show_progress)
    if state is not None and state["vocab"] != vocab.symbols:
        raise AsrError(f"{state['path']}: the training transcripts' characters changed since this state was "
                       "saved; resume with the same manifests")

    features = FeatureExtractor(config.features).to(device)
    model = CTCModel(config.model, features.dim, len(vocab)).to(device)
    recognizer = Recognizer(features, model, vocab)
    rate, min_samples = config.features.sample_rate, features.min_samples
    train_set = SpeechDataset(kept, rate, vocab, min_samples)
    dev_set = SpeechDataset(dev_utts, rate, vocab, min_samples)  # encoded only to check its characters
    pin = device.type == "cuda"
    train_loader = make_loader(train_set, config.data.batch_seconds, config.data.max_batch_size, shuffle=True,
                               seed=config.seed, num_workers=config.data.num_workers, pin_memory=pin,
                               sorted_epochs=config.data.sorted_epochs, rank=dist.rank,
                               world_size=dist.world_size)
    dev_loader = make_loader(dev_set, 2 * config.data.batch_seconds, 256, shuffle=False,
                             num_workers=config.data.num_workers, pin_memory=pin, rank=dist.rank,
                             world_size=dist.world_size)
    log.info("train: %d utterances (%.2f h), dev: %d (%.2f h), vocabulary: %d symbols, device: %s",
             len(kept), total_hours(kept), len(dev_utts), total_hours(dev_utts), len(vocab), device)
    log.info("model: %s, %.2fM parameters", config.model, model.num_parameters() / 1e6)
    if dist.world_size > 1:
        log.info("distributed: %d processes (%s), a share of every global batch each", dist.world_size,
                 torch.distributed.get_backend())

    if config.features.normalize == "global" and state is None:
        stats_loader = make_loader(train_set, config.data.batch_seconds, 256, shuffle=False,
                                   num_workers=config.data.num_workers)
        features.fit_global_stats((b.waveforms, b.wave_lengths) for b in stats_loader)

    optimizer = torch.optim.AdamW(model.parameters(), lr=config.optim.lr, weight_decay=config.optim.weight_decay)
    total_steps = config.epochs * len(train_loader.batch_sampler)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: lr_schedule(s, config.optim.warmup_steps, total_steps, config.optim.final_lr_ratio))
    ctc = torch.nn.CTCLoss(blank=0, reduction="mean", zero_infinity=True)
    stepper = dist.wrap(model)  # the module forward and backward go through (DDP under torchrun)
    if config.amp_dtype not in ("bfloat16", "float16"):
        raise AsrError(f"amp_dtype must be bfloat16 or float16, got {config.amp_dtype!r}")
    amp_dtype = getattr(torch, config.amp_dtype)
    # float16 needs its gradients scaled; the scaler skips steps whose gradients overflowed
    scaler = torch.amp.GradScaler(device.type) if use_amp and amp_dtype == torch.float16 else None
    augment_rng = torch.Generator().manual_seed(config.seed + dist.rank)  # each process its own draws
    wave_augment = WaveAugment(config.augment, rate, augment_rng)

    # Everything below is what a training state saves and restores.
    best = (math.inf, math.inf)
    recent_weights: list[dict] = []  # the last ``average_last`` epochs' weights, on the CPU
    step, first_epoch, batches_done, bad_steps = 0, 1, 0, 0
    epoch_loss = epoch_audio = elapsed_before = 0.0
    if state is not None:
        features.load_state_dict(state["features"])
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        rngs = state["rng"]
        if "python" in rngs:  # a state from before per-process generators were saved
            rngs = {0: rngs}
        if dist.rank in rngs:
            restore_rng_states(rngs[dist.rank], augment_rng)
        else:  # resumed with more processes than saved: this one keeps its fresh seeded generators
            log.warning("no saved random state for process %d: it continues from fresh seeds", dist.rank)
        if scaler is not None and state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        best, recent_weights = tuple(state["best"]), state["recent_weights"]
        step, first_epoch, batches_done = state["step"], state["epoch"], state["batches_done"]
        epoch_loss, epoch_audio, elapsed_before = state["epoch_loss"], state["epoch_audio"], state["elapsed"]
        _report(f"resumed from {state['path']}: step {step}, epoch {first_epoch}, "
                f"{batches_done} of its batches done", show_progress)

    start = time.monotonic() - elapsed_before
    monitor = Monitor(exp_dir, config.tensorboard and dist.is_main, state.get("history") if state else None, step)
    since_best = state.get("since_best", 0) if state else 0

    def save(epoch: int, done: int) -> Path | None:
        rngs = dist.merge({dist.rank: rng_states(augment_rng)})  # every process's generators (all call save)
        if not dist.is_main:
            return None
        return save_state(exp_dir, step, {
            "vocab": vocab.symbols, "features": features.state_dict(), "model": model.state_dict(),
            "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
            "scaler": scaler.state_dict() if scaler else None,
            "rng": rngs, "best": best, "recent_weights": recent_weights,
            "epoch": epoch, "batches_done": done, "epoch_loss": epoch_loss, "epoch_audio": epoch_audio,
            "elapsed": time.monotonic() - start, "history": monitor.history, "since_best": since_best},
            config.keep_checkpoints)

    try:
        best_path = exp_dir / "best.pt"
        out_of_time = False
        epoch = first_epoch
        for epoch in range(first_epoch, config.epochs + 1):
            model.train()
            train_loader.batch_sampler.set_epoch(epoch, skip=batches_done)
            bar = tqdm(train_loader, desc=f"epoch {epoch}/{config.epochs}", dynamic_ncols=True, mininterval=1.0,
                       leave=False, disable=None if show_progress else True)  # None: only on a terminal
            epoch_start = time.monotonic()
            audio_at_start = epoch_audio
            for batch in bar:
                batch = batch.to(device)
                optimizer.zero_grad(set_to_none=True)
                waves, wave_lengths = batch.waveforms, batch.wave_lengths
                if wave_augment.active:
                    waves, wave_lengths = wave_augment(waves, wave_lengths)
                try:
                    with torch.autocast(device.type, dtype=amp_dtype, enabled=use_amp):
                        feats, frames = chunked_features(features, waves, wave_lengths, pool, step_threads)
                        feats = spec_augment(feats, frames, config.specaugment, augment_rng)
                        loss = ctc_gradients(stepper, ctc, feats, frames, batch.targets, batch.target_lengths,
                                              pool, step_threads, scaler)
                except torch.OutOfMemoryError:
                    if dist.world_size > 1:
                        raise  # the other processes wait for this one's gradients: no skipping
                    optimizer.zero_grad(set_to_none=True)
                    del waves, wave_lengths
                    if device.type == "cuda":
                        torch.cuda.empty_cache()
                    batches_done += 1
                    log.warning("epoch %d batch %d: out of memory with %d utterances (%.1f s of audio); "
                                "batch skipped (a lower data.batch_seconds avoids this)", epoch, batches_done,
                                len(batch.indices), float(batch.wave_lengths.sum()) / rate)
                    continue
                if scaler is not None:
                    scaler.unscale_(optimizer)
                grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), config.optim.grad_clip)
                batches_done += 1
                audio_s = float(batch.wave_lengths.sum()) / rate
                interrupted = signals.received is not None
                timed_out = bool(config.max_minutes and time.monotonic() - start > 60 * config.max_minutes)
                # every process sees the global batch's loss and stops at the same step
                loss, audio_s, interrupted, timed_out = dist.reduce_step(loss, len(batch.indices), audio_s,
                                                                         interrupted, timed_out)
                if not (math.isfinite(loss) and math.isfinite(float(grad_norm))):
                    bad_steps += 1
                    optimizer.zero_grad(set_to_none=True)
                    if scaler is not None:
                        scaler.update()  # overflow: a smaller scale next time
                    log.warning("epoch %d batch %d: %s loss or gradient, step skipped (%d in a row)", epoch,
                                batches_done, "NaN/inf", bad_steps)
                    if bad_steps >= config.max_bad_steps:
                        raise AsrError(f"{bad_steps} steps in a row had a NaN/inf loss or gradient; stopping "
                                       f"(see {exp_dir / 'train.log'}; a lower optim.lr often helps)")
                else:
                    bad_steps = 0
                    if scaler is not None:
                        scaler.step(optimizer)
                        scaler.update()
                    else:
                        optimizer.step()
                    scheduler.step()
                    step += 1
                    epoch_loss += loss * audio_s
                    epoch_audio += audio_s
                speed = (epoch_audio - audio_at_start) / max(time.monotonic() - epoch_start, 1e-9)
                bar.set_postfix(loss=f"{loss:.3f}", audio_s_per_s=f"{speed:.0f}", refresh=False)
                if step % config.log_every == 0 and bad_steps == 0:
                    log.info("epoch %d step %d loss %.4f lr %.2e grad_norm %.2f audio_s/s %.1f", epoch, step,
                             loss, scheduler.get_last_lr()[0], float(grad_norm), speed)
                    monitor.step(step, loss, scheduler.get_last_lr()[0], float(grad_norm), speed)
                if interrupted:
                    bar.close()
                    raise Interrupted(signals.received or signal.SIGTERM, save(epoch, batches_done))
                if config.checkpoint_every and step % config.checkpoint_every == 0 and bad_steps == 0:
                    save(epoch, batches_done)
                if timed_out:
                    out_of_time = True
                    break
            bar.close()

            speed = (epoch_audio - audio_at_start) / max(time.monotonic() - epoch_start, 1e-9)
            if config.average_last > 1:
                recent_weights = recent_weights[-(config.average_last - 1):] + [
                    {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}]
            summary, hypotheses = _validate(recognizer, dev_loader, dev_utts, use_amp,
                                            {"epoch": epoch, "step": step}, dist)
            if dist.is_main:
                save_checkpoint(exp_dir / "last.pt", recognizer)
            improved = (summary.wer, summary.cer) < best
            since_best = 0 if summary.wer < best[0] else since_best + 1
            if improved:
                best = (summary.wer, summary.cer)
                if dist.is_main:
                    save_checkpoint(best_path, recognizer)
            monitor.epoch(epoch, step, epoch_loss / max(epoch_audio, 1e-9), summary.wer, summary.cer,
                          [(u.text, h) for u, h in zip(dev_utts[:4], hypotheses[:4])])
            _report(f"epoch {epoch}: train loss {epoch_loss / max(epoch_audio, 1e-9):.4f}, {speed:.0f} audio-s/s | "
                    f"dev WER {summary.wer:.2f}% CER {summary.cer:.2f}%{' (best)' if improved else ''} | "
                    f"{(time.monotonic() - start) / 60:.1f} min", show_progress)
            batches_done, epoch_loss, epoch_audio = 0, 0.0, 0.0
            save(epoch + 1, 0)
            if out_of_time:
                log.info("stopped: max_minutes=%.1f reached", config.max_minutes)
                break
            if config.early_stop_patience and since_best >= config.early_stop_patience:
                _report(f"early stop: no better dev WER for {since_best} epochs", show_progress)
                break

        if len(recent_weights) > 1:  # weight averaging (as icefall's --avg) smooths the last epochs' noise
            model.load_state_dict({k: torch.stack([w[k].float() for w in recent_weights]).mean(0).to(v.dtype)
                                   for k, v in recent_weights[-1].items()})
            summary, _ = _validate(recognizer, dev_loader, dev_utts, use_amp,
                                   {"epoch": min(epoch, config.epochs), "step": step,
                                    "averaged_epochs": len(recent_weights)}, dist)
            chosen = summary.wer <= best[0]  # on a WER tie the average wins: it generalizes better
            if dist.is_main:
                save_checkpoint(exp_dir / "averaged.pt", recognizer)
                if chosen:
                    save_checkpoint(best_path, recognizer)
            _report(f"average of the last {len(recent_weights)} epochs: dev WER {summary.wer:.2f}% "
                    f"CER {summary.cer:.2f}%{' (best)' if chosen else ''}", show_progress)
    finally:
        monitor.close()
    if dist.is_main:
        monitor.plot()
    return best_path


def _validate(recognizer: Recognizer, loader, utterances, amp: bool, info: dict, dist: Distributed):
    """Greedy WER/CER on the dev set (and the hypotheses); records them in the recognizer's info.
    Under torchrun each process decodes its share and all of them score the whole set."""
    recognizer.model.eval()
    found = dist.merge(decode_indexed(recognizer, loader, GreedyDecoder(recognizer.vocab), amp=amp))
    hypotheses = [found[i] for i in range(len(utterances))]
    summary, _ = score([u.text for u in utterances], hypotheses)
    recognizer.info = {**info, "dev_wer": summary.wer, "dev_cer": summary.cer}
    return summary, hypotheses


def _report(message: str, show_progress: bool) -> None:
    log.info(message)
    if show_progress:
        tqdm.write(message)
