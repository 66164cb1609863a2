import pytest
import torch

from asr.augment import WaveAugment, load_noises
from asr.config import AugmentConfig
from asr.errors import AsrError

RATE = 8000


def batch(seed=0):
    g = torch.Generator().manual_seed(seed)
    lengths = torch.tensor([8000, 6000, 3000])
    waves = torch.randn(3, 8000, generator=g) * 0.1
    waves *= torch.arange(8000) < lengths[:, None]
    return waves, lengths


NONE = dict(speeds=(1.0,), gain_db=(0.0, 0.0), eq_db=0.0, noise_prob=0.0, reverb_prob=0.0, telephone_prob=0.0)


def only(**settings) -> AugmentConfig:
    """A config with only ``settings`` on (every kind is on by default)."""
    return AugmentConfig(**{**NONE, **settings})


def augment(config, seed=1):
    return WaveAugment(config, RATE, torch.Generator().manual_seed(seed))


def test_on_by_default_and_identity_when_off():
    assert augment(AugmentConfig()).active
    waves, lengths = batch()
    for config in (AugmentConfig(enabled=False), only()):
        aug = augment(config)
        assert not aug.active
        out, out_lengths = aug(waves, lengths)
        assert torch.equal(out, waves) and torch.equal(out_lengths, lengths)
    out, out_lengths = augment(AugmentConfig())(waves, lengths)  # everything at once runs and keeps padding silent
    assert all(out[i, m:].abs().sum() == 0 for i, m in enumerate(out_lengths.tolist()))


def test_speed_changes_lengths_by_the_factor_and_seeds_reproduce():
    waves, lengths = batch()
    config = only(speeds=(0.9, 1.1))
    out, out_lengths = augment(config)(waves, lengths)
    for n, m in zip(lengths.tolist(), out_lengths.tolist()):
        assert min(abs(m - n / 0.9), abs(m - n / 1.1)) <= 1
    assert out.shape == (3, int(out_lengths.max()))
    assert all(out[i, m:].abs().sum() == 0 for i, m in enumerate(out_lengths.tolist()))  # padding stays silent
    again, again_lengths = augment(config)(waves, lengths)
    assert torch.equal(again, out) and torch.equal(again_lengths, out_lengths)
    other, _ = augment(config, seed=2)(waves, lengths)
    assert not (other.shape == out.shape and torch.equal(other, out))


def test_gain_scales_each_utterance_within_the_range_and_stores_it_as_16_bit_samples():
    waves, lengths = batch()
    out, out_lengths = augment(only(gain_db=(-6.0, 6.0)))(waves, lengths)
    assert torch.equal(out_lengths, lengths)
    assert torch.equal(torch.round(out * 32767), out * 32767)  # on the 16-bit grid
    for i, n in enumerate(lengths.tolist()):
        gain = float((out[i, :n] * waves[i, :n]).sum() / (waves[i, :n] ** 2).sum())
        assert 10 ** (-6 / 20) - 1e-3 <= gain <= 10 ** (6 / 20) + 1e-3
        assert torch.allclose(out[i, :n], waves[i, :n] * gain, atol=1 / 32767)
    loud, _ = augment(only(gain_db=(30.0, 30.0)))(waves, lengths)
    assert loud.abs().max() <= 1.0 and (loud.abs() == 1.0).any()  # clipped at full scale, as a recorder would


@pytest.mark.parametrize("kind", ["white", "pink", "babble"])
def test_noise_lands_at_the_drawn_snr_and_never_in_the_padding(kind):
    waves, lengths = batch()
    out, out_lengths = augment(only(noise_prob=1.0, snr_db=(10.0, 20.0), noise_kinds=(kind,)))(waves, lengths)
    assert torch.equal(out_lengths, lengths)
    for i, n in enumerate(lengths.tolist()):
        noise = out[i, :n] - waves[i, :n]
        snr = 10 * torch.log10(waves[i, :n].pow(2).mean() / noise.pow(2).mean())
        assert 10.0 - 1e-3 <= float(snr) <= 20.0 + 1e-3
        assert out[i, n:].abs().sum() == 0


def test_noise_from_recordings(tmp_path):
    import numpy as np
    import soundfile as sf

    sf.write(tmp_path / "hum.wav", (0.3 * np.sin(np.arange(4000) * 0.2)).astype("float32"), RATE)
    waves, lengths = batch()
    config = only(noise_prob=1.0, snr_db=(5.0, 5.0), noise=str(tmp_path))
    out, _ = augment(config)(waves, lengths)
    noise = out[0, :8000] - waves[0, :8000]
    assert float(10 * torch.log10(waves[0].pow(2).mean() / noise.pow(2).mean())) == pytest.approx(5.0, abs=1e-3)
    with pytest.raises(AsrError, match="augment.noise not found"):
        load_noises(str(tmp_path / "none"), RATE)


def test_reverb_keeps_length_and_energy():
    waves, lengths = batch()
    out, out_lengths = augment(only(reverb_prob=1.0))(waves, lengths)
    assert torch.equal(out_lengths, lengths) and not torch.equal(out, waves)
    for i, n in enumerate(lengths.tolist()):
        assert float(out[i, :n].pow(2).sum()) == pytest.approx(float(waves[i, :n].pow(2).sum()), rel=0.05)


def test_telephone_keeps_the_voice_band_only_and_quantizes_it():
    waves, lengths = batch()
    out, out_lengths = augment(only(telephone_prob=1.0))(waves, lengths)
    assert torch.equal(out_lengths, lengths)
    for i, n in enumerate(lengths.tolist()):
        assert out[i, n:].abs().sum() == 0
        before = torch.fft.rfft(waves[i, :n]).abs().pow(2)
        after = torch.fft.rfft(out[i, :n]).abs().pow(2)
        hz = torch.fft.rfftfreq(n, 1 / RATE)
        inside, outside = (hz > 500) & (hz < 3200), (hz < 150) | (hz > 3700)
        assert after[outside].sum() < 0.02 * before[outside].sum()  # out of band: gone (but for mu-law's noise)
        assert after[inside].sum() == pytest.approx(float(before[inside].sum()), rel=0.1)  # in band: kept
        assert len(torch.unique(out[i, :n])) <= 256  # 8-bit samples


def test_equalizer_colours_the_spectrum_within_the_range_and_keeps_the_rest():
    waves, lengths = batch()
    config = only(eq_db=6.0)
    out, out_lengths = augment(config)(waves, lengths)
    assert torch.equal(out_lengths, lengths) and out.shape == waves.shape
    curves = []
    for i, n in enumerate(lengths.tolist()):
        assert out[i, n:].abs().sum() == 0  # padding stays silent
        assert float(out[i, :n].pow(2).sum()) == pytest.approx(float(waves[i, :n].pow(2).sum()), rel=1e-4)
        before = torch.fft.rfft(waves[i, :n]).abs().pow(2)
        after = torch.fft.rfft(out[i, :n]).abs().pow(2)
        bands = torch.linspace(0, len(before), 9).long()  # eight bands, 500 Hz each
        gain_db = torch.stack([10 * torch.log10(after[a:b].sum() / before[a:b].sum())
                               for a, b in zip(bands[:-1], bands[1:])])
        spread = float(gain_db.max() - gain_db.min())
        assert 1.0 < spread <= 2 * 6.0 + 0.5  # coloured, never by more than the range allows
        curves.append(gain_db)
    assert not torch.allclose(curves[0], curves[1], atol=0.5)  # a curve of its own per utterance
    again, _ = augment(config)(waves, lengths)
    assert torch.equal(again, out)


def test_bad_settings():
    with pytest.raises(AsrError, match=r"augment.eq_db: expected a number >= 0, got -3.0"):
        AugmentConfig(eq_db=-3.0)
    with pytest.raises(AsrError, match="augment.noise_kinds: expected one of 'white', 'pink', 'babble', got 'traffic'"):
        AugmentConfig(noise_kinds=("traffic",))
    with pytest.raises(AsrError, match=r"augment.snr_db: expected \[low, high\]"):
        AugmentConfig(snr_db=(30.0, 10.0))


def features(normalize="none", kind="logmel"):
    from asr.config import FeatureConfig
    from asr.features import FeatureExtractor

    return FeatureExtractor(FeatureConfig(sample_rate=RATE, n_mels=64, normalize=normalize, kind=kind))


def warp(extractor, seed=1, max_warp=0.1):
    from asr.augment import VocalTractWarp

    return VocalTractWarp(max_warp, extractor, torch.Generator().manual_seed(seed))


def tones(*hz):
    t = torch.arange(RATE) / RATE
    return torch.stack([0.1 * torch.sin(2 * torch.pi * f * t) for f in hz]), torch.full((len(hz),), RATE)


def test_vtlp_moves_a_tone_by_the_factor_and_touches_nothing_else():
    extractor = features()
    waves, lengths = tones(1000, 1000, 1000)
    x, frames = extractor(waves, lengths)
    frames = torch.tensor([101, 101, 60])  # the third utterance padded: its padding must stay zero
    x = x * (torch.arange(x.shape[1])[None, :, None] < frames[:, None, None])
    out = warp(extractor)(x, frames, factors=torch.tensor([1.1, 0.9, 1.0]))
    assert out.shape == x.shape and out[2, 60:].abs().sum() == 0
    expected, _ = extractor(*tones(1100, 900))
    peak = lambda f: int(f[10:50].mean(0).argmax())  # noqa: E731
    assert peak(x[0]) != peak(expected[0]) and peak(x[0]) != peak(expected[1])
    assert peak(out[0]) == peak(expected[0]) and peak(out[1]) == peak(expected[1])
    assert torch.allclose(out[2], x[2], atol=1e-5)  # factor 1: identity


def test_vtlp_on_real_speech_resembles_the_spectrum_of_faster_speech():
    """Speed perturbation by 1.1 scales every frequency by 1.1 (and shortens the audio): the
    long-term spectrum of the warped features must be closer to it than the unwarped one is."""
    from torchaudio.functional import speed

    from asr.audio import load_audio
    from conftest import fsdd_file

    wave = torch.from_numpy(load_audio(str(fsdd_file(8, "theo", 3)), RATE))[None]
    length = torch.tensor([wave.shape[1]])
    fast, fast_length = speed(wave, RATE, 1.1, length)
    extractor = features()
    x, frames = extractor(wave, length)
    target = extractor(fast, fast_length)[0][0].mean(0)
    warped = warp(extractor)(x, frames, factors=torch.tensor([1.1]))[0].mean(0)
    below = slice(0, 56)  # the bands under VTLP_BOUNDARY (0.8 x Nyquist), where the warp is a pure scaling
    error = lambda f: float((f[below] - target[below]).abs().mean())  # noqa: E731
    assert error(warped) < 0.5 * error(x[0].mean(0))
    backwards = warp(extractor)(x, frames, factors=torch.tensor([0.9]))[0].mean(0)
    assert error(backwards) > error(x[0].mean(0))  # the direction matters


def test_vtlp_under_global_normalization_warps_the_log_mel_values():
    extractor = features("global")
    waves, lengths = tones(700, 1300)
    raw, frames = extractor.raw(waves, lengths)
    extractor.mean.copy_(torch.linspace(-3, 2, 64))
    extractor.std.copy_(torch.linspace(0.5, 2, 64))
    factors = torch.tensor([1.08, 0.93])
    out = warp(extractor)(extractor(waves, lengths)[0], frames, factors)
    plain = warp(features())(raw, frames, factors)
    assert torch.allclose(out, (plain - extractor.mean) / extractor.std, atol=1e-4)


def test_vtlp_draws_per_utterance_factors_that_seeds_reproduce():
    extractor = features()
    x, frames = extractor(*tones(500, 1000, 2000))
    outs = [warp(extractor, seed=s)(x, frames) for s in (1, 1, 2)]
    assert torch.equal(outs[0], outs[1]) and not torch.equal(outs[0], outs[2])
    assert not warp(extractor, max_warp=0.0).active and warp(extractor).active
    factors = warp(extractor, max_warp=0.1).draw(1000)
    assert 0.9 <= float(factors.min()) < 0.91 and 1.09 < float(factors.max()) <= 1.1


def test_vtlp_bad_settings():
    with pytest.raises(AsrError, match=r"augment.vtlp must be in \[0, 0.5\)"):
        warp(features(), max_warp=0.6)
    with pytest.raises(AsrError, match="augment.vtlp warps log-mel features; features.kind is 'mfcc'"):
        warp(features(kind="mfcc"))
