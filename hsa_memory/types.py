"""What the API returns: answers with their citations, and search hits."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True)
class Citation:
    """A chunk the answer read, with the share of fusion weight it received (weights sum to ≤ 1)."""

    chunk_id: int
    text: str
    weight: float
    roles: tuple[str, ...]
    time: datetime | None


@dataclass(frozen=True)
class Hit:
    """A chunk the retrieval head ranks high for a query; ``score`` is its share of routing weight."""

    chunk_id: int
    text: str
    score: float
    roles: tuple[str, ...]
    time: datetime | None


@dataclass
class Answer:
    text: str
    citations: list[Citation] = field(default_factory=list)
    # seconds per stage: context (bringing the cached recent tail up to date; context_tokens says how many
    # tokens that ran), then for the question and answer: retrieval (landmark scoring + top-K), kv_load,
    # attention (inside the chosen chunks); first_token and total are wall clock from the call
    timings: dict[str, float] = field(default_factory=dict)
    tokens: int = 0

    def __str__(self) -> str:
        return self.text
