"""Token counting and haystack text.

Scenarios: the estimate counts digits, ChatML specials and long words like SmolLM2's BPE does;
a tokenizer object or a callable can stand in; trimming lands under the budget at a word
boundary; a TextSource takes consecutive paragraphs, wraps around and skips what it must avoid.
"""
import random

import pytest

from hsa_memory.training.data.text import (
    TextSource, estimate_tokens, resolve_counter, split_sentences, trim_to_tokens,
)


def test_estimate_counts_digits_specials_and_long_words():
    assert estimate_tokens("") == 0
    assert estimate_tokens("The cat sat.") == 4
    # the space before a number is its own token, then one token per digit
    assert estimate_tokens("is 4821907") == 1 + 1 + 7
    assert estimate_tokens("<|im_start|>user\nHi<|im_end|>\n") == 6
    assert estimate_tokens("incomprehensibilities") > 3


class FakeEncoding:
    def __init__(self, ids):
        self.ids = ids


class FakeTokenizer:
    """Like tokenizers.Tokenizer: encode() returns an object with .ids (one per character here)."""

    def encode(self, text):
        return FakeEncoding(list(range(len(text))))


def test_resolve_counter_accepts_tokenizers_callables_and_none():
    assert resolve_counter(None) is estimate_tokens
    assert resolve_counter(FakeTokenizer())("hello") == 5
    assert resolve_counter(len)("hello") == 5
    with pytest.raises(TypeError, match="count_tokens"):
        resolve_counter(42)


def test_trim_to_tokens_stays_under_budget_on_word_boundary():
    text = "one two three four five six seven"
    assert trim_to_tokens(text, 3, estimate_tokens) == "one two three"
    assert trim_to_tokens(text, 100, estimate_tokens) == text
    assert trim_to_tokens(text, 0, estimate_tokens) == ""


def test_split_sentences_rejoins_to_the_text():
    text = 'He left. "Why?" she asked! It was 3 p.m. on Monday. Done'
    sentences = split_sentences(text)
    assert sentences == ["He left.", '"Why?" she asked!', "It was 3 p.m. on Monday.", "Done"]
    assert " ".join(sentences) == text


def test_take_is_consecutive_and_within_budget():
    paragraphs = [f"Paragraph number {i} has some words." for i in range(20)]
    source = TextSource(paragraphs)
    taken = source.take(random.Random(0), 40, start=3)
    assert taken[0] == paragraphs[3]
    assert taken[:-1] == paragraphs[3:3 + len(taken) - 1]
    assert sum(estimate_tokens(p) for p in taken) <= 40


def test_take_wraps_around_and_skips_avoided():
    source = TextSource(["alpha one.", "beta two.", "gamma three."], len)
    taken = source.take(random.Random(0), 60, start=2, avoid=lambda p: p.startswith("beta"))
    assert taken[:4] == ["gamma three.", "alpha one.", "gamma three.", "alpha one."]
    assert not any(p.startswith("beta") for p in taken)


def test_take_stops_when_everything_is_avoided():
    source = TextSource(["a", "b"], len)
    assert source.take(random.Random(0), 10, avoid=lambda p: True) == []


def test_empty_source_is_refused():
    with pytest.raises(ValueError, match="no paragraphs"):
        TextSource(["", "  "], name="blank")
