"""Search LM weight, word score and beam size on a dev set; keep the settings with the lowest WER.

The model runs once; every setting decodes the same log-probs (spread over the cores).
"""

from __future__ import annotations

import itertools
import random
from dataclasses import replace

from asr.decoder_settings import DecoderSettings, build_decoder
from asr.decoding import decode_batch
from asr.metrics import Summary, score


def candidate_settings(base: DecoderSettings, lm_weights: list[float], word_scores: list[float],
                       beam_sizes: list[int], trials: int | None = None, seed: int = 0) -> list[DecoderSettings]:
    """The full grid, or ``trials`` settings drawn from it at random (seeded)."""
    if not base.lm:
        lm_weights = [base.lm_weight]  # no LM: its weight changes nothing
    grid = [replace(base, decoder="beam", lm_weight=w, word_score=s, beam_size=b)
            for b, w, s in itertools.product(beam_sizes, lm_weights, word_scores)]
    if trials is not None and trials < len(grid):
        grid = random.Random(seed).sample(grid, trials)
    return grid


def tune(outputs, references: list[str], vocab, settings: list[DecoderSettings],
         workers: int | None = None, progress=None) -> list[tuple[DecoderSettings, Summary]]:
    """(settings, dev summary) for every candidate, best first (WER, then CER, then grid order)."""
    lm_cache: dict = {}  # the LM is read once for the whole grid
    results = []
    for i, candidate in enumerate(settings):
        decoder = build_decoder(candidate, vocab, lm_cache=lm_cache)
        hypotheses = [nbest[0].text for nbest in decode_batch(decoder, outputs, workers)]
        summary = score(references, hypotheses)[0]
        results.append((i, candidate, summary))
        if progress:
            progress(candidate, summary)
    results.sort(key=lambda r: (r[2].wer, r[2].cer, r[0]))
    return [(candidate, summary) for _, candidate, summary in results]
