"""ChunkPositions: the ask path's chunk id → position map (vectorised, read from the catalog once)."""
from types import SimpleNamespace

import pytest
import torch

from hsa_memory.store.errors import ChunkNotFound
from hsa_memory.store_memory import ChunkPositions


class FakeStore:
    def __init__(self, positions: dict[int, int]):
        self.positions = positions
        self.asked: list[list[int]] = []

    def chunks(self, ids):
        self.asked.append(list(ids))
        missing = [i for i in ids if i not in self.positions]
        if missing:
            raise ChunkNotFound(missing)
        return [SimpleNamespace(id=i, position=self.positions[i]) for i in ids]


def test_lookup_reads_each_id_once_in_any_order():
    store = FakeStore({i: 1000 + 3 * i for i in range(0, 40, 2)})
    index = ChunkPositions()
    assert index.lookup(store, torch.tensor([], dtype=torch.long)).tolist() == []
    assert index.lookup(store, torch.tensor([10, 2, 6])).tolist() == [1030, 1006, 1018]
    # known ids cost nothing; new ones (some smaller, some larger than known) are fetched once
    assert index.lookup(store, torch.tensor([6, 0, 38, 10, 0])).tolist() == [1018, 1000, 1114, 1030, 1000]
    assert store.asked == [[2, 6, 10], [0, 38]]
    assert index.lookup(store, torch.tensor([38, 2])).tolist() == [1114, 1006]
    assert len(store.asked) == 2 and len(index) == 5


def test_unknown_chunk_raises_and_leaves_the_index_usable():
    store = FakeStore({1: 64, 2: 128})
    index = ChunkPositions()
    with pytest.raises(ChunkNotFound):
        index.lookup(store, torch.tensor([1, 99]))
    assert index.lookup(store, torch.tensor([2, 1])).tolist() == [128, 64]


def test_many_chunks_one_catalog_read():
    n = 250_000  # a 16M-token memory
    store = FakeStore({i: i for i in range(n)})
    index = ChunkPositions()
    ids = torch.arange(n)
    assert torch.equal(index.lookup(store, ids), ids)
    assert torch.equal(index.lookup(store, ids), ids)
    assert len(store.asked) == 1


class KVStore:
    """Chunk i's keys and values are filled with i and −i; every read is recorded."""

    def __init__(self):
        self.reads: list[list[int]] = []

    def get_kv(self, ids, device=None, dtype=None):
        self.reads.append(list(ids))
        keys = torch.stack([torch.full((4, 1, 2), float(i)) for i in ids])
        return keys, -keys


def test_kv_cache_overflow_keeps_what_the_call_reads(monkeypatch):
    """When a read would overflow the per-ask cache, ids of the same call that were cached before must
    still be served (they were cleared and then looked up: KeyError at 16M tokens)."""
    import hsa_memory.store_memory as store_memory

    monkeypatch.setattr(store_memory, "KV_PER_ASK", 6)
    memory = store_memory.StoreMemory.__new__(store_memory.StoreMemory)
    memory.store, memory.device, memory.dtype, memory._kv = KVStore(), torch.device("cpu"), torch.float32, {}
    for request in ([1, 2, 3, 4], [1, 5, 6, 7, 2, 5], [8, 9, 10, 11, 12, 13, 14, 1]):
        keys, values = memory.kv(torch.tensor(request))
        assert keys[:, 0, 0, 0].tolist() == [float(i) for i in request]
        assert torch.equal(values, -keys)
    # each chunk is read once while cached; the third call (8 wanted, over the bound) reads only the new ones
    assert memory.store.reads == [[1, 2, 3, 4], [5, 6, 7], [8, 9, 10, 11, 12, 13, 14]]
    assert set(memory._kv) == {1, 8, 9, 10, 11, 12, 13, 14}
