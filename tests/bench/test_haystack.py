"""Scenarios: the ingest state written with each commit is the one the ingest holds after every event, events
that end on a chunk boundary included; a memory filled from an encoded stream equals one filled by
``Memory.extend`` (chunk rows, landmarks, K/V, ingest state), and both go on appending and searching alike; a needle put into the encoded
haystack at the start, middle or end equals ``extend`` of the haystack with that message changed, with only
the chunks within the lower decoder's reach of it encoded again; a memory that holds anything is refused."""
import pytest
import torch

import haystack
from hsa_memory import Memory
from hsa_memory.model import get_preset
from hsa_memory.model.loading import load_model
from hsa_memory.model.modeling import lower_reach
from hsa_memory.stream import IngestState

NEEDLE = "The special magic number for rosy-star is: 4251795."


@pytest.fixture(scope="module")
def loaded():
    """The tiny preset (window 32 over 2 lower layers: a reach of 62 tokens) with live HSA outputs."""
    torch.manual_seed(42)
    loaded = load_model(get_preset("tiny"), checkpoint=None)
    with torch.no_grad():
        for index in loaded.model.config.hsa_layer_indices:
            loaded.model.model.layers[index].o_proj.weight.normal_(0.0, 0.2)
    return loaded


def messages(tokens: int = 2500) -> list[dict]:
    """Fallback-text haystack messages with a short reply after every other one (chunks span roles and times)."""
    from hsa_memory.training.tasks import sources

    out = []
    for i, message in enumerate(haystack.haystack_messages(tokens, sources("fallback", "heldout").haystack)):
        out.append(message)
        if i % 2:
            out.append({"role": "assistant", "content": f"Noted, {i}.", "time": message["time"] + ":30"})
    return out


def assert_same_memory(a: Memory, b: Memory) -> None:
    landmarks_a, ids_a = a.store.landmarks()
    landmarks_b, ids_b = b.store.landmarks()
    assert torch.equal(ids_a, ids_b)
    assert a.store.chunks(ids_a) == b.store.chunks(ids_b)
    torch.testing.assert_close(landmarks_a, landmarks_b, rtol=1e-4, atol=1e-5)
    # K/V are stored in bf16: equal inputs up to float rounding may land one bf16 step apart
    for x, y in zip(a.store.get_kv(ids_a), b.store.get_kv(ids_b)):
        torch.testing.assert_close(x.float(), y.float(), rtol=2e-2, atol=2e-2)
    (cursor_a, blob_a), (cursor_b, blob_b) = a.store.ingest_cursor(), b.store.ingest_cursor()
    assert cursor_a == cursor_b
    state_a, state_b = IngestState.from_bytes(blob_a), IngestState.from_bytes(blob_b)
    for name in ("pending_seqs", "event_info", "tail_ids", "tail_seqs", "partial"):
        assert getattr(state_a, name) == getattr(state_b, name), name
    assert (state_a.stream.position, state_a.stream.pending_ids) == (state_b.stream.position, state_b.stream.pending_ids)
    torch.testing.assert_close(state_a.stream.pending_hidden, state_b.stream.pending_hidden, rtol=1e-4, atol=1e-5)
    for x, y in zip(state_a.stream.caches, state_b.stream.caches, strict=True):
        torch.testing.assert_close(x.keys, y.keys, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(x.values, y.values, rtol=1e-4, atol=1e-5)


def test_ingest_state_is_the_ingests_after_every_event(tmp_path, loaded):
    tokenizer = loaded.tokenizer
    batch, total = [], 0
    for i, message in enumerate(messages(1200)):
        batch.append(message)
        total += len(haystack.turn_ids(tokenizer, message["role"], message["content"]))
        if i % 3 == 0:
            # a turn of n words "a" is n + 5 tokens: this one ends the event on a chunk boundary
            words = (-total - 5) % 64 or 64
            batch.append({"role": "user", "content": " ".join(["a"] * words), "time": message["time"]})
            total += words + 5
    stream = haystack.Stream.of(tokenizer, haystack.events_of(batch))
    assert sum(int(b) % 64 == 0 for b in stream.bounds[1:]) >= 3
    with Memory(tmp_path / "m", model=loaded) as mem:
        seqs = []
        for message in batch:
            seqs += mem.extend([message])
            state = mem.ingestor.state
            expected, cursor = haystack.ingest_state(
                stream, state.stream, torch.tensor(seqs).numpy(),
                torch.tensor([haystack.to_micros(when) for _, _, when, _ in stream.events]).numpy(),
                mem.ingestor.tail_window)
            assert cursor == mem.ingestor.cursor
            for name in ("pending_seqs", "event_info", "tail_ids", "tail_seqs", "partial"):
                assert getattr(expected, name) == getattr(state, name), (len(seqs), name)


def test_fill_equals_extend_and_goes_on_alike(tmp_path, loaded):
    batch = messages()
    with Memory(tmp_path / "fill", model=loaded) as filled, Memory(tmp_path / "extend", model=loaded) as extended:
        stream, encoded, _, _ = haystack.fill(filled, batch, segment_tokens=256, batch_segments=2)
        extended.extend(batch)
        assert len(stream) == extended.stats()["tokens"] and len(stream) % 64
        assert len(encoded.states) > 2  # several commits, each with its own state
        assert_same_memory(filled, extended)
        for mem in (filled, extended):
            mem.append("One more thing: the gate code is 4471, and the spare key is under the blue pot.")
        assert_same_memory(filled, extended)
        assert [h.chunk_id for h in filled.search("gate code")] == [h.chunk_id for h in extended.search("gate code")]


@pytest.mark.parametrize("depth", [0.0, 0.5, 1.0])
def test_needle_equals_extend_of_the_changed_haystack(tmp_path, loaded, depth):
    model, tokenizer = loaded.model, loaded.tokenizer
    stream = haystack.Stream.of(tokenizer, haystack.events_of(messages()))
    encoded = haystack.encode(model, stream.ids, 256, 2)
    texts = stream.chunk_texts(tokenizer, 64)
    needle = haystack.with_needle(model, tokenizer, stream, encoded, texts, NEEDLE, depth, 256, 2)
    assert NEEDLE in needle.stream.events[needle.event][0] and len(needle.stream) == len(stream)
    assert abs(needle.depth - depth) < 0.15
    start, stop = needle.chunks
    first, last = needle.tokens
    assert start == first // 64 and stop - start <= (last + 1 + lower_reach(model.config)) // 64 - start + 1
    assert stop - start < len(stream) // 64 / 2  # only the needle's neighbourhood was encoded again
    assert not torch.allclose(needle.encoded.landmarks[start:stop], encoded.landmarks[start:stop])
    # every row at float precision (the store's bf16 K/V below would hide a chunk the reach left out)
    whole = model.encode_chunks(needle.stream.ids)
    torch.testing.assert_close(needle.encoded.keys, whole.memory.keys, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(needle.encoded.landmarks, whole.memory.landmarks, rtol=1e-5, atol=1e-5)
    if depth == 1.0:
        assert len(stream) - first < 512  # inside the question's recent window
    with Memory(tmp_path / "fill", model=loaded) as filled, Memory(tmp_path / "extend", model=loaded) as extended:
        haystack.write(filled, needle.stream, needle.encoded, needle.texts)
        extended.extend([{"role": role, "content": text, "time": when} for text, role, when, _ in needle.stream.events])
        assert_same_memory(filled, extended)


def test_write_refuses_a_memory_that_holds_anything(tmp_path, loaded):
    batch = messages(600)
    with Memory(tmp_path / "m", model=loaded) as mem:
        stream, encoded, texts, _ = haystack.fill(mem, batch, segment_tokens=128, batch_segments=2)
        with pytest.raises(RuntimeError, match="not empty"):
            haystack.write(mem, stream, encoded, texts)
