"""The recency-rank bias: picks ordered by chunk id (= time), bias added by that rank; zero bias changes
nothing; checkpoints with and without it refuse each other; training can add it to weights trained without
it and the checkpoint then loads. (Its config field stays out of older JSON: test_config.py.)"""
import dataclasses

import pytest
import torch

from hsa_memory.model import HSAForCausalLM, get_preset
from hsa_memory.model.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from hsa_memory.model.memory import SequenceRouter
from hsa_memory.model.modeling import _by_recency


def test_ranks_follow_chunk_ids_and_unused_slots_rank_last():
    bias = torch.tensor([1.0, 2.0, 3.0, 4.0])
    ids = torch.tensor([[7, 3, -1, 11], [0, 1, 2, 3], [-1, -1, 5, -1]])
    expected = torch.tensor([[2.0, 3.0, 4.0, 1.0], [4.0, 3.0, 2.0, 1.0], [2.0, 3.0, 1.0, 4.0]])
    torch.testing.assert_close(_by_recency(bias, ids), expected)
    # more slots than biases (warm-up routes to every chunk): the extra ranks get none
    torch.testing.assert_close(_by_recency(bias[:2], ids[1:2]), torch.tensor([[0.0, 0.0, 2.0, 1.0]]))


def test_fusion_weights_add_the_bias_of_each_picks_recency_rank(tiny_hsa):
    model = tiny_hsa(hsa_recency_bias=True)
    layer = model.model.layers[model.config.hsa_layer_indices[0]]
    retrieval = layer.retrieval
    S, C, T = model.config.chunk_size, 4, 4 * 64 + 5
    retrieval.topk = 2
    with torch.no_grad():
        retrieval.slot_bias.copy_(torch.tensor([0.3, -0.2]))
        retrieval.recency_bias.copy_(torch.tensor([1.5, -1.0]))
    HK, Rh = retrieval.kv_heads, retrieval.head_dim
    landmarks = torch.randn(1, C, HK * Rh)
    router = SequenceRouter(landmarks, torch.randn(1, C * S, HK, 8), torch.randn(1, C * S, HK, 8), S)
    hidden = torch.randn(1, T, model.config.hidden_size)
    with torch.no_grad():
        ids, weights = retrieval(hidden, router, torch.arange(T))
        queries = retrieval.q_proj(hidden).view(1, T, HK, Rh) * Rh ** -0.5
    for t in (S, 2 * S + 3, T - 1):
        for g in range(HK):
            picks = ids[0, t, g]
            valid = picks >= 0
            scores = torch.stack([queries[0, t, g] @ landmarks[0, c].view(HK, Rh)[g] for c in picks.clamp_min(0)])
            logits = scores + retrieval.slot_bias[: len(picks)]
            newest_first = sorted(picks[valid].tolist(), reverse=True)
            logits = logits + torch.tensor([float(retrieval.recency_bias.detach()[newest_first.index(c)]) if c >= 0 else 0.0
                                            for c in picks.tolist()])
            expected = torch.softmax(logits.masked_fill(~valid, float("-inf")), -1)
            torch.testing.assert_close(weights[0, t, g], expected, rtol=1e-5, atol=1e-6)


def test_zero_recency_bias_leaves_the_model_unchanged():
    torch.manual_seed(3)
    plain = HSAForCausalLM(get_preset("tiny")).eval()
    with_bias = HSAForCausalLM(dataclasses.replace(get_preset("tiny"), hsa_recency_bias=True)).eval()
    with_bias.load_state_dict(plain.state_dict(), strict=False)
    with torch.no_grad():
        for index in plain.config.hsa_layer_indices:
            plain.model.layers[index].o_proj.weight.normal_(0.0, 0.2)
            with_bias.model.layers[index].o_proj.weight.copy_(plain.model.layers[index].o_proj.weight)
    ids = torch.randint(0, 49152, (1, 300))
    torch.testing.assert_close(plain(ids).logits, with_bias(ids).logits)
    with torch.no_grad():
        for index in plain.config.hsa_layer_indices:
            with_bias.model.layers[index].retrieval.recency_bias.copy_(torch.linspace(2.0, -2.0, plain.config.hsa_topk))
    assert (plain(ids).logits - with_bias(ids).logits).abs().max() > 1e-3


def test_checkpoints_with_and_without_the_bias_refuse_each_other(tmp_path, tiny_hsa):
    model = tiny_hsa(hsa_recency_bias=True)
    with torch.no_grad():
        for index in model.config.hsa_layer_indices:
            model.model.layers[index].retrieval.recency_bias.normal_()
    path = save_checkpoint(model, tmp_path / "with.safetensors")
    again = tiny_hsa(seed=1, hsa_recency_bias=True)
    load_checkpoint(again, path)
    for index in model.config.hsa_layer_indices:
        torch.testing.assert_close(again.model.layers[index].retrieval.recency_bias,
                                   model.model.layers[index].retrieval.recency_bias)
    with pytest.raises(CheckpointError, match="hsa_recency_bias"):
        load_checkpoint(HSAForCausalLM(get_preset("tiny")), path)
    plain_path = save_checkpoint(HSAForCausalLM(get_preset("tiny")), tmp_path / "plain.safetensors")
    with pytest.raises(CheckpointError, match="hsa_recency_bias"):
        load_checkpoint(tiny_hsa(hsa_recency_bias=True), plain_path)


def test_training_adds_the_bias_to_a_checkpoint_without_it(tiny_hsa, train_tiny):
    # HSA outputs already in use (a fresh layer's zero o_proj gives the fusion weights no gradient at first,
    # and whether three steps then move the bias became a matter of luck)
    trained = train_tiny(tiny_hsa(), "--recency-bias")
    assert trained.config.hsa_recency_bias
    biases = [trained.model.layers[i].retrieval.recency_bias for i in trained.config.hsa_layer_indices]
    # fifty times the base lr for a few scalars: they have moved off zero after three steps
    assert any(b.abs().max() > 1e-3 for b in biases)
