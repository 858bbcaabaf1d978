"""Ingest gathers consecutive events into model blocks (hsa_memory/ingest.py): the chunks equal one model
call per event, and an ingest that fails part-way (after some commits, inside a block that spans events)
leaves a memory that the next write completes exactly — nothing lost, no token encoded twice."""
import pytest
import torch

from hsa_memory import Memory

MESSAGES = [("user" if i % 2 else "assistant",
             f"Message {i}: " + " ".join(["a", "short", "note", "about", "the", "garden"][: 2 + i % 5]) + f" #{i}")
            for i in range(40)]


def chunk_rows(mem: Memory):
    landmarks, ids = mem.store.landmarks()
    infos = mem.store.chunks(ids.tolist())
    return landmarks, [(i.position, i.text, i.roles, i.first_seq, i.last_seq) for i in infos]


def state_of(mem: Memory):
    state = mem.ingestor.state
    return (mem.ingestor.cursor, state.partial, state.pending_seqs, state.tail_ids, state.tail_seqs,
            state.stream.position, state.stream.pending_ids)


def test_blocks_across_events_equal_one_call_per_event(tmp_path, tiny_loaded):
    with Memory(tmp_path / "each", model=tiny_loaded) as each, Memory(tmp_path / "all", model=tiny_loaded) as whole:
        for role, text in MESSAGES:
            each.append(text, role=role)  # one ingest per event: one model call each
        whole.ingestor.block_tokens = 48  # blocks that start and end inside events
        whole.extend([{"role": r, "content": t} for r, t in MESSAGES])
        (la, rows_a), (lb, rows_b) = chunk_rows(each), chunk_rows(whole)
        assert len(rows_a) > 8 and rows_a == rows_b
        torch.testing.assert_close(lb, la, rtol=1e-4, atol=1e-5)
        assert state_of(each) == state_of(whole)
        # the same events stay known (their append times differ: each memory stamped its own)
        assert {s: role for s, (role, _) in each.ingestor.state.event_info.items()} == \
            {s: role for s, (role, _) in whole.ingestor.state.event_info.items()}


class Boom(Exception):
    pass


@pytest.mark.parametrize("fail_at", [3, 7, 12])
def test_a_failure_part_way_is_completed_exactly_by_the_next_write(tmp_path, tiny_loaded, monkeypatch, fail_at):
    batch = [{"role": r, "content": t} for r, t in MESSAGES]
    with Memory(tmp_path / "clean", model=tiny_loaded) as clean:
        clean.ingestor.block_tokens, clean.ingestor.commit_every = 48, 1
        clean.extend(batch)
        expected_landmarks, expected_rows = chunk_rows(clean)
        expected_state = state_of(clean)
        expected_tokens = clean.stats()["tokens"]
    with Memory(tmp_path / "m", model=tiny_loaded) as mem:
        mem.ingestor.block_tokens, mem.ingestor.commit_every = 48, 1
        calls = {"n": 0}
        real = type(mem.ingestor).encode_block

        def flaky(self, *args, **kwargs):
            calls["n"] += 1
            if calls["n"] == fail_at:
                raise Boom("disk full")
            return real(self, *args, **kwargs)

        monkeypatch.setattr(type(mem.ingestor), "encode_block", flaky)
        with pytest.raises(Boom):
            mem.extend(batch)
        monkeypatch.setattr(type(mem.ingestor), "encode_block", real)
        # the events are in the log; some chunks were committed before the failure, not all
        assert mem.store.events(after_seq=0) and 0 < len(chunk_rows(mem)[1]) < len(expected_rows)
    with Memory(tmp_path / "m", model=tiny_loaded) as mem:  # the next open encodes the rest
        mem.ingestor.block_tokens = 48
        mem.catch_up()
        landmarks, rows = chunk_rows(mem)
        assert rows == expected_rows
        torch.testing.assert_close(landmarks, expected_landmarks, rtol=1e-4, atol=1e-5)
        assert state_of(mem) == expected_state
        assert mem.stats()["tokens"] == expected_tokens


def test_an_ingest_with_no_new_events_keeps_a_resumed_events_offset(tmp_path, tiny_loaded):
    """The offset into a part-encoded event is cleared only once that event has been read to its end."""
    with Memory(tmp_path / "m", model=tiny_loaded) as mem:
        mem.append("hello there")
        ingestor = mem.ingestor
        ingestor.state.partial = (ingestor.cursor + 1, 3)
        assert ingestor.ingest([]) == 0
        assert ingestor.state.partial == (ingestor.cursor + 1, 3)
        ingestor.state.partial = None  # leave the memory as it was for the close
