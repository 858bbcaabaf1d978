"""Sliding-window attention: the Triton kernel (and the FlexAttention variant) against the reference.

Scenarios: one decode query over a longer key cache, 63 and 300 queries, windows smaller than,
equal to and larger than the sequence (None = full causal), head ratios 1, 3 and 16, D = 100,
learned sink logits (their gradient too), and every dtype.
"""
import pytest
import torch

pytest.importorskip("triton", reason="the Triton kernels need the triton extra: pip install 'hsa-memory[triton]'")

from hsa_memory.kernels import sliding_window_attention
from hsa_memory.kernels.swa import sliding_window_attention_reference, sliding_window_attention_triton


def make_inputs(device, dtype, B, T, S, HQ, HK, D, sink):
    torch.manual_seed(42)
    q = torch.randn(B, T, HQ, D, device=device, dtype=dtype)
    k = torch.randn(B, S, HK, D, device=device, dtype=dtype)
    v = torch.randn(B, S, HK, D, device=device, dtype=dtype)
    sink_logits = torch.randn(HQ, device=device) if sink else None
    do = torch.randn(B, T, HQ, D, device=device, dtype=dtype)
    return q, k, v, sink_logits, do


def run_both(inputs, window, assert_close, tol, fn=sliding_window_attention_triton):
    q, k, v, sink_logits, do = inputs
    results = []
    for impl in (sliding_window_attention_reference, fn):
        leaves = [x.detach().clone().requires_grad_() for x in (q, k, v, sink_logits) if x is not None]
        sink = leaves[3] if sink_logits is not None else None
        o = impl(leaves[0], leaves[1], leaves[2], window, sink_logits=sink)
        o.backward(do)
        results.append([o] + [x.grad for x in leaves])
    for name, ref, tri in zip(("o", "dq", "dk", "dv", "dsink"), *results):
        assert_close(name, ref, tri, tol)


CASES = {
    # name: B, T, S, HQ, HK, D, window, sink
    "decode-ratio3": (1, 1, 90, 9, 3, 64, 32, True),
    "t63-ratio1-d100": (2, 63, 63, 2, 2, 100, 20, False),
    "t300-ratio16": (1, 300, 300, 16, 1, 32, 64, True),
    "t63-full-causal": (1, 63, 80, 3, 1, 64, None, True),
    "window-over-length": (1, 40, 40, 4, 2, 16, 500, False),
}


@pytest.mark.parametrize("case", CASES)
def test_matches_reference(case, device, assert_close):
    B, T, S, HQ, HK, D, window, sink = CASES[case]
    run_both(make_inputs(device, torch.float32, B, T, S, HQ, HK, D, sink), window, assert_close, 0.005)


def test_dtypes(dtype, tolerance, device, assert_close):
    run_both(make_inputs(device, dtype, 1, 70, 70, 6, 2, 64, True), 24, assert_close, tolerance)


def test_flex_variant(device, assert_close):
    from hsa_memory.kernels.swa.flex import sliding_window_attention_flex

    inputs = make_inputs(device, torch.float32, 1, 70, 90, 6, 2, 32, True)
    if device == "cuda":
        run_both(inputs, 24, assert_close, 0.005, fn=sliding_window_attention_flex)
        return
    # FlexAttention has no CPU backward: the forward (and the sink fold) only
    q, k, v, sink_logits, _ = inputs
    with torch.no_grad():
        ref = sliding_window_attention_reference(q, k, v, 24, sink_logits=sink_logits)
        flex = sliding_window_attention_flex(q, k, v, 24, sink_logits=sink_logits)
    assert_close("o", ref, flex, 0.005)


def test_public_function_dispatches(device, assert_close):
    q, k, v, sink_logits, _ = make_inputs(device, torch.float32, 1, 9, 12, 2, 1, 16, True)
    ref = sliding_window_attention(q, k, v, 4, sink_logits=sink_logits, backend="reference")
    tri = sliding_window_attention(q, k, v, 4, sink_logits=sink_logits, backend="triton")
    assert_close("o", ref, tri, 0.005)


def test_rejects_bad_inputs(device):
    q, k, v, sink_logits, _ = make_inputs(device, torch.float32, 1, 9, 12, 4, 2, 16, True)
    with pytest.raises(ValueError, match=r"sink_logits must be \(4,\)"):
        sliding_window_attention_triton(q, k, v, 4, sink_logits=sink_logits[:2])
    with pytest.raises(ValueError, match="S ≥ T"):
        sliding_window_attention_triton(q, k[:, :5], v[:, :5], 4)
