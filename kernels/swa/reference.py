"""Plain-PyTorch sliding-window attention (GQA, causal, optional sink logits): the specification.

The decoders' self-attention: each query sees the ``window`` most recent keys, itself included.
An optional learned *sink logit* per head adds a zero-valued null key to every softmax, so a head can
attend "nowhere" once the stream's first tokens (the base model's natural sink) slid out of view.
"""
from __future__ import annotations

import torch


def window_bounds(start: int, stop: int, offset: int, window: int | None) -> tuple[int, int]:
    """Keys [k_lo, k_hi) that queries start..stop-1 (key positions +offset) may see."""
    return (0 if window is None else max(0, start + offset - window + 1)), stop + offset


def window_block(start: int, stop: int, offset: int, window: int | None,
                 device: torch.device) -> tuple[int, int, torch.Tensor]:
    """``window_bounds`` and the (t, s) mask of which of those keys each query sees."""
    q_pos = torch.arange(start, stop, device=device) + offset  # key positions of these queries
    k_lo, k_hi = window_bounds(start, stop, offset, window)
    k_pos = torch.arange(k_lo, k_hi, device=device)
    visible = k_pos.view(1, -1) <= q_pos.view(-1, 1)
    if window is not None:
        visible &= k_pos.view(1, -1) > q_pos.view(-1, 1) - window
    return k_lo, k_hi, visible


def sliding_window_attention_reference(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    window: int | None,
    sink_logits: torch.Tensor | None = None,
    sm_scale: float | None = None,
    block: int = 512,
) -> torch.Tensor:
    """Causal attention of the last T positions over S ≥ T keys.

    q (B, T, HQ, D) are the queries of key positions S-T .. S-1; k, v (B, S, HK, D). Query at key
    position i attends keys j with i - window < j ≤ i (all j ≤ i when ``window`` is None).
    sink_logits (HQ,) or None. Computed in float32, returned in q's dtype; queries go in blocks and
    each block reads only its window of keys, so memory is O(block × (block + window)).
    """
    B, T, HQ, D = q.shape
    S, HK = k.shape[1], k.shape[2]
    group = HQ // HK
    scale = sm_scale if sm_scale is not None else D ** -0.5
    offset = S - T
    outputs = []
    for start in range(0, T, block):
        stop = min(start + block, T)
        k_lo, k_hi, visible = window_block(start, stop, offset, window, q.device)
        kb = k[:, k_lo:k_hi].float().repeat_interleave(group, dim=2)  # (B, s, HQ, D)
        vb = v[:, k_lo:k_hi].float().repeat_interleave(group, dim=2)
        qb = q[:, start:stop].float()  # (B, t, HQ, D)
        logits = torch.einsum("bthd,bshd->bhts", qb, kb) * scale  # (B, HQ, t, s)
        logits = logits.masked_fill(~visible, float("-inf"))
        if sink_logits is not None:
            sink = sink_logits.float().view(1, HQ, 1, 1).expand(B, HQ, stop - start, 1)
            lse = torch.logsumexp(torch.cat([logits, sink], dim=-1), dim=-1, keepdim=True)
        else:
            lse = torch.logsumexp(logits, dim=-1, keepdim=True)
        probs = torch.exp(logits - lse)
        outputs.append(torch.einsum("bhts,bshd->bthd", probs, vb))
    return torch.cat(outputs, dim=1).to(q.dtype)
