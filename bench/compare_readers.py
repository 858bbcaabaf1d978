"""The base SmolLM2 as the baselines' reader: over retrieved chunks (RAG) or the whole memory (full context).

The reader is the project's own model class and GGUF loader with the HSA layers silent and no
sliding window (``sliding_window=None``, no sink logits): exactly SmolLM2-135M-Instruct with full
causal attention. Greedy, ChatML, the default SmolLM2 system turn.
"""
from __future__ import annotations

import dataclasses
import time
from typing import Sequence

import torch

from hsa_memory.model.config import DEFAULT_PRESET, get_preset
from hsa_memory.model.generation import new_caches, next_token
from hsa_memory.model.loading import LoadedModel, load_model
from hsa_memory.model.tokenizer import DEFAULT_SYSTEM_PROMPT, render_turn

BASE_CONTEXT = 8192  # SmolLM2's trained context length


def load_base_reader(device: str = "cpu", dtype: torch.dtype | None = None) -> LoadedModel:
    """SmolLM2 with full attention and no HSA: the project's loader, no trained checkpoint."""
    device = torch.device(device)
    dtype = dtype or (torch.bfloat16 if device.type == "cuda" else torch.float32)
    config = dataclasses.replace(get_preset(DEFAULT_PRESET), sliding_window=None, attn_sinks=False)
    return load_model(config, checkpoint=None, device=device, dtype=dtype)


def system_turn() -> str:
    return render_turn("system", DEFAULT_SYSTEM_PROMPT)


def rag_prompt(chunks: Sequence[str], question: str) -> str:
    """System turn, then one user turn with the excerpts (stream order) and the question, then the reply."""
    excerpts = "\n\n".join(text.strip() for text in chunks)
    user = (f"Excerpts from our past conversations:\n\n{excerpts}\n\n"
            f"Answer the question briefly, using the excerpts.\nQuestion: {question}")
    return system_turn() + render_turn("user", user) + "<|im_start|>assistant\n"


def stop_ids(reader: LoadedModel) -> tuple[int, int]:
    config = reader.model.config
    return config.im_end_token_id, config.eos_token_id


@torch.no_grad()
def decode_from(reader: LoadedModel, caches, prompt: list[int], position: int, max_new_tokens: int) -> str:
    """Feed ``prompt`` at ``position`` on top of ``caches`` (mutated), then greedy-decode the reply."""
    model = reader.model
    device = model.lm_head.weight.device
    positions = torch.arange(position, position + len(prompt), device=device)
    hidden = model.model(torch.tensor([prompt], device=device), positions, caches=caches)
    logits = model.lm_head(hidden[0, -1])
    position += len(prompt)
    stops, tokens = set(stop_ids(reader)), []
    for _ in range(max_new_tokens):
        token = next_token(logits, 0.0, 1.0, None)
        if token in stops:
            break
        tokens.append(token)
        hidden = model.model(torch.tensor([[token]], device=device), torch.tensor([position], device=device),
                             caches=caches)
        logits = model.lm_head(hidden[0, -1])
        position += 1
    return reader.tokenizer.decode(tokens, skip_special_tokens=True).strip()


def rag_answer(reader: LoadedModel, chunks: Sequence[str], question: str, max_new_tokens: int = 32) -> str:
    ids = reader.tokenizer.encode(rag_prompt(chunks, question), add_special_tokens=False).ids
    return decode_from(reader, new_caches(reader.model), ids, 0, max_new_tokens)


class FullContext:
    """The whole memory in SmolLM2's context, prefilled once; each question reuses that prefix cache.

    Keeps the most recent tokens that fit the 8K window with the question and the reply (older ones
    are dropped: what a user of a fixed window gets). Questions are answered from a copy of the
    cache, so they do not see each other.
    """

    def __init__(self, reader: LoadedModel, stream_ids: Sequence[int], reserve: int = 160, block: int = 1024):
        self.reader = reader
        head = reader.tokenizer.encode(system_turn(), add_special_tokens=False).ids
        budget = BASE_CONTEXT - reserve - len(head)
        self.dropped = max(0, len(stream_ids) - budget)
        ids = head + list(stream_ids[self.dropped:])
        self.caches = new_caches(reader.model)
        model, device = reader.model, reader.model.lm_head.weight.device
        started = time.perf_counter()
        with torch.no_grad():
            for start in range(0, len(ids), block):
                piece = torch.tensor([ids[start:start + block]], device=device)
                model.model(piece, torch.arange(start, start + piece.shape[1], device=device), caches=self.caches)
        self.prefill_seconds = time.perf_counter() - started
        self.length = len(ids)

    def cache_bytes(self) -> int:
        return sum(c.keys.numel() * c.keys.element_size() * 2 for c in self.caches if c is not None and c.keys is not None)

    def answer(self, question: str, max_new_tokens: int = 32) -> str:
        turn = render_turn("user", question) + "<|im_start|>assistant\n"
        ids = self.reader.tokenizer.encode(turn, add_special_tokens=False).ids
        saved = [(c.keys, c.values) if c is not None else None for c in self.caches]
        try:
            return decode_from(self.reader, self.caches, ids, self.length, max_new_tokens)
        finally:
            for cache, kept in zip(self.caches, saved):
                if cache is not None:
                    cache.keys, cache.values = kept
