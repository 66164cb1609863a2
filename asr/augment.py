"""Training-time augmentation of features. Never applied to evaluation data."""

from __future__ import annotations

import torch

from asr.config import SpecAugmentConfig


def spec_augment(x: torch.Tensor, lengths: torch.Tensor, config: SpecAugmentConfig,
                 generator: torch.Generator | None = None) -> torch.Tensor:
    """SpecAugment frequency and time masks on features (B, T, F), set to 0 (the
    normalized mean). Time-mask widths scale with each utterance's own length, and
    masks only fall on valid frames. Returns a new tensor."""
    B, T, F = x.shape
    device = x.device
    keep = torch.ones(B, T, F, dtype=torch.bool, device=device)
    rand = lambda *shape: torch.rand(*shape, generator=generator).to(device)  # noqa: E731
    f_axis = torch.arange(F, device=device)
    for _ in range(config.freq_masks):
        width = (rand(B) * (config.freq_width + 1)).long().clamp(max=F)  # (B,)
        start = (rand(B) * (F - width + 1)).long()
        band = (f_axis >= start[:, None]) & (f_axis < (start + width)[:, None])  # (B, F)
        keep &= ~band[:, None, :]
    t_axis = torch.arange(T, device=device)
    for _ in range(config.time_masks):
        max_width = (lengths.float() * config.time_width).long()
        width = (rand(B) * (max_width + 1)).long()
        start = (rand(B) * (lengths - width + 1).clamp(min=1)).long()
        span = (t_axis >= start[:, None]) & (t_axis < (start + width)[:, None])  # (B, T)
        keep &= ~span[:, :, None]
    return x * keep
