"""``plan_pairs``: the chunk-major kernels' work list, checked against a plain Python plan.

The kernels trust it blindly (an item that overlaps the next segment reads the wrong page), so every
pair must land in exactly one item of its own segment, in sorted order, with no item over the size.
"""
import pytest
import torch

from hsa_memory.kernels.hsa_attention.triton import plan_pairs


def reference_plan(chunk_idx: torch.Tensor, n_pages: int, pages_per_batch: int, item_pairs: int):
    """Per segment (g · n_pages + page), the flat pair indices that read it, cut into runs of item_pairs."""
    B, T, HK, K = chunk_idx.shape
    items = []
    flat = chunk_idx.flatten().tolist()
    segments: dict[int, list[int]] = {}
    for e, c in enumerate(flat):
        if c < 0:
            continue
        b, g = e // (T * HK * K), (e // K) % HK
        segments.setdefault(g * n_pages + c + b * pages_per_batch, []).append(e)
    for seg in sorted(segments):
        pairs = segments[seg]
        items += [(seg, sorted(pairs[i:i + item_pairs])) for i in range(0, len(pairs), item_pairs)]
    return items


@pytest.mark.parametrize("B,T,HK,K,pages_per_batch,item_pairs", [
    (1, 200, 1, 4, 5, 128), (2, 70, 3, 3, 4, 8), (1, 1, 2, 16, 40, 4), (3, 33, 1, 8, 2, 1),
])
@pytest.mark.parametrize("paged", [False, True])
def test_plan_matches_reference(B, T, HK, K, pages_per_batch, item_pairs, paged):
    gen = torch.Generator().manual_seed(B * 1000 + T * 10 + K)
    if paged:  # a shared pool: page ids index it directly
        n_pages, per_batch = B * pages_per_batch, 0
        chunk_idx = torch.randint(-1, n_pages, (B, T, HK, K), generator=gen)
    else:
        n_pages, per_batch = B * pages_per_batch, pages_per_batch
        chunk_idx = torch.randint(-1, pages_per_batch, (B, T, HK, K), generator=gen)
    order, item_seg, item_start, item_len = plan_pairs(chunk_idx, n_pages, per_batch, item_pairs)

    got = []
    for seg, start, length in zip(item_seg.tolist(), item_start.tolist(), item_len.tolist()):
        assert 0 <= length <= item_pairs
        if length:
            got.append((seg, sorted(order[start:start + length].tolist())))
    want = reference_plan(chunk_idx, n_pages, per_batch, item_pairs)
    # the same pairs per segment (the order inside a segment is the sort's, so compare as sets)
    by_seg = lambda items: {s: sorted(p for seg, ps in items if seg == s for p in ps) for s, _ in items}
    assert by_seg(got) == by_seg(want)
    # every live pair once; empty slots (-1) in none
    covered = [p for _, ps in got for p in ps]
    assert sorted(covered) == sorted(e for e, c in enumerate(chunk_idx.flatten().tolist()) if c >= 0)
    # items of one segment are consecutive and no longer than the size; spare items come last
    assert [s for s, _ in got] == sorted(s for s, _ in got)
    assert all(n == 0 for n in item_len.tolist()[len(got):])
