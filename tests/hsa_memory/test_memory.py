"""Scenarios: append is durable and returns sequence numbers; bad input raises InvalidInput naming the
field and writes nothing; ingesting in two processes (with a restart between) equals one process; an
acknowledged append that was never encoded (crash) is encoded on the next open; ask streams text and
cites chunks; search ranks chunks; forget removes chunks from search and citations; a snapshot round
trip keeps the memory; opening with other weights raises ModelMismatch unless re-encoding."""
import json
import os
import subprocess
import sys
import textwrap
from datetime import datetime, timezone

import pytest
import torch

from hsa_memory import Answer, HsaMemoryError, InvalidInput, Memory, MemoryClosed, ModelMismatch


CONVERSATION = [
    ("user", "My sister Anna moved to Lisbon in May and works as a marine biologist there."),
    ("assistant", "That sounds exciting! Lisbon is a lovely city by the sea."),
    ("user", "My dog is called Rex and he is a three year old beagle who loves long walks."),
    ("assistant", "Rex sounds like great company on your walks."),
    ("user", "I am allergic to peanuts, so please never suggest recipes that contain them."),
    ("assistant", "Noted: no peanuts in any recipe I suggest."),
    ("user", "My favourite composer is Erik Satie, especially the Gymnopédies."),
    ("assistant", "A beautiful choice; the Gymnopédies are calm and timeless."),
]


def fill(mem, messages=CONVERSATION, repeat=3):
    for r in range(repeat):
        for role, text in messages:
            mem.append(f"{text} (note {r})", role=role)


def test_append_returns_increasing_seqs_and_counts_tokens(memory):
    seqs = [memory.append(text, role=role) for role, text in CONVERSATION]
    assert seqs == list(range(1, len(CONVERSATION) + 1))
    stats = memory.stats()
    assert stats["last_seq"] == len(CONVERSATION)
    assert stats["tokens"] > 64 and stats["chunks"] == stats["tokens"] // 64


@pytest.mark.parametrize("kwargs, field", [
    ({"text": ""}, "text"),
    ({"text": "   \n\t"}, "text"),
    ({"text": 42}, "text"),
    ({"text": b"bytes"}, "text"),
    ({"text": "hi\x00there"}, "text"),
    ({"text": "hi", "role": "robot"}, "role"),
    ({"text": "hi", "metadata": {"when": datetime.now()}}, "metadata"),
    ({"text": "hi", "metadata": ["not", "a", "dict"]}, "metadata"),
    ({"text": "hi", "metadata": {"x": float("nan")}}, "metadata"),
    ({"text": "hi", "time": "yesterday-ish"}, "time"),
    # found by a bad-input audit: these raised OverflowError / RecursionError
    ({"text": "hi", "time": 1e20}, "time"),
    ({"text": "hi", "time": -10**30}, "time"),
    ({"text": "hi", "time": "0001-01-01T00:00:00+14:00"}, "time"),
    ({"text": "hi", "time": "9999-12-31T23:59:59-14:00"}, "time"),
    ({"text": "hi", "metadata": __import__("functools").reduce(lambda inner, _: {"a": inner}, range(5000), {})},
     "metadata"),
])
def test_bad_input_is_typed_and_writes_nothing(memory, kwargs, field):
    memory.append("a first, valid message")
    before = memory.stats()
    with pytest.raises(InvalidInput) as error:
        memory.append(**kwargs)
    assert error.value.field == field
    assert isinstance(error.value, HsaMemoryError)
    after = memory.stats()
    assert after["last_seq"] == before["last_seq"] and after["tokens"] == before["tokens"]


def test_extend_validates_everything_before_writing(memory):
    with pytest.raises(InvalidInput, match=r"messages\[1\].content"):
        memory.extend([{"role": "user", "content": "fine"}, {"role": "user", "content": ""}])
    assert memory.stats()["last_seq"] == 0
    assert memory.extend([{"role": "user", "content": "a"}, {"role": "assistant", "content": "b",
                                                               "time": "2025-05-01T10:00:00Z",
                                                               "metadata": {"session": "s1"}}]) == [1, 2]


def landmarks_of(path, loaded):
    with Memory(path, model=loaded) as mem:
        landmarks, ids = mem.store.landmarks()
        return landmarks.clone(), mem.stats()["tokens"]


def test_two_processes_equal_one(tmp_path, tiny_loaded):
    """A restart between appends (state saved and reloaded) gives the same chunks as one run."""
    messages = [(role, f"{text} #{i}") for i in range(3) for role, text in CONVERSATION]
    with Memory(tmp_path / "one", model=tiny_loaded) as mem:
        for role, text in messages:
            mem.append(text, role=role)
    with Memory(tmp_path / "two", model=tiny_loaded) as mem:
        for role, text in messages[:7]:
            mem.append(text, role=role)
    with Memory(tmp_path / "two", model=tiny_loaded) as mem:
        for role, text in messages[7:]:
            mem.append(text, role=role)
    one, tokens_one = landmarks_of(tmp_path / "one", tiny_loaded)
    two, tokens_two = landmarks_of(tmp_path / "two", tiny_loaded)
    assert tokens_one == tokens_two
    torch.testing.assert_close(two, one, rtol=1e-5, atol=1e-5)


def test_acknowledged_but_unencoded_events_are_encoded_on_open(tmp_path, tiny_loaded):
    """Simulates a crash after the event log's fsync but before the chunk commit."""
    with Memory(tmp_path / "m", model=tiny_loaded) as mem:
        fill(mem, repeat=1)
        tokens = mem.stats()["tokens"]
        with mem.store.writer():
            for role, text in CONVERSATION:
                mem.store.append_event(text, role, datetime.now(timezone.utc), {})
        mem._closed = True  # drop without flushing, as a crash would
        mem.store.close()
    with Memory(tmp_path / "m", model=tiny_loaded) as mem:
        assert mem.stats()["encoded_upto_seq"] == 2 * len(CONVERSATION)
        assert mem.stats()["tokens"] > tokens


def test_ask_streams_text_and_cites_chunks(memory):
    fill(memory)
    answer = Answer("")
    pieces = list(memory.ask_stream("Where does Anna live?", max_new_tokens=8, answer=answer))
    assert "".join(pieces).strip() == answer.text
    assert answer.tokens <= 8
    assert answer.citations, "an ask over a non-empty memory reads chunks"
    assert all(0 < c.weight <= 1 for c in answer.citations)
    assert sum(c.weight for c in answer.citations) <= 1 + 1e-6
    assert {"retrieval", "kv_load", "attention", "total", "first_token"} <= set(answer.timings)
    again = memory.ask("Where does Anna live?", max_new_tokens=8)
    assert again.text == answer.text  # greedy decoding is deterministic


def test_search_and_forget(memory):
    memory.append("a note about the weather", role="user", metadata={"session": "s1"})
    fill(memory)
    hits = memory.search("Anna Lisbon", k=4)
    assert 1 <= len(hits) <= 4
    assert hits == sorted(hits, key=lambda h: -h.score)
    target = hits[0].chunk_id
    assert memory.forget(chunk_ids=[target]) >= 1
    assert target not in {h.chunk_id for h in memory.search("Anna Lisbon", k=8)}
    assert target not in {c.chunk_id for c in memory.ask("Where does Anna live?", max_new_tokens=4).citations}
    with pytest.raises(InvalidInput, match="refusing to forget everything"):
        memory.forget()


def test_search_rejects_bad_k(memory):
    memory.append("hello there")
    for k in (0, -1, 2.5, True):
        with pytest.raises(InvalidInput, match="^k:"):
            memory.search("hello", k=k)


def test_snapshot_round_trip(memory, tmp_path, tiny_loaded):
    fill(memory)
    snapshot = memory.export(tmp_path / "snap.hsamem")
    hits = memory.search("peanuts", k=3)
    other = Memory.import_snapshot(snapshot, tmp_path / "copy", model=tiny_loaded)
    try:
        assert other.stats()["tokens"] == memory.stats()["tokens"]
        assert [h.chunk_id for h in other.search("peanuts", k=3)] == [h.chunk_id for h in hits]
        assert other.ask("Who is Rex?", max_new_tokens=6).text == memory.ask("Who is Rex?", max_new_tokens=6).text
    finally:
        other.close()


def test_model_mismatch_and_reencode(tmp_path, tiny_loaded):
    from hsa_memory.model import get_preset
    from hsa_memory.model.loading import load_model

    with Memory(tmp_path / "m", model=tiny_loaded) as mem:
        fill(mem, repeat=1)
        tokens = mem.stats()["tokens"]
    torch.manual_seed(7)
    other = load_model(get_preset("tiny"), checkpoint=None)
    other.weight_hash = "0" * 64
    with pytest.raises(ModelMismatch, match="reencode=True"):
        Memory(tmp_path / "m", model=other)
    with Memory(tmp_path / "m", model=other, reencode=True) as mem:
        assert mem.stats()["tokens"] == tokens
        assert mem.store.weight_hash == "0" * 64


def test_closed_memory_refuses_work(tmp_path, tiny_loaded):
    mem = Memory(tmp_path / "m", model=tiny_loaded)
    mem.close()
    mem.close()  # idempotent
    with pytest.raises(MemoryClosed):
        mem.append("late")
    with pytest.raises(MemoryClosed):
        mem.search("late")
    with pytest.raises(MemoryClosed):  # was a silent 0
        mem.catch_up()


def test_concurrent_writer_in_another_process(tmp_path, tiny_loaded):
    """Appends from another process are picked up (encoded) before this process appends again."""
    path = tmp_path / "shared"
    with Memory(path, model=tiny_loaded) as mem:
        fill(mem, repeat=1)
    script = textwrap.dedent(f"""
        import torch
        from hsa_memory.model import get_preset
        from hsa_memory.model.loading import load_model
        from hsa_memory.store import MemoryStore
        from datetime import datetime, timezone
        store = MemoryStore.open({str(path)!r})
        with store.writer():
            for i in range(5):
                store.append_event("message from another process number %d about gardening" % i, "user",
                                   datetime.now(timezone.utc), {{}})
        store.close()
    """)
    subprocess.run([sys.executable, "-c", script], check=True, timeout=120)
    with Memory(path, model=tiny_loaded) as mem:
        assert mem.stats()["encoded_upto_seq"] == len(CONVERSATION) + 5
        mem.append("and one more")
        # the other process writes again while this one holds unflushed state: it must not be overwritten
        subprocess.run([sys.executable, "-c", script], check=True, timeout=120)
        mem.append("a last one")
        assert mem.ingestor.cursor == len(CONVERSATION) + 12
    with Memory(path, model=tiny_loaded) as mem:
        assert mem.stats()["encoded_upto_seq"] == len(CONVERSATION) + 12
        events = list(mem.store.events())
        assert [e.text for e in events[-7:]][-1] == "a last one"


@pytest.mark.parametrize("kwargs, field", [
    ({"text": "lone \ud800 surrogate"}, "text"),
    ({"text": "ok", "metadata": {"k": "\udfff"}}, "metadata"),
])
def test_lone_surrogates_are_invalid_input(memory, kwargs, field):
    with pytest.raises(InvalidInput) as error:
        memory.append(**kwargs)
    assert error.value.field == field


@pytest.mark.parametrize("options, field", [
    ({"temperature": -1}, "temperature"), ({"temperature": float("nan")}, "temperature"),
    ({"top_p": 0}, "top_p"), ({"top_p": 1.5}, "top_p"), ({"max_new_tokens": 0}, "max_new_tokens"),
    # found by a bad-input audit: these raised TypeError, RuntimeError or ValueError mid-generation
    ({"citations": "5"}, "citations"), ({"citations": -1}, "citations"), ({"seed": "7"}, "seed"),
    ({"seed": 2**70}, "seed"), ({"copy_bias": -1.0}, "copy_bias"), ({"copy_bias": float("nan")}, "copy_bias"),
    ({"copy_bias": "3"}, "copy_bias"), ({"copy_bias": True}, "copy_bias"), ({"copy_bias": 1e9}, "copy_bias"),
])
def test_bad_sampling_options(memory, options, field):
    memory.append("hello there")
    with pytest.raises(InvalidInput) as error:
        memory.ask("hi?", **options)
    assert error.value.field == field


def test_tiny_temperature_and_top_p_sample_without_nan(memory):
    memory.append("hello there")
    assert memory.ask("hi?", temperature=1e-30, max_new_tokens=3).tokens <= 3
    assert memory.ask("hi?", temperature=1.0, top_p=1e-9, seed=1, max_new_tokens=3).tokens <= 3


def test_events_out_of_time_order_are_accepted(tmp_path, tiny_loaded):
    """A clock stepping back (or an import of old logs) must never make the memory unopenable."""
    with Memory(tmp_path / "m", model=tiny_loaded) as mem:
        mem.append("the second day, written first " * 8, time="2025-01-02T00:00:00Z")
        mem.append("the first day, written second " * 8, time="2025-01-01T00:00:00Z")
        mem.append("and the third day " * 8, time="2025-01-03T00:00:00Z")
    with Memory(tmp_path / "m", model=tiny_loaded) as mem:
        assert mem.verify().ok
        infos = mem.store.chunks(mem.store.landmarks()[1].tolist())
        assert infos and all(info.time_start <= info.time_end for info in infos)


def test_memory_path_with_url_characters(tmp_path, tiny_loaded):
    with Memory(tmp_path / "odd %41 ?x #y", model=tiny_loaded) as mem:
        mem.append("a message in an oddly named folder")
    with Memory(tmp_path / "odd %41 ?x #y", model=tiny_loaded) as mem:
        assert mem.stats()["last_seq"] == 1


def test_bf16_on_the_cpu_ingests_asks_and_searches(tmp_path):
    """dtype=bfloat16 off the GPU: the whole path runs, and it ranks like float32 for the same weights."""
    import torch

    from hsa_memory.model import get_preset
    from hsa_memory.model.loading import load_model

    rankings = {}
    for dtype in (torch.float32, torch.bfloat16):
        torch.manual_seed(42)
        loaded = load_model(get_preset("tiny"), checkpoint=None, dtype=dtype)
        with torch.no_grad():
            for index in loaded.model.config.hsa_layer_indices:
                loaded.model.model.layers[index].o_proj.weight.normal_(0.0, 0.2)
        with Memory(tmp_path / str(dtype), model=loaded) as mem:
            fill(mem)
            answer = mem.ask("Where does Anna live?", max_new_tokens=4)
            assert answer.citations and all(0 < c.weight <= 1 for c in answer.citations)
            hits = mem.search("Anna Lisbon", k=3)
            assert hits and all(h.score == h.score for h in hits)  # no NaN
            rankings[dtype] = [h.chunk_id for h in hits]
    assert rankings[torch.bfloat16][0] in rankings[torch.float32]


def test_snapshot_whose_state_does_not_load_is_refused_and_leaves_nothing(memory, tmp_path, tiny_loaded):
    """Found by a bad-input audit: a snapshot whose every checksum holds but whose ingest state is not a
    saved state imported, then Memory() failed with safetensors' own error and left the half-made memory."""
    import hashlib
    import io
    import json
    import tarfile

    import zstandard

    from hsa_memory.errors import HsaMemoryError
    from hsa_memory.store.errors import SnapshotError

    fill(memory, repeat=2)
    good = memory.export(tmp_path / "good.hsamem")
    with open(good, "rb") as f, zstandard.ZstdDecompressor().stream_reader(f) as reader:
        with tarfile.open(fileobj=reader, mode="r|") as tar:
            members = [(m.name, tar.extractfile(m).read()) for m in tar]
    members = [(name, b"not a safetensors blob" * 4 if name == "ingest_state.bin" else data) for name, data in members]
    manifest = json.loads(members[0][1])
    for name, data in members[1:]:
        manifest["members"][name] = {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    members[0] = ("manifest.json", json.dumps(manifest).encode())
    bad = tmp_path / "bad.hsamem"
    with open(bad, "wb") as raw:
        writer = zstandard.ZstdCompressor(write_checksum=True).stream_writer(raw, closefd=False)
        with tarfile.open(fileobj=writer, mode="w|", format=tarfile.PAX_FORMAT) as tar:
            for name, data in members:
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
        writer.close()
    before = sorted(os.listdir(tmp_path))
    with pytest.raises(SnapshotError):
        Memory.import_snapshot(bad, tmp_path / "copy", model=tiny_loaded)
    assert sorted(os.listdir(tmp_path)) == before
    # a memory whose saved state is damaged says so with a typed error too
    from hsa_memory.stream import IngestState

    with pytest.raises(HsaMemoryError, match="ingest state is unreadable"):
        IngestState.from_bytes(b"\xff" * 64)


def test_bad_arguments_of_extend_forget_export_and_open_are_typed(memory, tmp_path, tiny_loaded):
    """Found by a bad-input audit: a string of chunk ids was read digit by digit (forget(chunk_ids="12")
    forgot chunks 1 and 2), floats and bools were truncated to ids, and the rest raised plain TypeError,
    ValueError, IsADirectoryError (leaving a snapshot-sized temp file), NotADirectoryError or RuntimeError."""
    fill(memory, repeat=2)
    chunks = memory.stats()["chunks"]
    assert chunks >= 3
    for bad, field in (("12", "chunk_ids"), (5, "chunk_ids"), ({1: 1}, "chunk_ids"), ([1.0], "chunk_ids[0]"),
                       ([True], "chunk_ids[0]"), (["a"], "chunk_ids[0]")):
        with pytest.raises(InvalidInput) as error:
            memory.forget(chunk_ids=bad)
        assert error.value.field == field
    assert memory.stats()["chunks"] == chunks
    for bad in (5, None, {"role": "user", "content": "hi"}):
        with pytest.raises(InvalidInput, match="^messages:"):
            memory.extend(bad)
    (tmp_path / "a-dir").mkdir()
    before = sorted(os.listdir(tmp_path))
    for bad in (tmp_path / "a-dir", 5):
        with pytest.raises(InvalidInput, match="^path:"):
            memory.export(bad)
    assert sorted(os.listdir(tmp_path)) == before
    (tmp_path / "a-file").write_text("x")
    with pytest.raises(InvalidInput, match="^path:"):
        Memory(tmp_path / "a-file", model=tiny_loaded)
    with pytest.raises(InvalidInput, match="^device:"):
        Memory(tmp_path / "other", model=tiny_loaded, device="quantum")
    with pytest.raises(InvalidInput, match="^model:"):
        Memory(tmp_path / "other", model="no-such-preset")
    with pytest.raises(InvalidInput, match="^answer:"):
        list(memory.ask_stream("hi?", answer="not an Answer", max_new_tokens=2))
    assert memory.stats()["chunks"] == chunks and memory.verify().ok


def test_export_and_import_expand_the_home_directory(memory, tmp_path, tiny_loaded, monkeypatch):
    """Found by an audit: Memory("~/x") expanded ~ but export and import_snapshot did not, so an import to
    "~/copy" built the memory under a literal ./~ folder and then opened a new, empty one at ~/copy."""
    fill(memory, repeat=1)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    (tmp_path / "home").mkdir()
    monkeypatch.chdir(tmp_path)
    memory.export("~/snap.hsamem")
    assert (tmp_path / "home" / "snap.hsamem").is_file()
    with Memory.import_snapshot("~/snap.hsamem", "~/copy", model=tiny_loaded) as other:
        assert other.stats()["last_seq"] == memory.stats()["last_seq"] > 0
    assert not (tmp_path / "~").exists()


def forget_on_first_kv_read(mem, path, monkeypatch):
    """Fill ``mem`` with six notes, then make another store handle forget all chunks but the last right after
    this process's landmark read (at its first K/V read). Returns (chunk ids before, K/V reads so far)."""
    from hsa_memory.store import MemoryStore

    mem.extend([{"role": "user", "content": f"note {i}: " + "alpha beta gamma " * 30} for i in range(6)])
    ids = mem.store.landmarks()[1].tolist()
    real_get_kv = type(mem.store).get_kv
    calls = []

    def get_kv_after_other_forget(self, chunk_ids, *args, **kwargs):
        if not calls:
            other = MemoryStore.open(path)
            other.forget(chunk_ids=ids[:-1])
            other.close()
        calls.append(1)
        return real_get_kv(self, chunk_ids, *args, **kwargs)

    monkeypatch.setattr(type(mem.store), "get_kv", get_kv_after_other_forget)
    return ids, calls


def test_search_while_another_process_forgets(tmp_path, tiny_loaded, monkeypatch):
    """A forget by another process between search's landmark read and its K/V read made search raise
    ChunkNotFound; the search now reads the memory again and never returns the forgotten chunk."""
    from hsa_memory import Memory

    with Memory(tmp_path / "mem", model=tiny_loaded) as mem:
        ids, calls = forget_on_first_kv_read(mem, tmp_path / "mem", monkeypatch)
        assert len(ids) >= 4
        hits = mem.search("alpha", k=4)
        assert calls and not {h.chunk_id for h in hits} & set(ids[:-1])


def test_ask_while_another_process_forgets(tmp_path, tiny_loaded, monkeypatch):
    """The same race in ask(): a forget by another process before the first answer token was read
    made ask raise ChunkNotFound; it now starts again on the fresh memory and cites no forgotten chunk."""
    from hsa_memory import Memory

    with Memory(tmp_path / "mem", model=tiny_loaded) as mem:
        ids, calls = forget_on_first_kv_read(mem, tmp_path / "mem", monkeypatch)
        answer = mem.ask("what is alpha?", max_new_tokens=4)
        assert calls and not {c.chunk_id for c in answer.citations} & set(ids[:-1])


def test_ask_stream_while_another_process_forgets_and_compacts(tmp_path, tiny_loaded):
    """Another process forgets and compacts the chunks an answer is reading after its first piece went
    out: the copy bias and the citations looked the rows up and raised ChunkNotFound mid-answer; now
    the answer finishes and cites none of the forgotten chunks."""
    from hsa_memory import Answer, Memory
    from hsa_memory.store import MemoryStore

    with Memory(tmp_path / "mem", model=tiny_loaded) as mem:
        mem.extend([{"role": "user", "content": f"note {i}: " + "alpha beta gamma " * 30} for i in range(6)])
        ids = mem.store.landmarks()[1].tolist()
        answer = Answer("")
        stream = mem.ask_stream("what is alpha?", max_new_tokens=8, answer=answer, copy_bias=3.0)
        first = next(stream)
        other = MemoryStore.open(tmp_path / "mem")
        other.forget(chunk_ids=ids[:-1])
        other.compact()
        other.close()
        rest = "".join(stream)
        assert (first + rest).strip() == answer.text
        assert not {c.chunk_id for c in answer.citations} & set(ids[:-1])


def test_ask_stream_while_another_process_forgets_mid_answer(tmp_path, tiny_loaded):
    """A forget (no compaction) by another process after the first piece: a later decode step routed to
    a chunk of the ask's landmark snapshot that was now forgotten and get_kv raised ChunkNotFound
    mid-answer; the forgotten chunk now reads as zero K/V (its content is not read) and is not cited."""
    from hsa_memory import Answer, Memory
    from hsa_memory.store import MemoryStore

    with Memory(tmp_path / "mem", model=tiny_loaded) as mem:
        mem.extend([{"role": "user", "content": f"note {i}: " + "alpha beta gamma delta " * 40} for i in range(12)])
        ids = mem.store.landmarks()[1].tolist()
        answer = Answer("")
        stream = mem.ask_stream("what is alpha?", max_new_tokens=40, answer=answer, temperature=1.0, seed=0)
        first = next(stream)
        other = MemoryStore.open(tmp_path / "mem")
        other.forget(chunk_ids=ids[:-1])
        other.close()
        rest = "".join(stream)
        assert (first + rest).strip() == answer.text and answer.tokens > 1
        assert not {c.chunk_id for c in answer.citations} & set(ids[:-1])
