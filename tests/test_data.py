import json

import pytest
import torch

from asr.config import FeatureConfig
from asr.data import BucketBatchSampler, SpeechDataset, read_manifest, speaker_normalization, write_manifest
from asr.features import FeatureExtractor
from asr.errors import AsrError
from asr.text import Vocabulary
from conftest import fsdd_file


def test_manifest_relative_paths_normalized_text_and_header_durations(tmp_path):
    wav = fsdd_file(5)
    (tmp_path / "audio").mkdir()
    (tmp_path / "audio" / "five.wav").write_bytes(wav.read_bytes())
    manifest = tmp_path / "m.jsonl"
    write_manifest(manifest, [
        {"audio_filepath": "audio/five.wav", "text": "FIVE!"},
        {"audio_filepath": str(wav), "duration": 0.5, "text": "5"},
    ])
    utts = read_manifest(manifest)
    assert [u.text for u in utts] == ["five", "five"]
    assert utts[0].audio_filepath == str(tmp_path / "audio" / "five.wav")
    assert 0.1 < utts[0].duration < 2 and utts[1].duration == 0.5
    assert utts[1].where == f"{manifest}:2"


@pytest.mark.parametrize("line, message", [
    ("{not json", r":2: invalid JSON"),
    ('{"text": "one"}', r":2: missing 'audio_filepath'"),
    ('{"audio_filepath": "WAV"}', r":2: missing 'text'"),
    ('{"audio_filepath": "nowhere.wav", "text": "one"}', r":2: audio file not found: .*nowhere.wav"),
    ('{"audio_filepath": "WAV", "text": "one", "duration": -1}', r":2: 'duration' must be a positive"),
    ('{"audio_filepath": "WAV", "text": "one", "duration": NaN}', r":2: 'duration' must be a positive, finite"),
    ('{"audio_filepath": "WAV", "text": "one", "duration": Infinity}', r":2: 'duration' must be a positive, finite"),
    ('{"audio_filepath": "WAV", "text": "one", "duration": "2.5"}', r":2: 'duration' must be a positive"),
    ('[1, 2]', r":2: expected a JSON object"),
    ('{"audio_filepath": "WAV", "text": "one", "speaker": ["a"]}', r":2: 'speaker' must be a string"),
])
def test_manifest_errors_name_the_line(tmp_path, line, message):
    good = json.dumps({"audio_filepath": str(fsdd_file(1)), "text": "one"})
    manifest = tmp_path / "m.jsonl"
    manifest.write_text(good + "\n" + line.replace("WAV", str(fsdd_file(1))) + "\n")
    with pytest.raises(AsrError, match=message):
        read_manifest(manifest)


def test_missing_and_empty_manifest(tmp_path):
    with pytest.raises(AsrError, match="manifest not found"):
        read_manifest(tmp_path / "none.jsonl")
    (tmp_path / "empty.jsonl").write_text("\n")
    with pytest.raises(AsrError, match="no utterances"):
        read_manifest(tmp_path / "empty.jsonl")


def test_unknown_characters_in_a_dataset_name_the_manifest_line(tmp_path):
    manifest = tmp_path / "m.jsonl"
    write_manifest(manifest, [{"audio_filepath": str(fsdd_file(1)), "text": "one"},
                              {"audio_filepath": str(fsdd_file(2)), "text": "two"}])
    utts = read_manifest(manifest)
    vocab = Vocabulary.from_texts(["one"])
    with pytest.raises(AsrError, match=rf"{manifest}:2: transcript 'two' .*'t', 'w'"):
        SpeechDataset(utts, 8000, vocab)


def test_batches_pad_and_carry_lengths(tmp_path):
    manifest = tmp_path / "m.jsonl"
    write_manifest(manifest, [{"audio_filepath": str(fsdd_file(d)), "text": w}
                              for d, w in [(1, "one"), (7, "seven")]])
    utts = read_manifest(manifest)
    ds = SpeechDataset(utts, 8000, Vocabulary.from_texts(u.text for u in utts))
    batch = ds.collate([ds[0], ds[1]])
    n0, n1 = len(ds[0][1]), len(ds[1][1])
    assert batch.waveforms.shape == (2, max(n0, n1)) and batch.wave_lengths.tolist() == [n0, n1]
    assert batch.target_lengths.tolist() == [3, 5] and batch.targets.shape == (2, 5)
    assert batch.waveforms[0, n0:].abs().sum() == 0 if n0 < n1 else batch.waveforms[1, n1:].abs().sum() == 0


def test_speakers_group_utterances_and_batches_carry_their_speakers_mean(tmp_path):
    manifest = tmp_path / "m.jsonl"
    items = [(1, "theo", "theo"), (2, "george", "george"), (3, "theo", "theo"), (4, "lucas", None)]
    write_manifest(manifest, [{"audio_filepath": str(fsdd_file(d, who)), "text": "x",
                               **({"speaker": speaker} if speaker else {})} for d, who, speaker in items])
    ds = SpeechDataset(read_manifest(manifest), 8000)
    assert [u.speaker for u in ds.utterances] == ["theo", "george", "theo", None]
    assert ds.speaker_groups() == ([0, 1, 0, 2], 3)  # no speaker: a group of its own
    fe = FeatureExtractor(FeatureConfig(sample_rate=8000, n_mels=32, normalize="speaker"))
    within = speaker_normalization(ds, fe, batch_seconds=1.0)
    assert within.shape == (32,) and bool((within > 0).all())
    speech = []  # each recording's frames within 30 dB of its loudest
    for _, w, _ in (ds[i] for i in range(4)):
        raw, frames = fe.raw(w[None], torch.tensor([len(w)]))
        speech.append(raw[0][fe.speech_frames(w[None], frames, raw.shape[1])[0]])
    theo = torch.cat([speech[0], speech[2]]).mean(0)
    for i, expected in enumerate([theo, speech[1].mean(0), theo, speech[3].mean(0)]):
        torch.testing.assert_close(ds.speaker_means[i], expected, atol=1e-4, rtol=1e-4)
    batch = ds.collate([ds[2], ds[1]])
    torch.testing.assert_close(batch.means, ds.speaker_means[[2, 1]])
    assert SpeechDataset(ds.utterances, 8000).collate([ds[0]]).means is None


def test_bucket_sampler_bounds_and_covers_everything():
    durations = [0.5 + (i * 37 % 50) / 10 for i in range(200)]
    sampler = BucketBatchSampler(durations, batch_seconds=20, max_batch_size=16, shuffle=True, seed=3)
    batches = sampler.batches()
    assert sorted(i for b in batches for i in b) == list(range(200))
    for b in batches:
        assert len(b) <= 16
        assert len(b) == 1 or max(durations[i] for i in b) * len(b) <= 20
    sampler.set_epoch(1)
    assert sampler.batches() != batches  # a new epoch gives new batches
    sampler.set_epoch(0)
    assert sampler.batches() == batches  # and the same epoch the same ones


def test_bucket_sampler_groups_similar_lengths():
    durations = [1.0] * 50 + [10.0] * 50
    batches = BucketBatchSampler(durations, batch_seconds=100, max_batch_size=100, shuffle=False).batches()
    for b in batches:
        assert len({durations[i] for i in b}) == 1


def test_sortagrad_epochs_go_shortest_first():
    durations = [(i * 7919) % 100 / 10 + 0.1 for i in range(100)]
    sampler = BucketBatchSampler(durations, batch_seconds=10, max_batch_size=8, shuffle=True, sorted_epochs=1)
    sampler.set_epoch(1)
    longest = [max(durations[i] for i in b) for b in sampler.batches()]
    assert longest == sorted(longest)
    sampler.set_epoch(2)
    longest = [max(durations[i] for i in b) for b in sampler.batches()]
    assert longest != sorted(longest)
