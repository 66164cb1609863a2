import pytest
import torch

from asr.config import ModelConfig
from asr.model import CTCModel, reverse_padded


def test_reverse_padded_keeps_padding_at_the_end():
    x = torch.arange(1, 6).float().view(1, 5, 1).repeat(2, 1, 1)  # two rows of 1..5
    out = reverse_padded(x, torch.tensor([5, 3]))
    assert out[0, :, 0].tolist() == [5, 4, 3, 2, 1]
    assert out[1, :, 0].tolist() == [3, 2, 1, 4, 5]
    torch.testing.assert_close(reverse_padded(out, torch.tensor([5, 3])), x)


@pytest.mark.parametrize("strides, kernel", [((2,), 5), ((2, 2), 5), ((3,), 4), ((1, 2), 3)])
@pytest.mark.parametrize("length", [1, 2, 7, 8, 33, 100])
def test_output_lengths_match_the_layers(strides, kernel, length):
    model = CTCModel(ModelConfig(hidden_size=8, num_layers=1, conv_channels=8, conv_kernel=kernel,
                                 conv_strides=strides), in_dim=5, vocab_size=4).eval()
    out, out_len = model(torch.randn(1, length, 5), torch.tensor([length]))
    assert out.shape[1] == int(out_len[0]) == int(model.output_lengths(torch.tensor([length]))[0])
    assert out.shape[1] >= 1


@pytest.mark.parametrize("rnn_type", ["gru", "lstm"])
def test_same_output_alone_and_in_a_padded_batch(rnn_type):
    torch.manual_seed(0)
    model = CTCModel(ModelConfig(rnn_type=rnn_type, hidden_size=16, num_layers=2, conv_channels=12,
                                 conv_strides=(2,)), in_dim=6, vocab_size=5).eval()
    short, long = torch.randn(37, 6), torch.randn(80, 6)
    alone, n_alone = model(short[None], torch.tensor([37]))
    batch = torch.zeros(2, 80, 6)
    batch[0, :37] = short
    batch[1] = long
    together, n_together = model(batch, torch.tensor([37, 80]))
    assert int(n_together[0]) == int(n_alone[0]) == alone.shape[1]
    torch.testing.assert_close(together[0, : alone.shape[1]], alone[0], atol=1e-5, rtol=1e-5)
    # and garbage in the padding changes nothing either
    batch[0, 37:] = 100.0
    again, _ = model(batch, torch.tensor([37, 80]))
    torch.testing.assert_close(again[0, : alone.shape[1]], alone[0], atol=1e-5, rtol=1e-5)


def test_log_probs_normalized():
    model = CTCModel(ModelConfig(hidden_size=8, num_layers=1, conv_channels=8), in_dim=4, vocab_size=7).eval()
    out, _ = model(torch.randn(3, 20, 4), torch.tensor([20, 15, 9]))
    torch.testing.assert_close(out.exp().sum(-1), torch.ones(3, out.shape[1]))
