"""One training step and the parts it is built from: shared by ``asr.train`` (which adds epochs,
dev scoring, states and fine-tuning around them) and ``scripts/bench_train.py`` (which times them).

- ``step_threads_for``: how many threads share a step on this device;
- ``build_modules``: a fresh feature front end and model for a vocabulary;
- ``build_train_loader``: length-bucketed, shuffled batches of this process's share;
- ``build_optimizer``: AdamW with warm-up and cosine decay;
- ``TrainStep``: augmentation, features, SpecAugment, forward and backward, clipping (``__call__``),
  then the optimizer step (``apply``) or a skipped one (``skip``).
"""

from __future__ import annotations

import math
import os
from concurrent.futures import ThreadPoolExecutor

import torch

from asr.augment import augment_features, build_augmentation
from asr.config import TrainConfig
from asr.data import Batch, SpeechDataset, make_loader
from asr.features import FeatureExtractor
from asr.model import CTCModel, dropout_generator
from asr.text import Vocabulary


def step_threads_for(config: TrainConfig, device: torch.device, world_size: int = 1) -> int:
    """Threads that share one step, each on a chunk of the batch's rows (the CPU's way to use its
    cores: one torch thread each). One on CUDA; one under DDP, whose gradients are averaged by
    backward hooks that chunked threads would bypass; one for a compiled step, which is not
    called from several threads at once."""
    if device.type == "cuda" or world_size > 1 or config.compile:
        return 1
    return config.step_threads or os.cpu_count() or 1


def build_modules(config: TrainConfig, vocab: Vocabulary, device: torch.device) -> tuple[FeatureExtractor, CTCModel]:
    """A fresh feature front end (statistics not fitted yet) and acoustic model for ``vocab``."""
    features = FeatureExtractor(config.features).to(device)
    return features, CTCModel(config.model, features.dim, len(vocab)).to(device)


def build_train_loader(config: TrainConfig, dataset: SpeechDataset, device: torch.device, rank: int = 0,
                       world_size: int = 1):
    data = config.data
    return make_loader(dataset, data.batch_seconds, data.max_batch_size, shuffle=True, seed=config.seed,
                       num_workers=data.num_workers, pin_memory=device.type == "cuda",
                       sorted_epochs=data.sorted_epochs, rank=rank, world_size=world_size)


def lr_schedule(step: int, warmup: int, total: int, final_ratio: float) -> float:
    """Multiplier of the base learning rate: linear warm-up, then cosine decay to ``final_ratio``."""
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return final_ratio + (1 - final_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def build_optimizer(config: TrainConfig, model: CTCModel, steps_per_epoch: int):
    """AdamW and its schedule over the whole run: (optimizer, scheduler)."""
    optim = config.optim
    optimizer = torch.optim.AdamW(model.parameters(), lr=optim.lr, weight_decay=optim.weight_decay)
    total_steps = config.epochs * steps_per_epoch
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: lr_schedule(s, optim.warmup_steps, total_steps, optim.final_lr_ratio))
    return optimizer, scheduler


def ctc_gradients(model: CTCModel, ctc: torch.nn.CTCLoss, feats: torch.Tensor, frames: torch.Tensor,
                  targets: torch.Tensor, target_lengths: torch.Tensor, pool: ThreadPoolExecutor | None = None,
                  chunks: int = 1, scaler: torch.amp.GradScaler | None = None) -> float:
    """Forward + backward of one batch; sets ``.grad`` and returns the batch's mean CTC loss.

    With a thread pool, the batch (B, T, F) is cut into ``chunks`` chunks of rows,
    each trimmed to its own longest utterance; chunk gradients are weighted by chunk
    size and summed in chunk order, so the result matches one pass over the batch. Each
    chunk draws its dropout masks from a generator of its own, seeded from torch's global
    generator on the calling thread, so a run is the same whichever thread draws first.
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
    starts = range(0, feats.shape[0], size)
    seeds = torch.randint(1 << 62, (len(starts),)).tolist()

    def chunk_gradients(start: int, seed: int):
        rows = slice(start, start + size)
        t_max = int(frames[rows].max())
        with dropout_generator(torch.Generator(feats.device).manual_seed(seed)):
            loss = forward(feats[rows, :t_max], frames[rows], targets[rows], target_lengths[rows])
        return loss.detach(), torch.autograd.grad(scaler.scale(loss) if scaler else loss, params), len(frames[rows])

    results = list(pool.map(chunk_gradients, starts, seeds))
    batch = feats.shape[0]
    for i, p in enumerate(params):
        p.grad = sum(grads[i] * (n / batch) for _, grads, n in results)
    return float(sum(loss * (n / batch) for loss, _, n in results))


def chunked_features(features: FeatureExtractor, waves: torch.Tensor, lengths: torch.Tensor,
                     pool: ThreadPoolExecutor | None = None, chunks: int = 1,
                     means: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Features of a batch, computed as ``chunks`` row chunks in parallel threads (on the CPU,
    where one thread each is all torch gets); the result equals one pass over the batch.
    ``means``: the speakers' feature means (B, F), for features normalized per speaker."""
    if pool is None or chunks <= 1 or waves.shape[0] < 2:
        return features(waves, lengths, means)
    size = math.ceil(waves.shape[0] / chunks)

    def chunk(start: int):
        rows = slice(start, start + size)
        return features(waves[rows, :int(lengths[rows].max())], lengths[rows],
                        None if means is None else means[rows])

    parts = list(pool.map(chunk, range(0, waves.shape[0], size)))
    frames = max(x.shape[1] for x, _ in parts)
    feats = torch.cat([torch.nn.functional.pad(x, (0, 0, 0, frames - x.shape[1])) for x, _ in parts])
    return feats, torch.cat([n for _, n in parts])


class TrainStep:
    """What one batch goes through, as ``config`` says: waveform augmentation, features (in
    ``step_threads`` row chunks), VTLP and SpecAugment under autocast, CTC forward and backward
    through ``stepper`` (the model, or its DDP or compiled wrapper), gradient clipping; then the
    optimizer step. Its random draws come from ``generator`` alone (saved in training states)."""

    def __init__(self, config: TrainConfig, features: FeatureExtractor, model: CTCModel, optimizer, scheduler,
                 device: torch.device, pool: ThreadPoolExecutor | None, step_threads: int,
                 generator: torch.Generator, stepper: torch.nn.Module | None = None):
        self.config, self.features, self.model = config, features, model
        self.optimizer, self.scheduler = optimizer, scheduler
        self.stepper = stepper if stepper is not None else model
        self.device, self.pool, self.step_threads, self.generator = device, pool, step_threads, generator
        self.use_amp = config.amp and device.type == "cuda"
        self.amp_dtype = getattr(torch, config.amp_dtype)
        self.ctc = torch.nn.CTCLoss(blank=0, reduction="mean", zero_infinity=True)
        # float16 needs its gradients scaled; the scaler skips steps whose gradients overflowed
        self.scaler = torch.amp.GradScaler(device.type) if self.use_amp and self.amp_dtype == torch.float16 else None
        self.wave_augment, self.vtlp = build_augmentation(config.augment, features, generator)

    def inputs(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """The model's input for ``batch`` (on the device): augmented features and their frame counts."""
        waves, lengths = batch.waveforms, batch.wave_lengths
        if self.wave_augment.active:
            waves, lengths = self.wave_augment(waves, lengths)
        with torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.use_amp):
            feats, frames = chunked_features(self.features, waves, lengths, self.pool, self.step_threads,
                                             batch.means)
            return augment_features(feats, frames, self.vtlp, self.config.specaugment, self.generator), frames

    def gradients(self, feats: torch.Tensor, frames: torch.Tensor, batch: Batch) -> tuple[float, float]:
        """Forward and backward from prepared inputs: (loss, gradient norm), gradients clipped."""
        self.optimizer.zero_grad(set_to_none=True)
        with torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.use_amp):
            loss = ctc_gradients(self.stepper, self.ctc, feats, frames, batch.targets, batch.target_lengths,
                                 self.pool, self.step_threads, self.scaler)
        if self.scaler is not None:
            self.scaler.unscale_(self.optimizer)
        grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.optim.grad_clip)
        return loss, float(grad_norm)

    def __call__(self, batch: Batch) -> tuple[float, float]:
        return self.gradients(*self.inputs(batch), batch)

    def apply(self) -> None:
        """The optimizer and learning-rate step for the gradients ``__call__`` left."""
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        self.scheduler.step()

    def skip(self) -> None:
        """Drop the gradients of a step whose loss or gradient came out NaN/inf."""
        self.optimizer.zero_grad(set_to_none=True)
        if self.scaler is not None:
            self.scaler.update()  # overflow: a smaller scale next time
