import pytest

from asr.config import TrainConfig, load_train_config
from asr.errors import AsrError


def test_defaults_and_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("epochs: 3\nmodel:\n  rnn_type: lstm\n  conv_strides: [2, 2]\n")
    config = load_train_config(str(path), ["model.hidden_size=32", "optim.lr=1e-3", "features.kind=mfcc"])
    assert isinstance(config, TrainConfig)
    assert config.epochs == 3 and config.model.rnn_type == "lstm" and config.model.conv_strides == (2, 2)
    assert config.model.hidden_size == 32 and config.optim.lr == 1e-3 and config.features.kind == "mfcc"
    assert config.model.num_layers == TrainConfig().model.num_layers


def test_unknown_keys_are_errors(tmp_path):
    with pytest.raises(AsrError, match="unknown config key model.hiden_size"):
        load_train_config(None, ["model.hiden_size=3"])
    path = tmp_path / "c.yaml"
    path.write_text("epoch: 3\n")
    with pytest.raises(AsrError, match="unknown config key epoch"):
        load_train_config(str(path))


def test_wrong_types_and_bad_files(tmp_path):
    with pytest.raises(AsrError, match="model.hidden_size: expected int"):
        load_train_config(None, ["model.hidden_size=big"])
    with pytest.raises(AsrError, match="expected KEY=VALUE"):
        load_train_config(None, ["epochs"])
    with pytest.raises(AsrError, match="config file not found"):
        load_train_config(str(tmp_path / "missing.yaml"))
    bad = tmp_path / "bad.yaml"
    bad.write_text("epochs: [1\n")
    with pytest.raises(AsrError, match="not valid YAML"):
        load_train_config(str(bad))


@pytest.mark.parametrize("override, message", [
    ("features.kind=mel", "features.kind: expected one of 'logmel', 'mfcc', got 'mel'"),
    ("features.normalize=speakers", "features.normalize: expected one of"),
    ("features.hop_ms=0", r"features.hop_ms: expected a number > 0, got 0.0"),
    ("features.sample_rate=-8000", "features.sample_rate: expected a number >= 1"),
    ("model.rnn_type=transformer", "model.rnn_type: expected one of 'gru', 'lstm'"),
    ("model.hidden_size=-5", "model.hidden_size: expected a number >= 1"),
    ("model.conv_strides=[2,0]", r"model.conv_strides: expected a number >= 1, got \(2, 0\)"),
    ("model.dropout=1.0", "model.dropout: expected a number >= 0 and < 1"),
    ("data.batch_seconds=0", "data.batch_seconds: expected a number > 0"),
    ("optim.lr=.nan", "optim.lr: expected a number >= 0, got nan"),
    ("optim.lr=-1", "optim.lr: expected a number >= 0, got -1"),
    ("keep_checkpoints=0", "keep_checkpoints: expected a number >= 1, got 0"),
    ("epochs=0", "epochs: expected a number >= 1"),
    ("amp_dtype=float8", "amp_dtype: expected one of 'bfloat16', 'float16'"),
    ("augment.noise_prob=2", "augment.noise_prob: expected a number >= 0 and <= 1"),
    ("units.kind=word", "units.kind: expected one of 'char', 'bpe'"),
])
def test_config_values_are_checked_when_loaded(override, message):
    with pytest.raises(AsrError, match=message):
        load_train_config(None, [override])
