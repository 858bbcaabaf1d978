"""compaction.py: tier moves and compaction (each test on SQLite and PostgreSQL).

Scenarios:
- retier moves sealed warm segments to cold (zstd_shuffle): reads stay bit-exact, verify passes;
- with the int8 codec, reads after the move are within the codec's bound and never the stale
  pre-move copy from the hot tier, in this instance or another;
- after forget + compact, the forgotten text, K/V bytes (raw and as encoded in cold segments) and
  landmark rows are in no file under the memory directory (catalog, its WAL, event log, landmark
  matrix, segments), while the same probes still find a live chunk (so the search can fail); ids and
  seqs are never reused.
"""
from pathlib import Path

import numpy as np
import torch

from hsa_memory.store import MemoryStore, TierPolicy, codecs

from .fakes import LAYOUT, Feeder, expected_kv, landmark_for

# three chunks fill a segment; warm keeps nothing sealed
POLICY = TierPolicy(warm_bytes=0, segment_bytes=3 * LAYOUT.kv_bytes + 1024, hot_bytes=1 << 20)


def make(tmp_path, catalog_url, policy=POLICY):
    return MemoryStore.create(tmp_path / "mem", LAYOUT, "m", "h" * 64, catalog_url=catalog_url, policy=policy)


def test_retier_is_bit_exact(tmp_path, catalog_url):
    with make(tmp_path, catalog_url) as store:
        ids = Feeder(store).events_and_chunks(7)
        assert store.retier()["cooled_segments"] == [1, 2]
        assert [c.tier for c in store.chunks(ids)] == ["cold"] * 6 + ["warm"]
        assert store.stats()["tiers"]["cold"]["chunks"] == 6
        with MemoryStore.open(tmp_path / "mem", catalog_url=catalog_url, policy=POLICY) as fresh:
            keys, values = fresh.get_kv(ids)
        for i in range(7):
            assert torch.equal(keys[i], expected_kv(i)[0]) and torch.equal(values[i], expected_kv(i)[1])
        assert store.verify().ok


def test_int8_cold_is_bounded_and_never_stale(tmp_path, catalog_url):
    policy = TierPolicy(warm_bytes=0, segment_bytes=3 * LAYOUT.kv_bytes + 1024, cold_codec="int8_zstd")
    with make(tmp_path, catalog_url, policy) as store, \
            MemoryStore.open(tmp_path / "mem", catalog_url=catalog_url, policy=policy) as other:
        ids = Feeder(store).events_and_chunks(4)
        exact = store.get_kv(ids[:3])
        other.get_kv(ids[:3])  # both hot tiers now hold the exact copies
        store.retier()
        for reader in (store, other):
            keys, values = reader.get_kv(ids[:3])
            assert not torch.equal(keys, exact[0])
            for got, want in ((keys, exact[0]), (values, exact[1])):
                want = want.float()
                scale = want.abs().amax(dim=(1, 3), keepdim=True) / 127  # per chunk and head
                assert ((got.float() - want).abs() <= scale / 2 + want.abs() * 2**-8 + 1e-6).all()
        assert store.verify().ok


def file_blobs(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def holders(blobs: dict[str, bytes], needle: bytes) -> list[str]:
    return [name for name, blob in blobs.items() if needle in blob]


def probes(store, chunk_id: int, position: int, marker: str) -> dict[str, bytes]:
    """Byte strings that exist only because of this chunk: text, raw K/V, its cold record, landmark."""
    keys, values = store.get_kv([chunk_id])
    raw = keys[0].contiguous().view(torch.int16).numpy().tobytes() + \
        values[0].contiguous().view(torch.int16).numpy().tobytes()
    return {"text": marker.encode(), "raw kv": raw,
            "cold record": codecs.get("zstd_shuffle").encode(raw, LAYOUT),
            "landmark": landmark_for(position).tobytes()}


def test_forgotten_bytes_leave_every_file(tmp_path, catalog_url):
    root = tmp_path / "mem"
    with make(tmp_path, catalog_url) as store:
        feed = Feeder(store)
        ids = {}
        for i in range(7):
            marker = {1: "FORGET-ME-cold-7f3a", 6: "FORGET-ME-warm-91c2", 4: "KEEP-ME-5d0e"}.get(i, f"plain {i}")
            seq = feed.event(f"event {i} {marker}", minutes=i)
            ids[i] = feed.chunk(seq, seq, text=f"chunk {i} {marker}")[0]
        store.retier()  # positions 0-5 go cold, 6 stays warm
        assert [c.tier for c in store.chunks([ids[1], ids[6], ids[4]])] == ["cold", "warm", "cold"]
        gone = {**{f"cold {k}": v for k, v in probes(store, ids[1], 1, "FORGET-ME-cold-7f3a").items()},
                **{f"warm {k}": v for k, v in probes(store, ids[6], 6, "FORGET-ME-warm-91c2").items()}}
        kept = probes(store, ids[4], 4, "KEEP-ME-5d0e")

        blobs = file_blobs(root)
        # the probes work: before compaction each finds its bytes somewhere
        # (a cold chunk's raw K/V and a warm chunk's cold record exist in no file to begin with)
        assert all(holders(blobs, needle) for key, needle in gone.items()
                   if key not in ("cold raw kv", "warm cold record"))
        if catalog_url is None:
            assert any(name.startswith("catalog.sqlite") for name in holders(blobs, gone["cold text"]))

        assert store.forget(chunk_ids=[ids[1], ids[6]]) == 4
        report = store.compact()
        assert report["chunk_rows_removed"] == 2 and report["events_removed"] == 2 and report["catalog_wal_cleared"]

        blobs = file_blobs(root)
        leaks = {key: holders(blobs, needle) for key, needle in gone.items() if holders(blobs, needle)}
        assert not leaks, f"forgotten bytes survived compaction: {leaks}"
        assert holders(blobs, kept["text"]) and holders(blobs, kept["cold record"]) and holders(blobs, kept["landmark"])
        if catalog_url is not None:
            # the catalog lives outside the directory: its rows must be gone too
            from sqlalchemy import create_engine, text
            engine = create_engine(catalog_url)
            with engine.connect() as conn:
                assert conn.execute(text("SELECT count(*) FROM chunks WHERE text LIKE '%FORGET-ME%'")).scalar() == 0
            engine.dispose()

        assert store.verify().ok
        assert [e.seq for e in store.events()] == [1, 3, 4, 5, 6]
        assert sorted(store.landmarks()[1].tolist()) == sorted(v for k, v in ids.items() if k not in (1, 6))
        new_seq = feed.event("after compaction")
        assert new_seq == 8  # seq 7 (forgotten, the highest) is not handed out again
        assert feed.chunk(new_seq, new_seq)[0] == 8  # nor is chunk id 7
        for i, cid in ids.items():
            if i not in (1, 6):
                assert torch.equal(store.get_kv([cid])[0][0], expected_kv(i)[0])
        assert np.array_equal(store.landmarks()[0][-1].numpy(), landmark_for(7)[0])
