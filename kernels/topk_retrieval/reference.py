"""Plain-PyTorch landmark scoring + top-K: the specification the Triton kernel must match.

Scores are computed block by block over the chunks with a running top-K merge, so memory stays
O(queries × topk) however many landmarks there are; it never builds the (queries × chunks) matrix.
"""
from __future__ import annotations

import torch

# 2**32 as a float, for turning 32-bit hashes into uniform numbers in (0, 1)
_TWO_32 = 4294967296.0
_MASK32 = 0xFFFFFFFF


def hash32(x: torch.Tensor) -> torch.Tensor:
    """A 32-bit integer mix (lowbias32); int64 tensors in, values in [0, 2**32) out.

    Kernels reproduce it bit for bit, so Gumbel noise is identical on every backend.
    """
    x = x & _MASK32
    x = x ^ (x >> 16)
    x = (x * 0x7FEB352D) & _MASK32
    x = x ^ (x >> 15)
    x = (x * 0x846CA68B) & _MASK32
    x = x ^ (x >> 16)
    return x


def gumbel_noise(seed: int, b: torch.Tensor, t: torch.Tensor, h: torch.Tensor, n: torch.Tensor) -> torch.Tensor:
    """Gumbel(0, 1) noise for (batch b, query t, head h, chunk n), a pure function of the indices.

    noise = -log(-log(u)), u = (hash32(hash32(hash32(hash32(seed) ^ b) ^ t) ^ (h * 65599 + n)) + 0.5) / 2**32
    """
    x = hash32(torch.as_tensor(seed, dtype=torch.int64))
    x = hash32(x ^ b)
    x = hash32(x ^ t)
    x = hash32(x ^ (h * 65599 + n))
    u = (x.to(torch.float64) + 0.5) / _TWO_32
    return (-torch.log(-torch.log(u))).to(torch.float32)


def landmark_topk_reference(
    queries: torch.Tensor,
    landmarks: torch.Tensor,
    topk: int,
    visible_upto: torch.Tensor,
    scale: float = 1.0,
    gumbel_seed: int | None = None,
    block: int = 4096,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-K landmarks per query and head, respecting causal visibility.

    queries (B, T, HK, R), landmarks (B, N, HK, R), visible_upto (B, T) int: query t may only pick
    chunks n < visible_upto[b, t]. Score = scale · q·l in float32. With ``gumbel_seed`` the selection
    ranks score + Gumbel noise (training), but the returned scores are always the clean ones.

    Returns scores (B, T, HK, topk) float32 and indices (B, T, HK, topk) int64, best first; slots
    beyond the visible chunks hold score -inf and index -1.
    """
    B, T, HK, R = queries.shape
    N = landmarks.shape[1]
    device = queries.device
    q = queries.float()
    best_rank = torch.full((B, T, HK, topk), float("-inf"), device=device)
    best_score = torch.full((B, T, HK, topk), float("-inf"), device=device)
    best_index = torch.full((B, T, HK, topk), -1, dtype=torch.int64, device=device)
    visible = visible_upto.to(device=device, dtype=torch.int64).view(B, T, 1, 1)
    for start in range(0, N, block):
        stop = min(start + block, N)
        lm = landmarks[:, start:stop].float()  # (B, n, HK, R)
        scores = torch.einsum("bthr,bnhr->bthn", q, lm) * scale  # (B, T, HK, n)
        n_idx = torch.arange(start, stop, device=device).view(1, 1, 1, -1)
        rank = scores
        if gumbel_seed is not None:
            b_idx = torch.arange(B, device=device).view(B, 1, 1, 1)
            t_idx = torch.arange(T, device=device).view(1, T, 1, 1)
            h_idx = torch.arange(HK, device=device).view(1, 1, HK, 1)
            rank = scores + gumbel_noise(gumbel_seed, b_idx, t_idx, h_idx, n_idx)
        hidden = n_idx >= visible
        rank = rank.masked_fill(hidden, float("-inf"))
        scores = scores.masked_fill(hidden, float("-inf"))
        cat_rank = torch.cat([best_rank, rank], dim=-1)
        cat_score = torch.cat([best_score, scores], dim=-1)
        cat_index = torch.cat([best_index, n_idx.expand_as(scores)], dim=-1)
        cat_index = cat_index.masked_fill(torch.isinf(cat_rank), -1)
        # stable sort keeps earlier chunks first among ties, matching a kernel that scans in order
        order = torch.sort(cat_rank, dim=-1, descending=True, stable=True).indices[..., :topk]
        best_rank = cat_rank.gather(-1, order)
        best_score = cat_score.gather(-1, order)
        best_index = cat_index.gather(-1, order)
    best_score = best_score.masked_fill(best_index < 0, float("-inf"))
    return best_score, best_index
