import pytest
import torch

from asr.checkpoint import load_checkpoint, save_checkpoint
from asr.recognizer import Recognizer
from asr.config import FeatureConfig, ModelConfig
from asr.errors import AsrError
from asr.features import FeatureExtractor
from asr.model import CTCModel
from asr.text import Vocabulary


@pytest.fixture
def recognizer():
    torch.manual_seed(0)
    fe = FeatureExtractor(FeatureConfig(sample_rate=8000, n_mels=20, normalize="global"))
    fe.mean.fill_(0.5)
    vocab = Vocabulary.from_texts(["one two"])
    model = CTCModel(ModelConfig(rnn_type="lstm", hidden_size=8, num_layers=2, conv_channels=8), fe.dim, len(vocab))
    return Recognizer(fe, model, vocab, {"epoch": 3}).eval()


def test_round_trip_needs_no_other_information(tmp_path, recognizer):
    path = tmp_path / "m.pt"
    save_checkpoint(path, recognizer)
    assert not list(tmp_path.glob("*.tmp"))
    loaded = load_checkpoint(path)
    assert loaded.vocab == recognizer.vocab and loaded.info == {"epoch": 3}
    assert loaded.model.config == recognizer.model.config and loaded.features.config == recognizer.features.config
    wave, lengths = torch.randn(2, 4000), torch.tensor([4000, 3000])
    with torch.no_grad():
        torch.testing.assert_close(loaded.log_probs(wave, lengths)[0], recognizer.log_probs(wave, lengths)[0])
    assert float(loaded.features.mean[0]) == 0.5


@pytest.mark.parametrize("damage, message", [
    (lambda b: b[: len(b) // 2], "damaged or not an asr checkpoint"),
    (lambda b: b"garbage" * 100, "damaged or not an asr checkpoint"),
    (lambda b: b"", "damaged or not an asr checkpoint"),
])
def test_damaged_checkpoints_are_one_line_errors(tmp_path, recognizer, damage, message):
    path = tmp_path / "m.pt"
    save_checkpoint(path, recognizer)
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(AsrError, match=message) as info:
        load_checkpoint(path)
    assert "\n" not in str(info.value) and str(info.value).startswith(str(path))


def test_foreign_and_missing_checkpoints(tmp_path):
    torch.save({"weights": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(AsrError, match="not an asr checkpoint"):
        load_checkpoint(tmp_path / "other.pt")
    with pytest.raises(AsrError, match="checkpoint not found"):
        load_checkpoint(tmp_path / "nothing.pt")
