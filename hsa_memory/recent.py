"""The recent stream through the whole model, kept between asks.

A question runs after the stream's recent tail, through every layer (the tail's tokens route to
memory like any other). Re-running ~1K tail tokens through 30 layers costs seconds per ask on a CPU,
so the per-layer SWA caches after the tail are kept: every ask reuses them until the stream moves,
and an append extends them by the new tokens only.

What a question sees is a function of the stream alone, never of the cache's history: the context
starts at the window-aligned position ``W·(⌊p/W⌋ − 1)`` (clamped to the tail the ingest state keeps),
so it holds between W and 2W − 1 tokens, and extending a cached context by new tokens equals computing
it afresh from that start. A forget or compaction (the store's generation moves) drops the cache.
"""
from __future__ import annotations

import copy
import threading
import time
from dataclasses import dataclass

import torch

from hsa_memory.model import KVCache
from hsa_memory.model.generation import new_caches


def context_start(position: int, tail_length: int, window: int) -> int:
    """First stream position of the question's context: window-aligned, within the kept tail."""
    aligned = max(0, (position // window - 1) * window)
    return max(aligned, position - tail_length)


def copy_caches(caches: list[KVCache | None]) -> list[KVCache | None]:
    """Independent caches for one forward pass (``KVCache.update`` rebinds its tensors, never writes into them)."""
    return [copy.copy(cache) if cache is not None else None for cache in caches]


@dataclass
class RecentState:
    generation: int  # the store's generation (forgets, compactions) the caches were computed under
    start: int  # stream position of the context's first token
    position: int  # stream position after the last token the caches hold
    caches: list[KVCache | None]


class RecentContext:
    """Per memory: the SWA caches after the recent tail, brought up to date lazily at ask time."""

    def __init__(self, model) -> None:
        self.model = model
        self.window = model.config.sliding_window or 4096
        self._state: RecentState | None = None
        self._lock = threading.Lock()

    def clear(self) -> None:
        with self._lock:
            self._state = None

    @torch.no_grad()
    def caches(self, tail_ids: list[int], position: int, generation: int, memory,
               timings: dict[str, float]) -> tuple[list[KVCache | None], int]:
        """Caches holding the context that ends at ``position`` (copies: the caller may extend them).

        ``tail_ids`` are the stream's last tokens, ending at ``position``. Returns (caches, context start)
        and sets ``context_seconds`` / ``context_tokens`` (the tokens run by this call) in ``timings``.
        """
        start = context_start(position, len(tail_ids), self.window)
        with self._lock:
            state = self._state
        if state is None or state.generation != generation or state.start != start or not start <= state.position <= position:
            state = RecentState(generation, start, start, new_caches(self.model))
        fresh = tail_ids[len(tail_ids) - (position - state.position):] if position > state.position else []
        began = time.perf_counter()
        if fresh:
            caches = copy_caches(state.caches)
            device = self.model.lm_head.weight.device
            positions = torch.arange(state.position, position, device=device)
            self.model.model(torch.tensor([fresh], device=device), positions, memory=memory, caches=caches)
            state = RecentState(generation, start, position, caches)
            with self._lock:
                self._state = state
        elif self._state is not state:
            with self._lock:
                self._state = state
        timings["context_seconds"] = time.perf_counter() - began
        timings["context_tokens"] = float(len(fresh))
        return copy_caches(state.caches), start
