import numpy as np
import pytest
import soundfile as sf

from asr.audio import load_audio
from asr.errors import AsrError
from conftest import LIBRISPEECH, fsdd_file


def tone(rate: int, seconds: float = 0.5, freq: float = 440.0) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


@pytest.mark.parametrize("suffix, subtype", [
    (".wav", "PCM_16"), (".wav", "PCM_24"), (".wav", "PCM_32"), (".wav", "FLOAT"), (".wav", "PCM_U8"),
    (".flac", "PCM_16"), (".ogg", "VORBIS"),
])
def test_formats_and_sample_types(tmp_path, suffix, subtype):
    path = tmp_path / f"x{suffix}"
    sf.write(path, tone(16000), 16000, subtype=subtype)
    audio = load_audio(path, 16000)
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert len(audio) == 8000
    assert np.corrcoef(audio, tone(16000))[0, 1] > 0.99


def test_resampled_to_model_rate(tmp_path):
    path = tmp_path / "44k.wav"
    sf.write(path, tone(44100, 1.0), 44100)
    audio = load_audio(path, 16000)
    assert len(audio) == 16000
    # the tone keeps its pitch: spectrum peak at 440 Hz
    peak_hz = np.argmax(np.abs(np.fft.rfft(audio))) * 16000 / len(audio)
    assert abs(peak_hz - 440) < 2


def test_multichannel_mixed_to_mono(tmp_path):
    path = tmp_path / "stereo.wav"
    left = tone(8000)
    sf.write(path, np.stack([left, np.zeros_like(left)], axis=1), 8000, subtype="FLOAT")
    np.testing.assert_allclose(load_audio(path, 8000), left / 2, atol=1e-6)


def test_real_speech_wav_and_flac():
    wav = load_audio(fsdd_file(7), 8000)
    assert 0.1 < len(wav) / 8000 < 2.0
    flacs = sorted(LIBRISPEECH.glob("test-clean/*/*/*.flac"))
    if not flacs:
        pytest.skip("LibriSpeech sample not found")
    audio = load_audio(flacs[0], 16000)
    assert len(audio) / 16000 > 1.0 and np.abs(audio).max() > 0.01
    assert len(load_audio(flacs[0], 8000)) == pytest.approx(len(audio) / 2, abs=2)


@pytest.mark.parametrize("make, message", [
    (lambda p: None, "audio file not found"),
    (lambda p: p.write_bytes(b""), "empty file"),
    (lambda p: p.write_bytes(b"this is not audio at all, just text" * 10), "not a readable audio file"),
    (lambda p: p.write_bytes(open(fsdd_file(3), "rb").read()[:30]), "not a readable audio file"),
    (lambda p: sf.write(p, np.zeros(0, dtype=np.float32), 8000), "no samples"),
    (lambda p: p.mkdir(), "is a directory"),
])
def test_bad_files_give_one_line_errors(tmp_path, make, message):
    path = tmp_path / "bad.wav"
    make(path)
    with pytest.raises(AsrError) as info:
        load_audio(path, 8000)
    text = str(info.value)
    assert text.startswith(str(path)) and message in text and "\n" not in text


def test_mp3(tmp_path):
    path = tmp_path / "x.mp3"
    sf.write(path, tone(16000), 16000, format="MP3", subtype="MPEG_LAYER_III")
    audio = load_audio(path, 8000)
    assert abs(len(audio) - 4000) < 200
    peak_hz = np.argmax(np.abs(np.fft.rfft(audio))) * 8000 / len(audio)
    assert abs(peak_hz - 440) < 5
