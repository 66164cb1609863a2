"""Typed configuration: dataclasses loaded from YAML/JSON, overridden from the command line.

A training run is described by one ``TrainConfig``; its ``features`` and ``model``
sections are also stored in every checkpoint, so decoding needs no flags.
Unknown keys are errors, never silently ignored.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import dataclass, field
from typing import Literal
from pathlib import Path

import yaml

from asr.errors import AsrError


def bounded(default, low: float | None = None, high: float | None = None, above: float | None = None,
            below: float | None = None):
    """A numeric field (or each item of a tuple field) that must lie within bounds: ``low <= x <=
    high``, ``above < x < below``. Checked whenever a config is built, from a file, the command
    line or a checkpoint."""
    bounds = {"low": low, "high": high, "above": above, "below": below}
    if isinstance(default, tuple):
        return field(default_factory=lambda: default, metadata=bounds)
    return field(default=default, metadata=bounds)


class _Checked:
    """Dataclass mix-in: every field is checked against its type's ``Literal`` choices and its
    ``bounded`` range when the config is built; an error names the key (``section.key``)."""

    SECTION = ""

    def __post_init__(self):
        hints = typing.get_type_hints(type(self))
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            where = _join(self.SECTION, f.name)
            items = value if isinstance(value, tuple) else (value,)
            hint = hints[f.name]
            if typing.get_origin(hint) is tuple:
                hint = typing.get_args(hint)[0]
            if typing.get_origin(hint) is Literal:
                choices = typing.get_args(hint)
                for item in items:
                    if item not in choices:
                        raise AsrError(f"config key {where}: expected one of {', '.join(map(repr, choices))}, "
                                       f"got {item!r}")
            bounds = {k: v for k, v in f.metadata.items() if v is not None}
            for item in items:
                if bounds and (not isinstance(item, (int, float)) or isinstance(item, bool)
                               or not math.isfinite(item) or not _within(item, **bounds)):
                    raise AsrError(f"config key {where}: expected a number {_describe(**bounds)}, got {value!r}")
        self.check()

    def check(self) -> None:
        """Rules between fields, for sections that have them."""


def _within(x, low=None, high=None, above=None, below=None) -> bool:
    return ((low is None or x >= low) and (high is None or x <= high) and (above is None or x > above)
            and (below is None or x < below))


def _describe(low=None, high=None, above=None, below=None) -> str:
    parts = [f">= {low:g}" if low is not None else "", f"> {above:g}" if above is not None else "",
             f"<= {high:g}" if high is not None else "", f"< {below:g}" if below is not None else ""]
    return " and ".join(p for p in parts if p)


@dataclass(frozen=True)
class FeatureConfig(_Checked):
    SECTION = "features"
    kind: Literal["logmel", "mfcc"] = "logmel"
    sample_rate: int = bounded(16000, low=1)  # Hz; audio at any other rate is resampled to this
    n_mels: int = bounded(80, low=1)
    n_mfcc: int = bounded(40, low=1)  # used when kind == "mfcc"
    win_ms: float = bounded(25.0, above=0)  # analysis window, milliseconds
    hop_ms: float = bounded(10.0, above=0)  # frame shift, milliseconds
    n_fft: int = bounded(0, low=0)  # 0: the next power of two >= the window
    # "level": each utterance's power divided by its speech level (that of its loudest 100 ms),
    #   then training-set statistics: a recording's gain does not change its features, and
    #   silence around the words does not move them (asr/features.py);
    # "global": training-set statistics; "utterance": each utterance's own mean and variance;
    # "speaker": each speaker's mean (manifest field "speaker"); "none"
    normalize: Literal["level", "global", "utterance", "speaker", "none"] = "level"
    level_window: float = bounded(0.5, low=0)  # normalize == "level": seconds either side of each 100 ms that its
    #                  level is taken from (0: the whole utterance). A long recording's pieces hold several
    #                  talkers and pauses; a window reads each at its own level

    @property
    def training_stats(self) -> bool:
        """Whether features are normalized by the training set's mean and spread (saved with the model)."""
        return self.normalize in ("global", "level")

    @property
    def per_speaker(self) -> bool:
        """Whether features are normalized by a speaker's mean (manifest field ``speaker``)."""
        return self.normalize == "speaker"

    def check(self) -> None:
        if self.kind == "mfcc" and self.n_mfcc > self.n_mels:
            raise AsrError(f"config key features.n_mfcc ({self.n_mfcc}) must not exceed features.n_mels ({self.n_mels})")


@dataclass(frozen=True)
class ModelConfig(_Checked):
    SECTION = "model"
    rnn_type: Literal["gru", "lstm"] = "gru"
    hidden_size: int = bounded(256, low=1)  # per direction
    num_layers: int = bounded(3, low=1)
    dropout: float = bounded(0.1, low=0, below=1)
    conv_channels: int = bounded(256, low=1)
    conv_kernel: int = bounded(5, low=1)
    conv_strides: tuple[int, ...] = bounded((2,), low=1)  # one 1-D conv layer per entry; their product subsamples time


@dataclass(frozen=True)
class UnitConfig(_Checked):
    """What the model outputs. Characters; or characters and subword pieces learned from the
    training transcripts (BPE), which lets greedy decoding emit whole words: on FSDD every
    digit word becomes one unit (see recipes/fsdd/RESULTS.md)."""

    SECTION = "units"
    kind: Literal["char", "bpe"] = "char"
    size: int = bounded(256, low=2)  # bpe: units in all (blank, characters, pieces); fewer when the text has fewer


@dataclass(frozen=True)
class DataConfig(_Checked):
    SECTION = "data"
    train_manifest: str = ""
    dev_manifest: str = ""
    batch_seconds: float = bounded(120.0, above=0)  # total audio per batch, seconds
    max_batch_size: int = bounded(64, low=1)
    max_duration: float = bounded(30.0, above=0)  # longer training utterances are skipped (seconds)
    sorted_epochs: int = bounded(1, low=0)  # first epochs see batches shortest first (SortaGrad), then shuffled
    num_workers: int = bounded(1, low=0)


@dataclass(frozen=True)
class OptimConfig(_Checked):
    SECTION = "optim"
    lr: float = bounded(2e-3, low=0)
    weight_decay: float = bounded(1e-2, low=0)
    warmup_steps: int = bounded(200, low=0)
    final_lr_ratio: float = bounded(0.05, low=0, high=1)  # cosine decay to lr * this at the last step
    grad_clip: float = bounded(5.0, above=0)


@dataclass(frozen=True)
class SpecAugmentConfig(_Checked):
    SECTION = "specaugment"
    freq_masks: int = bounded(2, low=0)
    freq_width: int = bounded(15, low=0)  # bins
    time_masks: int = bounded(2, low=0)
    time_width: float = bounded(0.05, low=0, high=1)  # fraction of the utterance, at most


@dataclass(frozen=True)
class AugmentConfig(_Checked):
    """Waveform augmentation of training batches (on the model's device), then VTLP of their
    features, before SpecAugment. On by default, so that a model holds up on recordings unlike
    its training set: other levels, noise, microphones and telephone lines, rooms, speaking
    rates (measured in recipes/fsdd/RESULTS.md). ``enabled=false`` turns all of it off."""

    SECTION = "augment"
    enabled: bool = True
    speeds: tuple[float, ...] = bounded((0.85, 0.9, 0.95, 1.0, 1.05, 1.1, 1.15), above=0)  # speed perturbation:
    #                    one factor per utterance, drawn from these
    gain_db: tuple[float, ...] = (-35.0, 10.0)  # gain drawn from [low, high] dB per utterance, then stored as
    #                    16-bit samples would be (clipped at full scale, rounded); [0, 0]: off
    eq_db: float = bounded(8.0, low=0)  # channel colouring: a smooth random gain curve over frequency, gains drawn
    #                     from [-eq_db, +eq_db] dB at points spread on the mel scale (0: off)
    noise_prob: float = bounded(0.5, low=0, high=1)  # share of utterances that get additive noise
    snr_db: tuple[float, ...] = (10.0, 30.0)  # signal-to-noise ratio range, dB
    noise: str = ""  # a folder of noise recordings or a manifest; empty: generated noise
    noise_kinds: tuple[Literal["white", "pink", "babble"], ...] = ("white", "pink", "babble")  # generated kinds (babble: other utterances)
    reverb_prob: float = bounded(0.2, low=0, high=1)  # share of utterances convolved with a simulated room response
    telephone_prob: float = bounded(0.1, low=0, high=1)  # share of utterances sent through a telephone line:
    #                    300-3400 Hz band, 8-bit mu-law at a random level
    vtlp: float = bounded(0.0, low=0, below=0.5)  # vocal tract length perturbation of the log-mel features: each utterance's
    #                    frequency axis scaled by a factor drawn from [1 - vtlp, 1 + vtlp] (0: off; e.g. 0.1)

    def check(self) -> None:
        for key in ("snr_db", "gain_db"):
            pair = getattr(self, key)
            if len(pair) != 2 or pair[0] > pair[1]:
                raise AsrError(f"config key augment.{key}: expected [low, high], got {list(pair)}")


@dataclass(frozen=True)
class TrainConfig(_Checked):
    exp_dir: str = "exp/run"
    epochs: int = bounded(20, low=1)
    max_minutes: float = bounded(0.0, low=0)  # stop after this much wall time (0: no limit); the best checkpoint is kept
    seed: int = 1234
    init_from: str = ""  # a model checkpoint (best.pt) whose weights start the run: fine-tuning. Its
    #                      vocabulary and feature statistics are kept; its features and model sections
    #                      (dropout aside) must equal this config's
    device: str = "auto"  # "auto" (CUDA when present), "cpu", "cuda", "cuda:1", ...
    amp: bool = True  # autocast on CUDA; ignored on the CPU
    amp_dtype: Literal["bfloat16", "float16"] = "bfloat16"  # or "float16" (with a gradient scaler), for GPUs without bf16
    threads: int = bounded(0, low=0)  # torch intra-op threads on the CPU (0: torch's default; 1 when step_threads > 1)
    step_threads: int = bounded(0, low=0)  # CPU only: each batch is split into this many chunks whose forward and
    #                        backward run in parallel threads (0: one per core). Small RNN ops use
    #                        cores poorly, chunks use them well; gradients are summed in a fixed order.
    #                        Threads draw dropout masks from one generator in no fixed order: for
    #                        bitwise-repeatable runs with dropout, set step_threads=1.
    compile: bool = False  # torch.compile the model step (dynamic shapes); on the CPU the step then runs
    #                        in one thread (step_threads is ignored). The first batches compile (slow).
    log_every: int = bounded(20, low=1)  # steps between log-file lines
    checkpoint_every: int = bounded(0, low=0)  # steps between resumable training states (0: at the end of each epoch only)
    keep_checkpoints: int = bounded(3, low=1)  # training states kept in exp_dir/state (the newest)
    dist_timeout: float = bounded(600.0, above=0)  # seconds a multi-GPU collective waits for the other processes
    max_bad_steps: int = bounded(20, low=1)  # a NaN/inf loss or gradient skips the step; this many in a row stop the run
    early_stop_patience: int = bounded(0, low=0)  # stop after this many epochs without a better dev WER (0: never)
    tensorboard: bool = True  # event files in exp_dir/tensorboard
    average_last: int = bounded(5, low=0)  # at the end, also try the mean weights of the last N epochs (0: off);
    #                        it becomes best.pt when its dev WER is no higher than the best epoch's
    features: FeatureConfig = field(default_factory=FeatureConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    units: UnitConfig = field(default_factory=UnitConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    specaugment: SpecAugmentConfig = field(default_factory=SpecAugmentConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)


def from_dict(cls, values: dict, where: str = ""):
    """Build dataclass ``cls`` from a (nested) dict, rejecting unknown keys and wrong types."""
    if not isinstance(values, dict):
        raise AsrError(f"{where or cls.__name__}: expected a mapping, got {type(values).__name__}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise AsrError(f"unknown config key{'s' if len(unknown) > 1 else ''} "
                       f"{', '.join(_join(where, k) for k in unknown)} (known: {', '.join(sorted(names))})")
    kwargs = {}
    for key, value in values.items():
        kwargs[key] = _coerce(hints[key], value, _join(where, key))
    return cls(**kwargs)


def to_dict(config) -> dict:
    """Plain nested dict of a config dataclass (tuples become lists, for YAML/JSON)."""
    def plain(v):
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [plain(x) for x in v]
        return v
    return plain(dataclasses.asdict(config))


def load_train_config(path: str | None, overrides: list[str] = ()) -> TrainConfig:
    """Read a YAML/JSON file (optional) and apply ``section.key=value`` overrides."""
    values: dict = {}
    if path:
        try:
            values = yaml.safe_load(Path(path).read_text()) or {}
        except FileNotFoundError:
            raise AsrError(f"{path}: config file not found") from None
        except yaml.YAMLError as e:
            raise AsrError(f"{path}: not valid YAML/JSON ({str(e).splitlines()[0]})") from None
        if not isinstance(values, dict):
            raise AsrError(f"{path}: expected a mapping of config keys")
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise AsrError(f"override {item!r}: expected KEY=VALUE, e.g. model.hidden_size=128")
        node = values
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise AsrError(f"override {item!r}: {part} is not a section")
        node[parts[-1]] = yaml.safe_load(raw) if raw else ""
    return from_dict(TrainConfig, values)


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _coerce(hint, value, where: str):
    if dataclasses.is_dataclass(hint):
        return from_dict(hint, value, where)
    origin = typing.get_origin(hint)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            value = [value]
        (item_type, _) = typing.get_args(hint)
        return tuple(_coerce(item_type, v, where) for v in value)
    if origin in (typing.Union, types.UnionType):
        return value
    if origin is Literal:  # the choices are checked when the config is built
        return value
    if hint is float and isinstance(value, (int, str)) and not isinstance(value, bool):
        try:
            return float(value)  # YAML reads "1e-3" (no dot) as a string
        except ValueError:
            pass
    if hint is bool and not isinstance(value, bool):
        raise AsrError(f"config key {where}: expected true/false, got {value!r}")
    if hint in (int, float, str) and not isinstance(value, hint) or (hint is int and isinstance(value, bool)):
        raise AsrError(f"config key {where}: expected {hint.__name__}, got {value!r}")
    return value
