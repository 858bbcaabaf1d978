"""Answer and retrieval metrics for ``bench/compare.py``.

``exact_match`` and ``token_f1`` are SQuAD's (lower case, no punctuation, no articles, single
spaces). A small chat model answers in sentences ("The code is R-18592."), so strict EM is near
zero for every system; ``answer_match`` — the normalised gold answer appears as whole words in the
normalised reply (RULER's string match) — is the headline accuracy, with EM and F1 beside it.
"""
from __future__ import annotations

import math
import re
import string
import unicodedata
from collections import Counter
from typing import Iterable, Sequence

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = str.maketrans({c: " " for c in string.punctuation})


def normalize(text: str) -> str:
    """Lower case, accents folded ("São" = "Sao"), punctuation to spaces, articles dropped, whitespace collapsed."""
    text = "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))
    text = text.lower().translate(_PUNCT)
    return " ".join(_ARTICLES.sub(" ", text).split())


def exact_match(prediction: str, gold: str) -> float:
    return float(normalize(prediction) == normalize(gold))


def answer_match(prediction: str, gold: str) -> float:
    """1.0 when the gold answer's normalised words occur contiguously in the prediction's."""
    p, g = normalize(prediction).split(), normalize(gold).split()
    if not g:
        return float(not p)
    return float(any(p[i:i + len(g)] == g for i in range(len(p) - len(g) + 1)))


def token_f1(prediction: str, gold: str) -> float:
    """Harmonic mean of token precision and recall (bag of normalised words)."""
    p, g = normalize(prediction).split(), normalize(gold).split()
    if not p or not g:
        return float(p == g)
    common = sum((Counter(p) & Counter(g)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(p), common / len(g)
    return 2 * precision * recall / (precision + recall)


def recall_at_k(retrieved: Sequence[int], evidence: Iterable[int], k: int) -> float:
    """1.0 when any evidence chunk is among the first ``k`` retrieved positions."""
    return float(bool(set(retrieved[:k]) & set(evidence)))


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolation percentile (numpy's default), ``q`` in [0, 100]; NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    lo, hi = math.floor(rank), math.ceil(rank)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (rank - lo)
