"""Landmark top-K, CPU path (packed int64 keys + torch.topk) against the reference, exactly.

Scenarios: random scores over several blocks (landmark count off the block), causal visibility with
queries that see nothing and K above the visible count, fewer landmarks than K, Gumbel selection,
half-precision inputs, and exact ties (integer-valued landmarks): the same chunks in the same order as
the reference's stable sort, earlier chunks first among ties. "auto" on the CPU dispatches here.
"""
import pytest
import torch

from hsa_memory import kernels
from hsa_memory.kernels.topk_retrieval import landmark_topk_reference
from hsa_memory.kernels.topk_retrieval.blocked import landmark_topk_blocked, ordered_bits

CASES = {
    # name: B, T, HK, R, N, topk, causal, block
    "decode-many-blocks": (1, 1, 1, 64, 3001, 8, False, 512),
    "t63-r100-causal": (2, 63, 2, 100, 70, 5, True, 16),
    "t300-k-over-visible": (1, 300, 1, 32, 40, 16, True, 7),
    "fewer-landmarks-than-k": (1, 9, 3, 16, 5, 8, False, 4),
    "k1": (1, 20, 2, 16, 100, 1, False, 33),
    "k64": (1, 5, 1, 16, 150, 64, True, 64),
}


def make_inputs(B, T, HK, R, N, causal, dtype=torch.float32, ties=False):
    g = torch.Generator().manual_seed(42)
    queries = torch.randn(B, T, HK, R, generator=g)
    landmarks = torch.randn(B, N, HK, R, generator=g)
    if ties:  # few distinct integer scores: every top-K boundary falls inside a tie
        queries = queries.sign()
        landmarks = torch.randint(-1, 2, (B, N, HK, R), generator=g).float()
    if causal:
        visible = torch.randint(0, N + 1, (B, T), generator=g)
        visible[:, 0] = 0
    else:
        visible = torch.full((B, T), N)
    return queries.to(dtype), landmarks.to(dtype), visible


def assert_same(ref, got):
    (s_ref, i_ref), (s_got, i_got) = ref, got
    assert i_got.dtype == torch.int64 and i_got.shape == i_ref.shape
    assert torch.equal(i_ref, i_got), "chunk choice or order differs"
    assert torch.equal(torch.isinf(s_ref), torch.isinf(s_got))
    finite = torch.isfinite(s_ref)
    torch.testing.assert_close(s_got[finite], s_ref[finite], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("case", CASES)
def test_matches_reference_exactly(case):
    B, T, HK, R, N, topk, causal, block = CASES[case]
    queries, landmarks, visible = make_inputs(B, T, HK, R, N, causal)
    ref = landmark_topk_reference(queries, landmarks, topk, visible, scale=0.125, block=37)
    assert_same(ref, landmark_topk_blocked(queries, landmarks, topk, visible, scale=0.125, block=block))


@pytest.mark.parametrize("case", ["t63-r100-causal", "k64"])
def test_ties_keep_the_references_order(case):
    B, T, HK, R, N, topk, causal, block = CASES[case]
    queries, landmarks, visible = make_inputs(B, T, HK, R, N, causal, ties=True)
    ref = landmark_topk_reference(queries, landmarks, topk, visible)
    got = landmark_topk_blocked(queries, landmarks, topk, visible, block=block)
    assert_same(ref, got)
    # the case really has ties inside the chosen sets
    finite = torch.isfinite(got[0])
    assert (got[0][..., :-1] == got[0][..., 1:])[finite[..., 1:]].any()


def test_gumbel_selection_matches():
    queries, landmarks, visible = make_inputs(2, 31, 2, 24, 300, True)
    ref = landmark_topk_reference(queries, landmarks, 8, visible, scale=0.3, gumbel_seed=1234)
    got = landmark_topk_blocked(queries, landmarks, 8, visible, scale=0.3, gumbel_seed=1234, block=128)
    assert_same(ref, got)
    clean = landmark_topk_blocked(queries, landmarks, 8, visible, scale=0.3, block=128)
    assert not torch.equal(clean[1], got[1])  # the noise changed some choices


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_inputs(dtype):
    queries, landmarks, visible = make_inputs(1, 17, 1, 64, 500, True, dtype=dtype)
    ref = landmark_topk_reference(queries, landmarks, 8, visible)
    assert_same(ref, landmark_topk_blocked(queries, landmarks, 8, visible, block=100))


def test_ordered_bits_sort_like_floats():
    x = torch.tensor([float("-inf"), -3.5, -1e-30, -0.0, 0.0, 1e-30, 2.0, float("inf")])
    keys = ordered_bits(x)
    assert (keys[1:] >= keys[:-1]).all()
    assert keys[3] == keys[4]  # -0.0 and +0.0 tie, as the floats do
    assert len(set(keys.tolist())) == len(x) - 1


def test_auto_on_cpu_takes_the_blocked_path(monkeypatch):
    calls = []
    monkeypatch.setattr(kernels, "landmark_topk_blocked", lambda *a, **k: calls.append(1) or landmark_topk_blocked(*a, **k))
    queries, landmarks, visible = make_inputs(1, 4, 1, 8, 20, False)
    ref = landmark_topk_reference(queries, landmarks, 3, visible)
    assert_same(ref, kernels.landmark_topk(queries, landmarks, 3, visible))
    assert calls == [1]
    kernels.landmark_topk(queries, landmarks, 3, visible, backend="reference")
    assert calls == [1]  # an explicit backend is honoured
