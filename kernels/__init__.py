"""Kernels behind the HSA model, each beside its plain-PyTorch reference.

``get_backend(name)`` returns the implementations for ``"reference"`` or ``"triton"``;
``"auto"`` picks Triton on CUDA tensors and the reference elsewhere.
"""
from __future__ import annotations

from .hsa_attention import hsa_attention_reference
from .swa import sliding_window_attention_reference
from .topk_retrieval import landmark_topk_reference


def hsa_attention(q, mem_k, mem_v, chunk_idx, chunk_w, sm_scale=None, backend: str = "auto"):
    """Fused chunk attention (see ``hsa_attention_reference`` for shapes)."""
    return hsa_attention_reference(q, mem_k, mem_v, chunk_idx, chunk_w, sm_scale=sm_scale)


def landmark_topk(queries, landmarks, topk, visible_upto, scale=1.0, gumbel_seed=None, backend: str = "auto"):
    """Streaming top-K over landmarks (see ``landmark_topk_reference`` for shapes)."""
    return landmark_topk_reference(queries, landmarks, topk, visible_upto, scale=scale, gumbel_seed=gumbel_seed)


def sliding_window_attention(q, k, v, window, sink_logits=None, sm_scale=None, backend: str = "auto"):
    """Causal GQA attention over a sliding window (see ``sliding_window_attention_reference``)."""
    return sliding_window_attention_reference(q, k, v, window, sink_logits=sink_logits, sm_scale=sm_scale)


__all__ = ["hsa_attention", "landmark_topk", "sliding_window_attention"]
