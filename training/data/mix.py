"""A seeded mixture of tasks: what the trainer iterates over.

Example ``i`` of a :class:`TaskMixture` depends only on ``(seed, i)``, so a resumed run picks up
exactly where it stopped (``mixture.sample(step * batch + k)``) and workers can split indices.

>>> mixture = TaskMixture({"s_niah": 1, "lm": 1}, target_tokens=512, sources=Sources.fallback())
>>> [ex.task for ex in mixture.take(4)]  # doctest: +SKIP
['lm', 's_niah', 's_niah', 'lm']
"""
from __future__ import annotations

import dataclasses
import logging
import random
from pathlib import Path
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Mapping, Sequence

from . import corpora
from .agent_memory import agent_memory
from .corpora import Gloss
from .dialogue import Exchange, load_dialogues, split_exchanges
from .niah import mq_niah, s_niah, self_copy, variable_tracking
from .records import Example, Message
from .text import TextSource

__all__ = ["TASKS", "DEFAULT_WEIGHTS", "Sources", "TaskMixture", "lm_segment"]

logger = logging.getLogger(__name__)

TASKS = ("lm", "s_niah", "mq_niah", "variable_tracking", "self_copy", "agent_memory")
# plain text keeps the model fluent; retrieval tasks teach the memory where to look
DEFAULT_WEIGHTS = {
    "lm": 0.3, "s_niah": 0.15, "mq_niah": 0.1, "variable_tracking": 0.1, "self_copy": 0.05, "agent_memory": 0.3,
}


@dataclass
class Sources:
    """The text generators draw from, built once and shared by every example.

    ``haystack`` fills NIAH haystacks and agent-memory passages; ``lm`` gives plain-text segments;
    ``glosses`` and ``quotes`` season agent-memory small talk; ``dialogues`` (written by the base model,
    ``training.write_dialogue``) add real conversation to it.
    """

    haystack: TextSource
    lm: TextSource
    glosses: Sequence[Gloss] | None = None
    quotes: Sequence[str] | None = None
    dialogues: Sequence[Exchange] | None = None

    @classmethod
    def from_corpora(cls, split: str = "train", count_tokens: Any = None, *, install: bool = False,
                     fallback: bool = False, dialogues: str | Path | None = None) -> "Sources":
        """Sources from the Debian corpora (see ``corpora.md``).

        ``"train"``: Austen without *Persuasion* and the KJV for haystacks, the same plus
        fortunes for LM text. ``"heldout"``: the same haystacks, *Persuasion* for LM text (the
        fluency eval). With ``fallback=True`` missing corpora give way to the committed text.
        ``dialogues``: a corpus written by ``training.write_dialogue``, split by topic (held-out
        topics for ``"heldout"``); a missing or damaged file raises ``DialogueCorpusError``.
        """
        if split not in ("train", "heldout"):
            raise ValueError(f"unknown split {split!r}; use 'train' or 'heldout'")
        written = split_exchanges(load_dialogues(Path(dialogues)), split) if dialogues is not None else None
        try:
            austen = corpora.load_corpus("austen", split="train", install=install)
            kjv = corpora.load_corpus("kjv", install=install)
            fortunes = corpora.load_corpus("fortunes", install=install)
            glosses = corpora.wordnet_glosses(install=install)
        except corpora.CorpusUnavailable:
            if not fallback:
                raise
            logger.warning("corpora unavailable; using the committed fallback text")
            return dataclasses.replace(cls.fallback(count_tokens), dialogues=written or None)
        haystack = TextSource(austen + kjv, count_tokens, name="austen+kjv")
        if split == "heldout":
            lm = TextSource(corpora.load_corpus("austen", split="heldout"), count_tokens, name="persuasion")
        else:
            lm = TextSource(austen + kjv + fortunes, count_tokens, name="austen+kjv+fortunes")
        return cls(haystack, lm, glosses, fortunes, written or None)

    @classmethod
    def fallback(cls, count_tokens: Any = None) -> "Sources":
        """The committed filler only: for tests and machines without the corpora."""
        source = TextSource(corpora.fallback_paragraphs(), count_tokens, name="fallback")
        return cls(source, source)


def lm_segment(seed: int, target_tokens: int, source: TextSource) -> Example:
    """Consecutive paragraphs of plain text, about ``target_tokens`` long (render with ``to_text``)."""
    rng = random.Random(f"lm:{seed}")
    # paragraphs are joined by a blank line: two newline tokens
    paragraphs = source.take(rng, target_tokens, join_cost=2)
    text = "\n\n".join(paragraphs)
    message = Message("document", text, "m00000", metadata={"source": source.name})
    return Example("lm", seed, [message], [], {
        "render": "text", "source": source.name, "n_tokens": source.count(text), "target_tokens": target_tokens,
    })


class TaskMixture:
    """Examples of several tasks drawn by weight; example ``i`` is a pure function of ``(seed, i)``.

    ``target_tokens`` is one length or a list to draw from per example. ``task_kwargs`` passes
    extra arguments to a task's generator, e.g. ``{"mq_niah": {"num_pairs": 8}}``. Example seeds
    are even for ``split="train"`` and odd for ``"heldout"``, so the two never share a seed.
    """

    def __init__(self, weights: Mapping[str, float] | None = None, *, target_tokens: int | Sequence[int] = 2048,
                 sources: Sources | None = None, split: str = "train", seed: int = 0,
                 task_kwargs: Mapping[str, Mapping[str, Any]] | None = None):
        weights = dict(DEFAULT_WEIGHTS if weights is None else weights)
        unknown = sorted(set(weights) - set(TASKS))
        if unknown:
            raise ValueError(f"unknown tasks {unknown}; choose from {list(TASKS)}")
        if not weights or any(w < 0 for w in weights.values()) or sum(weights.values()) <= 0:
            raise ValueError(f"weights must be non-negative with a positive sum, got {weights}")
        if split not in ("train", "heldout"):
            raise ValueError(f"unknown split {split!r}; use 'train' or 'heldout'")
        self.tasks = [t for t in TASKS if weights.get(t, 0) > 0]
        self.weights = [weights[t] for t in self.tasks]
        self.lengths = [target_tokens] if isinstance(target_tokens, int) else list(target_tokens)
        self.sources = sources if sources is not None else Sources.fallback()
        self.split = split
        self.seed = seed
        self.task_kwargs = {k: dict(v) for k, v in (task_kwargs or {}).items()}

    def choose(self, index: int) -> tuple[str, int, int]:
        """(task, example seed, target length) of example ``index``, without generating it."""
        rng = random.Random(f"mix:{self.seed}:{index}")
        task = rng.choices(self.tasks, self.weights)[0]
        example_seed = rng.getrandbits(47) * 2 + (self.split == "heldout")
        length = rng.choice(self.lengths)
        return task, example_seed, length

    def sample(self, index: int) -> Example:
        task, seed, length = self.choose(index)
        example = self._generators()[task](seed, length, **self.task_kwargs.get(task, {}))
        example.metadata["mixture_index"] = index
        return example

    def take(self, n: int, start: int = 0) -> list[Example]:
        return [self.sample(i) for i in range(start, start + n)]

    def __iter__(self) -> Iterator[Example]:
        index = 0
        while True:
            yield self.sample(index)
            index += 1

    def _generators(self) -> dict[str, Callable[..., Example]]:
        s = self.sources
        # NIAH haystacks draw entities from the split's key pool; agent memory from its pools
        niah_split = self.split
        return {
            "lm": lambda seed, n, **kw: lm_segment(seed, n, s.lm, **kw),
            "s_niah": lambda seed, n, **kw: s_niah(seed, n, filler=s.haystack, split=niah_split, **kw),
            "mq_niah": lambda seed, n, **kw: mq_niah(seed, n, filler=s.haystack, split=niah_split, **kw),
            "variable_tracking": lambda seed, n, **kw: variable_tracking(seed, n, filler=s.haystack, **kw),
            "self_copy": lambda seed, n, **kw: self_copy(seed, n, filler=s.haystack, **kw),
            "agent_memory": lambda seed, n, **kw: agent_memory(
                seed, n, split=self.split, filler=s.haystack, glosses=s.glosses, quotes=s.quotes,
                dialogues=s.dialogues, **kw),
        }
