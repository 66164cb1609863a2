"""atomic_write: all of a file or none of it, and a full disk as one line."""

import errno

import pytest
import torch

from asr.errors import AsrError
from asr.files import atomic_write


def test_the_target_appears_only_when_the_block_succeeds(tmp_path):
    target = tmp_path / "sub" / "out.txt"
    with atomic_write(target) as tmp:
        tmp.write_text("new")
        assert not target.exists()
    assert target.read_text() == "new"
    with pytest.raises(ValueError):
        with atomic_write(target) as tmp:
            tmp.write_text("half")
            raise ValueError("killed mid-write")
    assert target.read_text() == "new" and list(target.parent.iterdir()) == [target]


def test_a_full_disk_is_one_line_naming_the_file_and_leaves_nothing(tmp_path):
    target = tmp_path / "best.pt"
    with pytest.raises(AsrError, match=r"best.pt: disk full while writing it"):
        with atomic_write(target):
            with open("/dev/full", "w") as device:  # the kernel's own ENOSPC
                device.write("x")
                device.flush()
    assert list(tmp_path.iterdir()) == []


def test_a_full_disk_during_a_checkpoint_save_is_one_line(tmp_path, monkeypatch):
    from asr.checkpoint import save_checkpoint
    from asr.config import FeatureConfig, ModelConfig
    from asr.features import FeatureExtractor
    from asr.model import CTCModel
    from asr.recognizer import Recognizer
    from asr.text import Vocabulary

    def full(obj, path, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    features = FeatureExtractor(FeatureConfig(n_mels=16))
    recognizer = Recognizer(features, CTCModel(ModelConfig(hidden_size=8, num_layers=1, conv_channels=8), 16, 5),
                            Vocabulary(["<blank>", " ", "a", "b", "c"]))
    monkeypatch.setattr(torch, "save", full)
    with pytest.raises(AsrError, match="model.pt: disk full while writing it"):
        save_checkpoint(tmp_path / "model.pt", recognizer)
    assert list(tmp_path.iterdir()) == []
