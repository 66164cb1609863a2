import librosa
import numpy as np
import pytest
import torch

from asr.audio import load_audio
from asr.config import FeatureConfig
from asr.features import LOG_FLOOR, FeatureExtractor
from conftest import fsdd_file


@pytest.fixture(scope="module")
def speech() -> np.ndarray:
    return load_audio(fsdd_file(4, "theo", 20), 8000)


def librosa_mel(audio, config: FeatureConfig, fe: FeatureExtractor) -> np.ndarray:
    return librosa.feature.melspectrogram(
        y=audio, sr=config.sample_rate, n_fft=fe.n_fft, hop_length=fe.hop_length, win_length=fe.win_length,
        window="hann", center=True, pad_mode="constant", power=2.0, n_mels=config.n_mels, htk=True, norm=None)


def test_logmel_agrees_with_librosa(speech):
    config = FeatureConfig(kind="logmel", sample_rate=8000, n_mels=40, normalize="none")
    fe = FeatureExtractor(config)
    ours, frames = fe(torch.from_numpy(speech)[None], torch.tensor([len(speech)]))
    ref = np.log(librosa_mel(speech, config, fe) + LOG_FLOOR).T  # (F, T) -> (T, F)
    assert ours.shape[1] == ref.shape[0] == int(frames[0])
    np.testing.assert_allclose(ours[0].numpy(), ref, atol=2e-3, rtol=1e-3)


def test_mfcc_agrees_with_librosa(speech):
    config = FeatureConfig(kind="mfcc", sample_rate=8000, n_mels=40, n_mfcc=13, normalize="none")
    fe = FeatureExtractor(config)
    ours, _ = fe(torch.from_numpy(speech)[None], torch.tensor([len(speech)]))
    log_mel = np.log(librosa_mel(speech, config, fe) + LOG_FLOOR)
    ref = librosa.feature.mfcc(S=log_mel, n_mfcc=13, dct_type=2, norm="ortho").T
    np.testing.assert_allclose(ours[0].numpy(), ref, atol=5e-3, rtol=1e-3)


@pytest.mark.parametrize("normalize", ["level", "utterance", "speaker", "global", "none"])
def test_padding_changes_no_valid_frame(speech, normalize):
    fe = FeatureExtractor(FeatureConfig(sample_rate=8000, n_mels=40, normalize=normalize))
    n = len(speech) * 2 // 3
    short = torch.from_numpy(speech[:n])
    alone, n_alone = fe(short[None], torch.tensor([n]))
    batch = torch.zeros(2, len(speech))
    batch[0, :n] = short
    batch[1] = torch.from_numpy(speech)
    padded, n_padded = fe(batch, torch.tensor([n, len(speech)]))
    assert int(n_padded[0]) == int(n_alone[0]) == alone.shape[1]
    torch.testing.assert_close(padded[0, : alone.shape[1]], alone[0], atol=1e-4, rtol=1e-4)
    assert padded[0, alone.shape[1]:].abs().max() == 0


@pytest.mark.parametrize("kind", ["logmel", "mfcc"])
def test_level_normalization_is_blind_to_gain_and_to_silence_around_the_words(speech, kind):
    fe = FeatureExtractor(FeatureConfig(kind=kind, sample_rate=8000, n_mels=40, n_mfcc=13, normalize="level"))
    wave = torch.from_numpy(speech)[None]
    x, _ = fe(wave, torch.tensor([len(speech)]))
    for gain in (10 ** (-35 / 20), 10 ** (10 / 20)):  # float samples: no quantization, so the same features
        y, _ = fe(wave * gain, torch.tensor([len(speech)]))
        torch.testing.assert_close(y, x, atol=1e-3, rtol=1e-3)
    global_fe = FeatureExtractor(FeatureConfig(kind=kind, sample_rate=8000, n_mels=40, n_mfcc=13, normalize="global"))
    z, _ = global_fe(wave * 0.01, torch.tensor([len(speech)]))
    assert (z - global_fe(wave, torch.tensor([len(speech)]))[0]).abs().max() > 1  # unlike plain statistics
    # half a second of faint noise on either side moves the level by little (the utterance
    # normalization of the same recording moves much more)
    quiet = np.random.default_rng(0).standard_normal(4000).astype(np.float32) * 1e-4
    padded = torch.from_numpy(np.concatenate([quiet, speech, quiet]))[None]
    frames = int(x.shape[1])
    for mode, limit in (("level", 0.05), ("utterance", None)):
        f = FeatureExtractor(FeatureConfig(kind=kind, sample_rate=8000, n_mels=40, n_mfcc=13, normalize=mode))
        alone, _ = f(wave, torch.tensor([len(speech)]))
        inside, _ = f(padded, torch.tensor([padded.shape[1]]))
        middle = inside[0, 50:50 + frames]  # the same frames: 4,000 samples = 50 hops later
        shift = float((middle[5:-5] - alone[0, 5:-5]).mean(1).abs().median())
        if limit:
            assert shift < limit
        else:
            assert shift > 0.2


def test_a_level_window_reads_a_quiet_talker_after_a_loud_one_at_their_own_level(speech):
    """A long recording: a loud word, 2 s of pause, the same word 16 dB quieter. With the whole
    recording's level the quiet word's features sit 16 dB low; with a 1 s window, as if alone."""
    quiet = speech * 10 ** (-16 / 20)
    pause = np.zeros(16000, np.float32)
    wave = torch.from_numpy(np.concatenate([speech, pause, quiet]))[None]
    n = len(speech)
    first_quiet_frame = (n + len(pause)) // 80
    for window, expected_shift in ((0.0, -16 * np.log(10) / 10), (1.0, 0.0)):
        fe = FeatureExtractor(FeatureConfig(sample_rate=8000, n_mels=40, normalize="level", level_window=window))
        alone, _ = fe(torch.from_numpy(speech)[None], torch.tensor([n]))
        x, _ = fe(wave, torch.tensor([wave.shape[1]]))
        loudest_bins = alone[0, 5:-5].mean(1) > alone[0].mean()  # speech frames, where the floor does not matter
        shift = (x[0, first_quiet_frame + 5:first_quiet_frame + alone.shape[1] - 5] - alone[0, 5:-5]).mean(1)
        assert float(shift[loudest_bins].median()) == pytest.approx(expected_shift, abs=0.3)
        torch.testing.assert_close(x[0, 5:alone.shape[1] - 5], alone[0, 5:-5], atol=1e-4, rtol=1e-4)  # the loud word


def test_utterance_normalization_statistics(speech):
    fe = FeatureExtractor(FeatureConfig(sample_rate=8000, n_mels=40, normalize="utterance"))
    x, _ = fe(torch.from_numpy(speech)[None], torch.tensor([len(speech)]))
    assert x[0].mean(0).abs().max() < 1e-4
    assert (x[0].std(0, unbiased=False) - 1).abs().max() < 1e-2


def test_global_statistics_fit(speech):
    fe = FeatureExtractor(FeatureConfig(sample_rate=8000, n_mels=40, normalize="global"))
    wave, lengths = torch.from_numpy(speech)[None], torch.tensor([len(speech)])
    fe.fit_global_stats([(wave, lengths)])
    raw, _ = fe.raw(wave, lengths)
    torch.testing.assert_close(fe.mean, raw[0].mean(0), atol=1e-4, rtol=1e-4)
    x, _ = fe(wave, lengths)
    assert x[0].mean(0).abs().max() < 1e-3


def speech_part(audio: np.ndarray, raw: torch.Tensor, fe: FeatureExtractor) -> torch.Tensor:
    """The frames (T, F) of raw features whose window (centred on a multiple of the hop) has
    a power within 30 dB of the loudest window's."""
    padded = np.pad(audio.astype(np.float64), fe.win_length // 2)
    power = np.array([np.mean(padded[t * fe.hop_length: t * fe.hop_length + fe.win_length] ** 2)
                      for t in range(raw.shape[0])])
    return raw[torch.from_numpy(10 * np.log10(power + 1e-12) >= 10 * np.log10(power.max() + 1e-12) - 30)]


def test_speaker_normalization_subtracts_the_given_mean_else_the_utterances_own(speech):
    fe = FeatureExtractor(FeatureConfig(sample_rate=8000, n_mels=40, normalize="speaker"))
    fe.std.fill_(2.0)
    wave, lengths = torch.from_numpy(speech)[None], torch.tensor([len(speech)])
    raw, _ = fe.raw(wave, lengths)
    speaker_mean = torch.linspace(-5, 1, 40)
    x, _ = fe(wave, lengths, speaker_mean[None])
    torch.testing.assert_close(x[0], (raw[0] - speaker_mean) / 2.0)
    alone, _ = fe(wave, lengths)
    expected = (raw[0] - speech_part(speech, raw[0], fe).mean(0)) / 2.0
    torch.testing.assert_close(alone[0], expected, atol=1e-5, rtol=1e-5)


def test_speaker_mean_ignores_silence(speech):
    """Recordings with long pauses and tightly trimmed ones of one voice get the same mean:
    it is taken over the frames with speech."""
    fe = FeatureExtractor(FeatureConfig(sample_rate=8000, n_mels=40, normalize="speaker"))
    quiet = np.random.default_rng(0).normal(0, 1e-5, 8000).astype(np.float32)  # a second of near silence
    padded = np.concatenate([quiet, speech, quiet])
    means, speech_count = [], []
    for audio in (speech, padded):
        wave, lengths = torch.from_numpy(audio)[None], torch.tensor([len(audio)])
        means.append(fe.group_stats([(wave, lengths, torch.tensor([0]))], 1)[0][0])
        raw, frames = fe.raw(wave, lengths)
        speech_count.append(int(fe.speech_frames(wave, frames, raw.shape[1]).sum()))
    assert abs(speech_count[1] - speech_count[0]) <= 2  # the 200 frames of near silence are left out
    assert (means[0] - means[1]).abs().max() < 0.5  # the edge frames differ: zeros around one, noise the other
    raw, _ = fe.raw(torch.from_numpy(padded)[None], torch.tensor([len(padded)]))
    assert (raw[0].mean(0) - means[1]).abs().max() > 2  # what every frame's mean would have been


def test_group_statistics_are_each_speakers_mean_and_the_spread_within(speech):
    fe = FeatureExtractor(FeatureConfig(sample_rate=8000, n_mels=40, normalize="speaker"))
    other = load_audio(fsdd_file(7, "george", 3), 8000)
    waves = [speech, speech[: len(speech) // 2], other]  # theo, theo, george
    batch = torch.zeros(3, max(map(len, waves)))
    for row, w in enumerate(waves):
        batch[row, : len(w)] = torch.from_numpy(w)
    lengths = torch.tensor([len(w) for w in waves])
    # batched as (theo, george) then (theo): the statistics must not depend on the batching
    means, within = fe.group_stats([(batch[[0, 2]], lengths[[0, 2]], torch.tensor([0, 1])),
                                    (batch[[1]], lengths[[1]], torch.tensor([0]))], 2)
    frames = [fe.raw(torch.from_numpy(w)[None], torch.tensor([len(w)]))[0][0].double() for w in waves]
    theo_mean = torch.cat([speech_part(w, f, fe) for w, f in zip(waves[:2], frames[:2])]).mean(0)
    george_mean = speech_part(waves[2], frames[2], fe).mean(0)
    torch.testing.assert_close(means.double(), torch.stack([theo_mean, george_mean]), atol=1e-4, rtol=1e-4)
    about = torch.cat([frames[0] - theo_mean, frames[1] - theo_mean, frames[2] - george_mean])
    torch.testing.assert_close(within.double(), about.pow(2).mean(0).sqrt(), atol=1e-3, rtol=1e-3)


def test_frame_count_and_hop():
    fe = FeatureExtractor(FeatureConfig(sample_rate=16000, win_ms=25, hop_ms=10))
    assert (fe.win_length, fe.hop_length, fe.n_fft) == (400, 160, 512)
    x, frames = fe(torch.randn(1, 16000), torch.tensor([16000]))
    assert x.shape == (1, 16000 // 160 + 1, 80) and int(frames[0]) == x.shape[1]


def test_bad_settings_are_one_line_errors():
    from asr.errors import AsrError

    with pytest.raises(AsrError, match=r"features.n_mfcc \(40\) must not exceed features.n_mels \(32\)"):
        FeatureConfig(kind="mfcc", n_mels=32, n_mfcc=40)
    with pytest.raises(AsrError, match="features.kind: expected one of 'logmel', 'mfcc', got 'spectrogram'"):
        FeatureConfig(kind="spectrogram")
