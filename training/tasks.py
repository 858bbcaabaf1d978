"""The task mixture the trainer draws from: generators by name, made into token examples in workers."""
from __future__ import annotations

import inspect
import random
from functools import lru_cache
from typing import Callable

from hsa_memory.model.tokenizer import load_tokenizer

from .batches import TokenExample, tokenize_example

DEFAULT_MIX = {"s_niah": 0.35, "mq_niah": 0.15, "variable_tracking": 0.1, "self_copy": 0.05, "agent_memory": 0.35}


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
def _tokenizer():
    return load_tokenizer()


@lru_cache(maxsize=1)
def _filler(kind: str):
    from .data import corpora

    if kind == "fallback":
        return corpora.fallback_paragraphs()
    paragraphs = []
    for name in ("austen", "kjv", "fortunes"):
        try:
            paragraphs += corpora.load_corpus(name, split="train")
        except Exception:  # a corpus missing on this machine: train on the others
            continue
    return paragraphs or corpora.fallback_paragraphs()


def generator_for(task: str) -> Callable:
    from .data import niah

    if task == "agent_memory":
        from .data import agent_memory

        return lambda seed, length, filler, count, split: agent_memory.agent_memory(
            seed, target_tokens=length, count_tokens=count, split=split)
    function = getattr(niah, task)
    takes_split = "split" in inspect.signature(function).parameters

    def make(seed, length, filler, count, split):
        extra = {"split": split} if takes_split else {}
        return function(seed, length, filler=filler, count_tokens=count, **extra)

    return make


def make_token_example(job: tuple[str, int, int, str, str]) -> TokenExample | None:
    """Worker entry: (task, seed, target tokens, filler kind, split) → a token example (None on failure)."""
    task, seed, length, filler_kind, split = job
    tokenizer = _tokenizer()
    count = lambda text: len(tokenizer.encode(text, add_special_tokens=False).ids)  # noqa: E731
    example = generator_for(task)(seed, length, _filler(filler_kind), count, split)
    return tokenize_example(example, tokenizer, rng=random.Random(seed))


def job_stream(mix: dict[str, float], length: int, seed: int, filler: str, split: str = "train"):
    """Endless (task, seed, length, filler, split) jobs drawn from the mixture."""
    rng = random.Random(seed)
    names, weights = list(mix), list(mix.values())
    index = 0
    while True:
        task = rng.choices(names, weights)[0]
        yield task, seed * 1_000_003 + index, length, filler, split
        index += 1
