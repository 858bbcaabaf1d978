"""``plan_pairs``: the chunk-major kernels' work list, checked against a plain Python plan.

The kernels trust it blindly (an item that overlaps the next segment reads the wrong page), so every
pair must land in exactly one item of its own segment, in sorted order, with no item over the size.
"""
import pytest
import torch

from hsa_memory.kernels.hsa_attention.triton import plan_pairs


def reference_plan(chunk_idx: torch.Tensor, n_pages: int, pages_per_batch: int, item_pairs: int,
                   token_block: int | None):
    """Per run (token block, segment g · n_pages + page), the flat pair indices that read it, cut into pieces
    of item_pairs: [((block, segment), pairs), ...] in run order."""
    B, T, HK, K = chunk_idx.shape
    items = []
    runs: dict[tuple[int, int], list[int]] = {}
    for e, c in enumerate(chunk_idx.flatten().tolist()):
        if c < 0:
            continue
        bt, b, g = e // (HK * K), e // (T * HK * K), (e // K) % HK
        block = bt // token_block if token_block else 0
        runs.setdefault((block, g * n_pages + c + b * pages_per_batch), []).append(e)
    for run in sorted(runs):
        pairs = runs[run]
        items += [(run, sorted(pairs[i:i + item_pairs])) for i in range(0, len(pairs), item_pairs)]
    return items


@pytest.mark.parametrize("B,T,HK,K,pages_per_batch,item_pairs", [
    (1, 200, 1, 4, 5, 128), (2, 70, 3, 3, 4, 8), (1, 1, 2, 16, 40, 4), (3, 33, 1, 8, 2, 1),
])
@pytest.mark.parametrize("paged", [False, True])
@pytest.mark.parametrize("token_block", [None, 16, 64])
def test_plan_matches_reference(B, T, HK, K, pages_per_batch, item_pairs, paged, token_block):
    gen = torch.Generator().manual_seed(B * 1000 + T * 10 + K)
    if paged:  # a shared pool: page ids index it directly
        n_pages, per_batch = B * pages_per_batch, 0
        chunk_idx = torch.randint(-1, n_pages, (B, T, HK, K), generator=gen)
    else:
        n_pages, per_batch = B * pages_per_batch, pages_per_batch
        chunk_idx = torch.randint(-1, pages_per_batch, (B, T, HK, K), generator=gen)
    order, item_seg, item_start, item_len = plan_pairs(chunk_idx, n_pages, per_batch, item_pairs, token_block)

    block_of = lambda e: (e // (HK * K)) // token_block if token_block else 0
    got = []
    for seg, start, length in zip(item_seg.tolist(), item_start.tolist(), item_len.tolist()):
        assert 0 <= length <= item_pairs
        if length:
            pairs = order[start:start + length].tolist()
            blocks = {block_of(e) for e in pairs}
            assert len(blocks) == 1, f"an item spans token blocks {blocks}"
            got.append(((blocks.pop(), seg), sorted(pairs)))
    want = reference_plan(chunk_idx, n_pages, per_batch, item_pairs, token_block)
    # the same pairs per run (the order inside a run is the sort's, so compare as sets)
    by_run = lambda items: {r: sorted(p for run, ps in items if run == r for p in ps) for r, _ in items}
    assert by_run(got) == by_run(want)
    # every live pair once; empty slots (-1) in none
    covered = [p for _, ps in got for p in ps]
    assert sorted(covered) == sorted(e for e, c in enumerate(chunk_idx.flatten().tolist()) if c >= 0)
    # items of one run are consecutive, runs in (block, segment) order; spare items come last
    assert [r for r, _ in got] == sorted(r for r, _ in got)
    assert all(n == 0 for n in item_len.tolist()[len(got):])
