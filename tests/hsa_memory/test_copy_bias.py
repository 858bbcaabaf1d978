"""The copy prior of ``ask`` (hsa_memory/copy_bias.py): which tokens it favours, and by how much."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from hsa_memory.copy_bias import CopyBias
from hsa_memory.model import RetrievalTrace


@dataclass
class Encoding:
    ids: list[int]


class WordTokenizer:
    """One id per distinct word, so a test can write its chunks as text."""

    def __init__(self):
        self.ids: dict[str, int] = {}

    def encode(self, text: str, add_special_tokens: bool = False) -> Encoding:
        return Encoding([self.ids.setdefault(word, len(self.ids)) for word in text.split()])


@dataclass
class Info:
    id: int
    text: str
    deleted: bool = False


class Store:
    def __init__(self, chunks: dict[int, Info]):
        self.chunks_by_id = chunks
        self.asked: list[list[int]] = []

    def chunks(self, ids):
        self.asked.append(list(ids))
        return [self.chunks_by_id[i] for i in ids if i in self.chunks_by_id]


def setup(chunks: dict[int, str], weights: dict[int, float], strength=3.0, top_chunks=4, deleted=()):
    tokenizer = WordTokenizer()
    store = Store({i: Info(i, text, i in deleted) for i, text in chunks.items()})
    trace = RetrievalTrace()
    trace.weights.update(weights)
    return CopyBias(store, tokenizer, trace, strength, top_chunks=top_chunks), tokenizer, store


def ids(tokenizer, text):
    return tokenizer.encode(text).ids


def test_the_longest_matching_tail_decides():
    bias, tok, _ = setup({1: "code is 8 5 8 7 and 8 5 9"}, {1: 1.0})
    assert bias.continuations(ids(tok, "is")) == set(ids(tok, "8"))
    assert bias.continuations(ids(tok, "8")) == set(ids(tok, "5 7"))  # one token back: ambiguous
    assert bias.continuations(ids(tok, "5 8")) == set(ids(tok, "7"))  # two back: the stored order
    assert bias.continuations(ids(tok, "8 5 8")) == set(ids(tok, "7"))
    assert bias.continuations(ids(tok, "zzz")) == set()


def test_only_the_heaviest_chunks_are_sources_and_forgotten_ones_give_nothing():
    bias, tok, store = setup({1: "Anna lives in Lisbon", 2: "Anna lives in Oslo", 3: "Anna lives in Rome"},
                             {1: 5.0, 2: 1.0, 3: 3.0}, top_chunks=2, deleted={3})
    tail = ids(tok, "lives in")
    assert bias.continuations(tail) == set(ids(tok, "Lisbon"))  # chunk 3 is forgotten, chunk 2 not in the top 2
    bias.continuations(tail)
    assert sorted(i for asked in store.asked for i in asked) == [1, 3]  # each chunk read from the store once


def test_logits_gain_exactly_the_strength_at_the_continuations():
    bias, tok, _ = setup({1: "my wifi is plum64 ok"}, {1: 1.0}, strength=2.5)
    logits = torch.randn(len(tok.ids) + 5)
    before = logits.clone()
    out = bias(ids(tok, "wifi is"), logits)
    assert torch.equal(logits, before), "the caller's logits are not changed in place"
    target = ids(tok, "plum64")[0]
    expected = before.clone()
    expected[target] += 2.5
    assert torch.equal(out, expected)


def test_nothing_before_the_first_token_and_nothing_at_strength_zero():
    bias, tok, _ = setup({1: "a b c"}, {1: 1.0})
    logits = torch.randn(10)
    assert bias([], logits) is logits
    off, tok_off, _ = setup({1: "a b c"}, {1: 1.0}, strength=0.0)
    assert off(ids(tok_off, "a"), logits) is logits


def test_an_empty_trace_changes_nothing():
    bias, tok, _ = setup({1: "a b c"}, {})
    logits = torch.randn(10)
    assert torch.equal(bias(ids(tok, "a"), logits), logits)


def test_a_chunk_the_store_no_longer_returns_gives_nothing_and_is_asked_once():
    """The ask's store view leaves out chunks another process forgot or compacted away."""
    bias, tok, store = setup({1: "Anna lives in Lisbon"}, {1: 1.0, 9: 2.0})
    tail = ids(tok, "lives in")
    assert bias.continuations(tail) == set(ids(tok, "Lisbon"))
    bias.continuations(tail)
    assert store.asked == [[9, 1]]
