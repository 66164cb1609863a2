"""Word n-gram language models: a Kneser-Ney builder, ARPA files, and the queries a decoder makes.

The builder estimates an interpolated, modified Kneser-Ney model (Chen & Goodman,
the estimate KenLM's ``lmplz`` makes) and writes standard ARPA files, which every
n-gram toolkit (KenLM, SRILM, flashlight, pyctcdecode) reads. Our own code instead
of ``lmplz``: it installs with the package (no Boost, no compiler) and it builds
models from tiny texts, such as ten digit words, where ``lmplz`` refuses to
estimate discounts.

Queries take and return natural-log probabilities. A state is the tuple of the
last ``order - 1`` words. KenLM binary files are read through the ``kenlm``
Python module when it is installed.
"""

from __future__ import annotations

import gzip
import math
import os
from collections import Counter, defaultdict
from pathlib import Path
from typing import Iterable

from asr.errors import AsrError
from asr.files import atomic_write

BOS, EOS, UNK = "<s>", "</s>", "<unk>"
LN10 = math.log(10.0)
NO_PROB = -99.0  # log10 probability ARPA files give <s>, which is never predicted
FALLBACK_DISCOUNTS = (0.5, 1.0, 1.5)  # for orders whose count-of-counts cannot estimate them


class NgramLM:
    """Back-off n-gram model held in dictionaries (fine up to a few million n-grams)."""

    def __init__(self, order: int, log10_probs: dict[tuple[str, ...], float],
                 log10_backoffs: dict[tuple[str, ...], float]):
        self.order = order
        self.log10_probs = log10_probs
        self.log10_backoffs = log10_backoffs
        self.words = {g[0] for g in log10_probs if len(g) == 1} - {BOS}
        self._cache: dict[tuple, float] = {}

    # -- queries -------------------------------------------------------------------------
    def begin(self) -> tuple[str, ...]:
        return (BOS,)

    def log10_prob(self, context: tuple[str, ...], word: str) -> float:
        """log10 p(word | context), backing off through shorter contexts."""
        if word not in self.words:
            word = UNK if UNK in self.words else word
        context = context[len(context) - self.order + 1:] if self.order > 1 else ()
        total = 0.0
        while True:
            p = self.log10_probs.get(context + (word,))
            if p is not None:
                return total + p
            if not context:
                return total + NO_PROB  # a word the model has never seen and no <unk> entry
            total += self.log10_backoffs.get(context, 0.0)
            context = context[1:]

    def score(self, state: tuple[str, ...], word: str) -> tuple[float, tuple[str, ...]]:
        """(ln p(word | state), next state)."""
        key = (state, word)
        logp = self._cache.get(key)
        if logp is None:
            logp = self._cache[key] = self.log10_prob(state, word) * LN10
        return logp, (state + (word,))[1 - self.order:] if self.order > 1 else ()

    def finish(self, state: tuple[str, ...]) -> float:
        """ln p(</s> | state)."""
        return self.score(state, EOS)[0]

    def sentence_log10_prob(self, words: list[str]) -> float:
        """log10 p(<s> words </s>), straight from the tables (no cache)."""
        state, total = (BOS,), 0.0
        for word in list(words) + [EOS]:
            total += self.log10_prob(state, word)
            state = (state + (word,))[1 - self.order:] if self.order > 1 else ()
        return total

    # -- files ---------------------------------------------------------------------------
    def write_arpa(self, path: str | os.PathLike) -> None:
        """Standard ARPA text, written atomically."""
        by_order: dict[int, list[tuple[str, ...]]] = defaultdict(list)
        for gram in self.log10_probs:
            by_order[len(gram)].append(gram)
        with atomic_write(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
            f.write("\\data\\\n")
            for n in range(1, self.order + 1):
                f.write(f"ngram {n}={len(by_order[n])}\n")
            for n in range(1, self.order + 1):
                f.write(f"\n\\{n}-grams:\n")
                for gram in sorted(by_order[n]):
                    line = f"{self.log10_probs[gram]:.7g}\t{' '.join(gram)}"
                    if n < self.order and gram in self.log10_backoffs:
                        line += f"\t{self.log10_backoffs[gram]:.7g}"
                    f.write(line + "\n")
            f.write("\n\\end\\\n")


def read_arpa(path: str | os.PathLike) -> NgramLM:
    """Read an ARPA file (plain or .gz); malformed files give one line naming the line."""
    path = Path(path)
    if not path.is_file():
        raise AsrError(f"{path}: language model not found")
    opener = gzip.open if path.suffix == ".gz" else open
    probs: dict[tuple[str, ...], float] = {}
    backoffs: dict[tuple[str, ...], float] = {}
    declared: dict[int, int] = {}
    section = None  # "data", an order n, or "end"
    try:
        with opener(path, "rt", encoding="utf-8") as f:
            for number, line in enumerate(f, 1):
                line = line.strip()
                if not line:
                    continue
                where = f"{path}:{number}"
                if line == "\\data\\":
                    section = "data"
                elif line == "\\end\\":
                    section = "end"
                    break
                elif line.startswith("\\") and line.endswith("-grams:"):
                    section = _int(line[1:-7], where, line)
                elif section == "data":
                    if not line.startswith("ngram ") or "=" not in line:
                        raise AsrError(f"{where}: malformed ARPA header line {line!r}")
                    n, count = line[6:].split("=", 1)
                    declared[_int(n, where, line)] = _int(count, where, line)
                elif isinstance(section, int):
                    fields = line.split()
                    n = section
                    if len(fields) not in (n + 1, n + 2):
                        raise AsrError(f"{where}: expected a log10 probability, {n} words and an optional "
                                       f"back-off, got {line!r}")
                    gram = tuple(fields[1:n + 1])
                    probs[gram] = _float(fields[0], where, line)
                    if len(fields) == n + 2:
                        backoffs[gram] = _float(fields[-1], where, line)
                elif section is None:
                    continue  # text before \data\ is allowed (comments)
                else:
                    raise AsrError(f"{where}: unexpected line {line!r}")
    except UnicodeDecodeError:
        raise AsrError(f"{path}: not an ARPA language model (not UTF-8 text; a KenLM binary file "
                       "needs the kenlm Python module)") from None
    except (OSError, EOFError) as e:
        raise AsrError(f"{path}: cannot read language model ({e})") from None
    if section != "end" or not declared:
        raise AsrError(f"{path}: not a complete ARPA language model (no \\data\\ header or no \\end\\)")
    found = Counter(len(g) for g in probs)
    for n, count in declared.items():
        if found[n] != count:
            raise AsrError(f"{path}: header declares {count} {n}-grams but the file has {found[n]}")
    return NgramLM(max(declared), probs, backoffs)


def _int(text: str, where: str, line: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise AsrError(f"{where}: malformed ARPA line {line!r}") from None


def _float(text: str, where: str, line: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise AsrError(f"{where}: malformed number in ARPA line {line!r}") from None


class KenLMModel:
    """A KenLM binary (or ARPA) file through the ``kenlm`` module; same queries as NgramLM."""

    def __init__(self, path: str | os.PathLike):
        try:
            import kenlm
        except ImportError:
            raise AsrError(f"{path}: is a KenLM binary file; reading it needs the kenlm Python module "
                           "(pip install kenlm), or give the ARPA file instead") from None
        self._kenlm = kenlm
        try:
            self.model = kenlm.Model(str(path))
        except (OSError, RuntimeError) as e:
            raise AsrError(f"{path}: damaged KenLM file ({str(e).strip().splitlines()[0][:160]})") from None
        self.order = self.model.order
        self.words = None  # KenLM does not list its vocabulary

    def begin(self):
        state = self._kenlm.State()
        self.model.BeginSentenceWrite(state)
        return state

    def score(self, state, word: str):
        out = self._kenlm.State()
        return self.model.BaseScore(state, word, out) * LN10, out

    def finish(self, state) -> float:
        return self.score(state, EOS)[0]


KENLM_MAGIC = b"mmap lm http://kheafield.com/code"


def load_lm(path: str | os.PathLike):
    """An ARPA file (plain or gzip) or a KenLM binary, by content."""
    path = Path(path)
    if not path.is_file():
        raise AsrError(f"{path}: language model not found")
    with open(path, "rb") as f:
        head = f.read(len(KENLM_MAGIC))
    if head == KENLM_MAGIC:
        return KenLMModel(path)
    return read_arpa(path)


# -- building ------------------------------------------------------------------------------

def build_kneser_ney(sentences: Iterable[list[str]], order: int = 3) -> NgramLM:
    """Interpolated modified Kneser-Ney estimate from tokenized sentences.

    Highest order: raw counts. Lower orders: continuation counts (the number of
    distinct words seen before the n-gram), except n-grams starting with <s>, which
    keep raw counts. Three discounts per order from the counts of counts; orders
    where those cannot be estimated (tiny texts) use 0.5 / 1.0 / 1.5.
    p(w|h) = (a(hw) - D(a(hw))) / a(h.) + gamma(h) p(w|h'), down to a uniform
    distribution over the vocabulary (which includes <unk> and </s>, not <s>).
    """
    if order < 1:
        raise AsrError(f"n-gram order must be at least 1, got {order}")
    raw: list[Counter] = [Counter() for _ in range(order + 1)]
    for words in sentences:
        padded = [BOS] + list(words) + [EOS]
        for n in range(1, order + 1):
            for i in range(len(padded) - n + 1):
                raw[n][tuple(padded[i:i + n])] += 1
    raw[1].pop((BOS,), None)
    if not raw[1]:
        raise AsrError("no text to build a language model from")

    adjusted: list[Counter] = [Counter() for _ in range(order + 1)]
    adjusted[order] = raw[order]
    for n in range(order - 1, 0, -1):
        continuation = Counter(gram[1:] for gram in raw[n + 1])
        for gram, count in raw[n].items():
            adjusted[n][gram] = count if gram[0] == BOS else continuation[gram]
    adjusted[1][(UNK,)] += 0  # in the vocabulary with count 0: only the uniform share

    log10_probs: dict[tuple[str, ...], float] = {}
    log10_backoffs: dict[tuple[str, ...], float] = {}
    probs: dict[tuple[str, ...], float] = {}
    vocab_size = len(adjusted[1])
    for n in range(1, order + 1):
        d1, d2, d3 = _discounts(adjusted[n])
        totals: Counter = Counter()
        kinds: dict[tuple[str, ...], list[int]] = defaultdict(lambda: [0, 0, 0])
        for gram, count in adjusted[n].items():
            totals[gram[:-1]] += count
            if count > 0:
                kinds[gram[:-1]][min(count, 3) - 1] += 1
        gammas = {h: (d1 * k[0] + d2 * k[1] + d3 * k[2]) / totals[h] for h, k in kinds.items()}
        for gram, count in adjusted[n].items():
            h = gram[:-1]
            discounted = max(count - (0.0, d1, d2, d3)[min(count, 3)], 0.0) / totals[h] if totals[h] else 0.0
            lower = probs[gram[1:]] if n > 1 else 1.0 / vocab_size
            probs[gram] = discounted + gammas.get(h, 1.0 if n > 1 else 0.0) * lower
            log10_probs[gram] = math.log10(probs[gram])
        for h, gamma in gammas.items():
            if h:
                log10_backoffs[h] = math.log10(gamma)
    log10_probs[(BOS,)] = NO_PROB
    for gram in list(log10_probs):  # every context needs a back-off entry (0 = no discounting there)
        if len(gram) < order and gram not in log10_backoffs and gram[-1] != EOS:
            log10_backoffs[gram] = 0.0
    return NgramLM(order, log10_probs, log10_backoffs)


def _discounts(adjusted: Counter) -> tuple[float, float, float]:
    t = Counter(min(c, 4) for c in adjusted.values() if c > 0)
    t1, t2, t3, t4 = (t[k] for k in (1, 2, 3, 4))
    if min(t1, t2, t3, t4) == 0:
        return FALLBACK_DISCOUNTS
    y = t1 / (t1 + 2 * t2)
    d = (1 - 2 * y * t2 / t1, 2 - 3 * y * t3 / t2, 3 - 4 * y * t4 / t3)
    if not all(0 < dk < k for dk, k in zip(d, (1, 2, 3))):
        return FALLBACK_DISCOUNTS
    return d


def read_sentences(paths: Iterable[str | os.PathLike]) -> Iterable[list[str]]:
    """Normalized word lists from text files (one sentence per line) or JSON Lines manifests."""
    import json

    from asr.text import normalize_text

    for path in paths:
        path = Path(path)
        if not path.is_file():
            raise AsrError(f"{path}: text file not found")
        manifest = path.suffix in (".jsonl", ".json")
        with open(path, encoding="utf-8", errors="strict") as f:
            try:
                for number, line in enumerate(f, 1):
                    if not line.strip():
                        continue
                    if manifest:
                        try:
                            line = json.loads(line)["text"]
                        except (ValueError, KeyError, TypeError):
                            raise AsrError(f"{path}:{number}: not a manifest line with a \"text\" field") from None
                    words = normalize_text(line).split()
                    if words:
                        yield words
            except UnicodeDecodeError:
                raise AsrError(f"{path}: not UTF-8 text") from None
