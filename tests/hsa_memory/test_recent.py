"""The recent context kept between asks (hsa_memory.recent).

Scenarios: the context start is window-aligned and always fills a window; a second ask reuses the
cached tail and answers exactly like a fresh process; an append extends the cache by its new tokens
only and equals a fresh computation from the same start; a forget (generation moves) recomputes.
"""
import pytest
import torch

from hsa_memory import Memory
from hsa_memory.recent import context_start

TALK = [f"Message {i}: the parcel number {i * 37} went to shelf {i % 5} in the {['red', 'blue', 'green'][i % 3]} room."
        for i in range(12)]


@pytest.mark.parametrize("window", [32, 512])
def test_context_start_is_aligned_and_fills_a_window(window):
    for position in range(0, 5 * window):
        start = context_start(position, 2 * window, window)
        assert start % window == 0 or start == position - 2 * window
        assert 0 <= start <= position
        if position >= window:
            assert window <= position - start < 2 * window
        else:
            assert start == 0
    # an old state that kept one window only: the context is what it kept
    assert context_start(10 * window + 5, window, window) == 9 * window + 5


def fill(mem):
    mem.extend([{"role": "user" if i % 2 == 0 else "assistant", "content": text} for i, text in enumerate(TALK)])


def cached_tensors(mem):
    state = mem._recent._state
    return state, [(c.keys, c.values) for c in state.caches if c is not None and c.keys is not None]


def test_second_ask_reuses_the_context_and_matches_a_fresh_process(tmp_path, tiny_loaded):
    with Memory(tmp_path / "m", model=tiny_loaded) as mem:
        fill(mem)
        first = mem.ask("Which shelf holds parcel 74?", max_new_tokens=8)
        second = mem.ask("Which shelf holds parcel 74?", max_new_tokens=8)
        assert first.timings["context_tokens"] == first.timings["context_length"] > 0
        assert second.timings["context_tokens"] == 0
        assert second.text == first.text
        assert [c.chunk_id for c in second.citations] == [c.chunk_id for c in first.citations]
    with Memory(tmp_path / "m", model=tiny_loaded) as reopened:
        again = reopened.ask("Which shelf holds parcel 74?", max_new_tokens=8)
        assert again.timings["context_tokens"] > 0  # a new process starts without the cache
        assert again.text == first.text
        assert [c.chunk_id for c in again.citations] == [c.chunk_id for c in first.citations]


def test_append_extends_the_context_by_its_new_tokens_only(tmp_path, tiny_loaded):
    window = tiny_loaded.model.config.sliding_window
    with Memory(tmp_path / "m", model=tiny_loaded) as mem:
        fill(mem)
        mem.ask("Where did parcel 37 go?", max_new_tokens=2)
        before, _ = cached_tensors(mem)
        # append until the aligned start stays put for one append, so the cache is extended
        for i in range(20):
            mem.append(f"ok {i}", role="user")
            answer = mem.ask("Where did parcel 37 go?", max_new_tokens=2)
            state, extended = cached_tensors(mem)
            if state.start == before.start:
                break
            before = state
        assert state.start == before.start
        new_tokens = state.position - before.position
        assert 0 < answer.timings["context_tokens"] == new_tokens < window
        position, start = state.position, state.start
    with Memory(tmp_path / "m", model=tiny_loaded) as fresh:
        fresh.ask("Where did parcel 37 go?", max_new_tokens=2)
        state, computed = cached_tensors(fresh)
        assert (state.position, state.start) == (position, start)
        assert len(computed) == len(extended) > 0
        for (k1, v1), (k2, v2) in zip(extended, computed):
            torch.testing.assert_close(k1, k2, rtol=1e-4, atol=1e-5)
            torch.testing.assert_close(v1, v2, rtol=1e-4, atol=1e-5)


def test_forget_recomputes_the_context(memory):
    fill(memory)
    first = memory.ask("Which room?", max_new_tokens=2)
    hits = memory.search("parcel", k=2)
    memory.forget(chunk_ids=[hits[0].chunk_id])
    after = memory.ask("Which room?", max_new_tokens=2)
    assert after.timings["context_tokens"] == after.timings["context_length"] > 0
    assert hits[0].chunk_id not in [c.chunk_id for c in after.citations]
    assert first.timings["context_tokens"] > 0


SECRET = "The vault code is Zebra-Quartz-8812, tell nobody."


def all_chunk_texts(mem):
    return [hit.text for hit in mem.search("vault code zebra quartz", k=10_000)]


def test_forget_scrubs_the_tail_and_the_open_chunk(tmp_path, tiny_loaded):
    with Memory(tmp_path / "m", model=tiny_loaded) as mem:
        fill(mem)
        mem.ask("Which room?", max_new_tokens=2)
        mem.append(SECRET, role="user", metadata={"tag": "secret"})
        assert "Zebra" in mem.loaded.tokenizer.decode(mem.ingestor.state.tail_ids)
        assert mem.forget(where={"tag": "secret"}) >= 1
        state = mem.ingestor.state
        assert "Zebra" not in mem.loaded.tokenizer.decode(state.tail_ids)
        assert "Zebra" not in mem.loaded.tokenizer.decode(state.stream.pending_ids)
        assert len(state.tail_ids) == len(state.tail_seqs)
        assert state.stream.position % 64 == len(state.stream.pending_ids) % 64
        answer = mem.ask("What is the vault code?", max_new_tokens=4)
        assert answer.timings["context_tokens"] == answer.timings["context_length"]
        # the open chunk closes later without the forgotten words
        mem.extend([{"role": "assistant", "content": text} for text in TALK])
        assert all_chunk_texts(mem) and not any("Zebra" in text for text in all_chunk_texts(mem))
    with Memory(tmp_path / "m", model=tiny_loaded) as reopened:  # the scrubbed state was committed
        assert "Zebra" not in reopened.loaded.tokenizer.decode(reopened.ingestor.state.tail_ids)
        assert not any("Zebra" in text for text in all_chunk_texts(reopened))


def test_forget_of_older_chunks_keeps_the_tail(memory):
    fill(memory)
    state = memory.ingestor.state
    before, position = list(state.tail_ids), state.stream.position
    assert position > 4 * len(before)  # the first chunk's events lie far before the tail
    oldest = min(hit.chunk_id for hit in memory.search("parcel", k=100))
    memory.forget(chunk_ids=[oldest])
    assert memory.ingestor.state.tail_ids == before and memory.ingestor.state.stream.position == position


def test_a_forget_by_another_writer_is_not_undone_by_our_next_append(tmp_path, tiny_loaded):
    first = Memory(tmp_path / "m", model=tiny_loaded)
    try:
        fill(first)
        first.append(SECRET, role="user", metadata={"tag": "secret"})
        second = Memory(tmp_path / "m", model=tiny_loaded)  # loads the state with the secret in its tail
        try:
            assert "Zebra" in second.loaded.tokenizer.decode(second.ingestor.state.tail_ids)
            first.forget(where={"tag": "secret"})
            # the other writer's in-RAM state is stale now: its append must reload, not write it back
            second.extend([{"role": "assistant", "content": text} for text in TALK])
            assert "Zebra" not in second.loaded.tokenizer.decode(second.ingestor.state.tail_ids)
            assert not any("Zebra" in text for text in all_chunk_texts(second))
        finally:
            second.close()
    finally:
        first.close()
