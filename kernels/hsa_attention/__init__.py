"""HSA sparse chunk attention: reference (PyTorch) and Triton implementations."""
from __future__ import annotations

import torch

from .reference import hsa_attention_reference

__all__ = ["hsa_attention_reference", "hsa_attention_triton"]


def _check(q, mem_k, mem_v, chunk_idx, chunk_w, chunk_size, paged):
    if q.dim() != 4 or mem_k.dim() != 4:
        raise ValueError(f"q and mem_k must be 4-D, got q {tuple(q.shape)} and mem_k {tuple(mem_k.shape)}")
    B, T, HQ, D = q.shape
    HK = mem_k.shape[2]
    if mem_k.shape != mem_v.shape:
        raise ValueError(f"mem_k {tuple(mem_k.shape)} and mem_v {tuple(mem_v.shape)} must have one shape")
    if chunk_idx.shape != chunk_w.shape or chunk_idx.shape[:3] != (B, T, HK):
        raise ValueError(
            f"chunk_idx {tuple(chunk_idx.shape)} and chunk_w {tuple(chunk_w.shape)} must both be (B, T, HK, K) = "
            f"({B}, {T}, {HK}, K) for q {tuple(q.shape)} and mem_k {tuple(mem_k.shape)}"
        )
    if HQ % HK:
        raise ValueError(f"query heads ({HQ}) must be a multiple of memory KV heads ({HK})")
    if mem_k.shape[3] != D:
        raise ValueError(f"head dim of q ({D}) and mem_k ({mem_k.shape[3]}) differ")
    if D > 256:
        raise ValueError(f"head dim {D} is over the kernel's limit of 256; use backend='reference'")
    if chunk_size < 16 or chunk_size & (chunk_size - 1):
        raise ValueError(f"chunk_size must be a power of two ≥ 16 for the Triton kernel, got {chunk_size}")
    if paged and mem_k.shape[1] != chunk_size:
        raise ValueError(f"a paged memory is (P, {chunk_size}, HK, D), got {tuple(mem_k.shape)}")
    if not paged and (mem_k.shape[0] != B or mem_k.shape[1] % chunk_size):
        raise ValueError(
            f"a contiguous memory is (B={B}, N·{chunk_size}, HK, D), got {tuple(mem_k.shape)}; "
            "pad it to whole chunks or pass a page pool with paged=True"
        )
    if not (q.dtype == mem_k.dtype == mem_v.dtype) or q.dtype not in (torch.float16, torch.bfloat16, torch.float32):
        raise ValueError(
            "q, mem_k and mem_v must share one of float16/bfloat16/float32, "
            f"got {q.dtype}, {mem_k.dtype}, {mem_v.dtype}"
        )
    if chunk_idx.dtype not in (torch.int64, torch.int32):
        raise ValueError(f"chunk_idx must be an integer tensor, got {chunk_idx.dtype}")


def hsa_attention_triton(
    q: torch.Tensor,
    mem_k: torch.Tensor,
    mem_v: torch.Tensor,
    chunk_idx: torch.Tensor,
    chunk_w: torch.Tensor,
    sm_scale: float | None = None,
    chunk_size: int = 64,
    paged: bool = False,
    forward: str = "chunk",
    backward: str = "atomic",
    sort_pairs: bool | None = None,
) -> torch.Tensor:
    """Triton HSA chunk attention with the reference's semantics (see ``hsa_attention_reference``).

    ``forward`` picks the forward kernel: "chunk" (pairs grouped by chunk, atomic adds) or "token"
    (a program per token, no atomics); ``backward`` how dQ is formed: "atomic" (added by the
    chunk-major kernel) or "token" (a token-major pass); ``sort_pairs`` (default: when B·T ≥ 64)
    groups the (token, chunk) pairs by chunk so each chunk's K/V is loaded once per item.
    Chunk indices must be below the number of chunks (pages); the GPU does not check them, since a
    check would wait on the device.
    """
    _check(q, mem_k, mem_v, chunk_idx, chunk_w, chunk_size, paged)
    if forward not in ("chunk", "token") or backward not in ("atomic", "token"):
        raise ValueError(
            f"forward must be 'chunk' or 'token' and backward 'atomic' or 'token', got {forward!r}, {backward!r}"
        )
    from .triton import HSAAttentionFunction

    scale = sm_scale if sm_scale is not None else q.shape[-1] ** -0.5
    return HSAAttentionFunction.apply(
        q, mem_k, mem_v, chunk_idx.long(), chunk_w, scale, chunk_size, paged, forward, backward, sort_pairs
    )
