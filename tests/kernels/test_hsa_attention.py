"""HSA chunk attention: Triton against the reference, forward and every gradient.

Scenarios: decode (one token, pairs unsorted), prefill-like runs of 63 and 300 tokens (pairs sorted
by chunk), head ratios 1, 3, 16 and 32, K = 64, D = 100 (padded tile), causal selection with fewer
visible chunks than K (empty slots), a paged pool, every forward/backward kernel layout, every dtype.
"""
import pytest
import torch

pytest.importorskip("triton", reason="the Triton kernels need the triton extra: pip install 'hsa-memory[triton]'")

from hsa_memory.kernels import hsa_attention
from hsa_memory.kernels.hsa_attention import hsa_attention_reference, hsa_attention_triton

S = 64


def make_inputs(device, dtype, B, T, HQ, HK, D, n_chunks, K, causal, paged=False):
    """Random q/K/V and a chunk selection like the model's: token t sees chunks j < t // 64 when causal."""
    torch.manual_seed(42)
    q = torch.randn(B, T, HQ, D, device=device, dtype=dtype)
    shape = (n_chunks, S, HK, D) if paged else (B, n_chunks * S, HK, D)
    mem_k = torch.randn(shape, device=device, dtype=dtype)
    mem_v = torch.randn(shape, device=device, dtype=dtype)
    scores = torch.rand(B, T, HK, n_chunks, device=device)
    if causal:
        visible = torch.arange(T, device=device).view(1, T, 1, 1) // S
        scores = scores.masked_fill(torch.arange(n_chunks, device=device) >= visible, -1.0)
    top = scores.topk(min(K, n_chunks), dim=-1)
    chunk_idx = torch.where(top.values >= 0, top.indices, -1)
    chunk_idx = torch.cat([chunk_idx, chunk_idx.new_full((B, T, HK, K - chunk_idx.shape[-1]), -1)], dim=-1)
    chunk_w = torch.randn(B, T, HK, K, device=device).softmax(-1).to(dtype)
    do = torch.randn(B, T, HQ, D, device=device, dtype=dtype)
    return q, mem_k, mem_v, chunk_idx, chunk_w, do


def run_both(inputs, assert_close, tol, **kwargs):
    q, mem_k, mem_v, chunk_idx, chunk_w, do = inputs
    paged = kwargs.pop("paged", False)
    results = []
    for fn, extra in ((hsa_attention_reference, {}), (hsa_attention_triton, kwargs)):
        leaves = [x.detach().clone().requires_grad_() for x in (q, mem_k, mem_v, chunk_w)]
        o = fn(leaves[0], leaves[1], leaves[2], chunk_idx, leaves[3], paged=paged, **extra)
        o.backward(do)
        results.append([o] + [x.grad for x in leaves])
    for name, ref, tri in zip(("o", "dq", "dk", "dv", "dw"), *results):
        assert_close(name, ref, tri, tol)


CASES = {
    # name: B, T, HQ, HK, D, chunks, K, causal
    "decode-ratio16": (1, 1, 16, 1, 64, 5, 8, False),
    "decode-ratio4-d128": (1, 1, 8, 2, 128, 3, 4, False),
    "t63-ratio3-d100": (2, 63, 3, 1, 100, 3, 4, False),
    "t300-ratio1-causal": (1, 300, 2, 2, 32, 5, 3, True),
    "t300-ratio16-k-over-visible": (1, 300, 16, 1, 64, 5, 6, True),
    "t63-ratio3-hk2": (1, 63, 6, 2, 16, 4, 2, False),
    "k64-ratio32": (1, 2, 32, 1, 16, 66, 64, False),
}


@pytest.mark.parametrize("case", CASES)
def test_matches_reference(case, device, assert_close):
    B, T, HQ, HK, D, chunks, K, causal = CASES[case]
    inputs = make_inputs(device, torch.float32, B, T, HQ, HK, D, chunks, K, causal)
    run_both(inputs, assert_close, 0.005)


def test_dtypes(dtype, tolerance, device, assert_close):
    inputs = make_inputs(device, dtype, 1, 70, 4, 1, 64, 3, 3, False)
    run_both(inputs, assert_close, tolerance)


@pytest.mark.parametrize(
    "forward,backward,sort_pairs",
    [("token", "atomic", None), ("chunk", "atomic", False), ("chunk", "atomic", True), ("chunk", "token", True)],
)
def test_kernel_variants(forward, backward, sort_pairs, device, assert_close):
    inputs = make_inputs(device, torch.float32, 2, 33, 3, 1, 32, 4, 5, False)
    run_both(inputs, assert_close, 0.005, forward=forward, backward=backward, sort_pairs=sort_pairs)


@pytest.mark.parametrize("T", [1, 63])
def test_paged_pool(T, device, assert_close):
    inputs = make_inputs(device, torch.float32, 2, T, 4, 2, 32, 7, 5, False, paged=True)
    run_both(inputs, assert_close, 0.005, paged=True)


def test_paged_equals_contiguous(device, assert_close):
    q, mem_k, mem_v, chunk_idx, chunk_w, _ = make_inputs(device, torch.float32, 1, 40, 4, 1, 32, 4, 3, False)
    # the same memory as a shuffled pool of pages and a page table
    perm = torch.randperm(4, device=device)
    pool_k = mem_k.view(4, S, 1, 32)[perm]
    pool_v = mem_v.view(4, S, 1, 32)[perm]
    page_of = torch.argsort(perm)
    pages = torch.where(chunk_idx >= 0, page_of[chunk_idx.clamp_min(0)], -1)
    contiguous = hsa_attention_triton(q, mem_k, mem_v, chunk_idx, chunk_w)
    paged = hsa_attention_triton(q, pool_k, pool_v, pages, chunk_w, paged=True)
    assert_close("o", contiguous, paged, 1e-6)


def test_empty_slots_give_zero_output_and_gradients(device):
    q, mem_k, mem_v, chunk_idx, chunk_w, do = make_inputs(device, torch.float32, 1, 63, 4, 1, 32, 2, 3, True)
    assert (chunk_idx == -1).all()  # 63 tokens see no closed chunk
    leaves = [x.clone().requires_grad_() for x in (q, mem_k, mem_v, chunk_w)]
    o = hsa_attention_triton(leaves[0], leaves[1], leaves[2], chunk_idx, leaves[3])
    o.backward(do)
    assert (o == 0).all()
    assert all((x.grad == 0).all() for x in leaves)


def test_public_function_dispatches(device, assert_close):
    q, mem_k, mem_v, chunk_idx, chunk_w, _ = make_inputs(device, torch.float32, 1, 9, 2, 1, 16, 2, 2, False)
    ref = hsa_attention(q, mem_k, mem_v, chunk_idx, chunk_w, backend="reference")
    tri = hsa_attention(q, mem_k, mem_v, chunk_idx, chunk_w, backend="triton")
    assert_close("o", ref, tri, 0.005)


@pytest.mark.parametrize(
    "change,message",
    [
        (lambda a: {**a, "q": a["q"][..., :3, :]}, "multiple of memory KV heads"),
        (lambda a: {**a, "mem_k": a["mem_k"][:, :100], "mem_v": a["mem_v"][:, :100]}, "pad it to whole chunks"),
        (lambda a: {**a, "chunk_w": a["chunk_w"][..., :1]}, "must both be (B, T, HK, K)"),
        (lambda a: {**a, "q": a["q"].double()}, "must share one of"),
    ],
)
def test_rejects_bad_inputs(change, message, device):
    q, mem_k, mem_v, chunk_idx, chunk_w, _ = make_inputs(device, torch.float32, 1, 4, 4, 2, 16, 2, 2, False)
    args = change(dict(q=q, mem_k=mem_k, mem_v=mem_v, chunk_idx=chunk_idx, chunk_w=chunk_w))
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        hsa_attention_triton(**args)


@pytest.mark.parametrize(
    "forward,backward,sort_pairs",
    [("token", "atomic", None), ("chunk", "atomic", False), ("chunk", "atomic", True), ("chunk", "token", True),
     ("token", "token", True)],
)
@pytest.mark.parametrize("saved_lse", [True, False])
def test_saved_lse_backward(forward, backward, sort_pairs, saved_lse, device, assert_close, monkeypatch):
    """The backward rebuilding P from the forward's saved log-sum-exp (``SAVED_LSE``, the default) and from a
    recomputed row max and sum, every layout, with empty slots (causal, K over the visible chunks) whose rows
    the forward never writes."""
    from hsa_memory.kernels.hsa_attention import triton as hsa_triton

    monkeypatch.setattr(hsa_triton, "SAVED_LSE", saved_lse)
    inputs = make_inputs(device, torch.float32, 1, 200, 6, 2, 32, 4, 5, True)
    run_both(inputs, assert_close, 0.005, forward=forward, backward=backward, sort_pairs=sort_pairs)
    # half precision at the training shape (fp16: the CPU interpreter multiplies bf16 tiles wrongly)
    inputs = make_inputs(device, torch.float16, 1, 70, 16, 1, 64, 3, 3, False)
    run_both(inputs, assert_close, 0.005, forward=forward, backward=backward, sort_pairs=sort_pairs)


@pytest.mark.parametrize("paged", [False, True])
@pytest.mark.parametrize("token_block", [48, None])
def test_token_blocked_work_list(paged, token_block, device, assert_close, monkeypatch):
    """The sorted layout with pairs grouped by (token block, page) (``TOKEN_BLOCK``): a page read from several
    blocks gets items in each, all adding into the same outputs and dK/dV; batches span blocks unevenly.
    None: grouped by page alone (the layout before the default became 4,096-token blocks)."""
    from hsa_memory.kernels.hsa_attention import triton as hsa_triton

    monkeypatch.setattr(hsa_triton, "TOKEN_BLOCK", token_block)
    inputs = make_inputs(device, torch.float32, 2, 150, 6, 2, 32, 4, 3, True, paged=paged)
    run_both(inputs, assert_close, 0.005, forward="chunk", backward="atomic", sort_pairs=True, paged=paged)


@pytest.mark.parametrize("rows", [32, 128])
def test_backward_tile_rows(rows, device, assert_close, monkeypatch):
    """``BWD_BLOCK_M``: the backward's tiles of other heights than the forward's (a sweep knob of
    bench/kernels.py) give the same gradients; ratio 16 packs 2 or 8 tokens per tile, with a partial last tile."""
    from hsa_memory.kernels.hsa_attention import triton as hsa_triton

    monkeypatch.setattr(hsa_triton, "BWD_BLOCK_M", rows)
    inputs = make_inputs(device, torch.float32, 1, 90, 16, 1, 32, 3, 3, False)
    run_both(inputs, assert_close, 0.005, forward="chunk", backward="atomic", sort_pairs=True)
