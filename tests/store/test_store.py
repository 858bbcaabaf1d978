"""store.py: MemoryStore, the API the Memory layer calls (each test on SQLite and PostgreSQL).

Scenarios:
- create/open: layout and model come back; missing, non-empty, damaged and wrongly-addressed stores
  raise their typed errors;
- events are durable, ordered, filterable by ``after_seq``;
- add_chunks: landmarks come back in position order with their ids; get_kv returns exactly the K/V
  given (rounded to the layout dtype), in the order asked, for torch and numpy inputs, on request in
  another dtype; the ingest state and cursor commit with them; an empty add moves the cursor only;
- bad input (shapes, positions, seqs past the log) changes nothing;
- unknown and forgotten ids raise ChunkNotFound; forgotten chunks keep a row with no text until compaction;
- forget by ids, time range and metadata, closed over shared events; a second instance sees all of it;
- the writer lock is re-entrant, and another writer waits or gets StoreLocked;
- on a GPU (skipped without one): landmarks and K/V come back on the device asked for, the hot
  tier can live there, and device results equal the CPU ones.
"""
import json
import threading
from datetime import timedelta

import numpy as np
import pytest
import torch

from hsa_memory.store import KVLayout, MemoryStore, NewChunk
from hsa_memory.store.errors import (ChunkNotFound, InvalidChunks, InvalidForget, StoreCorrupted, StoreError,
                                     StoreExists, StoreLocked, StoreNotFound)

from .fakes import LAYOUT, T0, Feeder, expected_kv, kv_for, landmark_for


@pytest.fixture
def store(tmp_path, catalog_url):
    s = MemoryStore.create(tmp_path / "mem", LAYOUT, "test-model", "ab" * 32, catalog_url=catalog_url)
    yield s
    s.close()


def test_create_and_open(tmp_path, catalog_url, store):
    Feeder(store).events_and_chunks(2)
    store.close()
    with MemoryStore.open(tmp_path / "mem", catalog_url=catalog_url) as again:
        assert again.layout == LAYOUT and again.model_id == "test-model" and again.weight_hash == "ab" * 32
        assert again.landmarks()[1].tolist() == [1, 2]
    with pytest.raises(StoreExists):
        MemoryStore.create(tmp_path / "mem", LAYOUT, "m", "h", catalog_url=catalog_url)
    with pytest.raises(StoreNotFound):
        MemoryStore.open(tmp_path / "nowhere", catalog_url=catalog_url)
    wrong = None if catalog_url else "sqlite:///" + str(tmp_path / "x.sqlite")
    with pytest.raises(StoreError):
        MemoryStore.open(tmp_path / "mem", catalog_url=wrong)
    (tmp_path / "mem" / "store.json").write_text("{not json")
    with pytest.raises(StoreCorrupted, match="store marker"):
        MemoryStore.open(tmp_path / "mem", catalog_url=catalog_url)


def test_events(store):
    feed = Feeder(store)
    seqs = [feed.event(f"hello {i}", minutes=i, metadata={"i": i}) for i in range(5)]
    assert seqs == [1, 2, 3, 4, 5]
    assert store.append_events([("a", "user", T0, None), ("b", "assistant", T0, {"x": 1})]) == [6, 7]
    events = list(store.events())
    assert [e.text for e in events] == [f"hello {i}" for i in range(5)] + ["a", "b"]
    assert [e.seq for e in store.events(after_seq=4)] == [5, 6, 7]
    assert events[6].role == "assistant" and events[6].metadata == {"x": 1}


def test_chunks_round_trip(store):
    feed = Feeder(store)
    ids = feed.events_and_chunks(6)
    assert ids == [1, 2, 3, 4, 5, 6]
    rows, chunk_ids = store.landmarks()
    assert chunk_ids.tolist() == ids and rows.dtype == torch.float32
    assert torch.equal(rows, torch.from_numpy(np.concatenate([landmark_for(p) for p in range(6)])))
    keys, values = store.get_kv([4, 1, 6])
    assert keys.shape == (3, *LAYOUT.kv_shape) and keys.dtype == torch.bfloat16
    for i, position in enumerate([3, 0, 5]):
        ek, ev = expected_kv(position)
        assert torch.equal(keys[i], ek) and torch.equal(values[i], ev)
    k32, _ = store.get_kv(torch.tensor([2]), device="cpu", dtype=torch.float32)
    assert k32.dtype == torch.float32 and torch.equal(k32[0], expected_kv(1)[0].float())
    info = store.chunks([2])[0]
    assert (info.position, info.token_start, info.first_seq, info.text, info.tier, info.deleted) == \
        (1, 64, 2, "chunk 1", "warm", False)
    assert info.time_start == T0 + timedelta(minutes=2)
    assert store.ingest_cursor() == (6, json.dumps({"next_position": 6}).encode())


def test_torch_inputs_any_dtype(store):
    seq = store.append_event("x", "user", T0)
    k, v = kv_for(0)
    chunk = NewChunk(0, 0, 64, T0, T0, ["user"], "x", seq, seq)
    lm = torch.from_numpy(landmark_for(0)).double()
    ids = store.add_chunks([chunk], lm, torch.from_numpy(k).double(), torch.from_numpy(v).half(), b"s", seq)
    keys, values = store.get_kv(ids)
    assert torch.equal(keys[0], torch.from_numpy(k[0]).double().bfloat16())
    assert torch.equal(values[0], torch.from_numpy(v[0]).half().bfloat16())


def test_empty_add_moves_cursor_only(store):
    feed = Feeder(store)
    feed.events_and_chunks(1)
    seq = feed.event("tail only")
    assert store.add_chunks([], None, None, None, b"tail-state", seq) == []
    assert store.ingest_cursor() == (seq, b"tail-state")
    assert store.landmarks()[1].tolist() == [1]


def test_bad_input_changes_nothing(store):
    feed = Feeder(store)
    feed.events_and_chunks(2)
    before = (store.ingest_cursor(), store.landmarks()[1].tolist())
    k, v = kv_for(9)
    lm = landmark_for(9)
    ok = NewChunk(2, 128, 192, T0, T0, ["user"], "t", 2, 2)
    cases = [
        ([ok], lm, k[:, :32], v, 2, "shape"),
        ([NewChunk(1, 64, 128, T0, T0, ["user"], "t", 2, 2)], lm, k, v, 2, "not after"),
        ([NewChunk(2, 128, 192, T0, T0, ["user"], "t", 2, 99)], lm, k, v, 2, "past the last seq"),
        ([ok], lm, k, v, 99, "outside the log"),
        ([ok, ok], np.concatenate([lm, lm]), np.concatenate([k, k]), np.concatenate([v, v]), 2, "increase"),
    ]
    for chunks, landmarks, keys, values, cursor, message in cases:
        with pytest.raises(InvalidChunks, match=message):
            store.add_chunks(chunks, landmarks, keys, values, b"bad", cursor)
    assert (store.ingest_cursor(), store.landmarks()[1].tolist()) == before
    assert store.verify().ok


def test_unknown_and_forgotten_ids(store):
    ids = Feeder(store).events_and_chunks(3)
    with pytest.raises(ChunkNotFound) as err:
        store.get_kv([1, 99])
    assert err.value.chunk_ids == [99]
    assert store.forget(chunk_ids=[2]) == 2  # the chunk and its one event
    with pytest.raises(ChunkNotFound):
        store.get_kv([2])
    gone = store.chunks([2])[0]
    assert gone.deleted and gone.text == ""
    assert store.landmarks()[1].tolist() == [1, 3]
    assert [e.seq for e in store.events()] == [1, 3]
    with pytest.raises(ChunkNotFound):
        store.forget(chunk_ids=[42])
    assert store.forget(chunk_ids=[2]) == 0  # again: nothing new, no error
    store.compact()
    assert store.forget(chunk_ids=[2]) == 0  # even once its row is gone
    with pytest.raises(InvalidForget):
        store.forget()
    assert ids == [1, 2, 3]


def test_forget_by_time_and_metadata_with_closure(store):
    feed = Feeder(store)
    s1 = feed.event("intro", minutes=1, metadata={"user": "ann"})
    s2 = feed.event("long document spanning chunks", minutes=2, metadata={"user": "bob"})
    s3 = feed.event("reply", minutes=3, metadata={"user": "ann"})
    c1 = feed.chunk(s1, s2)        # holds the intro and the start of the document
    c2 = feed.chunk(s2, s2, n=2)   # the middle of the document
    c3 = feed.chunk(s2, s3)        # its end and the reply
    s4 = feed.event("not chunked yet", minutes=4, metadata={"user": "bob"})
    # bob's events: the document takes every chunk it touches, which take ann's intro and reply too
    assert store.forget(where={"user": "bob"}) == 4 + 4
    assert store.landmarks()[1].tolist() == []
    assert [e.seq for e in store.events()] == []
    s5 = feed.event("later", minutes=10)
    c5 = feed.chunk(s5, s5)
    s6 = feed.event("much later", minutes=20)
    feed.chunk(s6, s6)
    assert store.forget(after=T0 + timedelta(minutes=5), before=T0 + timedelta(minutes=15)) == 2
    assert [e.seq for e in store.events()] == [s6]
    assert store.landmarks()[1].tolist() == [c5[0] + 1]
    assert len(c1 + c2 + c3) == 4 and s4 == 4
    assert store.verify().ok


def test_second_instance_sees_writes_and_forgets(tmp_path, catalog_url, store):
    reader = MemoryStore.open(tmp_path / "mem", catalog_url=catalog_url)
    try:
        feed = Feeder(store)
        feed.events_and_chunks(3)
        assert reader.landmarks()[1].tolist() == [1, 2, 3]
        reader.get_kv([2])
        feed.events_and_chunks(2)
        rows, ids = reader.landmarks()
        assert ids.tolist() == [1, 2, 3, 4, 5] and rows.shape == (5, LAYOUT.landmark_dim)
        store.forget(chunk_ids=[2])
        assert reader.landmarks()[1].tolist() == [1, 3, 4, 5]
        with pytest.raises(ChunkNotFound):
            reader.get_kv([2])  # even though the reader had it in its hot tier
        assert [e.seq for e in reader.events()] == [1, 3, 4, 5]
    finally:
        reader.close()


def test_writer_lock(tmp_path, catalog_url, store):
    other = MemoryStore.open(tmp_path / "mem", catalog_url=catalog_url)
    try:
        with store.writer():
            with store.writer():  # re-entrant
                store.append_event("inside", "user", T0)
            with pytest.raises(StoreLocked):
                with other.writer(timeout=0.2):
                    pass
            waiting = threading.Thread(target=lambda: other.append_event("after", "user", T0))
            waiting.start()
            waiting.join(0.3)
            assert waiting.is_alive()  # queued behind us
            store.append_event("still ours", "user", T0)
        waiting.join(5)
        assert [e.text for e in store.events()] == ["inside", "still ours", "after"]
    finally:
        other.close()


def test_layout_is_validated(tmp_path):
    with pytest.raises(InvalidChunks, match="kv_dtype"):
        KVLayout(kv_dtype="int4")
    with pytest.raises(InvalidChunks, match="head_dim"):
        KVLayout(head_dim=0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_device_results(tmp_path):
    from hsa_memory.store import TierPolicy

    store = MemoryStore.create(tmp_path / "mem", LAYOUT, "m", "h", policy=TierPolicy(hot_device="cuda"))
    try:
        feed = Feeder(store)
        feed.events_and_chunks(3)
        rows, ids = store.landmarks(device="cuda")
        assert rows.is_cuda and ids.is_cuda and ids.tolist() == [1, 2, 3]
        feed.events_and_chunks(2)  # only the new rows travel to the device
        rows, ids = store.landmarks(device="cuda")
        assert torch.equal(rows.cpu(), store.landmarks()[0]) and ids.tolist() == [1, 2, 3, 4, 5]
        # chunks added from CUDA tensors, read back on CUDA through a CUDA hot tier
        seq = feed.event("from the gpu")
        k, v = (torch.from_numpy(a).cuda() for a in kv_for(5))
        store.add_chunks([NewChunk(5, 320, 384, T0, T0, ["user"], "g", seq, seq)],
                         torch.from_numpy(landmark_for(5)).cuda(), k, v, b"", seq)
        assert not store.get_kv([1])[0].is_cuda  # no device asked: the CPU, though hot lives on the GPU
        for _ in range(2):  # a cold read, then a hot hit
            keys, values = store.get_kv([6, 2], device="cuda", dtype=torch.float32)
            assert keys.is_cuda and keys.dtype == torch.float32
            assert torch.equal(keys[0].cpu(), expected_kv(5)[0].float())
            assert torch.equal(values[1].cpu(), expected_kv(1)[1].float())
        assert store.stats()["hot"]["hits"] >= 2
        store.forget(chunk_ids=[2])
        rows, ids = store.landmarks(device="cuda")
        assert ids.tolist() == [1, 3, 4, 5, 6] and torch.equal(rows.cpu(), store.landmarks()[0])
    finally:
        store.close()
