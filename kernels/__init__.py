"""Kernels behind the HSA model, each beside its plain-PyTorch reference.

``get_backend(name)`` returns the implementations for ``"reference"`` or ``"triton"``;
``"auto"`` picks Triton on CUDA tensors (when Triton is installed) and the reference elsewhere.
Triton on CPU tensors runs only under ``TRITON_INTERPRET=1`` (the tests do that).
Sliding-window attention's Triton backend is the repo's own kernel (``swa/triton.py``); why it was
picked over SDPA and FlexAttention is in bench/RESULTS.md, "Kernels".
"""
from __future__ import annotations

import importlib.util
from types import SimpleNamespace

from .hsa_attention import hsa_attention_reference, hsa_attention_triton
from .swa import sliding_window_attention_reference, sliding_window_attention_triton
from .swa.sdpa import sliding_window_attention_sdpa
from .topk_retrieval import landmark_topk_reference, landmark_topk_triton
from .topk_retrieval.blocked import landmark_topk_blocked

BACKENDS = {
    "reference": SimpleNamespace(
        hsa_attention=hsa_attention_reference,
        landmark_topk=landmark_topk_reference,
        sliding_window_attention=sliding_window_attention_reference,
    ),
    "triton": SimpleNamespace(
        hsa_attention=hsa_attention_triton,
        landmark_topk=landmark_topk_triton,
        sliding_window_attention=sliding_window_attention_triton,
    ),
}
_HAS_TRITON = importlib.util.find_spec("triton") is not None


def get_backend(name: str, tensor=None) -> SimpleNamespace:
    """The three ops of one backend; ``"auto"`` decides from ``tensor``'s device."""
    if name == "auto":
        name = "triton" if tensor is not None and tensor.is_cuda and _HAS_TRITON else "reference"
    if name not in BACKENDS:
        raise ValueError(f"backend must be 'auto', 'reference' or 'triton', got {name!r}")
    if name == "triton" and not _HAS_TRITON:
        raise ValueError("backend='triton' needs the triton package: pip install 'hsa-memory[triton]'")
    return BACKENDS[name]


def hsa_attention(q, mem_k, mem_v, chunk_idx, chunk_w, sm_scale=None, backend: str = "auto", *, paged: bool = False):
    """Fused chunk attention (see ``hsa_attention_reference`` for shapes and the paged layout)."""
    fn = get_backend(backend, q).hsa_attention
    return fn(q, mem_k, mem_v, chunk_idx, chunk_w, sm_scale=sm_scale, paged=paged)


def landmark_topk(queries, landmarks, topk, visible_upto, scale=1.0, gumbel_seed=None, backend: str = "auto"):
    """Streaming top-K over landmarks (see ``landmark_topk_reference`` for shapes).

    Off the GPU, "auto" takes the packed-key blocked path (the reference's exact choices and tie order,
    several times its speed; routing only, so no autograd).
    """
    if backend == "auto" and not queries.is_cuda:
        return landmark_topk_blocked(queries, landmarks, topk, visible_upto, scale=scale, gumbel_seed=gumbel_seed)
    fn = get_backend(backend, queries).landmark_topk
    return fn(queries, landmarks, topk, visible_upto, scale=scale, gumbel_seed=gumbel_seed)


def sliding_window_attention(q, k, v, window, sink_logits=None, sm_scale=None, backend: str = "auto"):
    """Causal GQA attention over a sliding window (see ``sliding_window_attention_reference``).

    Off the GPU, "auto" takes PyTorch's fused SDPA (same semantics, several times the reference's speed).
    """
    if backend == "auto" and not q.is_cuda:
        return sliding_window_attention_sdpa(q, k, v, window, sink_logits=sink_logits, sm_scale=sm_scale)
    fn = get_backend(backend, q).sliding_window_attention
    return fn(q, k, v, window, sink_logits=sink_logits, sm_scale=sm_scale)


__all__ = ["BACKENDS", "get_backend", "hsa_attention", "landmark_topk", "sliding_window_attention"]
