"""Sliding-window attention through PyTorch FlexAttention, the sink folded in with the log-sum-exp.

FlexAttention's score_mod cannot add a null key, but the sink only rescales each output row: with
Z = Σ_j exp(s_j) = exp(lse) and the null key's exp(sink), o' = o · Z / (Z + exp(sink))
= o · sigmoid(lse - sink), and gradients reach the sink and the scores through lse.
Kept for the measurements in ``bench/kernels.py``; CUDA only (FlexAttention has no CPU backward).
"""
from __future__ import annotations

import functools

import torch
from torch.nn.attention.flex_attention import create_block_mask, flex_attention


@functools.lru_cache(maxsize=16)
def _block_mask(T: int, S: int, window: int, device: str):
    offset = S - T

    def sliding(b, h, q_idx, kv_idx):
        q_pos = q_idx + offset
        return (kv_idx <= q_pos) & (kv_idx > q_pos - window)

    return create_block_mask(sliding, None, None, T, S, device=device)


@functools.lru_cache(maxsize=1)
def _compiled():
    return torch.compile(flex_attention, dynamic=False)


def sliding_window_attention_flex(q, k, v, window, sink_logits=None, sm_scale=None):
    """Same contract as ``sliding_window_attention_reference``; q (B, T, HQ, D), k/v (B, S, HK, D)."""
    T, S = q.shape[1], k.shape[1]
    mask = _block_mask(T, S, S if window is None else int(window), str(q.device))
    attend = _compiled() if q.is_cuda else flex_attention
    o, lse = attend(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), block_mask=mask, scale=sm_scale,
                    enable_gqa=True, return_lse=True)  # (B, HQ, T, D), (B, HQ, T)
    if sink_logits is not None:
        o = o * torch.sigmoid(lse - sink_logits.float().view(1, -1, 1)).unsqueeze(-1).to(o.dtype)
    return o.transpose(1, 2)
