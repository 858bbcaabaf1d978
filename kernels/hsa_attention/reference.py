"""Plain-PyTorch HSA chunk attention: the specification the Triton kernel must match.

For every query token and memory KV head, softmax attention runs inside each selected 64-token
chunk (no positional encoding), and the per-chunk outputs are fused with the given weights.
"""
from __future__ import annotations

import torch


def hsa_attention_reference(
    q: torch.Tensor,
    mem_k: torch.Tensor,
    mem_v: torch.Tensor,
    chunk_idx: torch.Tensor,
    chunk_w: torch.Tensor,
    sm_scale: float | None = None,
    chunk_size: int = 64,
    block: int = 256,
    paged: bool = False,
) -> torch.Tensor:
    """o[b,t,h] = Σ_k w[b,t,g,k] · softmax_j(scale · q[b,t,h]·k_j) v_j over the keys j of chunk idx[b,t,g,k].

    q (B, T, HQ, D); chunk_idx (B, T, HK, K) int64 (-1 = empty slot, contributes nothing);
    chunk_w (B, T, HK, K). Query head h reads KV head g = h // (HQ // HK).
    Memory K/V come in one of two layouts:
    - contiguous (``paged=False``): mem_k, mem_v (B, N·S, HK, D); chunk_idx[b] counts chunks of batch b;
    - paged (``paged=True``): mem_k, mem_v (P, S, HK, D), a pool of P chunk pages shared by the batch;
      chunk_idx holds page numbers, so a cache of pages is read without gathering it first.
    Computed in float32, returned in q's dtype; differentiable in q, mem_k, mem_v and chunk_w.
    Tokens are processed in blocks so the gathered K/V stays bounded.
    """
    B, T, HQ, D = q.shape
    HK = mem_k.shape[-2]
    S = chunk_size
    group = HQ // HK
    scale = sm_scale if sm_scale is not None else D ** -0.5
    if paged:
        k_pages = mem_k.unsqueeze(0)  # (1, P, S, HK, D): every batch row reads the same pool
        v_pages = mem_v.unsqueeze(0)
    else:
        n_chunks = mem_k.shape[1] // S
        k_pages = mem_k.view(B, n_chunks, S, HK, D)  # (B, N, S, HK, D)
        v_pages = mem_v.view(B, n_chunks, S, HK, D)
    outputs = []
    for start in range(0, T, block):
        stop = min(start + block, T)
        idx = chunk_idx[:, start:stop]  # (B, t, HK, K)
        w = chunk_w[:, start:stop].float()
        valid = idx >= 0
        safe = idx.clamp(min=0)
        b_idx = torch.arange(B, device=q.device).view(B, 1, 1, 1) * (0 if paged else 1)
        h_idx = torch.arange(HK, device=q.device).view(1, 1, HK, 1)
        k_sel = k_pages[b_idx, safe, :, h_idx].float()  # (B, t, HK, K, S, D)
        v_sel = v_pages[b_idx, safe, :, h_idx].float()
        qb = q[:, start:stop].float().view(B, stop - start, HK, group, D)  # (B, t, HK, G, D)
        logits = torch.einsum("btgqd,btgksd->btgqks", qb, k_sel) * scale  # (B, t, HK, G, K, S)
        probs = torch.softmax(logits, dim=-1)
        per_chunk = torch.einsum("btgqks,btgksd->btgqkd", probs, v_sel)  # (B, t, HK, G, K, D)
        w = torch.where(valid, w, torch.zeros_like(w))
        fused = torch.einsum("btgqkd,btgk->btgqd", per_chunk, w)
        outputs.append(fused.reshape(B, stop - start, HQ, D))
    return torch.cat(outputs, dim=1).to(q.dtype)
