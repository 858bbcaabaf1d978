"""Scenarios: routed MoE output equals a per-token loop; the loss-free balancing bias moves the load
toward uniform on a skewed batch; gates ignore the bias."""
import torch

from hsa_memory.model.moe import MoE


def make_moe():
    torch.manual_seed(42)
    return MoE(hidden_size=16, intermediate_size=8, num_experts=6, top_k=2, shared_experts=1, bias_update_rate=0.05)


def test_routed_output_equals_per_token_loop():
    moe = make_moe()
    x = torch.randn(3, 7, 16)
    out = moe(x)
    tokens = x.reshape(-1, 16)
    expected = []
    for token in tokens:
        affinity = torch.sigmoid(moe.router(token))
        chosen = torch.topk(affinity + moe.balance_bias, 2).indices
        gates = affinity[chosen] / affinity[chosen].sum()
        y = sum(g * moe.experts[int(e)](token) for g, e in zip(gates, chosen)) + moe.shared(token)
        expected.append(y)
    torch.testing.assert_close(out.reshape(-1, 16), torch.stack(expected), rtol=1e-5, atol=1e-5)


def test_balancing_bias_moves_load_toward_uniform():
    moe = make_moe().train()
    with torch.no_grad():
        moe.router.weight[0] += 3.0  # expert 0 attracts almost every token of this batch
    x = torch.randn(512, 16).abs()

    def spread():
        moe(x)
        return float(moe.last_load.max() - moe.last_load.min())

    before = spread()
    for _ in range(200):
        moe(x)
        moe.update_balance_bias()
    after = spread()
    assert after < 0.5 * before
    assert moe.balance_bias[0] < 0
