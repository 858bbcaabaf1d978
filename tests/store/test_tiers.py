"""tiers/: hot, warm and cold behind one interface.

Scenarios:
- the hot LRU keeps within its byte budget, evicting the least recently used first;
- a read walks hot → warm → cold, decodes with the codec the segment names, and promotes into hot;
- a hot entry is keyed by the K/V version, so a re-encoded chunk is never served stale;
- a cold read stuck in a slow decode does not hold up other readers (warm or cold).
"""
import threading

import torch

from hsa_memory.store import codecs, segments
from hsa_memory.store.arrays import to_raw_kv
from hsa_memory.store.codecs import Codec
from hsa_memory.store.tiers import ChunkRef, HotTier, TieredStore

from .fakes import LAYOUT, expected_kv, kv_for


def raw_chunk(position):
    k, v = kv_for(position)
    return to_raw_kv(k, v, LAYOUT)[0].tobytes()


def write_segment(path, codec_name, tier, positions):
    codec = codecs.get(codec_name)
    start = segments.create(path, {"codec": codec_name, "tier": tier})
    records = [codec.encode(raw_chunk(p), LAYOUT) for p in positions]
    offsets = segments.append(path, start, records)
    return [ChunkRef(p, f"v{p}", tier, path, off, len(rec), codec_name)
            for p, off, rec in zip(positions, offsets, records)]


def kv(n_bytes):
    t = torch.zeros(n_bytes // 4, dtype=torch.float16)
    return t, t


def test_hot_lru_budget():
    hot = HotTier(budget_bytes=3 * 1000)
    refs = [ChunkRef(i, "v", "warm", None, 0, 0, "raw") for i in range(4)]
    for ref in refs[:3]:
        hot.put(ref, kv(1000))
    assert hot.get(refs[0]) is not None  # 0 is now the most recent; 1 is the oldest
    hot.put(refs[3], kv(1000))
    assert [hot.contains(r) for r in refs] == [True, False, True, True]
    assert hot.bytes == 3000
    hot.put(ChunkRef(9, "v", "warm", None, 0, 0, "raw"), kv(10_000))  # bigger than the budget: not cached
    assert hot.bytes == 3000


def test_walk_decodes_and_promotes(tmp_path):
    tiers = TieredStore(LAYOUT, hot_bytes=1 << 20)
    warm = write_segment(tmp_path / "w.seg", "raw", "warm", [0, 1])
    cold = write_segment(tmp_path / "c.seg", "zstd_shuffle", "cold", [2, 3])
    order = [cold[1], warm[0], cold[0], warm[1]]
    got = tiers.get(order)
    for ref, (k, v) in zip(order, got):
        ek, ev = expected_kv(ref.chunk_id)
        assert torch.equal(k, ek) and torch.equal(v, ev)
    assert all(tiers.hot.contains(r) for r in order)
    hits = tiers.hot.hits
    tiers.get([cold[1]])
    assert tiers.hot.hits == hits + 1
    # the same chunk re-encoded elsewhere carries a new kv version: the old hot entry is not used
    moved = ChunkRef(3, "v3-int8", "cold", cold[1].file, cold[1].offset, cold[1].length, "zstd_shuffle")
    assert not tiers.hot.contains(moved)


class SlowCodec(Codec):
    """Blocks in decode until released: a stand-in for a big cold chunk on a slow disk."""

    name = "slow_test"
    lossless = True

    def __init__(self):
        self.entered = threading.Event()
        self.release = threading.Event()

    def encode(self, raw, layout):
        return bytes(raw)

    def decode(self, record, layout):
        self.entered.set()
        assert self.release.wait(10)
        return bytes(record)


def test_slow_cold_read_blocks_no_other_reader(tmp_path):
    slow = SlowCodec()
    codecs.register(slow)
    tiers = TieredStore(LAYOUT, hot_bytes=1 << 20)
    stuck = write_segment(tmp_path / "slow.seg", "slow_test", "cold", [0])
    others = write_segment(tmp_path / "c.seg", "zstd_shuffle", "cold", [1]) + \
        write_segment(tmp_path / "w.seg", "raw", "warm", [2])
    result = {}
    reader = threading.Thread(target=lambda: result.setdefault("stuck", tiers.get(stuck)))
    reader.start()
    try:
        assert slow.entered.wait(5)
        done = threading.Event()
        other = threading.Thread(target=lambda: (result.setdefault("others", tiers.get(others)), done.set()))
        other.start()
        assert done.wait(5), "a reader waited on another reader's cold decode"
        assert torch.equal(result["others"][0][0], expected_kv(1)[0])
    finally:
        slow.release.set()
        reader.join(10)
    assert torch.equal(result["stuck"][0][1], expected_kv(0)[1])
