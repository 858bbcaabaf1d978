"""Hand-written stand-ins for the Memory API: deterministic events, chunks and K/V."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import numpy as np

from hsa_memory.store import KVLayout, MemoryStore, NewChunk

T0 = datetime(2024, 1, 1, tzinfo=timezone.utc)
# small and odd, so the tests run fast and shape mix-ups show
LAYOUT = KVLayout(chunk_size=64, kv_heads=2, head_dim=24, landmark_dim=40)


def kv_for(position: int, layout: KVLayout = LAYOUT) -> tuple[np.ndarray, np.ndarray]:
    """K/V of one chunk, a pure function of its position, so any reader can check what it got."""
    rng = np.random.default_rng(1000 + position)
    k = rng.standard_normal((1, *layout.kv_shape)).astype(np.float32)
    v = rng.standard_normal((1, *layout.kv_shape)).astype(np.float32)
    return k, v


def landmark_for(position: int, layout: KVLayout = LAYOUT) -> np.ndarray:
    rng = np.random.default_rng(5000 + position)
    return rng.standard_normal((1, layout.landmark_dim)).astype(np.float32)


class Feeder:
    """Appends events and encodes them into chunks the way the Memory API will.

    The next chunk position lives in the ingest state, as the API keeps its tail there, so
    several processes feeding one store continue each other's stream.
    """

    def __init__(self, store: MemoryStore):
        self.store = store

    def event(self, text: str, minutes: float = 0, role: str = "user", metadata: dict | None = None) -> int:
        return self.store.append_event(text, role, T0 + timedelta(minutes=minutes), metadata or {})

    def chunk(self, first_seq: int, last_seq: int, text: str = "", n: int = 1) -> list[int]:
        """``n`` chunks made from events first_seq..last_seq, at the next positions."""
        store = self.store
        with store.writer():
            _, state = store.ingest_cursor()
            position = json.loads(state)["next_position"] if state else 0
            positions = range(position, position + n)
            chunks = [NewChunk(p, p * 64, p * 64 + 64, T0 + timedelta(minutes=first_seq),
                               T0 + timedelta(minutes=last_seq), ["user"], text or f"chunk {p}", first_seq, last_seq)
                      for p in positions]
            keys = np.concatenate([kv_for(p, store.layout)[0] for p in positions])
            values = np.concatenate([kv_for(p, store.layout)[1] for p in positions])
            landmarks = np.concatenate([landmark_for(p, store.layout) for p in positions])
            state = json.dumps({"next_position": position + n}).encode()
            return store.add_chunks(chunks, landmarks, keys, values, state, last_seq)

    def events_and_chunks(self, count: int, text: str = "event {i}") -> list[int]:
        """``count`` events, each turned into one chunk; returns the chunk ids."""
        ids = []
        for i in range(count):
            seq = self.event(text.format(i=i), minutes=i, metadata={"i": i})
            ids += self.chunk(seq, seq)
        return ids


def expected_kv(position: int, layout: KVLayout = LAYOUT):
    """What get_kv must return for a chunk at ``position``: the fake K/V rounded to the layout dtype."""
    import torch

    k, v = kv_for(position, layout)
    dtype = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}[layout.kv_dtype]
    return torch.from_numpy(k[0]).to(dtype), torch.from_numpy(v[0]).to(dtype)
