"""An offline multi-voice English sentence corpus, synthesized from public-domain text.

Sentences come from the King James Bible (Debian's ``bible-kjv``: verses cut at
sentence and clause punctuation, 4-14 words kept) or from ``--text FILE`` (one
sentence per line). They are spoken by the offline engines installed by
``install_voices.sh``: espeak-ng with its voice variants, espeak-ng driving the
MBROLA voices us1/us2/us3/en1 and 16 MBROLA voices of other languages reading English,
flite (kal, kal16, awb, rms, slt), SVOX pico (en-US, en-GB), RHVoice (slt, clb, bdl,
alan, evgeniy-eng, lyubov) and Festival (kal, ked, rab, don diphones, slt HTS); speaking
rate (and, but for flite and Festival, pitch) vary per training utterance (seeded).

Training voices are about 230 espeak-ng accent x variant pairs, MBROLA us1/us2 and the
16 accented MBROLA voices, flite kal/kal16/slt/awb, pico en-US, the six RHVoice and the
five Festival voices; dev has espeak-ng's West Midlands accent with a variant of its own
and MBROLA en1; test has espeak-ng en-us with variant m3 (never used in training), MBROLA
us3, flite rms and pico en-GB. The split holds out whole voices AND whole sentences: dev
and test sentences never occur in training (nor in the LM text), and the test voices are
never heard in training or dev, so ``test-heldout`` measures generalization to unseen
speakers and text.
``test-seen`` has the same held-out sentences read by training voices.

Writes into OUT_DIR: train.jsonl, dev.jsonl, test-heldout.jsonl, test-seen.jsonl,
lm.txt (all training-side sentences, for the LM) and the audio under wav/.
Preparation resumes: every utterance's file is written atomically under a name
fixed by the seed, and one that exists is not synthesized again. ``--hours`` changes only
the training split: a bigger corpus extends a smaller one's training utterances in the
same directory, and dev and test stay the same utterances.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import shutil
import subprocess
import sys
from pathlib import Path

from asr.corpus import write_manifests
from asr.errors import AsrError
from asr.synthesis import (Utterance, draw_voice, espeak_voices, flite_voices, pico_voices, synthesize_all,
                           voice_families)
from asr.text import normalize_text

SAMPLE_RATE = 16000  # Hz, of the written corpus
MIN_WORDS, MAX_WORDS = 4, 14
SECONDS_PER_WORD = 0.3  # measured over the voices at rate 1: turns --hours into a number of utterances


# espeak-ng speaks each English accent through many voice variants (formant sets); training
# gets most of them, while dev and test get an accent and variants of their own.
TRAIN_ACCENTS = ("en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-gb-x-gbclan", "en-029", "en-us-nyc")
TRAIN_VARIANTS = ("", "f1", "f2", "f4", "f5", "m1", "m2", "m6", "m7", "m8", "klatt", "klatt2", "klatt4", "Alex",
                  "Annie", "adam", "aunty", "belinda", "benjamin", "david", "edward", "grandma", "grandpa", "john",
                  "linda", "max", "paul", "quincy", "robert", "shelby", "steph", "travis", "victor")
FAMILIES = voice_families(TRAIN_ACCENTS, TRAIN_VARIANTS)
TRAIN_GROUPS = {  # engine family -> voices; a training utterance picks a family by FAMILY_SHARE, then a voice
    "espeak": FAMILIES["espeak"],
    "mbrola": espeak_voices("mb-us1", "mb-us2"),
    "mbrola-accented": FAMILIES["mbrola-accented"],  # other languages' diphone sets reading English
    "flite": flite_voices("kal", "kal16", "slt", "awb"),
    "pico": pico_voices("en-US"),
    "rhvoice": FAMILIES["rhvoice"],  # all of them: no RHVoice or Festival voice is held out
    "festival": FAMILIES["festival"],
}
DEV_VOICES = espeak_voices("en-gb-x-gbcwmd+m4", "mb-en1")
TEST_VOICES = espeak_voices("en-us+m3", "mb-us3") + flite_voices("rms") + pico_voices("en-GB")
ALL_VOICES = {v.name: v for v in [v for g in TRAIN_GROUPS.values() for v in g] + DEV_VOICES + TEST_VOICES}


def kjv_sentences() -> list[str]:
    """The KJV's verses cut into sentences, through Debian's ``bible`` program."""
    if shutil.which("bible") is None:
        raise AsrError("the 'bible' program is missing: run recipes/synth/install_voices.sh, or pass --text FILE")
    try:
        out = subprocess.run(["bible", "-f", "Gen1:1-Rev22:21"], capture_output=True, text=True, check=False,
                             timeout=600)
    except subprocess.TimeoutExpired:
        raise AsrError("bible: no KJV text after 600 s (killed); pass --text FILE instead") from None
    if out.returncode != 0 or not out.stdout.strip():
        raise AsrError(f"bible: cannot read the KJV text ({out.stderr.strip() or 'no output'})")
    verses = [line.split(" ", 1)[1] for line in out.stdout.splitlines() if " " in line]
    return sentences_from(verses)


def sentences_from(lines: list[str]) -> list[str]:
    """Cut lines at sentence/clause punctuation; keep normalized pieces of 4-14 plain words, once each."""
    seen, kept = set(), []
    for line in lines:
        for piece in re.split(r"[.;:?!]", line):
            text = normalize_text(piece)
            if MIN_WORDS <= len(text.split()) <= MAX_WORDS and re.fullmatch(r"[a-z' ]+", text) and text not in seen:
                seen.add(text)
                kept.append(text)
    return kept


def plan(sentences: list[str], hours: float, n_dev: int, n_test: int, seed: int) -> tuple[dict, list[str]]:
    """Which voice says which sentence, how fast and how high: {split: [(name, voice, text, rate, pitch)]},
    and the training-side sentences (the LM's text)."""
    rng = random.Random(seed)
    order = sorted(sentences)
    rng.shuffle(order)
    if len(order) < n_dev + n_test + 100:
        raise AsrError(f"only {len(order)} usable sentences; need at least {n_dev + n_test + 100}")
    test, dev, train = order[:n_test], order[n_test:n_test + n_dev], order[n_test + n_dev:]

    def utterances(split, texts, voices=None, vary=True, rng=rng):
        """Held-out voices take turns; training voices are drawn by family share, then uniformly."""
        items = []
        for n, text in enumerate(texts):
            voice = voices[n % len(voices)] if voices else draw_voice(rng, TRAIN_GROUPS)
            rate, pitch = (rng.uniform(0.8, 1.25), rng.randint(30, 70)) if vary else (1.0, 50)
            items.append((f"{split}-{n:06d}-{voice.name}", voice, text, round(rate, 3), pitch))
        return items

    mean_words = sum(len(t.split()) for t in train) / len(train)
    n_train = int(hours * 3600 / (SECONDS_PER_WORD * mean_words))
    train_texts = [train[n % len(train)] for n in range(n_train)]
    return {
        "train": utterances("train", train_texts),
        # dev and test-seen draw from generators of their own, so --hours (the number of training draws) leaves them be
        "dev": utterances("dev", dev, DEV_VOICES, rng=random.Random(f"{seed}-dev")),
        "test-heldout": utterances("test-heldout", test, TEST_VOICES, vary=False),
        "test-seen": utterances("test-seen", test, vary=False, rng=random.Random(f"{seed}-test-seen")),
    }, train


def prepare(out_dir: Path, sentences: list[str], hours: float, n_dev: int, n_test: int, seed: int,
            workers: int = os.cpu_count() or 1) -> None:
    splits, lm_sentences = plan(sentences, hours, n_dev, n_test, seed)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "lm.txt").write_text("\n".join(lm_sentences) + "\n")
    for split, items in splits.items():
        utterances = [Utterance(Path("wav") / split / f"{name}.wav", voice, text, rate, pitch)
                      for name, voice, text, rate, pitch in items]
        entries = synthesize_all(utterances, out_dir, SAMPLE_RATE, workers)
        write_manifests(out_dir, {split: entries})  # the speakers it counts are voices


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out-dir", required=True, help="where manifests and audio go")
    parser.add_argument("--text", help="sentences, one per line (default: the KJV through Debian's bible-kjv)")
    parser.add_argument("--hours", type=float, default=3.0, help="hours of training audio (approximately)")
    parser.add_argument("--dev-sentences", type=int, default=200)
    parser.add_argument("--test-sentences", type=int, default=300)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="engines run in parallel")
    args = parser.parse_args(argv)
    try:
        if args.text:
            if not Path(args.text).is_file():
                raise AsrError(f"{args.text}: text file not found")
            sentences = sentences_from(Path(args.text).read_text(encoding="utf-8").splitlines())
        else:
            sentences = kjv_sentences()
        prepare(Path(args.out_dir), sentences, args.hours, args.dev_sentences, args.test_sentences, args.seed,
                args.workers)
    except AsrError as e:
        print(f"prepare.py: error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
