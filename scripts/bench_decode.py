"""Beam-search speed and WER: our decoder against pyctcdecode and torchaudio's flashlight decoder.

All decoders get the same log-probs in the same run, one utterance at a time on one
thread: T = 500 frames over 29 symbols (blank, space, a-z, apostrophe).
- synthetic: peaky log-probs of number sentences ("three hundred and four ..."), with
  some characters confused so that greedy makes misspellings an LM can fix;
- real (with --model): the FSDD model's outputs on test-connected utterances placed
  back to back, its 17 symbols embedded in the 29 (absent letters at -30 before
  renormalizing).
With LM: a 3-gram built by asr.lm from other number sentences. Ours and pyctcdecode
run lexicon-free; flashlight needs a lexicon for a word LM, so ours is also timed
with the same lexicon. Prints ms per utterance, WER, and each peer's time / ours.

  python scripts/bench_decode.py --model exp/fsdd/best.pt
  python scripts/bench_decode.py --utterances 50 --beams 10,50,100
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from asr.decoding import BeamSearchDecoder, GreedyDecoder  # noqa: E402
from asr.lm import build_kneser_ney, read_arpa  # noqa: E402
from asr.metrics import score  # noqa: E402
from asr.text import BLANK, Vocabulary, normalize_text  # noqa: E402

ALPHABET = [BLANK, " "] + [chr(c) for c in range(ord("a"), ord("z") + 1)] + ["'"]
T = 500
LM_WEIGHT, WORD_SCORE = 0.5, 1.0


def number_sentences(rng: np.random.Generator, n: int) -> list[str]:
    return [normalize_text(" ".join(str(x) for x in rng.integers(0, 10_000, size=rng.integers(2, 6))))
            for _ in range(n)]


def synthetic(rng: np.random.Generator, n: int) -> tuple[list[np.ndarray], list[str]]:
    """Peaky CTC log-probs whose best path spells number sentences, with some confusions."""
    arrays, texts = [], []
    letters = np.arange(2, len(ALPHABET))
    for _ in range(n):
        labels: list[int] = []
        words: list[str] = []
        while len(labels) < T:
            for word in number_sentences(rng, 1)[0].split():
                frames = []
                for ch in word + " ":
                    frames += [0] * int(rng.integers(0, 4)) + [ALPHABET.index(ch)] * int(rng.integers(1, 3))
                if len(labels) + len(frames) > T:
                    break
                labels += frames
                words.append(word)
            else:
                continue
            break
        labels += [0] * (T - len(labels))
        logits = rng.normal(0.0, 1.0, size=(T, len(ALPHABET)))
        logits[np.arange(T), labels] += rng.uniform(9.0, 15.0, size=T)
        confused = (np.array(labels) > 1) & (rng.random(T) < 0.1)  # a letter that could be another
        others = rng.choice(letters, size=T)
        logits[confused, others[confused]] = logits[confused, np.array(labels)[confused]] + rng.normal(0.0, 1.5,
                                                                                                        size=confused.sum())
        arrays.append(torch.log_softmax(torch.from_numpy(logits), dim=-1).numpy())
        texts.append(" ".join(words))
    return arrays, texts


def real(model: str, manifest: str, n: int) -> tuple[list[np.ndarray], list[str]]:
    from asr.checkpoint import load_checkpoint
    from asr.evaluate import manifest_log_probs

    recognizer = load_checkpoint(model)
    utterances, outputs = manifest_log_probs(recognizer, manifest, num_workers=0)
    columns = [ALPHABET.index(s) if s != BLANK else 0 for s in recognizer.vocab.symbols]
    arrays, texts, pieces, words, frames = [], [], [], [], 0
    for lp, utt in zip(outputs, utterances):
        if frames + len(lp) + 1 > T:
            full = np.full((T, len(ALPHABET)), -30.0)
            gap = np.full((1, len(columns)), -30.0)
            gap[0, 0 if " " not in recognizer.vocab.symbols else recognizer.vocab.symbols.index(" ")] = 0.0
            joined = np.concatenate([x for piece in pieces for x in (piece, gap)][:-1])  # a space between
            full[:len(joined), columns] = joined
            full[len(joined):, 0] = 0.0  # the remainder is silence
            arrays.append(torch.log_softmax(torch.from_numpy(full), dim=-1).numpy())
            texts.append(" ".join(words))
            pieces, words, frames = [], [], 0
            if len(arrays) == n:
                break
        pieces.append(lp)
        words.append(utt.text)
        frames += len(lp) + 1
    return arrays, texts


class Pyctcdecode:
    def __init__(self, arpa: str | None):
        from pyctcdecode import build_ctcdecoder

        labels = [""] + ALPHABET[1:]
        if arpa:
            import kenlm  # noqa: F401  (pyctcdecode needs it for an LM)
        self.decoder = build_ctcdecoder(labels, kenlm_model_path=arpa, alpha=LM_WEIGHT, beta=WORD_SCORE)  # ln

    def __call__(self, lp: np.ndarray, beam: int) -> str:
        return self.decoder.decode(lp.astype(np.float32), beam_width=beam)


class Flashlight:
    def __init__(self, arpa: str | None, lexicon: str | None):
        from torchaudio.models.decoder import ctc_decoder

        self.ctc_decoder = ctc_decoder
        self.tokens = ["-", "|"] + ALPHABET[2:]
        self.arpa, self.lexicon = arpa, lexicon
        self.cache = {}

    def __call__(self, lp: np.ndarray, beam: int) -> str:
        if beam not in self.cache:
            self.cache[beam] = self.ctc_decoder(lexicon=self.lexicon, tokens=self.tokens, lm=self.arpa, beam_size=beam,
                                                lm_weight=LM_WEIGHT * np.log(10), word_score=WORD_SCORE,
                                                blank_token="-",
                                                sil_token="|", unk_word="<unk>")
        result = self.cache[beam](torch.from_numpy(lp.astype(np.float32)).unsqueeze(0))[0][0]
        return " ".join(w for w in result.words if w) if self.lexicon else \
            "".join(self.tokens[i] for i in result.tokens.tolist()).replace("|", " ").replace("-", "").strip()


def run(name: str, decode, arrays, texts, beam) -> tuple[float, float]:
    start = time.perf_counter()
    hyps = [" ".join(decode(a, beam).split()) for a in arrays]
    ms = (time.perf_counter() - start) * 1000 / len(arrays)
    return ms, score(texts, hyps)[0].wer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--utterances", type=int, default=50)
    parser.add_argument("--beams", default="10,50,100")
    parser.add_argument("--model", help="checkpoint for real log-probs (e.g. exp/fsdd/best.pt)")
    parser.add_argument("--manifest", help="manifest for real log-probs (default: test-connected next to the model)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    beams = [int(b) for b in args.beams.split(",")]
    rng = np.random.default_rng(0)
    vocab = Vocabulary(ALPHABET)

    sets = {"synthetic": synthetic(rng, args.utterances)}
    if args.model:
        manifest = args.manifest or str(Path(args.model).parent / "data" / "test-connected.jsonl")
        sets["real (FSDD model)"] = real(args.model, manifest, args.utterances)

    tmp = Path(tempfile.mkdtemp())
    lm_text = number_sentences(np.random.default_rng(1), 20_000)
    if args.model:
        from asr.lm import read_sentences
        lm_text += [" ".join(w) for w in read_sentences([Path(manifest).with_name("train.jsonl")])]
    lm = build_kneser_ney((s.split() for s in lm_text), order=3)
    arpa = tmp / "lm.arpa"
    lm.write_arpa(arpa)
    lm = read_arpa(arpa)
    lexicon = tmp / "lexicon.txt"
    words = sorted(lm.words - {"<unk>", "</s>"})
    lexicon.write_text("".join(f"{w}\t{' '.join(w)}\n" for w in words))

    peers = {}
    try:
        peers["pyctcdecode"] = (Pyctcdecode(None), None)
        try:
            peers["pyctcdecode"] = (peers["pyctcdecode"][0], Pyctcdecode(str(arpa)))
        except ImportError:
            print("pyctcdecode with LM skipped: the kenlm module is not installed (pip install kenlm)")
    except ImportError:
        print("pyctcdecode skipped: not installed (pip install --no-deps pyctcdecode; pip install pygtrie)")
    try:
        peers["flashlight"] = (Flashlight(None, None), Flashlight(str(arpa), str(lexicon)))
    except ImportError:
        print("flashlight skipped: flashlight-text is not installed (pip install flashlight-text)")

    ours = {False: lambda beam: BeamSearchDecoder(vocab, beam_size=beam),
            True: lambda beam: BeamSearchDecoder(vocab, beam_size=beam, lm=lm, lm_weight=LM_WEIGHT,
                                                 word_score=WORD_SCORE)}
    ours_lexicon = lambda beam: BeamSearchDecoder(vocab, beam_size=beam, lm=lm, lm_weight=LM_WEIGHT,  # noqa: E731
                                                  word_score=WORD_SCORE, lexicon=words)


    print(f"{args.utterances} utterances per set, T={T}, {len(ALPHABET)} symbols, one thread, "
          f"{os.cpu_count()} cores")
    print(f"{'set':18} {'LM':4} {'beam':>4}  {'decoder':24} {'ms/utt':>8} {'WER %':>6}  {'peer/ours':>9}")
    for set_name, (arrays, texts) in sets.items():
        greedy = GreedyDecoder(vocab)
        ms, wer = run("greedy", lambda a, b: greedy.search(a)[0].text, arrays, texts, 1)
        print(f"{set_name:18} {'-':4} {'-':>4}  {'greedy':24} {ms:8.2f} {wer:6.2f}")
        for with_lm in (False, True):
            for beam in beams:
                decoder = ours[with_lm](beam)
                ms_ours, wer = run("ours", lambda a, b: decoder.search(a)[0].text, arrays, texts, beam)
                row = f"{set_name:18} {'yes' if with_lm else 'no':4} {beam:4d}"
                print(f"{row}  {'ours':24} {ms_ours:8.2f} {wer:6.2f}")
                if with_lm:
                    lex_decoder = ours_lexicon(beam)
                    ms_lex, wer = run("ours+lex", lambda a, b: lex_decoder.search(a)[0].text, arrays, texts, beam)
                    print(f"{row}  {'ours, own lexicon search':24} {ms_lex:8.2f} {wer:6.2f}")
                for peer, (plain, with_lm_decoder) in peers.items():
                    decode = with_lm_decoder if with_lm else plain
                    if decode is None:
                        continue
                    label = peer + (", lexicon" if with_lm and peer == "flashlight" else "")
                    ms, wer = run(peer, decode, arrays, texts, beam)
                    reference = ms_lex if with_lm and peer == "flashlight" else ms_ours
                    print(f"{row}  {label:24} {ms:8.2f} {wer:6.2f}  {ms / reference:8.2f}x")


if __name__ == "__main__":
    main()
