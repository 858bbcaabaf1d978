"""The task mixture the trainer draws from (``training.data.TaskMixture``), tokenised in worker processes.

Example ``i`` depends only on (mixture seed, i), so a resumed run continues the same stream.
"""
from __future__ import annotations

import random
from functools import lru_cache

from hsa_memory.model.tokenizer import load_tokenizer

from .batches import TokenExample, tokenize_example

# plain-LM text is covered by the KL-to-base term on every non-reply token, so it is left out here
DEFAULT_MIX = {"s_niah": 0.3, "mq_niah": 0.15, "variable_tracking": 0.1, "self_copy": 0.05, "agent_memory": 0.4}


def parse_mix(text: str | None) -> dict[str, float]:
    """'s_niah:0.5,agent_memory:0.5' → weights (the default mix when empty)."""
    if not text:
        return dict(DEFAULT_MIX)
    mix = {}
    for item in text.split(","):
        name, _, weight = item.partition(":")
        mix[name.strip()] = float(weight or 1.0)
    return mix


@lru_cache(maxsize=1)
def tokenizer():
    return load_tokenizer()


def count_tokens(text: str) -> int:
    return len(tokenizer().encode(text, add_special_tokens=False).ids)


FILLERS = ("corpora", "fallback", "corpora+dialogue")


@lru_cache(maxsize=4)
def sources(filler: str, split: str):
    """``corpora`` (Debian texts), ``fallback`` (the committed text) or ``corpora+dialogue`` (plus the
    base model's written dialogue at ``dialogue.default_path()``, see ``training.write_dialogue``)."""
    from .data.dialogue import default_path
    from .data.mix import Sources

    if filler == "fallback":
        return Sources.fallback(count_tokens)
    if filler == "corpora+dialogue":
        return Sources.from_corpora(split, count_tokens, fallback=True, dialogues=default_path())
    if filler != "corpora":
        raise ValueError(f"unknown filler {filler!r}; choose from {list(FILLERS)}")
    return Sources.from_corpora(split, count_tokens, fallback=True)


@lru_cache(maxsize=8)
def mixture(weights: tuple[tuple[str, float], ...], length: int, seed: int, filler: str, split: str):
    from .data.mix import TaskMixture

    return TaskMixture(dict(weights), target_tokens=length, sources=sources(filler, split), split=split, seed=seed)


def make_token_example(job: tuple[tuple[tuple[str, float], ...], int, int, str, str, int]) -> TokenExample:
    """Worker entry: (weights, target tokens, mixture seed, filler kind, split, index) → a token example."""
    weights, length, seed, filler, split, index = job
    example = mixture(weights, length, seed, filler, split).sample(index)
    return tokenize_example(example, tokenizer(), rng=random.Random(seed * 1_000_003 + index))


def job_stream(mix: dict[str, float], length: int, seed: int, filler: str, split: str = "train", start: int = 0):
    """Endless jobs for ``make_token_example``."""
    weights = tuple(sorted(mix.items()))
    index = start
    while True:
        yield weights, length, seed, filler, split, index
        index += 1


def make_example(task: str, seed: int, length: int, filler: str, split: str):
    """One example of one task (evaluation)."""
    return mixture(((task, 1.0),), length, seed, filler, split).sample(0)
