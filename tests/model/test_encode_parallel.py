"""Scenarios: segment-parallel ingest equals sequential ``encode_chunks`` (landmarks, K/V, token ids, the
state after every piece, the stream continued afterwards) for stream lengths off the chunk grid and
segments shorter and longer than the lower decoder's reach; a span from ``start`` to ``stop`` equals those
rows of the whole stream; a context one token short of the reach is caught."""
import pytest
import torch

from hsa_memory.model import modeling
from hsa_memory.model.modeling import lower_reach


def pieces_of(model, ids, **options):
    return list(model.encode_parallel(ids, **options))


def cat(pieces, name):
    return torch.cat([getattr(p.memory, name) for p in pieces])


def assert_same_state(state, expected):
    assert state.position == expected.position
    assert state.pending_ids == expected.pending_ids
    for cache, want in zip(state.caches, expected.caches, strict=True):
        torch.testing.assert_close(cache.keys, want.keys, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(cache.values, want.values, rtol=1e-5, atol=1e-5)


# two lower layers: window 32 reaches 62 tokens back, window 100 reaches 198 (longer than a 64-token segment)
@pytest.mark.parametrize("window, tokens, segment, batch", [(32, 1000, 128, 2), (32, 777, 192, 1), (100, 1000, 64, 3),
                                                            (100, 1000, 256, 4), (100, 150, 256, 2)])
def test_parallel_equals_sequential(tiny_hsa, window, tokens, segment, batch):
    model = tiny_hsa(0, sliding_window=window)
    torch.manual_seed(3)
    ids = torch.randint(0, 49152, (tokens + 100,))
    whole = model.encode_chunks(ids[:tokens])
    pieces = pieces_of(model, ids[:tokens], segment_tokens=segment, batch_segments=batch)
    torch.testing.assert_close(cat(pieces, "landmarks"), whole.memory.landmarks, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(cat(pieces, "keys"), whole.memory.keys, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(cat(pieces, "values"), whole.memory.values, rtol=1e-5, atol=1e-5)
    assert torch.equal(torch.cat([p.token_ids for p in pieces]), whole.token_ids)
    assert [p.first_position for p in pieces] == [0] + [int(n) for n in torch.cumsum(torch.tensor(
        [p.token_ids.shape[0] for p in pieces]), 0)[:-1]]
    # every piece's state is the sequential one at that point
    for piece in pieces[:-1]:
        position = piece.state.position
        assert_same_state(piece.state, model.encode_chunks(ids[:position]).state)
    final = pieces[-1].state
    assert_same_state(final, whole.state)
    torch.testing.assert_close(final.pending_hidden, whole.state.pending_hidden, rtol=1e-5, atol=1e-5)
    # and the stream goes on from it exactly
    after = model.encode_chunks(ids[tokens:], final)
    expected = model.encode_chunks(ids[tokens:], whole.state)
    assert after.token_ids.shape[0] >= 1
    torch.testing.assert_close(after.memory.landmarks, expected.memory.landmarks, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(after.memory.keys, expected.memory.keys, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("start, stop", [(128, 576), (64, 1000), (0, 320), (384, 384)])
def test_span_equals_those_rows_of_the_stream(tiny_hsa, start, stop):
    model = tiny_hsa(0, sliding_window=100)
    torch.manual_seed(4)
    ids = torch.randint(0, 49152, (1000,))
    whole = model.encode_chunks(ids)
    pieces = pieces_of(model, ids, segment_tokens=128, batch_segments=2, start=start, stop=stop)
    rows = slice(start // 64, stop // 64)
    assert pieces[0].first_position == start // 64
    torch.testing.assert_close(cat(pieces, "keys"), whole.memory.keys[rows], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(cat(pieces, "landmarks"), whole.memory.landmarks[rows], rtol=1e-5, atol=1e-5)
    assert_same_state(pieces[-1].state, model.encode_chunks(ids[:stop]).state)


def test_a_context_one_token_short_of_the_reach_is_caught(tiny_hsa, monkeypatch):
    model = tiny_hsa(0, sliding_window=32)
    torch.manual_seed(5)
    ids = torch.randint(0, 49152, (640,))
    whole = model.encode_chunks(ids)
    reach = lower_reach(model.config)
    monkeypatch.setattr(modeling, "lower_reach", lambda config: reach - 1)
    short = cat(pieces_of(model, ids, segment_tokens=128, batch_segments=2), "keys")
    # the first segment has nothing before it; in the others only the first token misses one token, which
    # moves its keys ~1000x the float noise (the landmarks move less: keys are the sharper check)
    torch.testing.assert_close(short[:2], whole.memory.keys[:2], rtol=1e-5, atol=1e-5)
    assert (short - whole.memory.keys).abs().amax() > 1e-3


def test_bad_segment_sizes_are_refused(tiny_hsa):
    model = tiny_hsa(0)
    ids = torch.randint(0, 49152, (300,))
    for options in ({"segment_tokens": 100}, {"segment_tokens": 32}, {"start": 10}, {"stop": 200}, {"start": 256, "stop": 128}):
        with pytest.raises(ValueError, match="chunk boundaries"):
            pieces_of(model, ids, **options)
