"""Sliding-window attention for the decoders: reference (PyTorch) and Triton implementations."""
from __future__ import annotations

import torch

from .reference import sliding_window_attention_reference

__all__ = ["sliding_window_attention_reference", "sliding_window_attention_triton"]


def sliding_window_attention_triton(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    window: int | None,
    sink_logits: torch.Tensor | None = None,
    sm_scale: float | None = None,
) -> torch.Tensor:
    """Triton sliding-window attention with the reference's semantics (see ``sliding_window_attention_reference``)."""
    if q.dim() != 4 or k.dim() != 4 or k.shape != v.shape:
        raise ValueError(f"q (B, T, HQ, D) and k, v (B, S, HK, D) expected, got {tuple(q.shape)}, "
                         f"{tuple(k.shape)}, {tuple(v.shape)}")
    B, T, HQ, D = q.shape
    S, HK = k.shape[1], k.shape[2]
    if k.shape[0] != B or k.shape[3] != D or S < T or HQ % HK:
        raise ValueError(f"k/v {tuple(k.shape)} do not fit q {tuple(q.shape)}: need the same B and D, S ≥ T "
                         "and query heads a multiple of KV heads")
    if D > 256:
        raise ValueError(f"head dim {D} is over the kernel's limit of 256; use backend='reference'")
    if window is not None and window < 1:
        raise ValueError(f"window must be ≥ 1 or None, got {window}")
    if sink_logits is not None and tuple(sink_logits.shape) != (HQ,):
        raise ValueError(f"sink_logits must be ({HQ},), got {tuple(sink_logits.shape)}")
    if not (q.dtype == k.dtype == v.dtype) or q.dtype not in (torch.float16, torch.bfloat16, torch.float32):
        raise ValueError(f"q, k and v must share one of float16/bfloat16/float32, got {q.dtype}, {k.dtype}, {v.dtype}")
    from .triton import SWAFunction

    scale = sm_scale if sm_scale is not None else D ** -0.5
    return SWAFunction.apply(q, k, v, window, sink_logits, scale)
