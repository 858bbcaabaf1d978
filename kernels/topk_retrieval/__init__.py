"""Landmark scoring with a streaming top-K: reference (PyTorch) and Triton implementations."""
from __future__ import annotations

import torch

from .reference import gumbel_noise, hash32, landmark_topk_reference

__all__ = ["gumbel_noise", "hash32", "landmark_topk_reference", "landmark_topk_triton"]


def landmark_topk_triton(
    queries: torch.Tensor,
    landmarks: torch.Tensor,
    topk: int,
    visible_upto: torch.Tensor,
    scale: float = 1.0,
    gumbel_seed: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Triton streaming top-K with the reference's semantics (see ``landmark_topk_reference``).

    At most 16 queries per (batch, head) with K <= 64 take the decode path (many-slice scan and a K-slice merge),
    more take the streaming scan; both keep memory independent of queries × landmarks.
    """
    if queries.dim() != 4 or landmarks.dim() != 4:
        raise ValueError(
            f"queries (B, T, HK, R) and landmarks (B, N, HK, R) must be 4-D, got {tuple(queries.shape)} "
            f"and {tuple(landmarks.shape)}"
        )
    B, T, HK, R = queries.shape
    if landmarks.shape[0] != B or landmarks.shape[2:] != (HK, R):
        raise ValueError(f"landmarks {tuple(landmarks.shape)} do not match queries {tuple(queries.shape)}")
    if tuple(visible_upto.shape) != (B, T):
        raise ValueError(f"visible_upto must be (B, T) = ({B}, {T}), got {tuple(visible_upto.shape)}")
    if not 1 <= topk <= 256:
        raise ValueError(f"topk must be in 1..256 for the Triton kernel, got {topk}")
    if queries.dtype != landmarks.dtype or queries.dtype not in (torch.float16, torch.bfloat16, torch.float32):
        raise ValueError(
            "queries and landmarks must share one of float16/bfloat16/float32, "
            f"got {queries.dtype} and {landmarks.dtype}"
        )
    from .triton import landmark_topk

    return landmark_topk(queries, landmarks, topk, visible_upto, scale, gumbel_seed)
