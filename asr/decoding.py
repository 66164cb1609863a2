"""CTC decoders behind one small interface, so callers swap them by name.

A decoder maps log-probabilities (B, T, V) and output lengths (B,) to one
transcript per utterance.
"""

from __future__ import annotations

from typing import Protocol

import torch

from asr.errors import AsrError
from asr.text import Vocabulary


class Decoder(Protocol):
    def decode(self, log_probs: torch.Tensor, lengths: torch.Tensor) -> list[str]: ...


class GreedyDecoder:
    """Best label per frame, repeats collapsed, blanks dropped (batched on the tensor's device)."""

    def __init__(self, vocab: Vocabulary):
        self.vocab = vocab

    def decode(self, log_probs: torch.Tensor, lengths: torch.Tensor) -> list[str]:
        best = log_probs.argmax(dim=-1)  # (B, T)
        keep = torch.ones_like(best, dtype=torch.bool)
        keep[:, 1:] = best[:, 1:] != best[:, :-1]  # first frame of each run
        keep &= best != 0  # not blank
        keep &= torch.arange(best.shape[1], device=best.device) < lengths.unsqueeze(1)
        best, keep = best.cpu().tolist(), keep.cpu().tolist()
        return [" ".join(self.vocab.decode(i for i, k in zip(row, mask) if k).split())
                for row, mask in zip(best, keep)]


DECODERS = {"greedy": GreedyDecoder}


def make_decoder(name: str, vocab: Vocabulary) -> Decoder:
    if name not in DECODERS:
        raise AsrError(f"unknown decoder {name!r} (choose from: {', '.join(DECODERS)})")
    return DECODERS[name](vocab)
