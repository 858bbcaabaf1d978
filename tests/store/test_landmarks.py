"""landmarks.py: the landmark matrix on disk and resident.

Scenarios:
- appends land at the committed row and overwrite uncommitted leftovers;
- capacity doubles: n appends of one row resize the file O(log n) times (amortised O(1));
- the cache folds in only new rows, keeps handed-out views valid, and rebuilds on a new generation;
- a wrong header is StoreCorrupted.
"""
import numpy as np
import pytest
import torch

from hsa_memory.store import landmarks
from hsa_memory.store.errors import StoreCorrupted
from hsa_memory.store.landmarks import LandmarkCache


def rows(n, dim=5, start=0):
    return (np.arange(start * dim, (start + n) * dim, dtype=np.float32).reshape(n, dim))


def test_append_and_read(tmp_path):
    path = tmp_path / "l.f32"
    landmarks.create(path, 5)
    landmarks.append(path, 0, rows(3))
    landmarks.append(path, 3, np.full((1, 5), -1, np.float32))  # uncommitted leftover at row 3 …
    landmarks.append(path, 3, rows(2, start=3))                  # … overwritten by the next append
    assert np.array_equal(landmarks.read_rows(path, 5, range(0, 5)), rows(5))
    assert np.array_equal(landmarks.read_rows(path, 5, [4, 0]), rows(5)[[4, 0]])
    landmarks.check_header(path, 5)
    with pytest.raises(StoreCorrupted, match="5 floats"):
        landmarks.check_header(path, 6)


def test_capacity_doubles(tmp_path):
    path = tmp_path / "l.f32"
    landmarks.create(path, 4)
    sizes = set()
    for i in range(300):
        landmarks.append(path, i, np.full((1, 4), i, np.float32))
        sizes.add(path.stat().st_size)
    assert len(sizes) <= 10  # 1, 2, 4, … 512 rows
    assert landmarks.read_rows(path, 4, [299])[0, 0] == 299


def test_cache_appends_tails_and_keeps_views(tmp_path):
    path = tmp_path / "l.f32"
    landmarks.create(path, 5)
    landmarks.append(path, 0, rows(100))
    cache = LandmarkCache(5)
    assert cache.needs(1, "l.f32", 100) == "full"
    cache.sync(1, "l.f32", 100, path, [(i + 1, i) for i in range(100)], full=True)
    view, ids = cache.tensors(None)
    first = view.clone()
    assert cache.needs(1, "l.f32", 100) is None
    landmarks.append(path, 100, rows(200, start=100))
    assert cache.needs(1, "l.f32", 300) == "tail"
    cache.sync(1, "l.f32", 300, path, [(i + 1, i) for i in range(100, 300)], full=False)
    grown, grown_ids = cache.tensors("cpu")
    assert grown.shape == (300, 5) and torch.equal(grown_ids, torch.arange(1, 301))
    assert torch.equal(grown, torch.from_numpy(rows(300)))
    assert torch.equal(view, first)  # the old view survived the buffer growing
    # a forget (new generation) rebuilds from the live rows only, without touching old views
    cache.sync(2, "l.f32", 300, path, [(5, 4), (300, 299)], full=True)
    live, live_ids = cache.tensors(None)
    assert live_ids.tolist() == [5, 300] and torch.equal(live, torch.from_numpy(rows(300)[[4, 299]]))
    assert torch.equal(grown[:2], torch.from_numpy(rows(2)))
