"""InfLLM-style baseline for ``bench/compare.py``: training-free block retrieval on the base SmolLM2.

InfLLM (Xiao et al. 2024, "InfLLM: Training-Free Long-Context Extrapolation for LLMs with an Efficient
Context Memory") keeps the past K/V of a long input as a context memory of blocks, each block with a
few *representative keys*; every attention layer attends over the initial tokens, the top-K blocks
whose representative keys best match its queries, and a local window of recent tokens. This module is
that mechanism on the benchmark's base reader (``compare_readers.load_base_reader``: the project's
own model class, SmolLM2-135M-Instruct with full causal attention, no HSA, no sliding window). It reuses
the reader's modules — embeddings, each ``DecoderLayer``'s norms, q/k/v/o projections and MLP, the
``RotaryEmbedding`` tables and ``apply_rope``, ``KVCache`` and ``DecoderLayer.forward`` (whose SDPA
kernel does the ask's attention), the final norm and the LM head — and adds only how the context of
each layer is assembled.

**Blocks.** The memory's token stream is ``compare_chunks.build_stream``'s, so block ``i`` is tokens
``[64 i, 64 i + 64)``, the chunk at position ``i`` that every other system reads (recall@K is
comparable). The *initial tokens* (InfLLM's ``n_init``, the attention sink) are the reader's
default system turn, which every baseline prompt starts with, plus the stream's first ``init_blocks``
block(s).

**Ingest.** The base model runs over the stream in pieces of ``piece`` tokens with bounded attention:
each token sees the initial tokens and the ``window`` most recent stream tokens (itself included) —
StreamingLLM's pattern, with which InfLLM encodes the part of a long input it has not stored as blocks
yet. Per layer and per token it keeps the pre-RoPE key and the value (so a block can later be rotated to
whatever position the ask gives it), written straight to disk (``storage``: float16 by default; never a
growing buffer in RAM). Positions at ingest are compact: the initial tokens sit at 0.., the window
right after them, so the relative distances inside the window are the true ones. Difference from
InfLLM: InfLLM also retrieves memory blocks while it encodes (each 512-token piece attends over
init + top-K blocks + local); here retrieval happens only at the question — a cheaper encoder, the same
for every question, and exactly the base model while the stream fits the window. Sizes are scaled to an
8K-context 135M model: InfLLM's Mistral config has 128-token blocks, 128 initial tokens, a 4,096-token
local window and top-16; here 64-token blocks (the benchmark's chunks), the system turn + 64 tokens, 512
and top-8 (the harness's ``--top-k``).

**Representative keys.** InfLLM scores token ``m`` of a block by the attention it receives from the
queries of its local window (the following ``window`` tokens) and takes the ``repr_topk`` best tokens'
keys. The ingest forward computes that attention anyway (its softmax is explicit here, for this
reason), so the score is InfLLM's exactly and costs a column sum: per KV head it is summed over the
query heads of that GQA group and over every query that sees the token (also those of the next piece,
accumulated until the block leaves every window), and each KV head gets its own ``reps`` keys (pre-RoPE,
four per 64-token block; InfLLM's Mistral config takes 4 per 128-token block). A block's representative
keys are chosen once, when no later query can see it any more (or at the end of the stream).

**Ask.** The question (a ChatML user turn + the assistant header, as ``FullContext.answer``) and the
``local`` most recent stream tokens (the local window, its start aligned down to a block: 512–575
tokens) go through the model layer by layer. In each layer, per KV-head group, the question's queries
score every candidate block (those between the initial tokens and the local window) as InfLLM does:
the mean over the question's tokens of each query head, rotated by one angle (``local``: a memory
block sits about one local window back), dotted with the mean of the block's representative keys,
summed over the group's query heads. The group's top-K blocks are read from disk and the layer attends
over ``[initial tokens, retrieved blocks in stream order, local window, question]`` (causal over the
last two). Each KV-head group may read different blocks (InfLLM shares one top-K among a layer's heads
by default; per-group selection is its ``perhead`` option at GQA-group granularity), always K of them, so
the assembled context has one length for all heads. The local window is recomputed at every ask: its
tokens attend to the blocks this question retrieved, so its states cannot be cached across questions.

**Positions.** Compact, in that order: the initial tokens at ``0 ..`` (their true positions), the K
retrieved blocks right after, then the local window and the question. A retrieved block keeps its
internal relative distances, blocks keep their stream order, and the local window and question keep
theirs; the whole context stays far inside SmolLM2's 8K trained positions (~1.2K tokens at K = 8).
InfLLM proper puts every memory token at one position (distance ``n_local`` from every query); the
compact scheme was chosen because it makes the no-gap case *exactly* the base model: with K at least the
number of candidate blocks and a stream that fits the ingest window, the assembled attention is the
reader's full causal attention over the same tokens (``tests/bench/test_compare_infllm.py`` checks the
logits).

**Decoding.** Greedy, ≤ ``max_new_tokens``, stopping at ``<|im_end|>`` / eos, through the reader's own
``model.model(..., caches=...)``: the per-layer caches hold the assembled context (retrieved blocks kept
fixed for the whole answer, as chosen by the question's queries), each new token appends its K/V.

**Retrieval ranking** (``retrieve``). The blocks the system actually reads: every (layer, KV group)
reads K blocks; a block's rank is by the number of (layer, group) pairs that read it (votes), ties
broken by the sum of 1 / (rank + 1) of the block within each pair's top-K, then by position. The
initial block(s) and the local window are read always and are not part of the ranking.

**What it finds on this model.** The block score is linear (a mean query against a mean of representative
keys). On SmolLM2-135M it finds a pass key in repeated filler (InfLLM's own showcase; the tests), but in
conversational and multi-key-NIAH haystacks it is nearly question-independent: the same "hub" blocks win
for every question (their representatives are largely newlines and full stops, the tokens local attention
rests on, whose keys align with the direction all queries share). In one needle check (a 476-token chat,
needle in the candidate nearest the question) the reader's full attention gave the needle block the most
mass of the 5 candidates in 56 of the 57 (layer, KV group) pairs of layers 11–29; this score put it first
in 8 of them (chance: ~11). That check was small: on the 8K held-out workloads the question's full
attention ranks the evidence block first in only 6 % (agent memory) / 14 % (NIAH) of those pairs (session
10, below), so the score is not the only limit; the assembly is exact (see Positions).

**Other block scores** (``score``; everything else — ingest, assembly, positions, decoding, the vote
ranking — is the InfLLM mode's, so the systems differ only in which blocks each layer reads). All three
work on the block's keys rotated by their offset inside the block (``R(j) k_j``) and the question's
queries rotated by their distance to a block's first token, so in-block relative positions are the true
ones and only the block's distance from the question is assumed (a block in the middle of the ``top_k``
retrieved slots, ``top_k · S / 2`` tokens before the local window, plus each question token's own distance).

- ``"attn"`` (system ``infllm-attn``): per layer and KV group, the question's own attention over every key of
  every candidate block (softmax over all candidate keys, per query token and query head of the group),
  summed per block (``attention_mass``). No summary stands for a block: this is what full attention from the
  question would give each block, the strongest score this family of methods approximates — at the price of
  reading every stored key of each layer at each ask (ask cost grows with the memory).
- ``"quest"`` (system ``infllm-quest``): Quest (Tang et al. 2024, "Quest: Query-Aware Sparsity for Efficient
  Long-Context LLM Inference"). Per block, KV head and channel ``d`` the minimum and maximum of the keys;
  a query's bound ``sum_d max(q_d min_d, q_d max_d) >= max_j q · k_j`` (``key_bounds``, ``bound_scores``);
  reduced over the group's (question token, query head) pairs by ``reduce`` (max: Quest's choice). Bounds
  cost 2 × 64 values per block and KV head (360 B/token at float16, against 720 for 4 representatives).
- ``"mean"``: the block's mean key (``mean_key``) against each query, reduced as Quest's bound.

**Sink-like tokens** (``skip_sinks``): optionally, tokens whose text has no letter or digit (newlines,
punctuation, ChatML markers) are left out of a block's representative keys, bounds or mean (a block with
nothing else keeps all of its tokens).

**What the scores find** (2026-12-07, bench/RESULTS.md "Block retrieval without sinks"; the 8K held-out
workloads, 8 questions each, recall@8 of the vote ranking, agent memory / NIAH): representatives 0.12 / 0.25,
representatives without sink-like tokens 0.00 / 0.25, Quest 0.00 / 0.00 (max or mean; with or without
sink-like tokens), mean key 0.12 / 0.25, attention over every key 0.12 / 0.50. Per (layer, KV group) in
layers 11–29, the share that put the evidence block in its top 8 of ~115 (chance 0.07): attention mass 0.18 /
0.42, mean key 0.15 / 0.33, max exact q · k 0.12 / 0.23, Quest's bound 0.03 / 0.12. Quest bounds the *max*
logit, and on this model the max is a poorer signal than the attention mass; the bound is looser still
(64 keys' per-channel extremes), and it favours blocks with extreme keys whatever the question.

**State.** One folder per memory: ``kv{layer}.bin`` (2 × KV heads × tokens × 64, pre-RoPE keys and
values), ``reps.bin`` (layers × blocks × KV heads × reps × 64), ``head.bin`` (the system turn's K/V),
``ids.npy`` and ``meta.json``; ~23 KB of K/V per token at float16 (30 layers × 3 KV heads × 64 dims ×
2). An ask maps the files read-only (``np.memmap``) and touches only the representative keys of the
layer it scores and the K blocks it reads; ingest holds only the initial tokens and a window-sized tail
in RAM, so RAM does not grow with the memory.
"""
from __future__ import annotations

import json
import os
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from compare_chunks import CHUNK_SIZE
from compare_readers import stop_ids, system_turn
from hsa_memory.model.generation import next_token
from hsa_memory.model.loading import LoadedModel
from hsa_memory.model.modeling import DecoderLayer, KVCache, apply_rope
from hsa_memory.model.tokenizer import render_turn

STORAGE = {"float16": np.float16, "float32": np.float32}


@dataclass(frozen=True)
class InfLLMConfig:
    block_size: int = CHUNK_SIZE  # block i == chunk position i of the other systems
    init_blocks: int = 1  # stream blocks that join the system turn as initial (sink) tokens
    piece: int = 512  # ingest forward piece, tokens
    window: int = 512  # ingest: stream tokens a token sees besides the initial ones (itself included)
    local: int = 512  # ask: recent stream tokens read as the local window (start aligned down to a block)
    top_k: int = 8  # blocks read per layer and KV group
    reps: int = 4  # representative keys per block and KV head (InfLLM's repr_topk)
    storage: str = "float16"  # K/V and representative keys on disk: float16 or float32
    # block score: "repr" (InfLLM's representative keys), "quest" (per-channel key bounds), "mean" (the
    # block's mean key) or "attn" (the question's full attention over every candidate key: no summary)
    score: str = "repr"
    reduce: str = "max"  # quest / mean: a group's (question token, query head) scores of a block → max or mean
    skip_sinks: bool = False  # leave tokens with no letter or digit out of the block summary (repr/quest/mean)


SCORES = ("repr", "quest", "mean", "attn")
REDUCES = ("max", "mean")
# per score: the block-summary file and its vectors per block and KV head (None: the representatives' count)
SUMMARY = {"repr": ("reps.bin", None), "quest": ("bounds.bin", 2), "mean": ("means.bin", 1), "attn": (None, 0)}


@dataclass
class Prefill:
    """The assembled context after the question: per-layer caches, the next-token logits, what was read."""

    caches: list[KVCache | None]
    logits: torch.Tensor
    position: int  # the next token's position
    # (layer, KV group) → candidate blocks read, best first
    selections: dict[tuple[int, int], list[int]] = field(default_factory=dict)


def vote_ranking(selections: dict[tuple[int, int], list[int]]) -> list[int]:
    """Blocks by how many (layer, group) pairs read them, then by summed reciprocal rank, then position."""
    votes: dict[int, int] = defaultdict(int)
    reciprocal: dict[int, float] = defaultdict(float)
    for ranked in selections.values():
        for rank, block in enumerate(ranked):
            votes[block] += 1
            reciprocal[block] += 1.0 / (rank + 1)
    return sorted(votes, key=lambda b: (-votes[b], -reciprocal[b], b))


def representative_keys(keys: torch.Tensor, received: torch.Tensor, reps: int) -> torch.Tensor:
    """The ``reps`` keys of one block that received the most attention, per KV head.

    keys (S, HK, D) pre-RoPE, received (HK, S) attention each token received → (HK, reps, D),
    best first.
    """
    top = received.topk(min(reps, received.shape[1]), dim=-1).indices  # (HK, r)
    per_head = keys.permute(1, 0, 2)  # (HK, S, D)
    return torch.gather(per_head, 1, top[..., None].expand(-1, -1, per_head.shape[-1]))


def key_bounds(keys: torch.Tensor, keep: torch.Tensor | None = None) -> torch.Tensor:
    """Quest's page summary: per KV head and channel the minimum and maximum of a block's keys.

    keys (S, HK, D), keep (S,) bool or None (all) → (HK, 2, D): [min, max]. A block whose ``keep`` is all
    False uses all of its keys.
    """
    if keep is not None and bool(keep.any()):
        keys = keys[keep]
    return torch.stack([keys.amin(dim=0), keys.amax(dim=0)], dim=1)


def mean_key(keys: torch.Tensor, keep: torch.Tensor | None = None) -> torch.Tensor:
    """A block's mean key per KV head: keys (S, HK, D), keep as ``key_bounds`` → (HK, 1, D)."""
    if keep is not None and bool(keep.any()):
        keys = keys[keep]
    return keys.mean(dim=0)[:, None]


def bound_scores(queries: torch.Tensor, bounds: torch.Tensor) -> torch.Tensor:
    """Quest's upper bound of each query's best dot product with each block: sum_d max(q_d min_d, q_d max_d).

    queries (HK, n, D), bounds (N, HK, 2, D) → (HK, n, N), float32.
    """
    q = queries.float()
    low = bounds[:, :, 0].float().permute(1, 2, 0)  # (HK, D, N)
    high = bounds[:, :, 1].float().permute(1, 2, 0)
    return torch.bmm(q.clamp(min=0), high) + torch.bmm(q.clamp(max=0), low)


def attention_mass(queries: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
    """The attention each block gets from the queries, softmax over all the blocks' keys, summed over the queries.

    queries (HK, n, D) and keys (HK, N, S, D), both rotated → (HK, N).
    """
    HK, N, S, D = keys.shape
    logits = torch.bmm(queries.float(), keys.float().reshape(HK, N * S, D).transpose(1, 2)) * D ** -0.5
    return torch.softmax(logits, dim=-1).view(HK, -1, N, S).sum(dim=(1, 3))


def grouped_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                      visible: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """GQA attention with explicit probabilities, in float32.

    q (T, H, D) and k (S, HK, D) rotated, v (S, HK, D), visible (T, S) → output (T, H·D) in q's dtype and
    the attention each key received, summed over the group's query heads and the queries (HK, S).
    """
    T, H, D = q.shape
    S, HK = k.shape[0], k.shape[1]
    G = H // HK
    qg = q.float().view(T, HK, G, D).permute(1, 2, 0, 3).reshape(HK, G * T, D)
    logits = torch.bmm(qg, k.float().permute(1, 2, 0)) * D ** -0.5  # (HK, G·T, S)
    logits = logits.view(HK, G, T, S).masked_fill(~visible, float("-inf"))
    probs = torch.softmax(logits, dim=-1)
    out = torch.bmm(probs.view(HK, G * T, S), v.float().permute(1, 0, 2))  # (HK, G·T, D)
    out = out.view(HK, G, T, D).permute(2, 0, 1, 3).reshape(T, H * D)
    return out.to(q.dtype), probs.sum(dim=(1, 2))


class BlockWriter:
    """Creates a memory folder at its final size and writes K/V and representative keys into it."""

    def __init__(self, folder: Path, meta: dict):
        self.folder = folder
        self.meta = meta
        folder.mkdir(parents=True, exist_ok=True)
        self.dtype = np.dtype(STORAGE[meta["storage"]])
        self.HK, self.D, self.L = meta["kv_heads"], meta["head_dim"], meta["tokens"]
        self.blocks = meta["tokens"] // meta["block_size"]
        self.kv = []
        for layer in range(meta["layers"]):
            self.kv.append(self._create(f"kv{layer:02d}.bin", 2 * self.HK * self.L * self.D))
        self.head = self._create("head.bin", meta["layers"] * 2 * self.HK * meta["head_tokens"] * self.D)
        # the block summary the score reads: representative keys (InfLLM), per-channel bounds (Quest), mean keys
        name, items = SUMMARY[meta.get("score", "repr")]
        self.summary_items = meta["reps"] if items is None else items
        self.summary = (self._create(name, meta["layers"] * self.blocks * self.HK * self.summary_items * self.D)
                        if name else None)

    def _create(self, name: str, items: int) -> int:
        fd = os.open(self.folder / name, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
        os.ftruncate(fd, items * self.dtype.itemsize)
        return fd

    def _array(self, tensor: torch.Tensor) -> np.ndarray:
        array = tensor.detach().to("cpu", torch.float32).numpy().astype(self.dtype)
        if not np.isfinite(array).all():
            raise ValueError(f"keys/values overflow {self.dtype.name} storage")
        return array

    def write_kv(self, layer: int, start: int, keys: torch.Tensor, values: torch.Tensor) -> None:
        """Pre-RoPE keys and values (T, HK, D) of stream tokens start.. of one layer."""
        array = self._array(torch.stack([keys, values]).permute(0, 2, 1, 3))  # (2, HK, T, D)
        for which in range(2):
            for head in range(self.HK):
                offset = ((which * self.HK + head) * self.L + start) * self.D * self.dtype.itemsize
                os.pwrite(self.kv[layer], np.ascontiguousarray(array[which, head]).tobytes(), offset)

    def write_head(self, layer: int, keys: torch.Tensor, values: torch.Tensor) -> None:
        array = self._array(torch.stack([keys, values]).permute(0, 2, 1, 3))  # (2, HK, h, D)
        os.pwrite(self.head, array.tobytes(), layer * array.nbytes)

    def write_reps(self, layer: int, first_block: int, reps: torch.Tensor) -> None:
        """Block summaries (n, HK, r, D) of blocks first_block.. of one layer: representative keys (r = reps),
        Quest's key bounds (r = 2: min, max) or the mean key (r = 1)."""
        array = self._array(reps)
        per_block = self.HK * self.summary_items * self.D * self.dtype.itemsize
        os.pwrite(self.summary, array.tobytes(), (layer * self.blocks + first_block) * per_block)

    def close(self) -> None:
        for fd in self.kv + [self.head] + ([self.summary] if self.summary is not None else []):
            os.fsync(fd)
            os.close(fd)
        (self.folder / "meta.json").write_text(json.dumps(self.meta, indent=1))


class BlockMemory:
    """An ingested stream on disk, mapped read-only: nothing is read before an ask needs it."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        meta = json.loads((self.folder / "meta.json").read_text())
        self.meta = meta
        self.layers, self.HK, self.D = meta["layers"], meta["kv_heads"], meta["head_dim"]
        self.tokens, self.head_tokens, self.block_size = meta["tokens"], meta["head_tokens"], meta["block_size"]
        self.blocks = self.tokens // self.block_size
        dtype = STORAGE[meta["storage"]]
        self.ids = np.load(self.folder / "ids.npy")
        self.kv = [np.memmap(self.folder / f"kv{layer:02d}.bin", dtype, "r", shape=(2, self.HK, self.tokens, self.D))
                   for layer in range(self.layers)]
        self.head = np.memmap(self.folder / "head.bin", dtype, "r",
                              shape=(self.layers, 2, self.HK, self.head_tokens, self.D))
        self.score = meta.get("score", "repr")
        self.reps = self.bounds = self.means = None
        name, items = SUMMARY[self.score]
        if self.blocks and name:
            summary = np.memmap(self.folder / name, dtype, "r", shape=(
                self.layers, self.blocks, self.HK, meta["reps"] if items is None else items, self.D))
            if self.score == "repr":
                self.reps = summary
            elif self.score == "quest":
                self.bounds = summary
            else:
                self.means = summary

    def nbytes(self) -> int:
        return sum(p.stat().st_size for p in self.folder.iterdir() if p.is_file())

    @staticmethod
    def _tensor(array: np.ndarray, device, dtype) -> torch.Tensor:
        return torch.from_numpy(np.array(array, dtype=np.float32)).to(device=device, dtype=dtype)

    def initial(self, layer: int, stop: int, device, dtype) -> tuple[torch.Tensor, torch.Tensor]:
        """Keys and values (h + stop, HK, D) of the system turn and stream tokens [0, stop)."""
        head = self._tensor(self.head[layer], device, dtype)  # (2, HK, h, D)
        stream = self._tensor(self.kv[layer][:, :, :stop], device, dtype)  # (2, HK, stop, D)
        both = torch.cat([head, stream], dim=2).permute(0, 2, 1, 3)
        return both[0], both[1]

    def gather(self, layer: int, blocks: Sequence[Sequence[int]], device, dtype) -> tuple[torch.Tensor, torch.Tensor]:
        """Per KV head its blocks (the same number each) → keys and values (n·S, HK, D), stream order as given."""
        S = self.block_size
        keys, values = [], []
        for head, chosen in enumerate(blocks):
            rows = np.concatenate([np.arange(b * S, b * S + S) for b in chosen]) if len(chosen) else np.zeros(0, int)
            keys.append(self.kv[layer][0, head][rows])  # fancy indexing on the map reads only these rows
            values.append(self.kv[layer][1, head][rows])
        k = self._tensor(np.stack(keys, axis=1), device, dtype)
        v = self._tensor(np.stack(values, axis=1), device, dtype)
        return k, v

    def representatives(self, layer: int, lo: int, hi: int) -> torch.Tensor:
        """Representative keys (hi - lo, HK, r, D) of blocks [lo, hi), float32 on the CPU."""
        return torch.from_numpy(np.array(self.reps[layer, lo:hi], dtype=np.float32))

    def summaries(self, layer: int, lo: int, hi: int) -> torch.Tensor:
        """Quest bounds (hi - lo, HK, 2, D: min and max of R(offset) · key) or mean keys (hi - lo, HK, 1, D:
        the mean of R(offset) · key) of blocks [lo, hi), float32 on the CPU."""
        return torch.from_numpy(np.array((self.bounds if self.score == "quest" else self.means)[layer, lo:hi],
                                         dtype=np.float32))

    def block_keys(self, layer: int, lo: int, hi: int) -> torch.Tensor:
        """Every pre-RoPE key of blocks [lo, hi): (HK, hi - lo, S, D), float32 on the CPU."""
        S = self.block_size
        keys = np.array(self.kv[layer][0, :, lo * S: hi * S], dtype=np.float32)
        return torch.from_numpy(keys).view(self.HK, hi - lo, S, self.D)


class InfLLM:
    """Ingest a stream into a ``BlockMemory``; answer and retrieve over it (see the module docstring)."""

    def __init__(self, reader: LoadedModel, config: InfLLMConfig = InfLLMConfig()):
        model = reader.model
        cfg = model.config
        if cfg.sliding_window is not None or cfg.attn_sinks:
            raise ValueError("InfLLM needs the full-attention base reader (compare_readers.load_base_reader)")
        if config.storage not in STORAGE:
            raise ValueError(f"storage {config.storage!r}: choose from {sorted(STORAGE)}")
        if config.piece < 1 or config.window < 1 or config.block_size < 1 or config.reps < 1:
            raise ValueError(f"invalid InfLLMConfig {config}")
        if config.score not in SCORES or config.reduce not in REDUCES:
            raise ValueError(f"score {config.score!r} / reduce {config.reduce!r}: choose from {SCORES} / {REDUCES}")
        self.reader, self.model, self.config = reader, model, config
        # the reader's decoder layers with their index in model.layers (the HSA layers stay out: silent)
        self.decoder = [(i, layer) for i, layer in enumerate(model.model.layers) if isinstance(layer, DecoderLayer)]
        self.H, self.HK, self.D = cfg.num_heads, cfg.num_kv_heads, cfg.head_dim
        self.device = model.lm_head.weight.device
        self.dtype = model.lm_head.weight.dtype
        self.head_ids = self.encode(system_turn())
        self.peak_tail = 0  # most stream tokens held in RAM by the last ingest (initial ones aside)
        self.last_selections: dict[tuple[int, int], list[int]] = {}
        self._sinkish: dict[int, bool] = {}

    def sink_like(self, ids: Sequence[int]) -> torch.Tensor:
        """(len(ids),) bool: tokens whose text has no letter or digit (newlines, punctuation, ChatML markers)."""
        for token in set(ids) - self._sinkish.keys():
            text = self.reader.tokenizer.decode([token], skip_special_tokens=True)
            self._sinkish[token] = not any(ch.isalnum() for ch in text)
        return torch.tensor([self._sinkish[t] for t in ids], dtype=torch.bool, device=self.device)

    def encode(self, text: str) -> list[int]:
        return self.reader.tokenizer.encode(text, add_special_tokens=False).ids

    def question_ids(self, question: str) -> list[int]:
        return self.encode(render_turn("user", question) + "<|im_start|>assistant\n")

    def layout(self, tokens: int) -> tuple[int, int, int, int]:
        """(initial stream tokens, local window's first token, candidate blocks [lo, hi)) of a stream."""
        S = self.config.block_size
        initial = min(self.config.init_blocks * S, tokens)
        local_start = max(initial, (max(0, tokens - self.config.local) // S) * S)
        return initial, local_start, initial // S, max(initial // S, local_start // S)

    # ---- ingest -------------------------------------------------------------------------------
    def _ingest_layer(self, layer: DecoderLayer, hidden, ctx_k, ctx_v, cos, sin, visible):
        """One decoder layer over a piece with explicit attention: (hidden, pre-RoPE keys, values, received)."""
        attn = layer.self_attn
        T = hidden.shape[1]
        x = layer.input_layernorm(hidden)
        q = attn.q_proj(x).view(1, T, self.H, self.D)
        k = attn.k_proj(x).view(1, T, self.HK, self.D)
        v = attn.v_proj(x).view(1, T, self.HK, self.D)
        if attn.q_norm is not None:
            q, k = attn.q_norm(q), attn.k_norm(k)
        keys = torch.cat([ctx_k, k[0]])
        values = torch.cat([ctx_v, v[0]])
        out, received = grouped_attention(apply_rope(q, cos[-T:], sin[-T:])[0], apply_rope(keys[None], cos, sin)[0],
                                          values, visible)
        hidden = hidden + attn.o_proj(out[None])
        hidden = hidden + layer.mlp(layer.post_attention_layernorm(hidden))
        return hidden, k[0], v[0], received

    @torch.no_grad()
    def ingest(self, stream_ids: Sequence[int], folder: Path) -> BlockMemory:
        """Encode the stream in pieces with bounded attention; write K/V and representative keys to ``folder``."""
        c, S, W = self.config, self.config.block_size, self.config.window
        L, h = len(stream_ids), len(self.head_ids)
        if L == 0:
            raise ValueError("an empty stream has nothing to remember")
        initial, _, first_block, _ = self.layout(L)
        n_layers = len(self.decoder)
        writer = BlockWriter(Path(folder), {
            "layers": n_layers, "kv_heads": self.HK, "head_dim": self.D, "tokens": L, "head_tokens": h,
            "block_size": S, "reps": c.reps, "storage": c.storage, "score": c.score, "config": asdict(c)})
        np.save(Path(folder) / "ids.npy", np.asarray(stream_ids, dtype=np.int32))
        empty = torch.zeros(0, self.HK, self.D, device=self.device, dtype=self.dtype)
        # global token index: the system turn -h..-1, the stream 0..L-1
        sink_k, sink_v = [empty] * n_layers, [empty] * n_layers
        sink_idx = torch.zeros(0, dtype=torch.long, device=self.device)
        tail_k, tail_v = [empty] * n_layers, [empty] * n_layers  # pre-RoPE stream tokens [tail_start, done)
        received = torch.zeros(n_layers, self.HK, 0, device=self.device)  # attention the tail's tokens received
        tail_start, next_block = initial, first_block
        self.peak_tail = 0
        pieces = [(-h, 0), (0, initial)] + [(lo, min(lo + c.piece, L)) for lo in range(initial, L, c.piece)]
        rotary = self.model.model.rotary
        offset_cos, offset_sin = rotary(torch.arange(S, device=self.device))  # Quest: R(offset in the block)
        for lo, hi in pieces:
            if hi <= lo:
                continue
            ids = self.head_ids if lo < 0 else list(stream_ids[lo:hi])
            T = hi - lo
            sink_piece = hi <= initial
            q_idx = torch.arange(lo, hi, device=self.device)
            key_idx = torch.cat([sink_idx, torch.arange(tail_start, max(lo, tail_start), device=self.device), q_idx])
            key_sink = key_idx < initial
            # compact positions: the initial tokens at their own, the tail right after them (gap closed)
            positions = torch.where(key_sink, key_idx + h, key_idx + h - (tail_start - initial))
            visible = (key_idx[None] <= q_idx[:, None]) & (key_sink[None] | (q_idx[:, None] - key_idx[None] < W))
            cos, sin = rotary(positions)
            hidden = self.model.model.embed_tokens(torch.tensor([ids], device=self.device))
            n_sink = sink_idx.shape[0]
            for layer, (_, module) in enumerate(self.decoder):
                ctx_k = torch.cat([sink_k[layer], tail_k[layer]])
                ctx_v = torch.cat([sink_v[layer], tail_v[layer]])
                hidden, k, v, got = self._ingest_layer(module, hidden, ctx_k, ctx_v, cos, sin, visible)
                if lo < 0:
                    writer.write_head(layer, k, v)
                else:
                    writer.write_kv(layer, lo, k, v)
                if sink_piece:
                    sink_k[layer], sink_v[layer] = torch.cat([sink_k[layer], k]), torch.cat([sink_v[layer], v])
                else:
                    tail_k[layer], tail_v[layer] = torch.cat([tail_k[layer], k]), torch.cat([tail_v[layer], v])
                    if layer == 0:
                        received = torch.cat([received, torch.zeros(n_layers, self.HK, T, device=self.device)], -1)
                    received[layer] += got[:, n_sink:].float()
            if sink_piece:
                sink_idx = torch.cat([sink_idx, q_idx])
                continue
            self.peak_tail = max(self.peak_tail, hi - tail_start)
            # blocks no later query can see get their representative keys
            ready = L // S if hi == L else min(L // S, max(next_block, (hi - W + 1) // S))
            if ready > next_block:
                off = next_block * S - tail_start
                keep = [None] * (ready - next_block)
                if c.skip_sinks:
                    keep = [~self.sink_like([int(t) for t in stream_ids[b * S: b * S + S]])
                            for b in range(next_block, ready)]
                for layer in range(n_layers):
                    if c.score in ("quest", "mean"):
                        summary = key_bounds if c.score == "quest" else mean_key
                        summaries = [summary(apply_rope(tail_k[layer][off + i * S: off + i * S + S][None].float(),
                                                        offset_cos, offset_sin)[0], keep[i])
                                     for i in range(ready - next_block)]
                    elif c.score == "attn":
                        continue
                    else:
                        summaries = []
                        for i in range(ready - next_block):
                            got_i = received[layer][:, off + i * S: off + i * S + S]
                            if keep[i] is not None and bool(keep[i].any()):
                                got_i = got_i.masked_fill(~keep[i], float("-inf"))
                            summaries.append(representative_keys(tail_k[layer][off + i * S: off + i * S + S],
                                                                 got_i, c.reps))
                    writer.write_reps(layer, next_block, torch.stack(summaries))
                next_block = ready
            # keep what the next window sees and the blocks still collecting attention
            keep = max(tail_start, min(next_block * S, hi - W + 1))
            cut = keep - tail_start
            if cut:
                tail_k = [t[cut:] for t in tail_k]
                tail_v = [t[cut:] for t in tail_v]
                received = received[:, :, cut:]
                tail_start = keep
        writer.close()
        return BlockMemory(folder)

    # ---- ask ----------------------------------------------------------------------------------
    def _select_by_keys(self, memory: BlockMemory, layer: int, queries: torch.Tensor, distances: torch.Tensor,
                        lo: int, hi: int, k: int) -> list[list[int]]:
        """Per KV group the top-k candidate blocks [lo, hi), best first, for the scores other than InfLLM's:
        each question token's query heads, rotated by its distance to a block's first token, against every
        block's Quest bounds or mean key (reduced, max or mean, over the group's (token, head) pairs) or
        against every key of every candidate block (attention mass)."""
        Tq, G = queries.shape[0], self.H // self.HK
        cos, sin = self.model.model.rotary(distances)
        rotated = apply_rope(queries.float()[None], cos, sin)[0]  # (Tq, H, D)
        per_group = rotated.view(Tq, self.HK, G, self.D).permute(1, 0, 2, 3).reshape(self.HK, Tq * G, self.D)
        per_group = per_group.cpu()
        if memory.score == "attn":
            # the question's own attention over every candidate key (softmax over the candidates), summed per
            # block over the group's (token, head) pairs: what full attention would give each block
            keys = memory.block_keys(layer, lo, hi)  # (HK, N, S, D) pre-RoPE
            HK, N, S, D = keys.shape
            cos, sin = self.model.model.rotary(torch.arange(S))
            keys = apply_rope(keys.reshape(HK * N, S, 1, D), cos.cpu(), sin.cpu())  # R(offset in the block)
            scores = attention_mass(per_group, keys.view(HK, N, S, D))
        else:
            summaries = memory.summaries(layer, lo, hi)  # (N, HK, r, D)
            if memory.score == "quest":
                scores = bound_scores(per_group, summaries)  # (HK, Tq·G, N)
            else:
                scores = torch.einsum("hqd,nhd->hqn", per_group, summaries[:, :, 0])
            scores = scores.amax(dim=1) if self.config.reduce == "max" else scores.mean(dim=1)
        return (scores.topk(k, dim=-1).indices + lo).tolist()

    def _select(self, memory: BlockMemory, layer: int, queries: torch.Tensor, lo: int, hi: int,
                k: int) -> list[list[int]]:
        """Per KV group the top-k candidate blocks [lo, hi), best first, scored as InfLLM does."""
        angle = torch.tensor([self.config.local], device=queries.device)
        cos, sin = self.model.model.rotary(angle)
        mean = queries.float().mean(dim=0)  # (H, D) pre-RoPE, over the question's tokens
        rotated = apply_rope(mean[None, None], cos, sin)[0, 0]  # one angle: the block sits a local window back
        per_group = rotated.view(self.HK, self.H // self.HK, self.D).sum(dim=1).cpu()  # (HK, D)
        reps = memory.representatives(layer, lo, hi)  # (N, HK, r, D)
        scores = torch.einsum("gd,ngrd->gn", per_group, reps) / reps.shape[2]
        top = scores.topk(k, dim=-1).indices + lo  # (HK, k)
        return top.tolist()

    @torch.no_grad()
    def prefill(self, memory: BlockMemory, question: str, top_k: int | None = None) -> Prefill:
        """Local window + question through the model, each layer over its assembled context."""
        S = self.config.block_size
        if memory.score != self.config.score:
            raise ValueError(f"a memory ingested with score={memory.score!r} read with score={self.config.score!r}")
        initial, local_start, lo, hi = self.layout(memory.tokens)
        K = min(self.config.top_k if top_k is None else top_k, hi - lo)
        q_ids = self.question_ids(question)
        ids = [int(t) for t in memory.ids[local_start:]] + q_ids
        T, Tq = len(ids), len(q_ids)
        context = memory.head_tokens + initial + K * S  # initial tokens + retrieved blocks
        rotary = self.model.model.rotary
        cos_c, sin_c = rotary(torch.arange(context, device=self.device))
        cos_q, sin_q = rotary(torch.arange(context, context + T, device=self.device))
        hidden = self.model.model.embed_tokens(torch.tensor([ids], device=self.device))
        caches: list[KVCache | None] = [None] * len(self.model.model.layers)
        selections: dict[tuple[int, int], list[int]] = {}
        for layer, (index, module) in enumerate(self.decoder):
            keys, values = memory.initial(layer, initial, self.device, self.dtype)
            if K:
                attn = module.self_attn
                queries = attn.q_proj(module.input_layernorm(hidden[:, T - Tq:])).view(1, Tq, self.H, self.D)
                if attn.q_norm is not None:
                    queries = attn.q_norm(queries)
                if memory.score != "repr":
                    # a question token sits (its offset in the ask) + K·S/2 tokens after a middle slot's block
                    distances = torch.arange(T - Tq, T, device=self.device) + K * S // 2
                    ranked = self._select_by_keys(memory, layer, queries[0], distances, lo, hi, K)
                else:
                    ranked = self._select(memory, layer, queries[0], lo, hi, K)
                for group, blocks in enumerate(ranked):
                    selections[(layer, group)] = blocks
                blocks_k, blocks_v = memory.gather(layer, [sorted(b) for b in ranked], self.device, self.dtype)
                keys, values = torch.cat([keys, blocks_k]), torch.cat([values, blocks_v])
            cache = KVCache(None)
            cache.keys = apply_rope(keys[None], cos_c, sin_c)
            cache.values = values[None]
            hidden = module(hidden, cos_q, sin_q, cache)  # the reader's own layer: cache + causal over the new tokens
            caches[index] = cache
        logits = self.model.lm_head(self.model.model.norm(hidden)[0, -1])
        return Prefill(caches, logits, context + T, selections)

    @torch.no_grad()
    def answer(self, memory: BlockMemory, question: str, max_new_tokens: int = 32) -> str:
        """Greedy reply over the assembled context (retrieved blocks fixed while decoding)."""
        state = self.prefill(memory, question)
        stops, tokens = set(stop_ids(self.reader)), []
        logits, position = state.logits, state.position
        for _ in range(max_new_tokens):
            token = next_token(logits, 0.0, 1.0, None)
            if token in stops:
                break
            tokens.append(token)
            hidden = self.model.model(torch.tensor([[token]], device=self.device),
                                      torch.tensor([position], device=self.device), caches=state.caches)
            logits = self.model.lm_head(hidden[0, -1])
            position += 1
        self.last_selections = state.selections
        return self.reader.tokenizer.decode(tokens, skip_special_tokens=True).strip()

    def retrieve(self, memory: BlockMemory, question: str, k: int) -> list[int]:
        """The candidate blocks the question's layers read, best first (``vote_ranking``), at most ``k``."""
        return vote_ranking(self.prefill(memory, question).selections)[:k]
