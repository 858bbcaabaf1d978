"""Token counting and haystack text: what every generator uses to hit a length in tokens.

Lengths are measured by a ``count_tokens(text) -> int``. Pass the model's tokenizer for exact
lengths (any object with ``.encode``, e.g. ``hsa_memory.model.tokenizer.load_tokenizer()``); the
default :func:`estimate_tokens` is a regex estimate calibrated on SmolLM2's tokenizer (within
about 5% on the corpora, single digits and ChatML specials counted like the tokenizer does).
"""
from __future__ import annotations

import functools
import math
import random
import re
from typing import Any, Callable, Sequence

from .fallback import FALLBACK_PARAGRAPHS
from .records import Example

__all__ = [
    "Filler",
    "fit_length",
    "make_source",
    "TokenCounter",
    "estimate_tokens",
    "resolve_counter",
    "TextSource",
    "split_sentences",
    "trim_to_tokens",
]

TokenCounter = Callable[[str], int]

_PIECES = re.compile(r"<\|im_start\|>|<\|im_end\|>|\d|[^\W\d_]+|\n|[^\w\s]|_")
_SPACE_DIGIT = re.compile(r"(?<= )\d")
# calibrated on SmolLM2's BPE: common words are one token, longer ones gain one per 4 letters
_LONG_WORD, _LETTERS_PER_EXTRA = 8, 4


def estimate_tokens(text: str) -> int:
    """A cheap estimate of SmolLM2 tokens: words, single digits, punctuation and newlines."""
    n = 0
    for match in _PIECES.finditer(text):
        piece = match.group()
        if len(piece) > 1 and piece[0].isalpha():
            if piece.isupper():
                n += math.ceil(len(piece) / 2)
            elif len(piece) > _LONG_WORD:
                n += 1 + math.ceil((len(piece) - _LONG_WORD) / _LETTERS_PER_EXTRA)
            else:
                n += 1
        else:
            n += 1
    # the tokenizer keeps the space before a digit as its own token
    return n + len(_SPACE_DIGIT.findall(text))


def resolve_counter(counter: TokenCounter | Any | None = None) -> TokenCounter:
    """``None`` → :func:`estimate_tokens`; a callable → itself; a tokenizer (``.encode``) → its length."""
    if counter is None:
        return estimate_tokens
    encode = getattr(counter, "encode", None)
    if encode is not None:
        def count(text: str) -> int:
            encoded = encode(text)
            ids = getattr(encoded, "ids", encoded)
            return len(ids)
        return count
    if callable(counter):
        return counter
    raise TypeError(
        f"count_tokens must be a callable or a tokenizer with .encode, got {type(counter).__name__}"
    )


_SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]*\s+(?=[\"'(\[]?[A-Z0-9])")


def split_sentences(text: str) -> list[str]:
    """Split at sentence ends (``.``, ``!``, ``?`` then a capital); the pieces rejoin with spaces."""
    cuts = [m.end() for m in _SENTENCE_END.finditer(text)]
    starts = [0] + cuts
    ends = cuts + [len(text)]
    return [text[a:b].strip() for a, b in zip(starts, ends) if text[a:b].strip()]


def trim_to_tokens(text: str, n_tokens: int, count: TokenCounter) -> str:
    """The longest word-boundary prefix of ``text`` with at most ``n_tokens`` tokens."""
    if n_tokens <= 0:
        return ""
    if count(text) <= n_tokens:
        return text
    words = text.split(" ")
    lo, hi = 0, len(words)
    # binary search on the number of words kept
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if count(" ".join(words[:mid])) <= n_tokens:
            lo = mid
        else:
            hi = mid - 1
    return " ".join(words[:lo])


class TextSource:
    """Paragraphs to cut haystacks from, with their token counts cached.

    ``take`` returns consecutive paragraphs from a random start (wrapping around), so filler
    reads as continuous text; the last one is trimmed to land on the budget.
    """

    def __init__(self, paragraphs: Sequence[str], count_tokens: TokenCounter | Any | None = None, name: str = ""):
        paragraphs = [p for p in paragraphs if p and p.strip()]
        if not paragraphs:
            raise ValueError(f"text source {name!r} has no paragraphs")
        self.paragraphs = paragraphs
        # generators count the same paragraphs and sentences again while fitting a length
        self.count = functools.lru_cache(maxsize=1 << 16)(resolve_counter(count_tokens))
        self.name = name
        self._counts: list[int | None] = [None] * len(paragraphs)

    def __len__(self) -> int:
        return len(self.paragraphs)

    def tokens(self, index: int) -> int:
        n = self._counts[index]
        if n is None:
            n = self._counts[index] = self.count(self.paragraphs[index])
        return n

    def take(self, rng: random.Random | None, n_tokens: int, *, avoid: Callable[[str], bool] | None = None,
             start: int | None = None, join_cost: int = 0) -> list[str]:
        """Consecutive paragraphs totalling about ``n_tokens`` (never more), from a random start.

        Wraps around (repeating the source) as often as the budget needs. Paragraphs for which
        ``avoid(paragraph)`` is true are skipped (e.g. ones containing an answer string).
        ``join_cost`` is charged per paragraph after the first (the separator's tokens).
        """
        out: list[str] = []
        size = len(self.paragraphs)
        if start is None and rng is None:
            raise ValueError("take() needs an rng or a start paragraph")
        index = rng.randrange(size) if start is None else start % size
        budget = n_tokens
        skipped = 0
        while budget > 0 and skipped < size:
            paragraph = self.paragraphs[index]
            cost = self.tokens(index) + (join_cost if out else 0)
            index = (index + 1) % size
            if avoid is not None and avoid(paragraph):
                skipped += 1
                continue
            skipped = 0
            if cost <= budget:
                out.append(paragraph)
                budget -= cost
                continue
            piece = trim_to_tokens(paragraph, budget - (join_cost if out else 0), self.count)
            if piece:
                out.append(piece)
            break
        return out


Filler = Sequence[str] | TextSource | None


def make_source(filler: Filler, count_tokens: TokenCounter | Any | None) -> TextSource:
    """A :class:`TextSource` from paragraphs (or the committed fallback text when ``None``)."""
    if isinstance(filler, TextSource):
        if count_tokens is not None:
            raise ValueError("filler is a TextSource, which counts tokens its own way; leave count_tokens=None")
        return filler
    if filler is None:
        return TextSource(FALLBACK_PARAGRAPHS, count_tokens, name="fallback")
    return TextSource(filler, count_tokens)


def fit_length(build: Callable[[int], Example], target_tokens: int, count: TokenCounter,
               tolerance: float = 0.01) -> Example:
    """Call ``build(filler_tokens)`` until the rendering is within ``tolerance`` of ``target_tokens``."""
    example = build(0)
    overhead = example.n_tokens(count)
    if overhead > target_tokens:
        raise ValueError(
            f"target_tokens={target_tokens} is below the {overhead} tokens the {example.task} example needs "
            f"without any filler; raise target_tokens or ask for less (fewer needles, facts or questions)"
        )
    filler = target_tokens - overhead
    n = overhead
    for _ in range(5):
        example = build(filler)
        n = example.n_tokens(count)
        if abs(n - target_tokens) <= max(4, tolerance * target_tokens):
            break
        filler += target_tokens - n
    example.metadata["n_tokens"] = n
    example.metadata["target_tokens"] = target_tokens
    return example
