"""ONNX export and the torch-free runtime: the same numbers, the same transcripts, no torch."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys

import numpy as np
import pytest
import torch

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

from asr.api import load  # noqa: E402
from asr.audio import load_audio  # noqa: E402
from asr.checkpoint import load_checkpoint  # noqa: E402
from asr.config import FeatureConfig  # noqa: E402
from asr.errors import AsrError  # noqa: E402
from asr.export import export_onnx, front_end_metadata  # noqa: E402
from asr.features import FeatureExtractor  # noqa: E402
from asr.runtime import NumpyFeatures, load_onnx  # noqa: E402
from conftest import OVERFIT_ITEMS, WORDS, fsdd_file  # noqa: E402


@pytest.fixture(scope="module")
def exported(tiny_model, tmp_path_factory):
    checkpoint, _ = tiny_model
    out = tmp_path_factory.mktemp("export") / "tiny.onnx"
    paths = export_onnx(checkpoint, out)
    assert paths[0] == out and out.stat().st_size > 0
    return checkpoint, out


@pytest.mark.parametrize("kind", ["logmel", "mfcc"])
@pytest.mark.parametrize("normalize", ["level", "utterance", "speaker", "global", "none"])
def test_numpy_features_equal_torch_features(kind, normalize):
    config = FeatureConfig(kind=kind, sample_rate=16000, n_mels=40, n_mfcc=13, normalize=normalize)
    torch_features = FeatureExtractor(config).eval()
    torch_features.mean.copy_(torch.linspace(-3, 1, torch_features.dim))
    torch_features.std.copy_(torch.linspace(0.5, 2, torch_features.dim))
    numpy_features = NumpyFeatures(front_end_metadata(torch_features))
    wave = load_audio(fsdd_file(3), 16000)
    wave = np.concatenate([np.zeros(1234, np.float32), wave, 0.01 * np.ones(777, np.float32)])
    with torch.no_grad():
        expected, frames = torch_features(torch.from_numpy(wave)[None], torch.tensor([len(wave)]))
    got = numpy_features(wave)
    assert got.shape == (int(frames[0]), torch_features.dim)
    np.testing.assert_allclose(got, expected[0].numpy(), atol=2e-4, rtol=1e-4)


def test_numpy_features_equal_torch_features_with_a_level_window():
    config = FeatureConfig(sample_rate=8000, n_mels=40, normalize="level", level_window=0.5)
    torch_features = FeatureExtractor(config).eval()
    numpy_features = NumpyFeatures(front_end_metadata(torch_features))
    parts = [load_audio(fsdd_file(d), 8000) * g for d, g in ((3, 1.0), (5, 0.1), (7, 0.5))]
    wave = np.concatenate([np.concatenate([p, np.zeros(5000, np.float32)]) for p in parts]).astype(np.float32)
    with torch.no_grad():
        expected, _ = torch_features(torch.from_numpy(wave)[None], torch.tensor([len(wave)]))
    np.testing.assert_allclose(numpy_features(wave), expected[0].numpy(), atol=2e-4, rtol=1e-4)


@pytest.mark.parametrize("normalize", ["level", "speaker"])
def test_numpy_features_of_a_batch_equal_a_padded_torch_batch(normalize):
    """``many`` (one FFT and one mel product for all rows, as the exported model's batches use)
    gives each recording the features torch gives it in a padded batch, lengths included:
    recordings of different lengths, one shorter than a hop, one of digital silence."""
    config = FeatureConfig(sample_rate=8000, n_mels=40, normalize=normalize, level_window=0.5)
    torch_features = FeatureExtractor(config).eval()
    numpy_features = NumpyFeatures(front_end_metadata(torch_features))
    waves = [load_audio(fsdd_file(d), 8000) * g for d, g in ((3, 1.0), (5, 0.1), (7, 0.5))]
    waves = [w.astype(np.float32) for w in waves] + [np.zeros(900, np.float32), np.full(20, 0.1, np.float32)]
    lengths = [max(len(w), torch_features.min_samples) for w in waves]
    padded = torch.zeros(len(waves), max(lengths))
    for row, w in enumerate(waves):
        padded[row, :len(w)] = torch.from_numpy(w)
    with torch.no_grad():
        expected, frames = torch_features(padded, torch.tensor(lengths))
    got = numpy_features.many(waves)
    assert [len(x) for x in got] == frames.tolist()
    for row, x in enumerate(got):
        np.testing.assert_allclose(x, expected[row, :len(x)].numpy(), atol=2e-4, rtol=1e-4)
        np.testing.assert_allclose(x, numpy_features(waves[row]), atol=1e-5)  # as one at a time (but rounding)


def test_exported_model_gives_the_checkpoints_log_probs_and_transcripts(exported):
    checkpoint, onnx_path = exported
    recognizer, runtime = load_checkpoint(checkpoint), load_onnx(onnx_path)
    assert runtime.vocab.symbols == recognizer.vocab.symbols
    assert runtime.frame_seconds == pytest.approx(recognizer.frame_seconds)
    waves = [load_audio(fsdd_file(d, s, t), 8000) for d, s, t in OVERFIT_ITEMS]
    waves.append(np.concatenate(waves[:3]) * 0.3)  # longer, quieter, in the same padded batch
    for a, b in zip(recognizer.batch_log_probs(waves), runtime.batch_log_probs(waves)):
        assert a.shape == b.shape
        assert np.abs(a - b).max() < 1e-3
    with load(checkpoint) as torch_model, load(onnx_path) as onnx_model:
        paths = [fsdd_file(d, s, t) for d, s, t in OVERFIT_ITEMS]
        expected = [t.text for t in torch_model.transcribe_many(paths)]
        got = list(onnx_model.transcribe_many(paths))
    assert [t.text for t in got] == expected == [WORDS[d] for d, _, _ in OVERFIT_ITEMS]
    assert all(t.words and t.words[0].end > t.words[0].start for t in got)


def test_an_exported_model_transcribes_where_torch_cannot_be_imported(exported, tmp_path):
    """As in the light install (pip install ".[runtime]"): torch and torchaudio refuse to import,
    and `asr transcribe` still decodes greedily and with our beam search, LM, lexicon and
    hotwords, and gives word times; a checkpoint there is a one-line error."""
    from asr.lm import build_kneser_ney

    _, onnx_path = exported
    known = [WORDS[d] for d, _, _ in OVERFIT_ITEMS]  # the words (and letters) the tiny model knows
    build_kneser_ney([[w] for w in known] * 2, order=2).write_arpa(tmp_path / "lm.arpa")
    (tmp_path / "words.txt").write_text("\n".join(known) + "\n")
    block = ("import sys\n"
             "class NoTorch:\n"
             "    def find_spec(self, name, path=None, target=None):\n"
             "        if name.split('.')[0] in ('torch', 'torchaudio'):\n"
             "            raise ModuleNotFoundError(f'No module named {name!r}', name=name)\n"
             "sys.meta_path.insert(0, NoTorch())\n"
             "from asr.cli import main\n"
             "sys.exit(main(sys.argv[1:]))\n")
    audio = str(fsdd_file(8))

    def asr(*args):
        return subprocess.run([sys.executable, "-c", block, *args], capture_output=True, text=True, timeout=120)

    greedy = asr("transcribe", "--model", str(onnx_path), "--format", "json", audio)
    assert greedy.returncode == 0, greedy.stderr
    row = json.loads(greedy.stdout)
    assert row["text"] == "eight" and row["words"][0]["word"] == "eight" and row["words"][0]["end"] > 0
    beam = asr("transcribe", "--model", str(onnx_path), "--lm", str(tmp_path / "lm.arpa"), "--lexicon",
               str(tmp_path / "words.txt"), "--hotwords", "eight", audio)
    assert beam.returncode == 0 and beam.stdout.strip() == "eight", beam.stderr
    checkpoint = asr("transcribe", "--model", str(exported[0]), audio)
    assert checkpoint.returncode == 1 and checkpoint.stderr.count("\n") == 1
    assert "torch" in checkpoint.stderr and "asr export" in checkpoint.stderr


def test_a_damaged_or_foreign_model_file_is_a_one_line_error(exported, tmp_path):
    _, onnx_path = exported
    data = onnx_path.read_bytes()
    cases = {"empty.onnx": b"", "cut.onnx": data[:len(data) // 2], "noise.onnx": os.urandom(4096)}
    for name, content in cases.items():
        (tmp_path / name).write_bytes(content)
    import onnx

    foreign = onnx.load(str(onnx_path))
    del foreign.metadata_props[:]
    onnx.save(foreign, str(tmp_path / "foreign.onnx"))
    for name in [*cases, "foreign.onnx"]:
        with pytest.raises(AsrError) as error:
            load_onnx(tmp_path / name)
        assert str(error.value).startswith(str(tmp_path / name)) and "\n" not in str(error.value)
    with pytest.raises(AsrError, match="model not found"):
        load_onnx(tmp_path / "missing.onnx")


class _Payload:
    """Unpickling this runs a command that leaves a file behind."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_no_model_or_state_file_can_run_code_when_loaded(tmp_path):
    """A pickle payload in a checkpoint, a training state and an .onnx file: loading each fails
    with a one-line error (or skips the state), and the payload never runs."""
    from asr.train_state import load_latest_state, state_dir

    marker = tmp_path / "ran"
    checkpoint = tmp_path / "evil.pt"
    torch.save({"format": "asr-ctc-checkpoint", "version": 1, "model_state": _Payload(marker)}, checkpoint)
    with pytest.raises(AsrError, match="damaged checkpoint"):
        load_checkpoint(checkpoint)

    state_dir(tmp_path / "exp").mkdir(parents=True)
    torch.save({"format": "asr-train-state", "step": 5, "rng": _Payload(marker)},
               state_dir(tmp_path / "exp") / "step-00000005.pt")
    assert load_latest_state(tmp_path / "exp") is None

    (tmp_path / "evil.onnx").write_bytes(pickle.dumps(_Payload(marker)))
    with pytest.raises(AsrError, match="not a readable ONNX model"):
        load_onnx(tmp_path / "evil.onnx")
    assert not marker.exists()
    pickle.loads(pickle.dumps(_Payload(marker)))  # the payload is live: unpickled, it does run
    assert marker.exists()


def test_rows_dealt_to_threads_keep_numpys_blas_to_one_thread():
    """Each share of rows runs on a thread of its own; numpy's BLAS starting a thread per core
    for every product under them slowed the exported model to 0.88x the checkpoint's speed
    (scripts/bench_onnx.py). During the run BLAS has one thread, afterwards what it had."""
    from threadpoolctl import threadpool_info

    from asr.runtime import RowThreads

    def blas_threads() -> list[int]:
        return [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]

    before = blas_threads()
    assert before, "numpy loads a BLAS library"
    seen = []

    def run(waves, means):
        seen.append(blas_threads())
        return [w * 2 for w in waves]

    rows = RowThreads(threads=2)
    out = rows.run(run, [np.ones(3) * k for k in range(5)], None)
    assert [float(o[0]) for o in out] == [0, 2, 4, 6, 8]  # each row's result back in its place
    assert seen == [[1] * len(before)] * 2
    assert blas_threads() == before
