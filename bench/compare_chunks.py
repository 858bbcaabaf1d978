"""The token stream and 64-token chunks exactly as ``Memory`` ingest makes them.

Every system in ``bench/compare.py`` reads these chunks, so a baseline never wins or loses by
chunking differently: each message is one ChatML turn (``render_turn``), tokenised piecewise the
way ``hsa_memory.ingest.Ingestor`` does, the turns are concatenated, and chunk ``i`` is tokens
``[64 i, 64 i + 64)`` decoded without special tokens (the text the store keeps for a chunk).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from hsa_memory.ingest import split_for_tokenizer
from hsa_memory.model.tokenizer import render_turn

CHUNK_SIZE = 64


@dataclass
class Stream:
    """Token ids of a message stream, and where each message's turn sits in it."""

    ids: list[int]
    spans: dict[str, tuple[int, int]]  # message id → [start, stop) token span of its turn


@dataclass
class Chunk:
    position: int  # chunk index in the stream (the store's ``ChunkInfo.position``)
    text: str
    full: bool  # False for the open tail chunk, which hsa-memory keeps in its sliding window instead


def turn_ids(tokenizer, role: str, content: str) -> list[int]:
    """One message's tokens, cut and encoded as the ingest pipeline does."""
    ids: list[int] = []
    for piece in split_for_tokenizer(render_turn(role, content)):
        ids.extend(tokenizer.encode(piece, add_special_tokens=False).ids)
    return ids


def build_stream(messages: Sequence[dict], tokenizer) -> Stream:
    """Messages ``{"id", "role", "content"}`` in order → the memory's token stream."""
    ids: list[int] = []
    spans: dict[str, tuple[int, int]] = {}
    for message in messages:
        turn = turn_ids(tokenizer, message["role"], message["content"])
        spans[message["id"]] = (len(ids), len(ids) + len(turn))
        ids.extend(turn)
    return Stream(ids, spans)


def make_chunks(ids: Sequence[int], tokenizer, chunk_size: int = CHUNK_SIZE, include_open: bool = True) -> list[Chunk]:
    """Chunk texts in stream order; the trailing partial chunk too unless ``include_open`` is False."""
    chunks = []
    for position, start in enumerate(range(0, len(ids), chunk_size)):
        piece = list(ids[start:start + chunk_size])
        full = len(piece) == chunk_size
        if not full and not include_open:
            break
        chunks.append(Chunk(position, tokenizer.decode(piece, skip_special_tokens=True), full))
    return chunks
