"""Typed configuration: dataclasses loaded from YAML/JSON, overridden from the command line.

A training run is described by one ``TrainConfig``; its ``features`` and ``model``
sections are also stored in every checkpoint, so decoding needs no flags.
Unknown keys are errors, never silently ignored.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from asr.errors import AsrError


@dataclass(frozen=True)
class FeatureConfig:
    kind: str = "logmel"  # "logmel" or "mfcc"
    sample_rate: int = 16000  # Hz; audio at any other rate is resampled to this
    n_mels: int = 80
    n_mfcc: int = 40  # used when kind == "mfcc"
    win_ms: float = 25.0  # analysis window, milliseconds
    hop_ms: float = 10.0  # frame shift, milliseconds
    n_fft: int = 0  # 0: the next power of two >= the window
    # "utterance", "speaker" (each speaker's mean, manifest field "speaker"), "global"
    # (training-set statistics) or "none"
    normalize: str = "utterance"


@dataclass(frozen=True)
class ModelConfig:
    rnn_type: str = "gru"  # "gru" or "lstm"
    hidden_size: int = 256  # per direction
    num_layers: int = 3
    dropout: float = 0.1
    conv_channels: int = 256
    conv_kernel: int = 5
    conv_strides: tuple[int, ...] = (2,)  # one 1-D conv layer per entry; their product subsamples time


@dataclass(frozen=True)
class UnitConfig:
    """What the model outputs. Characters; or characters and subword pieces learned from the
    training transcripts (BPE), which lets greedy decoding emit whole words: on FSDD every
    digit word becomes one unit (see recipes/fsdd/RESULTS.md)."""

    kind: str = "char"  # "char" or "bpe"
    size: int = 256  # bpe: units in all (blank, characters, pieces); fewer when the text has fewer


@dataclass(frozen=True)
class DataConfig:
    train_manifest: str = ""
    dev_manifest: str = ""
    batch_seconds: float = 120.0  # total audio per batch, seconds
    max_batch_size: int = 64
    max_duration: float = 30.0  # longer training utterances are skipped (seconds)
    sorted_epochs: int = 1  # first epochs see batches shortest first (SortaGrad), then shuffled
    num_workers: int = 1


@dataclass(frozen=True)
class OptimConfig:
    lr: float = 2e-3
    weight_decay: float = 1e-2
    warmup_steps: int = 200
    final_lr_ratio: float = 0.05  # cosine decay to lr * this at the last step
    grad_clip: float = 5.0


@dataclass(frozen=True)
class SpecAugmentConfig:
    freq_masks: int = 2
    freq_width: int = 15  # bins
    time_masks: int = 2
    time_width: float = 0.05  # fraction of the utterance, at most


@dataclass(frozen=True)
class AugmentConfig:
    """Waveform augmentation of training batches (on the model's device), then VTLP of their
    features, before SpecAugment.
    Off by default; what helped where is in recipes/*/RESULTS.md (synth: speed perturbation;
    FSDD voices never heard: eq_db=8). E.g. speeds=[0.9,1.0,1.1] volume_db=6 noise_prob=0.5
    eq_db=8."""

    speeds: tuple[float, ...] = (1.0,)  # speed perturbation: one factor per utterance, e.g. [0.9, 1.0, 1.1]
    volume_db: float = 0.0  # gain drawn from [-volume_db, +volume_db] dB per utterance (0: off)
    eq_db: float = 0.0  # channel colouring: a smooth random gain curve over frequency, gains drawn
    #                     from [-eq_db, +eq_db] dB at points spread on the mel scale (0: off)
    noise_prob: float = 0.0  # share of utterances that get additive noise
    snr_db: tuple[float, ...] = (10.0, 30.0)  # signal-to-noise ratio range, dB
    noise: str = ""  # a folder of noise recordings or a manifest; empty: generated noise
    noise_kinds: tuple[str, ...] = ("white", "pink", "babble")  # generated kinds (babble: other utterances)
    reverb_prob: float = 0.0  # share of utterances convolved with a simulated room response
    vtlp: float = 0.0  # vocal tract length perturbation of the log-mel features: each utterance's
    #                    frequency axis scaled by a factor drawn from [1 - vtlp, 1 + vtlp] (0: off; e.g. 0.1)


@dataclass(frozen=True)
class TrainConfig:
    exp_dir: str = "exp/run"
    epochs: int = 20
    max_minutes: float = 0.0  # stop after this much wall time (0: no limit); the best checkpoint is kept
    seed: int = 1234
    init_from: str = ""  # a model checkpoint (best.pt) whose weights start the run: fine-tuning. Its
    #                      vocabulary and feature statistics are kept; its features and model sections
    #                      (dropout aside) must equal this config's
    device: str = "auto"  # "auto" (CUDA when present), "cpu", "cuda", "cuda:1", ...
    amp: bool = True  # autocast on CUDA; ignored on the CPU
    amp_dtype: str = "bfloat16"  # or "float16" (with a gradient scaler), for GPUs without bf16
    threads: int = 0  # torch intra-op threads on the CPU (0: torch's default; 1 when step_threads > 1)
    step_threads: int = 0  # CPU only: each batch is split into this many chunks whose forward and
    #                        backward run in parallel threads (0: one per core). Small RNN ops use
    #                        cores poorly, chunks use them well; gradients are summed in a fixed order.
    #                        Threads draw dropout masks from one generator in no fixed order: for
    #                        bitwise-repeatable runs with dropout, set step_threads=1.
    compile: bool = False  # torch.compile the model step (dynamic shapes); on the CPU the step then runs
    #                        in one thread (step_threads is ignored). The first batches compile (slow).
    log_every: int = 20  # steps between log-file lines
    checkpoint_every: int = 0  # steps between resumable training states (0: at the end of each epoch only)
    keep_checkpoints: int = 3  # training states kept in exp_dir/state (the newest)
    max_bad_steps: int = 20  # a NaN/inf loss or gradient skips the step; this many in a row stop the run
    early_stop_patience: int = 0  # stop after this many epochs without a better dev WER (0: never)
    tensorboard: bool = True  # event files in exp_dir/tensorboard
    average_last: int = 5  # at the end, also try the mean weights of the last N epochs (0: off);
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
