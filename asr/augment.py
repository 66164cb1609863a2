"""Training-time augmentation: of waveforms (speed, volume, noise, reverberation) and of
features (vocal tract length perturbation, SpecAugment). Runs on the batch's device, draws
from one seeded generator, and is never applied to evaluation data."""

from __future__ import annotations

import math
import os
from pathlib import Path

import torch

from asr.audio import MU, TELEPHONE_BAND, load_audio
from asr.config import AugmentConfig, SpecAugmentConfig
from asr.errors import AsrError



EQ_POINTS = 8  # control points of the random gain curve (``eq_db``), evenly spaced in mels


def hz_to_mel(hz: torch.Tensor) -> torch.Tensor:
    """The HTK mel scale, torchaudio's default (the features' filterbank)."""
    return 2595 * torch.log10(1 + hz / 700)


class WaveAugment:
    """Speed perturbation, then a random channel colouring (equalizer curve), then additive
    noise at a random SNR, then a simulated room response, then a telephone line, and last the
    gain at which the recording is stored as 16-bit samples; each drawn per utterance."""

    def __init__(self, config: AugmentConfig, sample_rate: int, generator: torch.Generator):
        self.config = config
        self.rate = sample_rate
        self.generator = generator
        self.noises = load_noises(config.noise, sample_rate) if config.noise else []

    @property
    def active(self) -> bool:
        c = self.config
        return c.enabled and (set(c.speeds) - {1.0} != set() or c.gain_db != (0.0, 0.0) or c.eq_db > 0
                              or c.noise_prob > 0 or c.reverb_prob > 0 or c.telephone_prob > 0)

    def _rand(self, *shape) -> torch.Tensor:
        return torch.rand(*shape, generator=self.generator)

    def __call__(self, waves: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, S) zero-padded waveforms + (B,) lengths -> augmented ones (a new tensor)."""
        c = self.config
        if not self.active:
            return waves, lengths
        if set(c.speeds) - {1.0}:
            waves, lengths = self.speed(waves, lengths)
        device, B = waves.device, waves.shape[0]
        valid = torch.arange(waves.shape[1], device=device) < lengths[:, None]
        if c.eq_db > 0:
            waves = self.equalize(waves, valid)
        if c.noise_prob > 0:
            waves = self.add_noise(waves, lengths, valid)
        if c.reverb_prob > 0:
            waves = self.reverberate(waves, lengths)
        if c.telephone_prob > 0:
            waves = self.telephone(waves, valid)
        if c.gain_db != (0.0, 0.0):
            low, high = c.gain_db
            gain = 10 ** ((low + self._rand(B) * (high - low)) / 20)
            waves = torch.round((waves * gain.to(device)[:, None]).clamp(-1, 1) * 32767) / 32767
        return waves * valid, lengths

    def speed(self, waves: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        from torchaudio.functional import speed

        factors = self.config.speeds
        choice = (self._rand(waves.shape[0]) * len(factors)).long().clamp(max=len(factors) - 1)
        outputs, out_lengths = [None] * len(choice), torch.zeros_like(lengths)
        for k, factor in enumerate(factors):
            rows = (choice == k).nonzero().flatten().tolist()
            if not rows:
                continue
            sub, sub_lengths = waves[rows], lengths[rows]
            if factor != 1.0:
                sub, sub_lengths = speed(sub, self.rate, factor, sub_lengths)
            for row, wave, n in zip(rows, sub, sub_lengths.tolist()):
                outputs[row], out_lengths[row] = wave[:n], n
        padded = torch.zeros(len(outputs), int(out_lengths.max()), device=waves.device, dtype=waves.dtype)
        for row, wave in enumerate(outputs):
            padded[row, :len(wave)] = wave
        return padded, out_lengths

    def equalize(self, waves: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """Colour each utterance as a microphone or channel would: its spectrum times a smooth gain
        curve, drawn in [-eq_db, +eq_db] dB at EQ_POINTS frequencies evenly spaced in mels and
        interpolated linearly (in dB) between them. Each utterance keeps its energy; the filtering
        is linear (zero-padded FFT), so nothing wraps around into the start."""
        B, S = waves.shape
        device = waves.device
        n = 1 << (S + self.rate // 10).bit_length()  # room for the short response's tail
        freqs = torch.arange(n // 2 + 1, device=device) * self.rate / n
        position = hz_to_mel(freqs) / hz_to_mel(torch.tensor(self.rate / 2)) * (EQ_POINTS - 1)
        low = position.floor().long().clamp(max=EQ_POINTS - 2)
        weight = position - low
        points = ((self._rand(B, EQ_POINTS) * 2 - 1) * self.config.eq_db).to(device)
        gain_db = points[:, low] * (1 - weight) + points[:, low + 1] * weight  # (B, n // 2 + 1)
        out = torch.fft.irfft(torch.fft.rfft(waves, n) * 10 ** (gain_db / 20), n)[:, :S]
        out = out * valid
        before, after = (waves ** 2).sum(1, keepdim=True), (out ** 2).sum(1, keepdim=True)
        return out * torch.sqrt(before / after.clamp(min=1e-20))

    def add_noise(self, waves: torch.Tensor, lengths: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        c = self.config
        B, S = waves.shape
        device = waves.device
        chosen = (self._rand(B) < c.noise_prob).to(device)
        if not chosen.any():
            return waves
        noise = self.noise_like(waves, lengths, valid)
        low, high = c.snr_db
        snr = (low + self._rand(B) * (high - low)).to(device)
        signal_power = (waves ** 2 * valid).sum(1) / lengths.clamp(min=1)
        noise_power = (noise ** 2 * valid).sum(1) / lengths.clamp(min=1)
        scale = torch.sqrt(signal_power / (noise_power.clamp(min=1e-10) * 10 ** (snr / 10)))
        return waves + noise * (scale * chosen)[:, None]

    def noise_like(self, waves: torch.Tensor, lengths: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """One noise waveform per utterance: a random recording of ``noise``, else a generated kind."""
        B, S = waves.shape
        device = waves.device
        if self.noises:
            out = torch.zeros(B, S)
            for b in range(B):
                clip = self.noises[int(self._rand(1) * len(self.noises)) % len(self.noises)]
                start = int(self._rand(1) * len(clip))
                out[b] = clip.roll(-start).repeat(S // len(clip) + 1)[:S]
            return out.to(device)
        kinds = self.config.noise_kinds
        kind = [kinds[int(k)] for k in (self._rand(B) * len(kinds)).long().clamp(max=len(kinds) - 1)]
        white = torch.randn(B, S, generator=self.generator).to(device)
        out = white.clone()
        pink_rows = [b for b, k in enumerate(kind) if k == "pink"]
        if pink_rows:
            spectrum = torch.fft.rfft(white[pink_rows], dim=1)
            f = torch.arange(spectrum.shape[1], device=device).clamp(min=1).float()
            out[pink_rows] = torch.fft.irfft(spectrum / f.sqrt(), n=S, dim=1)  # power ~ 1/f
        babble_rows = [b for b, k in enumerate(kind) if k == "babble"]
        if babble_rows and B > 1:
            voices = torch.zeros(B, S, device=device)
            for shift in (1, 2, 3)[:B - 1]:  # other utterances of the batch, each looped to length
                other = waves.roll(shift, dims=0)
                other_len = lengths.roll(shift, dims=0).clamp(min=1)
                index = torch.arange(S, device=device)[None, :] % other_len[:, None]
                voices += other.gather(1, index)
            out[babble_rows] = voices[babble_rows]
        return out

    def telephone(self, waves: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """A telephone line for the chosen utterances: the 300-3400 Hz band (zero-padded FFT, so
        nothing wraps around), then 8-bit mu-law samples at a random level (peak at -20 to 0 dBFS),
        played back at the level the utterance came in at."""
        B, S = waves.shape
        chosen = (self._rand(B) < self.config.telephone_prob).tolist()
        rows = [b for b in range(B) if chosen[b]]
        if not rows:
            return waves
        n = 1 << S.bit_length()
        freqs = torch.fft.rfftfreq(n, 1 / self.rate).to(waves.device)
        band = ((freqs >= TELEPHONE_BAND[0]) & (freqs <= TELEPHONE_BAND[1])).to(waves.dtype)
        line = torch.fft.irfft(torch.fft.rfft(waves[rows], n) * band, n)[:, :S] * valid[rows]
        peak = line.abs().amax(1, keepdim=True).clamp(min=1e-8)
        level = (10 ** -self._rand(len(rows), 1)).to(waves.device)  # peak at 0 to -20 dBFS
        x = (line / peak * level).clamp(-1, 1)
        code = torch.round(torch.sign(x) * torch.log1p(MU * x.abs()) / math.log1p(MU) * 127) / 127
        decoded = torch.sign(code) * ((1 + MU) ** code.abs() - 1) / MU
        out = waves.clone()
        out[rows] = decoded / level * peak
        return out

    def reverberate(self, waves: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Convolve with an exponentially decaying noise tail (RT60 0.2-0.8 s), direct path first."""
        from torchaudio.functional import fftconvolve

        B, S = waves.shape
        chosen = (self._rand(B) < self.config.reverb_prob).tolist()
        rows = [b for b in range(B) if chosen[b]]
        if not rows:
            return waves
        rt60 = 0.2 + self._rand(len(rows)) * 0.6
        n = int(0.8 * self.rate)
        t = torch.arange(n) / self.rate
        rir = torch.randn(len(rows), n, generator=self.generator) * torch.exp(-6.9 * t[None, :] / rt60[:, None])
        rir[:, 0] = 1.0
        rir = (rir / rir.norm(dim=1, keepdim=True)).to(waves.device)
        out = waves.clone()
        valid = torch.arange(S, device=waves.device) < lengths[rows][:, None]
        wet = fftconvolve(waves[rows], rir)[:, :S] * valid  # the tail past the end is cut
        dry_power = (waves[rows] ** 2).sum(1, keepdim=True)
        out[rows] = wet * torch.sqrt(dry_power / (wet ** 2).sum(1, keepdim=True).clamp(min=1e-10))
        return out


class VocalTractWarp:
    """Vocal tract length perturbation (VTLP; Jaitly and Hinton, 2013) of log-mel features: each
    utterance's spectrum is stretched or squeezed along frequency by a factor drawn from
    [1 - vtlp, 1 + vtlp], as a longer or shorter vocal tract moves every formant (the warp:
    ``asr.vtln``). Unlike speed perturbation, timing and length are untouched. Works on the
    features the extractor returns (``FeatureExtractor.warp``)."""

    def __init__(self, max_warp: float, features, generator: torch.Generator):
        if not 0 <= max_warp < 0.5:
            raise AsrError(f"augment.vtlp must be in [0, 0.5), got {max_warp}")
        if max_warp > 0 and features.config.kind != "logmel":
            raise AsrError(f"augment.vtlp warps log-mel features; features.kind is {features.config.kind!r}")
        self.max_warp = max_warp
        self.features = features
        self.generator = generator

    @property
    def active(self) -> bool:
        return self.max_warp > 0

    def draw(self, count: int) -> torch.Tensor:
        """One warp factor per utterance, uniform in [1 - vtlp, 1 + vtlp]."""
        return 1 + (torch.rand(count, generator=self.generator) * 2 - 1) * self.max_warp

    def __call__(self, x: torch.Tensor, frames: torch.Tensor, factors: torch.Tensor | None = None) -> torch.Tensor:
        """Features (B, T, F) + frame lengths (B,) -> warped features (a new tensor)."""
        return self.features.warp(x, frames, self.draw(len(x)) if factors is None else factors)


def build_augmentation(config: AugmentConfig, features, generator: torch.Generator) -> tuple[WaveAugment, VocalTractWarp]:
    """A training run's waveform augmentation and VTLP, drawing from ``generator`` (both off when
    ``config.enabled`` is false)."""
    vtlp = config.vtlp if config.enabled else 0.0
    return (WaveAugment(config, features.config.sample_rate, generator),
            VocalTractWarp(vtlp, features, generator))


def augment_features(x: torch.Tensor, frames: torch.Tensor, vtlp: VocalTractWarp, config: SpecAugmentConfig,
                     generator: torch.Generator) -> torch.Tensor:
    """The feature-level augmentation of a training batch (B, T, F): VTLP when it is on, then SpecAugment."""
    if vtlp.active:
        x = vtlp(x, frames)
    return spec_augment(x, frames, config, generator)


def load_noises(source: str, sample_rate: int, limit: int = 500) -> list[torch.Tensor]:
    """Noise recordings from a folder (any audio files) or a JSON Lines manifest."""
    from asr.data import read_manifest

    path = Path(source)
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.suffix.lower() in (".wav", ".flac", ".ogg", ".mp3"))
    elif path.is_file():
        files = [Path(u.audio_filepath) for u in read_manifest(path)]
    else:
        raise AsrError(f"{source}: augment.noise not found (give a folder of recordings or a manifest)")
    if not files:
        raise AsrError(f"{source}: no audio files for augment.noise")
    return [torch.from_numpy(load_audio(os.fspath(f), sample_rate)) for f in files[:limit]]


def spec_augment(x: torch.Tensor, lengths: torch.Tensor, config: SpecAugmentConfig,
                 generator: torch.Generator | None = None) -> torch.Tensor:
    """SpecAugment frequency and time masks on features (B, T, F), set to 0 (the
    normalized mean). Time-mask widths scale with each utterance's own length, and
    masks only fall on valid frames. Returns a new tensor."""
    B, T, F = x.shape
    device = x.device
    keep = torch.ones(B, T, F, dtype=torch.bool, device=device)
    rand = lambda *shape: torch.rand(*shape, generator=generator).to(device)  # noqa: E731
    f_axis = torch.arange(F, device=device)
    for _ in range(config.freq_masks):
        width = (rand(B) * (config.freq_width + 1)).long().clamp(max=F)  # (B,)
        start = (rand(B) * (F - width + 1)).long()
        band = (f_axis >= start[:, None]) & (f_axis < (start + width)[:, None])  # (B, F)
        keep &= ~band[:, None, :]
    t_axis = torch.arange(T, device=device)
    for _ in range(config.time_masks):
        max_width = (lengths.float() * config.time_width).long()
        width = (rand(B) * (max_width + 1)).long()
        start = (rand(B) * (lengths - width + 1).clamp(min=1)).long()
        span = (t_axis >= start[:, None]) & (t_axis < (start + width)[:, None])  # (B, T)
        keep &= ~span[:, :, None]
    return x * keep
