"""The supersession penalty: a pick loses fusion weight when a newer pick scores about as high; scale 0
changes nothing; checkpoints with and without it refuse each other; training can add it to weights trained
without it and the checkpoint then loads. (Its config field stays out of older JSON: test_config.py.)"""
import math

import pytest
import torch

from hsa_memory.model import HSAForCausalLM, get_preset
from hsa_memory.model.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from hsa_memory.model.memory import SequenceRouter
from hsa_memory.model.modeling import _superseded


def _superseded_by_loops(scores, ids, margin, tau):
    out = torch.zeros(scores.shape)
    for row in range(scores.shape[0]):
        for j in range(scores.shape[1]):
            if ids[row, j] < 0:
                continue
            values = [torch.sigmoid((scores[row, i] - scores[row, j] + margin) / tau)
                      for i in range(scores.shape[1]) if ids[row, i] > ids[row, j]]
            out[row, j] = max(values) if values else 0.0
    return out


def test_matches_a_loop_over_the_newer_picks_on_random_inputs():
    torch.manual_seed(0)
    scores = torch.randn(40, 6) * 2
    ids = torch.stack([torch.randperm(30)[:6] for _ in range(40)])
    ids[::3, 2] = -1  # unused slots: never newer, never superseded
    ids[::5, 4] = -1
    scores = scores.masked_fill(ids < 0, float("-inf"))  # what a router may hand back for them
    margin, tau = 0.3, 0.7
    got = _superseded(scores, ids, torch.tensor(margin), torch.tensor(math.log(tau)))
    expected = _superseded_by_loops(scores.masked_fill(ids < 0, 0.0), ids, margin, tau)
    assert torch.isfinite(got).all()
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)


def test_an_update_supersedes_and_an_unrelated_recent_chunk_hardly_does():
    # picks: the old value (id 3), its update (id 9, as relevant), an unrelated recent chunk (id 12, far lower)
    scores = torch.tensor([[5.0, 5.1, 1.0]])
    ids = torch.tensor([[3, 9, 12]])
    got = _superseded(scores, ids, torch.tensor(0.0), torch.tensor(math.log(0.5)))[0]
    assert got[0] > 0.5  # the old value: its update is newer and scores as high
    assert got[1] < 1e-3  # the update: only the unrelated chunk is newer
    assert got[2] == 0.0  # the newest pick: nothing is newer


def test_fusion_weights_subtract_the_scaled_supersession(tiny_hsa):
    model = tiny_hsa(hsa_supersession=True)
    retrieval = model.model.layers[model.config.hsa_layer_indices[0]].retrieval
    S, C, T = model.config.chunk_size, 5, 5 * 64 + 7
    retrieval.topk = 3
    with torch.no_grad():
        retrieval.slot_bias.copy_(torch.tensor([0.2, -0.1]))  # the tiny preset's K = 2; the third slot gets none
        retrieval.supersession.copy_(torch.tensor([1.7, 0.4, math.log(0.8)]))
    HK, Rh = retrieval.kv_heads, retrieval.head_dim
    landmarks = torch.randn(1, C, HK * Rh)
    router = SequenceRouter(landmarks, torch.randn(1, C * S, HK, 8), torch.randn(1, C * S, HK, 8), S)
    hidden = torch.randn(1, T, model.config.hidden_size)
    with torch.no_grad():
        ids, weights = retrieval(hidden, router, torch.arange(T))
        queries = retrieval.q_proj(hidden).view(1, T, HK, Rh) * Rh ** -0.5
    for t in (S, 3 * S + 1, T - 1):
        for g in range(HK):
            picks = ids[0, t, g]
            valid = picks >= 0
            scores = torch.stack([queries[0, t, g] @ landmarks[0, c].view(HK, Rh)[g] for c in picks.clamp_min(0)])
            penalty = _superseded_by_loops(scores[None], picks[None], 0.4, 0.8)[0]
            logits = scores + torch.tensor([0.2, -0.1, 0.0]) - 1.7 * penalty
            expected = torch.softmax(logits.masked_fill(~valid, float("-inf")), -1)
            torch.testing.assert_close(weights[0, t, g], expected, rtol=1e-5, atol=1e-6)


def test_zero_scale_leaves_the_model_unchanged(tiny_hsa):
    plain = tiny_hsa(seed=3)
    with_it = tiny_hsa(seed=3, hsa_supersession=True)
    with_it.load_state_dict(plain.state_dict(), strict=False)
    ids = torch.randint(0, 49152, (1, 300))
    torch.testing.assert_close(plain(ids).logits, with_it(ids).logits)
    with torch.no_grad():
        for index in plain.config.hsa_layer_indices:
            with_it.model.layers[index].retrieval.supersession.copy_(torch.tensor([3.0, 1.0, 0.0]))
    assert (plain(ids).logits - with_it(ids).logits).abs().max() > 1e-3


def test_checkpoints_with_and_without_it_refuse_each_other(tmp_path, tiny_hsa):
    model = tiny_hsa(hsa_supersession=True)
    with torch.no_grad():
        for index in model.config.hsa_layer_indices:
            model.model.layers[index].retrieval.supersession.copy_(torch.tensor([2.0, 0.5, -1.0]))
    path = save_checkpoint(model, tmp_path / "with.safetensors")
    again = tiny_hsa(seed=1, hsa_supersession=True)
    load_checkpoint(again, path)
    for index in model.config.hsa_layer_indices:
        torch.testing.assert_close(again.model.layers[index].retrieval.supersession,
                                   model.model.layers[index].retrieval.supersession, rtol=1e-2, atol=1e-2)
    with pytest.raises(CheckpointError, match="hsa_supersession"):
        load_checkpoint(HSAForCausalLM(get_preset("tiny")), path)
    plain_path = save_checkpoint(HSAForCausalLM(get_preset("tiny")), tmp_path / "plain.safetensors")
    with pytest.raises(CheckpointError, match="hsa_supersession"):
        load_checkpoint(tiny_hsa(hsa_supersession=True), plain_path)


def test_training_adds_it_to_a_checkpoint_without_it(tiny_hsa, train_tiny):
    # HSA outputs already in use: a fresh layer's zero o_proj would give the fusion no gradient at first
    trained = train_tiny(tiny_hsa(), "--supersession")
    assert trained.config.hsa_supersession
    params = [trained.model.layers[i].retrieval.supersession for i in trained.config.hsa_layer_indices]
    # fifty times the base lr for three scalars: the scale has moved off zero after three steps in every layer
    assert all(p[0].abs() > 1e-3 for p in params)


def test_training_logs_the_learned_scalars(train_tiny, tiny_hsa, caplog):
    """The trained scalars go into the training log (run 16's were lost with its checkpoint)."""
    import logging

    from hsa_memory.training.train import fusion_scalars

    with caplog.at_level(logging.INFO):
        trained = train_tiny(tiny_hsa(), "--supersession")
    scalars = fusion_scalars(trained)
    assert sum(name.endswith("supersession") for name in scalars) == len(trained.config.hsa_layer_indices)
    logged = [r.getMessage() for r in caplog.records if r.getMessage().startswith("fusion ")]
    assert any("supersession" in line for line in logged) and any("slot_bias" in line for line in logged)
