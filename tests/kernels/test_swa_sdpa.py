"""Scenarios: the SDPA path equals the reference (forward and backward) for windows, sinks, GQA ratios,
odd lengths and cached keys (S > T), in float32."""
import pytest
import torch

from hsa_memory.kernels.swa.reference import sliding_window_attention_reference
from hsa_memory.kernels.swa.sdpa import sliding_window_attention_sdpa


@pytest.mark.parametrize("T, S, HQ, HK, window, sinks", [
    (1, 1, 4, 4, 8, False), (63, 63, 6, 2, 16, True), (300, 300, 9, 3, 64, True), (5, 70, 3, 1, 32, True),
    (130, 200, 4, 2, None, False), (130, 130, 4, 1, None, True),
])
def test_sdpa_matches_reference(T, S, HQ, HK, window, sinks):
    torch.manual_seed(42)
    D = 40
    q = torch.randn(2, T, HQ, D, requires_grad=True)
    k = torch.randn(2, S, HK, D, requires_grad=True)
    v = torch.randn(2, S, HK, D, requires_grad=True)
    sink = torch.randn(HQ, requires_grad=True) if sinks else None
    do = torch.randn(2, T, HQ, D)
    outs, grads = [], []
    for fn in (sliding_window_attention_reference, sliding_window_attention_sdpa):
        out = fn(q, k, v, window, sink_logits=sink, block=64)
        inputs = [q, k, v] + ([sink] if sinks else [])
        grads.append(torch.autograd.grad(out, inputs, do))
        outs.append(out)
    torch.testing.assert_close(outs[1], outs[0], rtol=1e-4, atol=1e-5)
    for name, a, b in zip(["dq", "dk", "dv", "dsink"], grads[0], grads[1]):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-5, msg=name)
