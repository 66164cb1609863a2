import pytest
import torch

from asr.decoding import GreedyDecoder, make_decoder
from asr.errors import AsrError
from asr.text import Vocabulary


def peaky(vocab: Vocabulary, frames: str) -> torch.Tensor:
    """Log-probs (T, V) with one clear winner per frame; '_' is the blank."""
    lp = torch.full((len(frames), len(vocab)), -10.0)
    for t, c in enumerate(frames):
        lp[t, 0 if c == "_" else vocab.symbols.index(c)] = -0.01
    return lp


def test_greedy_collapses_repeats_and_drops_blanks():
    vocab = Vocabulary.from_texts(["abc"])
    decoder = GreedyDecoder(vocab)
    lp = torch.stack([peaky(vocab, "aa_ab__bcc"), peaky(vocab, "_a  b_ c__")])
    assert decoder.decode(lp, torch.tensor([10, 10])) == ["aabbc", "a b c"]


def test_greedy_respects_lengths():
    vocab = Vocabulary.from_texts(["abc"])
    lp = peaky(vocab, "a_b_c")[None]
    assert GreedyDecoder(vocab).decode(lp, torch.tensor([3])) == ["ab"]


def test_unknown_decoder_name():
    with pytest.raises(AsrError, match="unknown decoder 'beem'"):
        make_decoder("beem", Vocabulary.from_texts(["a"]))
