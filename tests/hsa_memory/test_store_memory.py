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
