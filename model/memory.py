"""Where HSA layers find chunks: the sequence's own chunks (training) or an external memory (inference).

The model never touches files. At question time it talks to an ``ExternalMemory``: something that
answers "top-K chunks for these retrieval queries" and "K/V of these chunks". The store implements
it; ``TensorMemory`` implements it over tensors in RAM (tests, evaluation, small memories).
Routers turn either source into the two calls an HSA layer makes: ``route`` and ``attend``.
"""
from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import os

import torch

from hsa_memory.kernels import hsa_attention, landmark_topk

# "auto" (Triton on CUDA, reference elsewhere), "reference" or "triton": a switch for A/B runs
KERNEL_BACKEND = os.environ.get("HSA_KERNEL_BACKEND", "auto")
_BACKENDS = ("auto", "reference", "triton")


def set_kernel_backend(name: str) -> str:
    """Switch every model op to one kernel backend at run time (A/B parity checks); returns the old one."""
    global KERNEL_BACKEND
    if name not in _BACKENDS:
        raise ValueError(f"kernel backend must be one of {_BACKENDS}, got {name!r}")
    previous, KERNEL_BACKEND = KERNEL_BACKEND, name
    return previous


def kernel_backend() -> str:
    return KERNEL_BACKEND


@runtime_checkable
class ExternalMemory(Protocol):
    """A memory of encoded chunks the model can read during a forward pass.

    Chunk ids must grow with stream position: the recency-rank bias (HSAConfig.hsa_recency_bias) orders
    a token's picks by id.
    """

    def topk(self, queries: torch.Tensor, k: int, visible_upto: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Best ``k`` chunks per query and head.

        queries (T, HK, Rh), already scaled; visible_upto (T,) int64 — a query may only see chunks whose
        stream position is < visible_upto. Returns scores (T, HK, k) float32 and chunk ids (T, HK, k)
        int64, best first, with -inf / -1 in slots beyond the visible chunks.
        """
        ...

    def kv(self, chunk_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Memory keys and values (n, S, HK, D) of the given chunk ids (n,)."""
        ...


def topk_over_landmarks(landmarks: torch.Tensor, positions: torch.Tensor, chunk_ids: torch.Tensor,
                        queries: torch.Tensor, k: int, visible_upto: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``ExternalMemory.topk`` over a landmark matrix (N, R) whose rows are sorted by stream position."""
    T, HK, Rh = queries.shape
    lm = landmarks.to(device=queries.device, dtype=queries.dtype).view(1, -1, HK, Rh)  # (1, N, HK, Rh)
    # stream positions → number of visible rows
    visible_rows = torch.searchsorted(positions, visible_upto.cpu().long()).to(queries.device)
    scores, rows = landmark_topk(queries.unsqueeze(0), lm, k, visible_rows.view(1, T), backend=KERNEL_BACKEND)
    ids = torch.where(rows >= 0, chunk_ids.to(rows.device)[rows.clamp_min(0)], rows)
    return scores[0], ids[0]


class TensorMemory:
    """An ``ExternalMemory`` over tensors: landmarks (N, R), keys/values (N, S, HK, D).

    ``positions`` are the chunks' places in the stream (default 0..N-1) and ``chunk_ids`` the ids
    reported back (default = positions); both must be increasing with position.
    """

    def __init__(self, landmarks: torch.Tensor, keys: torch.Tensor, values: torch.Tensor,
                 positions: torch.Tensor | None = None, chunk_ids: torch.Tensor | None = None):
        n = landmarks.shape[0]
        self.landmarks = landmarks
        self.keys = keys
        self.values = values
        self.positions = torch.arange(n) if positions is None else positions.long().cpu()
        self.chunk_ids = self.positions.clone() if chunk_ids is None else chunk_ids.long().cpu()
        self._row_of_id = {int(c): i for i, c in enumerate(self.chunk_ids.tolist())}

    def __len__(self) -> int:
        return self.landmarks.shape[0]

    def topk(self, queries: torch.Tensor, k: int, visible_upto: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return topk_over_landmarks(self.landmarks, self.positions, self.chunk_ids, queries, k, visible_upto)

    def kv(self, chunk_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        rows = torch.tensor([self._row_of_id[int(c)] for c in chunk_ids.tolist()], dtype=torch.long)
        return self.keys[rows], self.values[rows]


@dataclass
class RetrievalTrace:
    """What the HSA layers read during a forward pass: fusion weight per chunk id, and timings.

    ``weights[chunk_id]`` sums the fusion weight the chunk received over tokens, heads and layers
    (only for tokens at or after ``count_from``, e.g. the answer's tokens).
    """

    count_from: int = 0
    weights: dict[int, float] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=lambda: {"retrieval": 0.0, "kv_load": 0.0, "attention": 0.0})

    def record(self, positions: torch.Tensor, chunk_ids: torch.Tensor, weights: torch.Tensor) -> None:
        """positions (T,), chunk_ids and weights (B, T, HK, K)."""
        keep = positions >= self.count_from
        if not bool(keep.any()):
            return
        ids = chunk_ids[:, keep.to(chunk_ids.device)].reshape(-1)
        w = weights[:, keep.to(weights.device)].detach().float().reshape(-1)
        valid = ids >= 0
        ids, w = ids[valid], w[valid]
        if ids.numel() == 0:
            return
        unique, inverse = torch.unique(ids, return_inverse=True)
        sums = torch.zeros(unique.shape[0], device=w.device).index_add_(0, inverse, w)
        for chunk_id, total in zip(unique.tolist(), sums.tolist()):
            self.weights[chunk_id] = self.weights.get(chunk_id, 0.0) + total

    def ranked(self, limit: int | None = None) -> list[tuple[int, float]]:
        """Chunk ids with their summed weight, heaviest first (the ``limit`` heaviest without sorting the rest:
        the copy bias asks for its top few at every generated token)."""
        if limit is None:
            return sorted(self.weights.items(), key=lambda item: -item[1])
        return heapq.nlargest(limit, self.weights.items(), key=lambda item: item[1])


def visible_chunks(positions: torch.Tensor, chunk_size: int, skip_window: int | None = None) -> torch.Tensor:
    """How many leading chunks each position may route to: the chunks wholly before its own, and with
    ``skip_window`` (the SWA window) only those that start before the window's first token — a chunk the
    window shows in full adds nothing HSA could add."""
    visible = positions // chunk_size
    if skip_window is not None:
        beyond = (positions - skip_window + chunk_size).clamp_min(0) // chunk_size
        visible = torch.minimum(visible, beyond)
    return visible


class SequenceRouter:
    """Routes tokens of a training sequence to the sequence's own earlier chunks (differentiably)."""

    def __init__(self, landmarks: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, chunk_size: int,
                 skip_window: int | None = None):
        self.landmarks = landmarks  # (B, C, R)
        self.keys = keys  # (B, C·S, HK, D)
        self.values = values
        self.chunk_size = chunk_size
        self.skip_window = skip_window

    def route(self, queries: torch.Tensor, topk: int, positions: torch.Tensor, gumbel_seed: int | None):
        """queries (B, T, HK, Rh) scaled → differentiable scores and chunk indices (B, T, HK, K)."""
        B, T, HK, Rh = queries.shape
        C = self.landmarks.shape[1]
        landmarks = self.landmarks.view(B, C, HK, Rh)  # (B, C, HK, Rh)
        visible = visible_chunks(positions, self.chunk_size, self.skip_window).clamp(max=C).view(1, T).expand(B, T)
        _, idx = landmark_topk(queries.detach(), landmarks.detach(), topk, visible, gumbel_seed=gumbel_seed,
                               backend=KERNEL_BACKEND)
        # recompute the chosen scores in the graph: the fusion softmax is how the router learns
        b_idx = torch.arange(B, device=idx.device).view(B, 1, 1, 1)
        h_idx = torch.arange(HK, device=idx.device).view(1, 1, HK, 1)
        chosen = landmarks[b_idx, idx.clamp_min(0), h_idx]  # (B, T, HK, K, Rh)
        scores = torch.einsum("bthr,bthkr->bthk", queries.float(), chosen.float())
        return scores, idx

    def attend(self, q: torch.Tensor, idx: torch.Tensor, weights: torch.Tensor, trace: RetrievalTrace | None):
        dtype = self.values.dtype
        return hsa_attention(q.to(dtype), self.keys.to(dtype), self.values, idx, weights.to(dtype),
                             backend=KERNEL_BACKEND)


class ExternalRouter:
    """Routes tokens to an ``ExternalMemory``; gathers only the chunks the tokens picked."""

    def __init__(self, memory: ExternalMemory, chunk_size: int, skip_window: int | None = None):
        self.memory = memory
        self.chunk_size = chunk_size
        self.skip_window = skip_window

    def route(self, queries: torch.Tensor, topk: int, positions: torch.Tensor, gumbel_seed: int | None):
        B, T = queries.shape[:2]
        if B != 1:
            raise ValueError(f"an external memory serves one stream at a time; got batch size {B}")
        scores, ids = self.memory.topk(queries[0], topk, visible_chunks(positions, self.chunk_size, self.skip_window))
        return scores.unsqueeze(0).to(queries.device), ids.unsqueeze(0).to(queries.device)

    def attend(self, q: torch.Tensor, ids: torch.Tensor, weights: torch.Tensor, trace: RetrievalTrace | None):
        import time

        start = time.perf_counter()
        valid = ids >= 0
        unique, inverse = torch.unique(ids[valid], return_inverse=True)
        local = torch.full_like(ids, -1)
        local[valid] = inverse
        if unique.numel() == 0:
            return torch.zeros_like(q)
        keys, values = self.memory.kv(unique.cpu())
        S, HK, D = keys.shape[1:]
        keys = keys.to(device=q.device, dtype=q.dtype).reshape(1, -1, HK, D)  # (1, n·S, HK, D)
        values = values.to(device=q.device, dtype=q.dtype).reshape(1, -1, HK, D)
        loaded = time.perf_counter()
        output = hsa_attention(q, keys, values, local, weights, backend=KERNEL_BACKEND)
        if trace is not None:
            trace.seconds["kv_load"] += loaded - start
            trace.seconds["attention"] += time.perf_counter() - loaded
        return output
