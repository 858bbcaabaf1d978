"""The HSA-UltraLong model, read top to bottom: leaves first, the causal LM last.

lower decoder (SWA + RoPE) → chunk encoder (bidirectional, CLS → landmark, shared memory K/V)
→ upper decoder: groups of [HSA layer (retrieval + NoPE chunk attention) → SWA layers] → LM head.
"""
from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field
from typing import Iterator

import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.utils.checkpoint

from hsa_memory.kernels import sliding_window_attention

from .config import HSAConfig
from .memory import ExternalMemory, ExternalRouter, RetrievalTrace, SequenceRouter, kernel_backend
from .moe import MoE, SwiGLU

# a sink logit this low leaves the base model's softmax unchanged to float precision
SINK_INIT = -30.0


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        dtype = hidden_states.dtype
        x = hidden_states.float()
        x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * x.to(dtype)


class RotaryEmbedding(nn.Module):
    """RoPE tables for absolute positions, computed in float64.

    A lifelong stream reaches positions of 10^7 and more; float32 angles would lose whole radians
    there, so the angles are formed in float64 and only cos/sin are rounded.
    """

    def __init__(self, head_dim: int, theta: float):
        super().__init__()
        inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim))
        self.register_buffer("inv_freq", inv_freq, persistent=False)

    def forward(self, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        angles = positions.to(torch.float64).unsqueeze(-1) * self.inv_freq.to(positions.device)  # (T, D/2)
        angles = torch.cat([angles, angles], dim=-1)  # (T, D)
        return angles.cos().float(), angles.sin().float()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate (B, T, H, D) by (T, D) tables, or (B, T, D) ones (each row at its own positions), pairing
    dimension i with i + D/2 (the HF layout)."""
    half = x.shape[-1] // 2
    x32 = x.float()
    rotated = torch.cat([-x32[..., half:], x32[..., :half]], dim=-1)
    return (x32 * cos.unsqueeze(-2) + rotated * sin.unsqueeze(-2)).to(x.dtype)


class KVCache:
    """Keys/values of one SWA layer for incremental decoding; keeps only what the window can see."""

    def __init__(self, window: int | None):
        self.window = window
        self.keys: torch.Tensor | None = None  # (B, S, HK, D), RoPE applied
        self.values: torch.Tensor | None = None

    def update(self, keys: torch.Tensor, values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Append new keys/values; return everything the new queries may attend to.

        Held keys/values follow the new ones' device and dtype: a cache restored from disk (CPU tensors)
        may continue on a model that runs on a GPU.
        """
        if self.keys is not None:
            keys = torch.cat([self.keys.to(device=keys.device, dtype=keys.dtype), keys], dim=1)
            values = torch.cat([self.values.to(device=values.device, dtype=values.dtype), values], dim=1)
        keep = keys.shape[1] if self.window is None else min(keys.shape[1], self.window - 1)
        self.keys = keys[:, keys.shape[1] - keep:]
        self.values = values[:, values.shape[1] - keep:]
        return keys, values


class LowRankDelta(nn.Module):
    """A trained low-rank delta x·Aᵀ·Bᵀ beside a frozen projection (LoRA). B starts at zero: no change at first."""

    def __init__(self, in_features: int, out_features: int, rank: int, device=None):
        super().__init__()
        self.down = nn.Parameter(torch.randn(rank, in_features, device=device) * in_features ** -0.5)
        self.up = nn.Parameter(torch.zeros(out_features, rank, device=device))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(F.linear(x, self.down.to(x.dtype)), self.up.to(x.dtype))


class SelfAttention(nn.Module):
    """GQA self-attention with RoPE: causal over a sliding window, or bidirectional (chunk encoder)."""

    def enable_lora(self, rank: int) -> None:
        """Low-rank deltas (zero: the output is unchanged) on q/k/v/o, for weights trained without them."""
        if self.lora is None:
            device = self.q_proj.weight.device
            self.lora = nn.ModuleDict({name: LowRankDelta(proj.in_features, proj.out_features, rank, device)
                                       for name, proj in (("q", self.q_proj), ("k", self.k_proj),
                                                          ("v", self.v_proj), ("o", self.o_proj))})

    def project(self, name: str, x: torch.Tensor) -> torch.Tensor:
        out = getattr(self, f"{name}_proj")(x)
        return out if self.lora is None else out + self.lora[name](x)

    def __init__(self, config: HSAConfig, causal: bool = True, lora_rank: int = 0):
        super().__init__()
        self.num_heads, self.num_kv_heads, self.head_dim = config.num_heads, config.num_kv_heads, config.head_dim
        self.window = config.sliding_window
        self.causal = causal
        d = config.hidden_size
        self.q_proj = nn.Linear(d, self.num_heads * self.head_dim, bias=False)
        self.k_proj = nn.Linear(d, self.num_kv_heads * self.head_dim, bias=False)
        self.v_proj = nn.Linear(d, self.num_kv_heads * self.head_dim, bias=False)
        self.o_proj = nn.Linear(self.num_heads * self.head_dim, d, bias=False)
        self.q_norm = RMSNorm(self.head_dim, config.rms_norm_eps) if config.qk_norm else None
        self.k_norm = RMSNorm(self.head_dim, config.rms_norm_eps) if config.qk_norm else None
        self.sink_logits = (nn.Parameter(torch.full((self.num_heads,), SINK_INIT))
                            if config.attn_sinks and causal else None)
        self.lora: nn.ModuleDict | None = None
        if lora_rank:
            self.enable_lora(lora_rank)

    def forward(self, hidden_states: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,
                cache: KVCache | None = None) -> torch.Tensor:
        B, T, _ = hidden_states.shape
        q = self.project("q", hidden_states).view(B, T, self.num_heads, self.head_dim)  # (B, T, H, D)
        k = self.project("k", hidden_states).view(B, T, self.num_kv_heads, self.head_dim)  # (B, T, HK, D)
        v = self.project("v", hidden_states).view(B, T, self.num_kv_heads, self.head_dim)
        if self.q_norm is not None:
            q, k = self.q_norm(q), self.k_norm(k)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        if not self.causal:
            group = self.num_heads // self.num_kv_heads
            out = F.scaled_dot_product_attention(
                q.transpose(1, 2), k.repeat_interleave(group, 2).transpose(1, 2),
                v.repeat_interleave(group, 2).transpose(1, 2)).transpose(1, 2)
        else:
            if cache is not None:
                k, v = cache.update(k, v)
            out = sliding_window_attention(q, k, v, self.window, sink_logits=self.sink_logits, backend=kernel_backend())
        return self.project("o", out.reshape(B, T, self.num_heads * self.head_dim))


def make_mlp(config: HSAConfig, layer_index: int) -> nn.Module:
    if config.moe_num_experts and layer_index >= config.moe_first_dense_layers:
        return MoE(config.hidden_size, config.moe_intermediate_size, config.moe_num_experts, config.moe_top_k,
                   config.moe_shared_experts, config.moe_bias_update_rate)
    return SwiGLU(config.hidden_size, config.intermediate_size)


def takes_lora(config: HSAConfig, layer_index: int) -> bool:
    """The SWA layers above the first HSA layer: they read what HSA brings back (config.lora_rank)."""
    hsa = config.hsa_layer_indices
    return bool(hsa) and layer_index > hsa[0] and config.layer_types[layer_index] == "swa"


def set_sliding_window(model: nn.Module, window: int | None, upper_only: bool = False) -> int:
    """Change the SWA window at run time (a RUNTIME field: the weights do not depend on it). ``upper_only``
    keeps the lower layers, which make the landmarks and the persisted stream state, as they are and widens
    only the layers above the first HSA layer, which read the question and what HSA brings back. Returns how
    many layers changed."""
    if window is not None and window < 1:
        raise ValueError(f"the sliding window must be a positive number of tokens or None, got {window}")
    config = model.config
    n = 0
    for index, layer in enumerate(model.model.layers):
        if isinstance(layer, DecoderLayer) and (not upper_only or takes_lora(config, index)):
            layer.self_attn.window = window
            n += 1
    if not upper_only:
        config.sliding_window = window
    return n


class DecoderLayer(nn.Module):
    """A Llama block whose attention sees a sliding window."""

    def __init__(self, config: HSAConfig, layer_index: int):
        super().__init__()
        self.input_layernorm = RMSNorm(config.hidden_size, config.rms_norm_eps)
        self.self_attn = SelfAttention(config, lora_rank=config.lora_rank if takes_lora(config, layer_index) else 0)
        self.post_attention_layernorm = RMSNorm(config.hidden_size, config.rms_norm_eps)
        self.mlp = make_mlp(config, layer_index)

    def forward(self, hidden_states, cos, sin, cache: KVCache | None = None):
        residual = hidden_states
        hidden_states = residual + self.self_attn(self.input_layernorm(hidden_states), cos, sin, cache)
        return hidden_states + self.mlp(self.post_attention_layernorm(hidden_states))


class EncoderLayer(nn.Module):
    """A bidirectional block of the chunk encoder (RoPE over the S + 1 intra-chunk positions)."""

    def __init__(self, config: HSAConfig):
        super().__init__()
        self.input_layernorm = RMSNorm(config.hidden_size, config.rms_norm_eps)
        self.self_attn = SelfAttention(config, causal=False)
        self.post_attention_layernorm = RMSNorm(config.hidden_size, config.rms_norm_eps)
        self.mlp = SwiGLU(config.hidden_size, config.encoder_intermediate_size)

    def forward(self, hidden_states, cos, sin):
        hidden_states = hidden_states + self.self_attn(self.input_layernorm(hidden_states), cos, sin)
        return hidden_states + self.mlp(self.post_attention_layernorm(hidden_states))


@dataclass
class ChunkMemory:
    """What the chunk encoder makes of full chunks: one landmark and shared K/V per chunk."""

    landmarks: torch.Tensor  # (N, R)
    keys: torch.Tensor  # (N, S, HK, D)
    values: torch.Tensor  # (N, S, HK, D)


class ChunkEncoder(nn.Module):
    """Chunking layer: each S-token chunk plus a learned CLS (appended last) → landmark + memory K/V."""

    def __init__(self, config: HSAConfig):
        super().__init__()
        self.chunk_size = config.chunk_size
        self.kv_heads, self.head_dim = config.hsa_kv_heads, config.hsa_head_dim
        self.cls = nn.Parameter(torch.randn(config.hidden_size) * config.initializer_range)
        self.layers = nn.ModuleList(EncoderLayer(config) for _ in range(config.encoder_layers))
        self.norm = RMSNorm(config.hidden_size, config.rms_norm_eps)
        self.landmark_norm = RMSNorm(config.hidden_size, config.rms_norm_eps)
        self.landmark_proj = nn.Linear(config.hidden_size, config.retrieval_dim, bias=False)
        self.k_proj = nn.Linear(config.hidden_size, self.kv_heads * self.head_dim, bias=False)
        self.v_proj = nn.Linear(config.hidden_size, self.kv_heads * self.head_dim, bias=False)
        self.k_norm = RMSNorm(self.head_dim, config.rms_norm_eps)
        self.rotary = RotaryEmbedding(config.head_dim, config.rope_theta)

    def forward(self, chunk_hidden: torch.Tensor) -> ChunkMemory:
        N, S, d = chunk_hidden.shape  # (N, S, d)
        cls = self.cls.to(chunk_hidden.dtype).expand(N, 1, d)
        hidden_states = torch.cat([chunk_hidden, cls], dim=1)  # (N, S + 1, d)
        cos, sin = self.rotary(torch.arange(S + 1, device=chunk_hidden.device))
        for layer in self.layers:
            hidden_states = layer(hidden_states, cos, sin)
        hidden_states = self.norm(hidden_states)
        landmarks = self.landmark_proj(self.landmark_norm(hidden_states[:, S]))  # (N, R)
        tokens = hidden_states[:, :S]
        keys = self.k_norm(self.k_proj(tokens).view(N, S, self.kv_heads, self.head_dim))  # (N, S, HK, D)
        values = self.v_proj(tokens).view(N, S, self.kv_heads, self.head_dim)
        return ChunkMemory(landmarks, keys, values)


def _by_recency(bias: torch.Tensor, chunk_ids: torch.Tensor) -> torch.Tensor:
    """``bias[r]`` for each selected chunk, r = its rank by recency among the token's picks (0 = newest).

    Chunk ids grow with stream position (a sequence's chunk index, or a store's append order), so the
    order of ids is the order in time; unused slots (-1) rank last. Only the order is used, never the
    distance, so what is learned at 4K holds at 16M.
    """
    K = chunk_ids.shape[-1]
    order = torch.argsort(chunk_ids, dim=-1, descending=True, stable=True)
    ranks = torch.empty_like(order).scatter_(-1, order, torch.arange(K, device=order.device).expand_as(order))
    return F.pad(bias, (0, max(0, K - bias.shape[0])))[ranks]


def _superseded(scores: torch.Tensor, chunk_ids: torch.Tensor, margin: torch.Tensor, log_temp: torch.Tensor) -> torch.Tensor:
    """How far each pick is superseded, in [0, 1): the largest ``sigmoid((s_newer - s + margin) / tau)`` over the
    token's picks that are newer than it (higher chunk id), 0 when none is (and for unused slots, id -1).

    A fact's update restates the fact, so its chunk scores about as high as the old value's; an unrelated recent
    chunk scores lower and supersedes little. Only order and score gaps are used, so it holds at any length.
    """
    valid = chunk_ids >= 0
    safe = scores.masked_fill(~valid, 0.0).float()
    # [..., j, i]: pick i is newer than pick j
    newer = (chunk_ids.unsqueeze(-2) > chunk_ids.unsqueeze(-1)) & valid.unsqueeze(-2)
    gap = safe.unsqueeze(-2) - safe.unsqueeze(-1) + margin
    closeness = torch.sigmoid(gap / log_temp.exp()).masked_fill(~newer, 0.0)
    return closeness.amax(-1).masked_fill(~valid, 0.0)


def _supersession_params(device=None) -> nn.Parameter:
    # (scale, margin, log temperature): scale 0 leaves the fusion unchanged; a temperature of 0.5 in score
    # units is a soft "about as relevant" before training moves it
    return nn.Parameter(torch.tensor([0.0, 0.0, math.log(0.5)], device=device))


class Retrieval(nn.Module):
    """Per-group retrieval: a query per memory KV head, top-K landmarks, softmax fusion weights."""

    def enable_recency_bias(self) -> None:
        """Add the recency-rank bias (zeros: the output is unchanged) to weights trained without it."""
        if self.recency_bias is None:
            self.recency_bias = nn.Parameter(torch.zeros_like(self.slot_bias))

    def enable_supersession(self) -> None:
        """Add the supersession penalty (scale 0: the output is unchanged) to weights trained without it."""
        if self.supersession is None:
            self.supersession = _supersession_params(self.slot_bias.device)

    def __init__(self, config: HSAConfig):
        super().__init__()
        self.kv_heads, self.head_dim, self.topk = config.hsa_kv_heads, config.retrieval_head_dim, config.hsa_topk
        self.q_proj = nn.Linear(config.hidden_size, config.retrieval_dim, bias=False)
        # learnable bias per retrieval slot rank (the reference's "pos_decay"), 0 at start
        self.slot_bias = nn.Parameter(torch.zeros(config.hsa_topk))
        # learnable bias per recency rank among the selected chunks (config.hsa_recency_bias), 0 at start
        self.recency_bias = nn.Parameter(torch.zeros(config.hsa_topk)) if config.hsa_recency_bias else None
        # penalty scale, score margin and log temperature of ``_superseded`` (config.hsa_supersession), scale 0 at start
        self.supersession = _supersession_params() if config.hsa_supersession else None
        # training sets a list here to receive (queries (B, T, HK, Rh) scaled, landmarks (B, C, HK·Rh)) of
        # each full-sequence pass, for a retrieval loss on every visible chunk (not only the top-K)
        self.capture: list | None = None

    def forward(self, hidden_states, router, positions, gumbel_seed=None):
        B, T, _ = hidden_states.shape
        queries = self.q_proj(hidden_states).view(B, T, self.kv_heads, self.head_dim)  # (B, T, HK, Rh)
        queries = queries * self.head_dim ** -0.5
        if self.capture is not None and isinstance(router, SequenceRouter):
            self.capture.append((queries, router.landmarks))
        scores, chunk_ids = router.route(queries, self.topk, positions, gumbel_seed)  # (B, T, HK, K)
        valid = chunk_ids >= 0
        K = scores.shape[-1]
        # warm-up may route to more slots than hsa_topk: those extra ranks get no bias
        bias = F.pad(self.slot_bias, (0, max(0, K - self.slot_bias.shape[0])))[:K]
        logits = scores + bias
        if self.recency_bias is not None:
            logits = logits + _by_recency(self.recency_bias, chunk_ids)
        if self.supersession is not None:
            scale, margin, log_temp = self.supersession
            logits = logits - scale * _superseded(scores, chunk_ids, margin, log_temp)
        logits = logits.masked_fill(~valid, float("-inf"))
        weights = torch.softmax(logits.float(), dim=-1)
        # a token with no visible chunk gets all-zero weights instead of NaN
        weights = torch.where(valid, weights, torch.zeros_like(weights))
        return chunk_ids, weights


class HSALayer(nn.Module):
    """Retrieval + NoPE attention inside each selected chunk, fused by the retrieval softmax.

    The output projection (and the optional MLP's down projection) start at zero, so a fresh HSA
    layer is the identity and the retrofitted base model is unchanged at step 0.
    """

    def __init__(self, config: HSAConfig):
        super().__init__()
        self.num_heads, self.head_dim = config.hsa_heads, config.hsa_head_dim
        self.input_layernorm = RMSNorm(config.hidden_size, config.rms_norm_eps)
        self.retrieval = Retrieval(config)
        self.q_proj = nn.Linear(config.hidden_size, self.num_heads * self.head_dim, bias=False)
        self.q_norm = RMSNorm(self.head_dim, config.rms_norm_eps)
        self.o_proj = nn.Linear(self.num_heads * self.head_dim, config.hidden_size, bias=False)
        self.mlp = None
        if config.hsa_intermediate_size:
            self.post_attention_layernorm = RMSNorm(config.hidden_size, config.rms_norm_eps)
            self.mlp = SwiGLU(config.hidden_size, config.hsa_intermediate_size)
        # training sets a list here to receive (queries (B, T, HQ, D), the sequence's chunk keys (B, C·S, HK, D))
        # of each full-sequence pass, for a loss on where inside a chunk the answer's tokens look (copy_loss)
        self.copy_capture: list | None = None

    def forward(self, hidden_states, router, positions, trace: RetrievalTrace | None = None, gumbel_seed=None):
        B, T, _ = hidden_states.shape
        normed = self.input_layernorm(hidden_states)
        started = time.perf_counter()
        chunk_ids, weights = self.retrieval(normed, router, positions, gumbel_seed)
        if trace is not None:
            trace.seconds["retrieval"] += time.perf_counter() - started
            trace.record(positions, chunk_ids, weights)
        q = self.q_norm(self.q_proj(normed).view(B, T, self.num_heads, self.head_dim))  # (B, T, HQ, D)
        if self.copy_capture is not None and hasattr(router, "keys"):
            self.copy_capture.append((q, router.keys))
        out = router.attend(q, chunk_ids, weights.to(q.dtype), trace)  # (B, T, HQ, D)
        hidden_states = hidden_states + self.o_proj(out.reshape(B, T, self.num_heads * self.head_dim))
        if self.mlp is not None:
            hidden_states = hidden_states + self.mlp(self.post_attention_layernorm(hidden_states))
        return hidden_states


@dataclass
class StreamState:
    """Everything needed to continue encoding a stream exactly where it stopped.

    position: tokens consumed so far; caches: the lower layers' SWA keys/values (last window-1
    positions); pending_hidden / pending_ids: the open chunk's mid-layer states and tokens.
    """

    position: int = 0
    caches: list[KVCache] = field(default_factory=list)
    pending_hidden: torch.Tensor | None = None  # (p, d), p < S
    pending_ids: list[int] = field(default_factory=list)


def lower_reach(config: HSAConfig) -> int:
    """How many tokens back a lower-decoder state can see: n SWA layers, each W − 1 positions back.

    RoPE is relative and the attention sinks are parameters, not tokens, so nothing further back
    reaches a chunk: what ``encode_parallel`` re-runs before each segment.
    """
    if config.sliding_window is None:
        raise ValueError(f"{config.name} has no sliding window: every lower state sees the whole stream")
    return config.num_lower_layers * (config.sliding_window - 1)


@dataclass
class EncodedChunks:
    """Chunks completed by one ``encode_chunks`` call (N may be 0)."""

    memory: ChunkMemory
    token_ids: torch.Tensor  # (N, S)
    first_position: int  # stream index of the first completed chunk
    state: StreamState


class HSAModel(nn.Module):
    def __init__(self, config: HSAConfig):
        super().__init__()
        config.validate()
        self.config = config
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size)
        self.layers = nn.ModuleList(
            DecoderLayer(config, i) if kind == "swa" else HSALayer(config) for i, kind in enumerate(config.layer_types))
        self.chunk_encoder = ChunkEncoder(config) if config.hsa_layer_indices else None
        self.norm = RMSNorm(config.hidden_size, config.rms_norm_eps)
        self.rotary = RotaryEmbedding(config.head_dim, config.rope_theta)
        # recompute each layer in backward instead of keeping its activations (training long sequences)
        self.gradient_checkpointing = False

    def run_layers(self, hidden_states, layers, positions, caches=None, router=None, trace=None, gumbel_seed=None):
        """Run a slice of ``(index, layer)`` pairs; SWA layers take caches[index] when given."""
        cos, sin = self.rotary(positions)
        checkpointing = self.gradient_checkpointing and torch.is_grad_enabled() and caches is None
        for index, layer in layers:
            if isinstance(layer, HSALayer):
                if router is None:
                    continue
                args = (hidden_states, router, positions, trace, gumbel_seed)
            else:
                args = (hidden_states, cos, sin, None if caches is None else caches[index])
            if checkpointing:
                hidden_states = torch.utils.checkpoint.checkpoint(layer, *args, use_reentrant=False)
            else:
                hidden_states = layer(*args)
        return hidden_states

    def encode_sequence_chunks(self, mid_hidden: torch.Tensor) -> ChunkMemory:
        """Encode the full chunks of a batch of sequences (B, T, d) → landmarks (B·C, R), K/V."""
        B, T, d = mid_hidden.shape
        S = self.config.chunk_size
        C = T // S
        return self.chunk_encoder(mid_hidden[:, : C * S].reshape(B * C, S, d))

    def forward(self, input_ids: torch.Tensor, positions: torch.Tensor | None = None,
                memory: ExternalMemory | None = None, caches: list[KVCache] | None = None,
                trace: RetrievalTrace | None = None, gumbel_seed: int | None = None,
                use_hsa: bool = True, frozen_lower: bool = False) -> torch.Tensor:
        """Hidden states (B, T, d).

        With ``memory`` the HSA layers read that external memory. Without it, a full-sequence pass
        (no ``caches``: training) reads the sequence's own chunks (positions must start at 0), and an
        incremental pass (with ``caches``) leaves the HSA layers silent. ``use_hsa=False`` silences
        them always; ``frozen_lower`` runs the lower decoder without autograd (training a frozen base).
        """
        B, T = input_ids.shape
        if positions is None:
            positions = torch.arange(T, device=input_ids.device)
        hidden_states = self.embed_tokens(input_ids)
        lower = self.config.num_lower_layers
        indexed = list(enumerate(self.layers))
        with torch.set_grad_enabled(torch.is_grad_enabled() and not frozen_lower):
            hidden_states = self.run_layers(hidden_states, indexed[:lower], positions, caches)
        router = None
        skip = self.config.sliding_window if self.config.hsa_skip_window else None
        if use_hsa and memory is not None:
            router = ExternalRouter(memory, self.config.chunk_size, skip)
        elif use_hsa and caches is None and self.chunk_encoder is not None and T >= self.config.chunk_size:
            encoded = self.encode_sequence_chunks(hidden_states)
            C, S = T // self.config.chunk_size, self.config.chunk_size
            HK, D = encoded.keys.shape[2:]
            router = SequenceRouter(encoded.landmarks.view(B, C, -1), encoded.keys.reshape(B, C * S, HK, D),
                                    encoded.values.reshape(B, C * S, HK, D), S, skip)
        hidden_states = self.run_layers(hidden_states, indexed[lower:], positions, caches, router, trace, gumbel_seed)
        return self.norm(hidden_states)


@dataclass
class CausalLMOutput:
    logits: torch.Tensor
    loss: torch.Tensor | None = None


class HSAForCausalLM(nn.Module):
    def __init__(self, config: HSAConfig):
        super().__init__()
        self.config = config
        self.model = HSAModel(config)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        if config.tie_word_embeddings:
            self.lm_head.weight = self.model.embed_tokens.weight
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """Normal(0, initializer_range) weights, unit norms, zeroed HSA outputs (identity at step 0)."""
        std = self.config.initializer_range
        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.Embedding)):
                module.weight.normal_(0.0, std)
        for layer in self.model.layers:
            if isinstance(layer, HSALayer):
                layer.o_proj.weight.zero_()
                if layer.mlp is not None:
                    layer.mlp.down_proj.weight.zero_()

    def forward(self, input_ids: torch.Tensor, labels: torch.Tensor | None = None, **kwargs) -> CausalLMOutput:
        hidden_states = self.model(input_ids, **kwargs)
        logits = self.lm_head(hidden_states)
        loss = None
        if labels is not None:
            loss = F.cross_entropy(logits[:, :-1].flatten(0, 1).float(), labels[:, 1:].flatten(), ignore_index=-100)
        return CausalLMOutput(logits, loss)

    # ---- incremental inference ------------------------------------------------------------
    def new_stream_state(self) -> StreamState:
        lower = self.config.num_lower_layers
        return StreamState(caches=[KVCache(self.config.sliding_window) for _ in range(lower)])

    @torch.no_grad()
    def resume_stream(self, context_ids: list[int], position: int) -> StreamState:
        """A stream state at ``position`` (a chunk boundary, no open chunk) whose lower caches have seen
        ``context_ids`` just before it: restarting a stream after tokens were removed from its tail."""
        if position % self.config.chunk_size:
            raise ValueError(f"a stream resumes at a chunk boundary, not at position {position}")
        state = self.new_stream_state()
        state.position = position
        window = self.config.sliding_window
        context = context_ids[-(window - 1):] if window is not None and window > 1 else list(context_ids)
        context = context[:position]
        if context:
            device = self.lm_head.weight.device
            ids = torch.tensor([context], dtype=torch.long, device=device)
            positions = torch.arange(position - len(context), position, device=device)
            lower = list(enumerate(self.model.layers))[: self.config.num_lower_layers]
            self.model.run_layers(self.model.embed_tokens(ids), lower, positions, state.caches)
        return state

    @torch.no_grad()
    def encode_chunks(self, input_ids: torch.Tensor, state: StreamState | None = None,
                      block_tokens: int = 1024) -> EncodedChunks:
        """Ingest: run the lower decoder + chunk encoder over new stream tokens (T,).

        Returns the chunks completed by these tokens and the state to continue from. Feeding a
        stream in any split gives the same chunks as feeding it at once (up to float rounding).
        """
        state = state or self.new_stream_state()
        S, d = self.config.chunk_size, self.config.hidden_size
        device = self.lm_head.weight.device
        dtype = self.lm_head.weight.dtype
        input_ids = input_ids.reshape(-1).to(device)
        lower = list(enumerate(self.model.layers))[: self.config.num_lower_layers]
        first_position = state.position // S
        pieces = [] if state.pending_hidden is None else [state.pending_hidden.to(device, dtype)]
        token_ids = list(state.pending_ids)
        for start in range(0, input_ids.shape[0], block_tokens):
            block = input_ids[start:start + block_tokens]
            positions = torch.arange(state.position, state.position + block.shape[0], device=device)
            hidden = self.model.run_layers(self.model.embed_tokens(block[None]), lower, positions, state.caches)
            pieces.append(hidden[0])
            token_ids.extend(block.tolist())
            state.position += block.shape[0]
        mid = torch.cat(pieces) if pieces else torch.zeros(0, d, device=device, dtype=dtype)
        n_full = mid.shape[0] // S
        if n_full and self.model.chunk_encoder is not None:
            memory = self.model.chunk_encoder(mid[: n_full * S].view(n_full, S, d))
        else:
            R, HK, D = self.config.retrieval_dim, self.config.hsa_kv_heads, self.config.hsa_head_dim
            memory = ChunkMemory(torch.zeros(0, R, device=device), torch.zeros(0, S, HK, D, device=device),
                                 torch.zeros(0, S, HK, D, device=device))
        state.pending_hidden = mid[n_full * S:].clone()
        chunk_tokens = torch.tensor(token_ids[: n_full * S], dtype=torch.long).view(n_full, S)
        state.pending_ids = token_ids[n_full * S:]
        return EncodedChunks(memory, chunk_tokens, first_position, state)

    @torch.no_grad()
    def encode_parallel(self, input_ids: torch.Tensor, segment_tokens: int = 65536, batch_segments: int = 4,
                        start: int = 0, stop: int | None = None) -> Iterator[EncodedChunks]:
        """Ingest a whole stream (T,) that starts at position 0 as independent segments run side by side.

        ``encode_chunks`` must run a stream in order, in small blocks: ~5K tokens/s on a GPU, an hour for
        16M tokens. But a chunk depends only on the ``lower_reach`` tokens before it, so each segment of
        ``segment_tokens`` (a multiple of the chunk size) runs after that many tokens of the text before it,
        whose outputs are dropped: the chunks equal ``encode_chunks``' up to float rounding, for the cost of
        re-running the reach once per segment. Segments run ``batch_segments`` at a time (bounded memory).

        Yields the chunks in stream order, one piece per batch, each with the exact state after it (a store
        can commit every piece). The last piece ends at ``stop`` (default: the stream's end, open chunk
        included) and its state continues the stream as ``encode_chunks``' would. With ``start`` (a chunk
        boundary) only the chunks from there on are encoded; the tokens before it are context.
        """
        if self.model.chunk_encoder is None:
            raise ValueError(f"{self.config.name} has no HSA layers, so no chunk encoder")
        S = self.config.chunk_size
        ids = input_ids.reshape(-1).cpu()
        stop = ids.shape[0] if stop is None else stop
        if segment_tokens < S or segment_tokens % S or start % S or (stop < ids.shape[0] and stop % S) \
                or not 0 <= start <= stop <= ids.shape[0]:
            raise ValueError(f"need segment_tokens ({segment_tokens}) and start ({start}) on chunk boundaries "
                             f"(chunk size {S}), and start <= stop ({stop}) <= {ids.shape[0]} tokens, stop on a "
                             f"boundary unless it is the stream's end")
        reach = lower_reach(self.config)
        body_end = start + (stop - start) // segment_tokens * segment_tokens
        state = None
        for starts in _segment_batches(start, body_end, segment_tokens, reach, batch_segments):
            piece = self._encode_segments(ids, starts, segment_tokens, reach)
            state = piece.state
            yield piece
        state = self._state_at(ids, start, reach) if state is None else copy.deepcopy(state)
        # the rest (shorter than a segment) runs in order after the last segment's exact state
        yield self.encode_chunks(ids[body_end:stop], state, block_tokens=segment_tokens)

    def _encode_segments(self, ids: torch.Tensor, starts: list[int], length: int, reach: int) -> EncodedChunks:
        """Consecutive segments that share a context length, as one batch."""
        device = self.lm_head.weight.device
        context = min(starts[0], reach)
        rows = torch.stack([ids[b - context:b + length] for b in starts]).to(device)  # (B, context + length)
        positions = torch.stack([torch.arange(b - context, b + length) for b in starts]).to(device)
        lower = list(enumerate(self.model.layers))[: self.config.num_lower_layers]
        caches = [KVCache(self.config.sliding_window) for _ in lower]
        hidden = self.model.run_layers(self.model.embed_tokens(rows), lower, positions, caches)
        memory = self.model.encode_sequence_chunks(hidden[:, context:])
        # the last row's caches hold the last window - 1 positions of each layer, all within its reach
        state = StreamState(starts[-1] + length, [KVCache(c.window) for c in caches])
        for cache, batched in zip(state.caches, caches):
            cache.keys, cache.values = batched.keys[-1:].clone(), batched.values[-1:].clone()
        chunk_tokens = ids[starts[0]:starts[-1] + length].view(-1, self.config.chunk_size)
        return EncodedChunks(memory, chunk_tokens, starts[0] // self.config.chunk_size, state)

    def _state_at(self, ids: torch.Tensor, position: int, reach: int) -> StreamState:
        """The exact stream state at ``position`` (a chunk boundary): the reach before it through the lower decoder."""
        state = self.new_stream_state()
        state.position = position
        context = ids[max(0, position - reach):position]
        if context.shape[0]:
            device = self.lm_head.weight.device
            lower = list(enumerate(self.model.layers))[: self.config.num_lower_layers]
            positions = torch.arange(position - context.shape[0], position, device=device)
            self.model.run_layers(self.model.embed_tokens(context[None].to(device)), lower, positions, state.caches)
        return state


def _segment_batches(start: int, stop: int, length: int, reach: int, batch: int) -> Iterator[list[int]]:
    """Segment starts in runs of at most ``batch`` whose context (the reach, less near the stream's start) is equal."""
    group: list[int] = []
    for begin in range(start, stop, length):
        if group and (len(group) == batch or min(begin, reach) != min(group[0], reach)):
            yield group
            group = []
        group.append(begin)
    if group:
        yield group
