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
