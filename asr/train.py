"""Training: CTC loss, AdamW with warm-up + cosine decay, gradient clipping, SpecAugment,
greedy WER/CER on the dev set every epoch, best-checkpoint saving, resumable states.

Writes to ``exp_dir``: ``config.yaml`` (the resolved config), ``train.log``,
``last.pt`` (end of the latest epoch), ``best.pt`` (lowest dev WER, then CER),
``averaged.pt`` and ``state/step-N.pt`` (what ``--resume`` goes on from).
"""

from __future__ import annotations

import logging
import math
import random
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import yaml
from tqdm import tqdm

from asr.checkpoint import load_checkpoint, save_checkpoint
from asr.recognizer import Recognizer, pick_device
from asr.config import TrainConfig, to_dict
from asr.data import SpeechDataset, make_loader, read_manifest, speaker_normalization, total_hours
from asr.decoding import GreedyDecoder
from asr.distributed import Distributed
from asr.errors import AsrError, Interrupted
from asr.evaluate import decode_indexed
from asr.metrics import score
from asr.monitor import Monitor
from asr.provenance import code_version
from asr.text import Vocabulary
from asr.train_state import load_latest_state, restore_rng_states, rng_states, save_state, set_aside, state_dir
from asr.train_step import TrainStep, build_modules, build_optimizer, build_train_loader, step_threads_for

log = logging.getLogger("asr.train")


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


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
    dist = Distributed.from_environment(config.device, config.dist_timeout)
    if dist.is_main:
        exp_dir.mkdir(parents=True, exist_ok=True)
        (exp_dir / "config.yaml").write_text(yaml.safe_dump(to_dict(config), sort_keys=False))
    handler = _setup_logging(exp_dir) if dist.is_main else None
    try:
        best = _train(config, exp_dir, show_progress and dist.is_main, resume, dist)
        dist.barrier()  # no process tears the group down while another still writes or waits on it
        return best
    finally:
        dist.close()
        if handler:
            log.removeHandler(handler)
            handler.close()


def _train(config: TrainConfig, exp_dir: Path, show_progress: bool, resume: bool, dist: Distributed) -> Path:
    seed_everything(config.seed)
    device = dist.device or pick_device(config.device)
    torch.set_flush_denormal(True)  # tiny weights/gradients late in training slow CPU math as denormals
    step_threads = step_threads_for(config, device, dist.world_size)
    threads_before = torch.get_num_threads()
    if config.threads > 0 or step_threads > 1:
        torch.set_num_threads(1 if step_threads > 1 else config.threads)
    try:
        with ThreadPoolExecutor(step_threads, thread_name_prefix="asr-step") as pool, _Signals() as signals:
            trainer = _Trainer(config, exp_dir, show_progress, device, pool, step_threads, resume, dist)
            try:
                trainer.run(signals)
            finally:
                trainer.monitor.close()
    finally:
        torch.set_num_threads(threads_before)
    if dist.is_main:
        trainer.monitor.plot()
    return exp_dir / "best.pt"


@dataclass
class Progress:
    """Where a run stands: what a training state saves besides modules, optimizer and generators."""

    step: int = 0  # optimizer steps taken
    epoch: int = 1  # the epoch under way
    batches_done: int = 0  # of this epoch's batches (skipped ones included)
    epoch_loss: float = 0.0  # this epoch's loss, summed weighted by audio seconds
    epoch_audio: float = 0.0  # this epoch's audio seconds
    elapsed: float = 0.0  # wall-clock seconds of the run so far, at the last save
    best: tuple[float, float] = (math.inf, math.inf)  # the best dev (WER, CER)
    since_best: int = 0  # epochs since the dev WER last improved
    recent_weights: list = field(default_factory=list)  # the last ``average_last`` epochs' weights (CPU)
    bad_steps: int = 0  # NaN/inf steps in a row (not saved: a resume starts counting afresh)

    SAVED = ("step", "epoch", "batches_done", "epoch_loss", "epoch_audio", "elapsed", "best", "since_best",
             "recent_weights")

    @classmethod
    def from_state(cls, state: dict) -> "Progress":
        values = {k: state[k] for k in cls.SAVED if k in state}
        return cls(**{**values, "best": tuple(state["best"])})

    def to_state(self) -> dict:
        return {k: getattr(self, k) for k in self.SAVED}

    @property
    def mean_loss(self) -> float:
        return self.epoch_loss / max(self.epoch_audio, 1e-9)


class _Trainer:
    """One run's parts (data, modules, optimizer, augmentation, monitor) and what it does with
    them: steps, epochs, saves, the final weight averaging."""

    def __init__(self, config: TrainConfig, exp_dir: Path, show_progress: bool, device: torch.device,
                 pool: ThreadPoolExecutor, step_threads: int, resume: bool, dist: Distributed):
        self.config, self.exp_dir, self.show_progress, self.device = config, exp_dir, show_progress, device
        self.dist = dist
        self.code = code_version()  # kept in every checkpoint's info beside the epoch and dev scores
        log.info("code: %s", self.code)
        kept, self.dev_utts = _read_manifests(config)
        pretrained = _pretrained(config) if config.init_from else None
        self.vocab, new_units = _vocabulary(config, kept, pretrained, dist)
        state = self._starting_state(resume)
        fresh = state is None and pretrained is None  # nothing to take weights or statistics from

        self.features, self.model = build_modules(config, self.vocab, device)
        if pretrained is not None and state is None:
            _take_weights(self.features, self.model, pretrained, new_units, config)
        self.recognizer = Recognizer(self.features, self.model, self.vocab)
        self.rate = config.features.sample_rate
        train_set = SpeechDataset(kept, self.rate, self.vocab, self.features.min_samples)
        dev_set = SpeechDataset(self.dev_utts, self.rate, self.vocab, self.features.min_samples)  # checks characters
        self.train_loader = build_train_loader(config, train_set, device, dist.rank, dist.world_size)
        self.dev_loader = make_loader(dev_set, 2 * config.data.batch_seconds, 256, shuffle=False,
                                      num_workers=config.data.num_workers, pin_memory=device.type == "cuda",
                                      rank=dist.rank, world_size=dist.world_size)
        log.info("train: %d utterances (%.2f h), dev: %d (%.2f h), vocabulary: %d symbols, device: %s",
                 len(kept), total_hours(kept), len(self.dev_utts), total_hours(self.dev_utts), len(self.vocab),
                 device)
        log.info("model: %s, %.2fM parameters", config.model, self.model.num_parameters() / 1e6)
        if dist.world_size > 1:
            log.info("distributed: %d processes (%s), a share of every global batch each", dist.world_size,
                     torch.distributed.get_backend())
        _fit_normalization(config, self.features, train_set, dev_set, fresh)

        optimizer, scheduler = build_optimizer(config, self.model, len(self.train_loader.batch_sampler))
        stepper = dist.wrap(self.model)  # the module forward and backward go through (DDP under torchrun)
        if config.compile:
            stepper = torch.compile(stepper, dynamic=True)
            log.info("model step compiled with torch.compile (the first batches of new shapes are slow)")
        generator = torch.Generator().manual_seed(config.seed + dist.rank)  # each process its own draws
        self.step = TrainStep(config, self.features, self.model, optimizer, scheduler, device, pool, step_threads,
                              generator, stepper)

        self.progress = Progress()
        if state is not None:
            self._restore(state)
        self.start = time.monotonic() - self.progress.elapsed
        self.monitor = Monitor(exp_dir, config.tensorboard and dist.is_main, state.get("history") if state else None,
                               self.progress.step)

    def _starting_state(self, resume: bool) -> dict | None:
        """The newest training state to resume from (None: a fresh run, whose older states are removed)."""
        state = load_latest_state(self.exp_dir) if resume else None
        if not resume and self.dist.is_main:  # a fresh run: an older run's states must not pass for its own
            aside = set_aside(self.exp_dir)
            if aside is not None:
                _report(f"an earlier run's training states moved to {aside} (pass --resume to go on from "
                        "them instead; delete the folder to free the space)", self.show_progress)
        if resume and state is None:
            _report(f"no training state in {state_dir(self.exp_dir)}: starting from the beginning", self.show_progress)
        if state is not None and state["vocab"] != self.vocab.symbols:
            raise AsrError(f"{state['path']}: the training transcripts' characters changed since this state was "
                           "saved; resume with the same manifests")
        return state

    def _restore(self, state: dict) -> None:
        self.features.load_state_dict(state["features"])
        self.model.load_state_dict(state["model"])
        step = self.step
        step.optimizer.load_state_dict(state["optimizer"])
        step.scheduler.load_state_dict(state["scheduler"])
        rngs = state["rng"]
        if "python" in rngs:  # a state from before per-process generators were saved
            rngs = {0: rngs}
        if self.dist.rank in rngs:
            restore_rng_states(rngs[self.dist.rank], step.generator)
        else:  # resumed with more processes than saved: this one keeps its fresh seeded generators
            log.warning("no saved random state for process %d: it continues from fresh seeds", self.dist.rank)
        if step.scaler is not None and state.get("scaler"):
            step.scaler.load_state_dict(state["scaler"])
        self.progress = Progress.from_state(state)
        p = self.progress
        _report(f"resumed from {state['path']}: step {p.step}, epoch {p.epoch}, "
                f"{p.batches_done} of its batches done", self.show_progress)

    def save(self) -> Path | None:
        """A training state (every process calls this together; rank 0 writes it)."""
        step = self.step
        rngs = self.dist.merge({self.dist.rank: rng_states(step.generator)})  # every process's generators
        path = None
        if self.dist.is_main:
            self.progress.elapsed = time.monotonic() - self.start
            path = save_state(self.exp_dir, self.progress.step, {
                "vocab": self.vocab.symbols, "features": self.features.state_dict(),
                "model": self.model.state_dict(), "optimizer": step.optimizer.state_dict(),
                "scheduler": step.scheduler.state_dict(), "scaler": step.scaler.state_dict() if step.scaler else None,
                "rng": rngs, "history": self.monitor.history, **self.progress.to_state()},
                self.config.keep_checkpoints)
        self.dist.barrier()  # nobody runs ahead of a state being written, nor waits forever if writing failed
        return path

    def run(self, signals: _Signals) -> None:
        config, p = self.config, self.progress
        while p.epoch <= config.epochs:
            out_of_time = self.run_epoch(signals)
            early_stop = self.end_epoch()
            if out_of_time:
                log.info("stopped: max_minutes=%.1f reached", config.max_minutes)
                break
            if early_stop:
                break
        if len(p.recent_weights) > 1:
            self.average()

    def run_epoch(self, signals: _Signals) -> bool:
        """The rest of the current epoch's batches; True when ``max_minutes`` ran out."""
        config, p = self.config, self.progress
        self.model.train()
        self.train_loader.batch_sampler.set_epoch(p.epoch, skip=p.batches_done)
        bar = tqdm(self.train_loader, desc=f"epoch {p.epoch}/{config.epochs}", dynamic_ncols=True, mininterval=1.0,
                   leave=False, disable=None if self.show_progress else True)  # None: only on a terminal
        epoch_start, audio_at_start = time.monotonic(), p.epoch_audio
        try:
            for batch in bar:
                batch = batch.to(self.device)
                found = self.gradients(batch)
                p.batches_done += 1
                if found is None:
                    continue  # out of memory, skipped
                loss, grad_norm = found
                audio_s = float(batch.wave_lengths.sum()) / self.rate
                interrupted = signals.received is not None
                timed_out = bool(config.max_minutes and time.monotonic() - self.start > 60 * config.max_minutes)
                # every process sees the global batch's loss and stops at the same step
                loss, audio_s, interrupted, timed_out = self.dist.reduce_step(
                    loss, len(batch.indices), audio_s, interrupted, timed_out)
                stepped = self.update(loss, grad_norm, audio_s)
                speed = (p.epoch_audio - audio_at_start) / max(time.monotonic() - epoch_start, 1e-9)
                bar.set_postfix(loss=f"{loss:.3f}", audio_s_per_s=f"{speed:.0f}", refresh=False)
                if stepped and p.step % config.log_every == 0:
                    lr = self.step.scheduler.get_last_lr()[0]
                    log.info("epoch %d step %d loss %.4f lr %.2e grad_norm %.2f audio_s/s %.1f", p.epoch, p.step,
                             loss, lr, grad_norm, speed)
                    self.monitor.step(p.step, loss, lr, grad_norm, speed)
                if interrupted:
                    raise Interrupted(signals.received or signal.SIGTERM, self.save())
                if stepped and config.checkpoint_every and p.step % config.checkpoint_every == 0:
                    self.save()
                if timed_out:
                    return True
        finally:
            bar.close()
            self.speed = (p.epoch_audio - audio_at_start) / max(time.monotonic() - epoch_start, 1e-9)
        return False

    def gradients(self, batch) -> tuple[float, float] | None:
        """The step's gradients for one batch: (loss, gradient norm) with the gradients clipped, or
        None for a batch that ran out of memory (skipped, single process only)."""
        try:
            return self.step(batch)
        except torch.OutOfMemoryError:
            if self.dist.world_size > 1:
                raise  # the other processes wait for this one's gradients: no skipping
        # Out of the except block, the exception's traceback no longer holds the failed step's
        # tensors, so the cache below can give their memory back.
        self.step.optimizer.zero_grad(set_to_none=True)
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
        log.warning("epoch %d batch %d: out of memory with %d utterances (%.1f s of audio); batch skipped "
                    "(a lower data.batch_seconds avoids this)", self.progress.epoch,
                    self.progress.batches_done + 1, len(batch.indices),
                    float(batch.wave_lengths.sum()) / self.rate)
        return None

    def update(self, loss: float, grad_norm: float, audio_s: float) -> bool:
        """The optimizer step, or a skipped one for a NaN/inf loss or gradient (too many in a row
        stop the run); True when the step was taken."""
        p = self.progress
        if not (math.isfinite(loss) and math.isfinite(grad_norm)):
            p.bad_steps += 1
            self.step.skip()
            log.warning("epoch %d batch %d: NaN/inf loss or gradient, step skipped (%d in a row)", p.epoch,
                        p.batches_done, p.bad_steps)
            if p.bad_steps >= self.config.max_bad_steps:
                raise AsrError(f"{p.bad_steps} steps in a row had a NaN/inf loss or gradient; stopping "
                               f"(see {self.exp_dir / 'train.log'}; a lower optim.lr often helps)")
            return False
        p.bad_steps = 0
        self.step.apply()
        p.step += 1
        p.epoch_loss += loss * audio_s
        p.epoch_audio += audio_s
        return True

    def end_epoch(self) -> bool:
        """Dev scores, checkpoints and monitor; then the state moves to the next epoch and is saved.
        True for an early stop."""
        config, p, dist = self.config, self.progress, self.dist
        if config.average_last > 1:
            p.recent_weights = p.recent_weights[-(config.average_last - 1):] + [
                {k: v.detach().cpu().clone() for k, v in self.model.state_dict().items()}]
        summary, hypotheses = _validate(self.recognizer, self.dev_loader, self.dev_utts, self.step.use_amp,
                                        {"code": self.code, "epoch": p.epoch, "step": p.step}, dist)
        if dist.is_main:
            save_checkpoint(self.exp_dir / "last.pt", self.recognizer)
        improved = (summary.wer, summary.cer) < p.best
        p.since_best = 0 if summary.wer < p.best[0] else p.since_best + 1
        if improved:
            p.best = (summary.wer, summary.cer)
            if dist.is_main:
                save_checkpoint(self.exp_dir / "best.pt", self.recognizer)
        self.monitor.epoch(p.epoch, p.step, p.mean_loss, summary.wer, summary.cer,
                           [(u.text, h) for u, h in zip(self.dev_utts[:4], hypotheses[:4])])
        _report(f"epoch {p.epoch}: train loss {p.mean_loss:.4f}, {self.speed:.0f} audio-s/s | "
                f"dev WER {summary.wer:.2f}% CER {summary.cer:.2f}%{' (best)' if improved else ''} | "
                f"{(time.monotonic() - self.start) / 60:.1f} min", self.show_progress)
        p.epoch, p.batches_done, p.epoch_loss, p.epoch_audio = p.epoch + 1, 0, 0.0, 0.0
        self.save()
        if config.early_stop_patience and p.since_best >= config.early_stop_patience:
            _report(f"early stop: no better dev WER for {p.since_best} epochs", self.show_progress)
            return True
        return False

    def average(self) -> None:
        """The mean weights of the last epochs (as icefall's --avg) smooth their noise; they become
        best.pt when their dev WER is no higher than the best epoch's (a tie: they generalize better)."""
        p, dist = self.progress, self.dist
        weights = p.recent_weights
        self.model.load_state_dict({k: torch.stack([w[k].float() for w in weights]).mean(0).to(v.dtype)
                                    for k, v in weights[-1].items()})
        summary, _ = _validate(self.recognizer, self.dev_loader, self.dev_utts, self.step.use_amp,
                               {"code": self.code, "epoch": min(p.epoch - 1, self.config.epochs), "step": p.step,
                                "averaged_epochs": len(weights)}, dist)
        chosen = summary.wer <= p.best[0]
        if dist.is_main:
            save_checkpoint(self.exp_dir / "averaged.pt", self.recognizer)
            if chosen:
                save_checkpoint(self.exp_dir / "best.pt", self.recognizer)
        _report(f"average of the last {len(weights)} epochs: dev WER {summary.wer:.2f}% "
                f"CER {summary.cer:.2f}%{' (best)' if chosen else ''}", self.show_progress)


def _pretrained(config: TrainConfig) -> Recognizer:
    """The checkpoint ``init_from`` names, checked against the run's features and model sections."""
    recognizer = load_checkpoint(config.init_from)
    theirs = {"features": to_dict(recognizer.features.config), "model": to_dict(recognizer.model.config)}
    ours = {"features": to_dict(config.features), "model": to_dict(config.model)}
    # dropout may change, and training-set statistics may give way to per-speaker means
    # (the spread within speakers then stays the checkpoint's overall one)
    differ = [f"{section}.{key} {theirs[section][key]} (config: {value})"
              for section in ours for key, value in ours[section].items()
              if theirs[section][key] != value and key != "dropout"
              and (section, key, theirs[section][key], value) != ("features", "normalize", "global", "speaker")]
    if differ:
        raise AsrError(f"{config.init_from}: init_from needs the checkpoint's features and model, but it has "
                       f"{'; '.join(differ)}")
    return recognizer


def _vocabulary(config: TrainConfig, utterances, pretrained: Recognizer | None,
                dist: Distributed) -> tuple[Vocabulary, bool]:
    """The run's output units, and whether they are new to the fine-tuned checkpoint: a
    checkpoint's own when fine-tuning with the same kind of units, else from the transcripts.
    (Fine-tuning to other units keeps all but the output layer, which starts afresh.)"""
    new_units = pretrained is not None and _units_kind(pretrained.vocab) != config.units.kind
    if pretrained is not None and not new_units:
        return pretrained.vocab, False
    vocab = Vocabulary.from_texts((u.text for u in utterances), config.units.kind, config.units.size)
    if config.units.kind != "char":  # every process takes the first's pieces, whatever its trainer did
        vocab = Vocabulary(dist.merge({0: vocab.symbols} if dist.is_main else {})[0])
    return vocab, new_units


def _take_weights(features, model, pretrained: Recognizer, new_units: bool, config: TrainConfig) -> None:
    """Fine-tuning: the checkpoint's feature statistics and weights (its output layer only when
    the units stay the same)."""
    features.load_state_dict(pretrained.features.state_dict())
    weights = pretrained.model.state_dict()
    if new_units:
        weights = {k: v for k, v in weights.items() if not k.startswith("output.")}
        log.info("weights and feature statistics from %s (fine-tuning); its %d %s units give way to "
                 "%d %s units, under an output layer that starts afresh", config.init_from,
                 len(pretrained.vocab), _units_kind(pretrained.vocab), len(model.output.weight), config.units.kind)
    else:
        log.info("weights, vocabulary and feature statistics from %s (fine-tuning)", config.init_from)
    model.load_state_dict(weights, strict=not new_units)


def _fit_normalization(config: TrainConfig, features, train_set: SpeechDataset, dev_set: SpeechDataset,
                       fresh: bool) -> None:
    """Feature statistics of the training set (a fresh run only: a resumed or fine-tuned one has
    them), and each speaker's mean features for both sets when normalizing per speaker."""
    data = config.data
    if config.features.training_stats and fresh:
        stats_loader = make_loader(train_set, data.batch_seconds, 256, shuffle=False, num_workers=data.num_workers)
        features.fit_global_stats((b.waveforms, b.wave_lengths) for b in stats_loader)
    if config.features.per_speaker:
        # each speaker's mean features (clean audio), for the training and the dev set alike;
        # the spread within speakers is fitted from scratch (fine-tuning keeps the checkpoint's)
        within = speaker_normalization(train_set, features, data.batch_seconds, data.num_workers)
        speaker_normalization(dev_set, features, data.batch_seconds, data.num_workers)
        if fresh:
            features.std.copy_(within)
        kept, dev = train_set.utterances, dev_set.utterances
        alone = sum(u.speaker is None for u in kept + dev)
        log.info("features normalized per speaker: %d speakers in training, %d in dev%s",
                 len({u.speaker for u in kept} - {None}), len({u.speaker for u in dev} - {None}),
                 f"; {alone} utterances name no speaker and are normalized on their own" if alone else "")


def _units_kind(vocab: Vocabulary) -> str:
    return "bpe" if vocab.has_pieces else "char"


def _read_manifests(config: TrainConfig) -> tuple[list, list]:
    """Training utterances (over-long ones skipped, with a count) and dev utterances."""
    train_utts = read_manifest(config.data.train_manifest)
    dev_utts = read_manifest(config.data.dev_manifest)
    kept = [u for u in train_utts if u.duration <= config.data.max_duration]
    if len(kept) < len(train_utts):
        log.info("skipped %d training utterances longer than %.1f s", len(train_utts) - len(kept),
                 config.data.max_duration)
    if not kept:
        raise AsrError(f"{config.data.train_manifest}: no utterance is at most {config.data.max_duration} s long")
    return kept, dev_utts


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
