"""Landmark top-K: Triton against the reference.

Scenarios: decode (one query, the landmark axis split over programs and merged), runs of 63 and 300
queries, R = 100 (padded tile), causal visibility with fewer visible chunks than K (empty slots),
K = 1 and K = 64, Gumbel selection reproduced bit for bit, split and unsplit scans agreeing, and
no intermediate of size (queries × chunks).

The decode path (at most 16 queries: many-slice scan, then the K-slice merge) has its own cases:
landmark counts off the tile, one landmark, K above the visible count, 1 and 16 queries, K = 64,
slicings that must agree exactly, exact ties ordered like the reference, and Gumbel. Its opt-in merges
(``merge="ticket"``: fused into the scan by an atomic ticket; ``merge_by="fold"``: bitonic folds) must
choose the same chunks in the same order with the same scores as the default merge, bit for bit, on fresh
draws (several slices per row, so the K-slice selection runs), with ties, and leave their counters at 0.
"""
import pytest
import torch

pytest.importorskip("triton", reason="the Triton kernels need the triton extra: pip install 'hsa-memory[triton]'")

from hsa_memory.kernels import landmark_topk
from hsa_memory.kernels.topk_retrieval import landmark_topk_reference, landmark_topk_triton


def make_inputs(device, dtype, B, T, HK, R, N, causal):
    torch.manual_seed(42)
    queries = torch.randn(B, T, HK, R, device=device, dtype=dtype)
    landmarks = torch.randn(B, N, HK, R, device=device, dtype=dtype)
    if causal:
        visible_upto = torch.randint(0, N + 1, (B, T), device=device)
        visible_upto[:, 0] = 0  # a query that sees nothing
    else:
        visible_upto = torch.full((B, T), N, device=device)
    return queries, landmarks, visible_upto


def check_same_topk(ref, tri, assert_close, tol=1e-5, ranked_by_score=True):
    (s_ref, i_ref), (s_tri, i_tri) = ref, tri
    assert i_tri.shape == i_ref.shape and i_tri.dtype == torch.int64
    # same sets of chunks per (query, head); empty slots (-1) agree too
    assert torch.equal(i_ref.sort(-1).values, i_tri.sort(-1).values)
    assert torch.equal(torch.isinf(s_ref), torch.isinf(s_tri))
    finite = torch.isfinite(s_ref)
    assert_close("scores", s_ref[finite], s_tri[finite], tol)
    if ranked_by_score:  # best first (with Gumbel noise the rank is score + noise)
        assert (s_tri[..., :-1] >= s_tri[..., 1:]).all()


CASES = {
    # name: B, T, HK, R, N, topk, causal
    "decode-split": (1, 1, 1, 64, 3000, 8, False),
    "t63-r100-causal": (2, 63, 2, 100, 70, 5, True),
    "t300-k-over-visible": (1, 300, 1, 32, 40, 16, True),
    "k1": (1, 20, 2, 16, 100, 1, False),
    "k64": (1, 5, 1, 16, 150, 64, False),
}


@pytest.mark.parametrize("case", CASES)
def test_matches_reference(case, device, assert_close):
    B, T, HK, R, N, topk, causal = CASES[case]
    queries, landmarks, visible_upto = make_inputs(device, torch.float32, B, T, HK, R, N, causal)
    ref = landmark_topk_reference(queries, landmarks, topk, visible_upto, scale=0.125)
    tri = landmark_topk_triton(queries, landmarks, topk, visible_upto, scale=0.125)
    check_same_topk(ref, tri, assert_close)


@pytest.mark.parametrize("T", [4, 20])  # the decode path, the streaming scan
def test_dtypes(T, dtype, device, assert_close):
    queries, landmarks, visible_upto = make_inputs(device, dtype, 1, T, 1, 64, 200, True)
    ref = landmark_topk_reference(queries, landmarks, 8, visible_upto)
    tri = landmark_topk_triton(queries, landmarks, 8, visible_upto)
    check_same_topk(ref, tri, assert_close)


@pytest.mark.parametrize("T", [1, 16, 37])
def test_gumbel_selection_is_reproduced(T, device, assert_close):
    queries, landmarks, visible_upto = make_inputs(device, torch.float32, 2, T, 2, 24, 150, T > 1)
    ref = landmark_topk_reference(queries, landmarks, 6, visible_upto, gumbel_seed=1234)
    tri = landmark_topk_triton(queries, landmarks, 6, visible_upto, gumbel_seed=1234)
    check_same_topk(ref, tri, assert_close, ranked_by_score=False)
    clean = landmark_topk_triton(queries, landmarks, 6, visible_upto)
    assert not torch.equal(clean[1], tri[1])  # the noise changed the selection somewhere


def test_split_and_unsplit_scans_agree(device):
    from hsa_memory.kernels.topk_retrieval.triton import landmark_topk_forward

    queries, landmarks, visible_upto = make_inputs(device, torch.float32, 1, 3, 1, 32, 1000, True)
    one = landmark_topk_forward(queries, landmarks, 12, visible_upto, 1.0, None, n_splits=1)
    many = landmark_topk_forward(queries, landmarks, 12, visible_upto, 1.0, None, n_splits=7)
    assert torch.equal(one[1], many[1]) and torch.equal(one[0], many[0])


@pytest.mark.parametrize("sort", [False, True])
def test_merge_by_insertion_and_by_sorting(sort, device, assert_close):
    # the GPU merges tiles with many survivors by sorting networks, the CPU interpreter by insertion
    # (its sorts run element by element): check both paths on a tiny scan
    from hsa_memory.kernels.topk_retrieval.triton import landmark_topk_forward

    queries, landmarks, visible_upto = make_inputs(device, torch.float32, 1, 2, 1, 16, 130, False)
    ref = landmark_topk_reference(queries, landmarks, 3, visible_upto)
    tri = landmark_topk_forward(queries, landmarks, 3, visible_upto, 1.0, None, n_splits=2, sort=sort)
    check_same_topk(ref, tri, assert_close)


def test_no_queries_by_chunks_intermediate(device, monkeypatch):
    queries, landmarks, visible_upto = make_inputs(device, torch.float32, 1, 40, 1, 16, 2000, False)
    sizes = []
    empty, zeros, full = torch.empty, torch.zeros, torch.full
    monkeypatch.setattr(torch, "empty", lambda *a, **k: sizes.append(empty(*a, **k).numel()) or empty(*a, **k))
    monkeypatch.setattr(torch, "zeros", lambda *a, **k: sizes.append(zeros(*a, **k).numel()) or zeros(*a, **k))
    monkeypatch.setattr(torch, "full", lambda *a, **k: sizes.append(full(*a, **k).numel()) or full(*a, **k))
    landmark_topk_triton(queries, landmarks, 4, visible_upto)
    assert max(sizes) < 40 * 2000 // 10


def test_public_function_dispatches(device):
    queries, landmarks, visible_upto = make_inputs(device, torch.float32, 1, 5, 1, 16, 90, True)
    ref = landmark_topk(queries, landmarks, 4, visible_upto, backend="reference")
    tri = landmark_topk(queries, landmarks, 4, visible_upto, backend="triton")
    assert torch.equal(ref[1].sort(-1).values, tri[1].sort(-1).values)


def test_rejects_bad_inputs(device):
    queries, landmarks, visible_upto = make_inputs(device, torch.float32, 1, 5, 1, 16, 90, True)
    with pytest.raises(ValueError, match=r"visible_upto must be \(B, T\) = \(1, 5\)"):
        landmark_topk_triton(queries, landmarks, 4, visible_upto[:, :2])
    with pytest.raises(ValueError, match="topk must be in 1..256"):
        landmark_topk_triton(queries, landmarks, 0, visible_upto)


DECODE_CASES = {
    # name: B, T, HK, R, N, topk, causal, block_n, tiles_per_slice
    "t1-n-off-tile": (1, 1, 1, 64, 333, 8, False, 64, None),
    "t16-causal-k-over-visible": (1, 16, 2, 32, 100, 16, True, 64, None),
    "single-landmark": (2, 1, 1, 16, 1, 4, False, None, None),
    "k64-multi-tile": (1, 2, 1, 16, 200, 64, True, 64, 2),
    "r100-t3-multi-tile": (2, 3, 1, 100, 150, 5, True, 64, 3),
}


@pytest.mark.parametrize("case", DECODE_CASES)
def test_decode_path_matches_reference(case, device, assert_close):
    from hsa_memory.kernels.topk_retrieval.triton import landmark_topk_decode

    B, T, HK, R, N, topk, causal, block_n, tiles = DECODE_CASES[case]
    queries, landmarks, visible_upto = make_inputs(device, torch.float32, B, T, HK, R, N, causal)
    ref = landmark_topk_reference(queries, landmarks, topk, visible_upto, scale=0.125)
    tri = landmark_topk_decode(queries, landmarks, topk, visible_upto, 0.125, None, block_n=block_n,
                               tiles_per_slice=tiles)
    check_same_topk(ref, tri, assert_close)
    assert torch.equal(ref[1], tri[1])  # same order too (no near-ties in these draws)


def test_decode_slicings_agree(device):
    # one tile per slice, several tiles per slice (the running merge), one slice, wider tiles
    from hsa_memory.kernels.topk_retrieval.triton import landmark_topk_decode

    queries, landmarks, visible_upto = make_inputs(device, torch.float32, 1, 3, 1, 32, 700, True)
    runs = [landmark_topk_decode(queries, landmarks, 12, visible_upto, 1.0, None, block_n=bn, tiles_per_slice=tp)
            for bn, tp in ((64, 1), (64, 3), (64, 11), (128, None))]
    for scores, indices in runs[1:]:
        # the same chunks in the same order; the scores agree to rounding (tiles of another shape may
        # sum in another order)
        assert torch.equal(runs[0][1], indices)
        assert torch.allclose(runs[0][0], scores, rtol=1e-6, atol=0)


@pytest.mark.parametrize("T", [1, 20])  # the decode path, the streaming scan
def test_exact_ties_keep_the_reference_order(T, device):
    # integer-valued inputs: scores are exact, many are equal; earlier chunks come first among ties
    torch.manual_seed(3)
    N, R = 300, 16
    queries = torch.randint(-2, 3, (1, T, 1, R), device=device).float()
    landmarks = torch.randint(-1, 2, (1, N, 1, R), device=device).float()
    landmarks[:, 150:] = landmarks[:, :150]  # duplicated landmarks tie exactly
    visible_upto = torch.full((1, T), N, device=device)
    ref = landmark_topk_reference(queries, landmarks, 16, visible_upto)
    tri = landmark_topk_triton(queries, landmarks, 16, visible_upto)
    assert torch.equal(ref[1], tri[1]) and torch.equal(ref[0], tri[0])


def test_decode_path_limits(device, assert_close):
    # K above 64 leaves the decode path (its merge sorts K lists of K keys) for the streaming scan
    from hsa_memory.kernels.topk_retrieval.triton import landmark_topk_decode

    queries, landmarks, visible_upto = make_inputs(device, torch.float32, 1, 1, 1, 16, 150, False)
    with pytest.raises(ValueError, match="decode path"):
        landmark_topk_decode(queries, landmarks, 65, visible_upto, 1.0, None)
    ref = landmark_topk_reference(queries, landmarks, 65, visible_upto)
    check_same_topk(ref, landmark_topk_triton(queries, landmarks, 65, visible_upto), assert_close)


def test_decode_memory_is_slices_not_chunks(device, monkeypatch):
    queries, landmarks, visible_upto = make_inputs(device, torch.float32, 1, 16, 1, 16, 3000, False)
    sizes = []
    empty = torch.empty
    monkeypatch.setattr(torch, "empty", lambda *a, **k: sizes.append(empty(*a, **k).numel()) or empty(*a, **k))
    landmark_topk_triton(queries, landmarks, 4, visible_upto)
    assert max(sizes) < 16 * 3000 // 10  # rows × slices × K keys, slices = landmarks / 128


MERGES = [("ticket", "sort"), ("kernel", "fold"), ("ticket", "fold")]
MERGE_CASES = {
    # name: seed, B, T, HK, R, N, topk, causal, gumbel_seed, block_n, tiles_per_slice
    "one-query-10-slices": (11, 1, 1, 1, 16, 640, 4, False, None, 64, 1),  # the merge selects 4 of 10 slices
    "batches-heads-queries-causal-gumbel": (12, 2, 2, 2, 16, 260, 6, True, 99, 64, None),
    "k64-over-visible-multi-tile": (13, 1, 2, 1, 16, 200, 64, True, None, 64, 2),
}


@pytest.mark.parametrize("case", MERGE_CASES)
def test_decode_merges_match_reference(case, device, assert_close):
    from hsa_memory.kernels.topk_retrieval.triton import landmark_topk_decode

    seed, B, T, HK, R, N, topk, causal, gumbel, block_n, tiles = MERGE_CASES[case]
    g = torch.Generator().manual_seed(seed)  # fresh draws, not make_inputs' fixed seed
    queries = torch.randn(B, T, HK, R, generator=g).to(device)
    landmarks = torch.randn(B, N, HK, R, generator=g).to(device)
    visible_upto = torch.randint(0, N + 1, (B, T), generator=g) if causal else torch.full((B, T), N)
    if causal:
        visible_upto[:, 0] = 0  # a query that sees nothing: every slot empty
        visible_upto[-1, -1] = topk // 2  # fewer visible chunks than K
    visible_upto = visible_upto.to(device)
    ref = landmark_topk_reference(queries, landmarks, topk, visible_upto, scale=0.125, gumbel_seed=gumbel)
    run = lambda merge, merge_by: landmark_topk_decode(queries, landmarks, topk, visible_upto, 0.125, gumbel,
                                                       block_n=block_n, tiles_per_slice=tiles, merge=merge,
                                                       merge_by=merge_by)
    base = run("kernel", "sort")
    for merge, merge_by in MERGES:
        tri = run(merge, merge_by)
        check_same_topk(ref, tri, assert_close, ranked_by_score=gumbel is None)
        assert torch.equal(ref[1], tri[1]), (merge, merge_by)  # same order, empty slots (-1) included
        assert torch.equal(base[1], tri[1]) and torch.equal(base[0], tri[0]), (merge, merge_by)


@pytest.mark.parametrize("T", [1, 2])
def test_decode_merges_keep_the_reference_tie_order(T, device):
    # integer-valued inputs, duplicated landmarks: many exact ties, inside and across the 10 slices
    from hsa_memory.kernels.topk_retrieval.triton import landmark_topk_decode

    g = torch.Generator().manual_seed(5)
    N, R = 640, 16
    queries = torch.randint(-2, 3, (1, T, 1, R), generator=g).float().to(device)
    landmarks = torch.randint(-1, 2, (1, N, 1, R), generator=g).float()
    landmarks[:, 320:] = landmarks[:, :320]
    landmarks = landmarks.to(device)
    visible_upto = torch.full((1, T), N, device=device)
    ref = landmark_topk_reference(queries, landmarks, 8, visible_upto)
    for merge, merge_by in MERGES:
        tri = landmark_topk_decode(queries, landmarks, 8, visible_upto, 1.0, None, block_n=64, tiles_per_slice=1,
                                   merge=merge, merge_by=merge_by)
        assert torch.equal(ref[1], tri[1]) and torch.equal(ref[0], tri[0]), (merge, merge_by)


def test_ticket_merge_resets_its_counters(device, monkeypatch):
    # the last program of each (b, h) resets its counter, so one buffer serves call after call (and CUDA-graph
    # replays); HSA_TOPK_DECODE_MERGE=ticket takes the ticket merge for one query (no merge kernel launched)
    from hsa_memory.kernels.topk_retrieval import triton as tk

    queries, landmarks, visible_upto = make_inputs(device, torch.float32, 2, 1, 2, 16, 200, False)
    counters = torch.zeros(4, dtype=torch.int32, device=device)
    first = tk.landmark_topk_decode(queries, landmarks, 8, visible_upto, 1.0, None, block_n=64, merge="ticket",
                                    counters=counters)
    assert not counters.any()
    again = tk.landmark_topk_decode(queries, landmarks, 8, visible_upto, 1.0, None, block_n=64, merge="ticket",
                                    counters=counters)
    assert not counters.any() and torch.equal(first[1], again[1]) and torch.equal(first[0], again[0])

    class NoLaunch:
        def __getitem__(self, grid):
            raise AssertionError("the merge kernel was launched")

    monkeypatch.setattr(tk, "DECODE_MERGE", "ticket")
    monkeypatch.setattr(tk, "topk_decode_merge_kernel", NoLaunch())
    default = landmark_topk_triton(queries, landmarks, 8, visible_upto)
    ref = landmark_topk_reference(queries, landmarks, 8, visible_upto)
    assert torch.equal(default[1], ref[1]) and torch.equal(default[1], first[1])
    with pytest.raises(ValueError, match="counters"):
        tk.landmark_topk_decode(queries, landmarks, 8, visible_upto, 1.0, None, merge="ticket",
                                counters=counters[:2])
