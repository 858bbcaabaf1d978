"""Ask: the recent tail + the question run through the whole model, HSA layers reading the store.

Every HSA layer routes every token (question and generated) to its top-K chunks over the whole
memory; the answer's citations are the chunks ranked by the fusion weight they received, summed
over the answer's tokens, heads and layers.
"""
from __future__ import annotations

import time
from typing import Iterator

import torch

from hsa_memory.model import RetrievalTrace
from hsa_memory.model.generation import generate

from hsa_memory.model.tokenizer import render_turn
from .copy_bias import DEFAULT_STRENGTH, CopyBias
from .types import Answer, Citation, Hit


class AskPipeline:
    def __init__(self, model, tokenizer, store, positions_cache, recent):
        # positions_cache: the memory's ChunkPositions (chunk id → stream position), shared by its asks;
        # recent: its RecentContext (the SWA caches after the stream's tail)
        self.model = model
        self.recent = recent
        self.tokenizer = tokenizer
        self.store = store
        self.positions_cache = positions_cache

    def memory(self):
        from .store_memory import StoreMemory

        weight = self.model.lm_head.weight
        return StoreMemory(self.store, self.positions_cache, weight.device, weight.dtype)

    def prompt(self, question: str) -> list[int]:
        turn = render_turn("user", question) + "<|im_start|>assistant\n"
        return self.tokenizer.encode(turn, add_special_tokens=False).ids

    def stream(self, question: str, tail_ids: list[int], stream_position: int, answer: Answer, *,
               max_new_tokens: int = 256, temperature: float = 0.0, top_p: float = 1.0, seed: int | None = None,
               citations: int = 5, copy_bias: float = DEFAULT_STRENGTH) -> Iterator[str]:
        """Yield the answer's text as it is generated; fills ``answer`` (text, citations, timings) at the end.

        ``copy_bias``: the logit bonus of tokens that continue the answer inside the chunks it reads
        (``copy_bias.CopyBias``; 0 = the model alone)."""
        started = time.perf_counter()
        prompt = self.prompt(question)
        memory = self.memory()
        timings: dict[str, float] = {}
        caches, context_start = self.recent.caches(tail_ids, stream_position, self.store.generation(), memory, timings)
        trace = RetrievalTrace(count_from=stream_position + len(prompt) - 1)
        generator = torch.Generator().manual_seed(seed) if seed is not None else None
        config = self.model.config
        tokens: list[int] = []
        text = ""
        first_token_at = None
        for token in generate(self.model, prompt, memory=memory, start_position=stream_position, caches=caches,
                              max_new_tokens=max_new_tokens, stop_ids=(config.im_end_token_id, config.eos_token_id),
                              temperature=temperature, top_p=top_p, generator=generator, trace=trace,
                              logits_processor=CopyBias(self.store, self.tokenizer, trace, copy_bias) if copy_bias else None):
            if first_token_at is None:
                first_token_at = time.perf_counter()
            tokens.append(token)
            decoded = self.tokenizer.decode(tokens, skip_special_tokens=True)
            # hold back a trailing partial UTF-8 character until its last byte arrives
            if not decoded.endswith("\ufffd") and len(decoded) > len(text):
                yield decoded[len(text):]
                text = decoded
        final = self.tokenizer.decode(tokens, skip_special_tokens=True)
        if len(final) > len(text):
            yield final[len(text):]
        answer.text = final.strip()
        answer.tokens = len(tokens)
        answer.citations = self.citations(trace, citations)
        total = time.perf_counter() - started
        answer.timings = {**timings, **trace.seconds, "total": total,
                          "first_token": (first_token_at or time.perf_counter()) - started,
                          "chunks_in_memory": float(len(memory)),
                          "context_length": float(stream_position - context_start)}

    def ranked_chunks(self, trace: RetrievalTrace, limit: int) -> list[tuple]:
        """The ``limit`` heaviest chunks of a trace as (ChunkInfo, share of all routing weight)."""
        ranked = trace.ranked()
        total = sum(w for _, w in ranked) or 1.0
        top = ranked[:limit]
        infos = {info.id: info for info in self.store.chunks([c for c, _ in top])} if top else {}
        return [(infos[c], w / total) for c, w in top if c in infos]

    def citations(self, trace: RetrievalTrace, limit: int) -> list[Citation]:
        return [Citation(info.id, info.text, share, tuple(info.roles), info.time_start)
                for info, share in self.ranked_chunks(trace, limit)]

    @torch.no_grad()
    def search(self, query: str, k: int, stream_position: int) -> list[Hit]:
        """Rank chunks by the routing weight the query's tokens give them (retrieval only, no generation)."""
        ids = self.tokenizer.encode(render_turn("user", query), add_special_tokens=False).ids
        memory = self.memory()
        trace = RetrievalTrace(count_from=stream_position)
        device = self.model.lm_head.weight.device
        positions = torch.arange(stream_position, stream_position + len(ids), device=device)
        self.model.model(torch.tensor([ids], device=device), positions, memory=memory, trace=trace)
        return [Hit(info.id, info.text, share, tuple(info.roles), info.time_start)
                for info, share in self.ranked_chunks(trace, k)]
