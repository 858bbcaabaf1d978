"""The router loss (training/objectives.retrieval_loss) and the training set-up around it."""
import pytest
import torch

from hsa_memory.model import HSAForCausalLM, get_preset
from hsa_memory.model.modeling import SINK_INIT, HSALayer
from hsa_memory.training.objectives import retrieval_loss
from hsa_memory.training.train import init_fresh, lr_at, param_groups, parse_args


def captured(model, inputs):
    captures = []
    retrievals = [layer.retrieval for layer in model.model.layers if isinstance(layer, HSALayer)]
    for retrieval in retrievals:
        retrieval.capture = captures
    hidden = model.model(inputs)
    for retrieval in retrievals:
        retrieval.capture = None
    return hidden, captures


def test_retrieval_loss_trains_queries_and_landmarks():
    torch.manual_seed(0)
    model = HSAForCausalLM(get_preset("tiny"))
    inputs = torch.randint(0, 1000, (2, 320))
    _, captures = captured(model, inputs)
    assert len(captures) == len(model.config.hsa_layer_indices)
    loss, stats = retrieval_loss(captures, [[1], [0, 2]], [300, 310], 64)
    # 4 visible chunks at position 299/309: about log(4) for one target, log(4/2) for two
    assert 0.5 < loss.item() < 2.0 and stats["retrieval_rows"] == 4
    loss.backward()
    for index in model.config.hsa_layer_indices:
        assert model.model.layers[index].retrieval.q_proj.weight.grad.abs().sum() > 0
    assert model.model.chunk_encoder.landmark_proj.weight.grad.abs().sum() > 0
    assert model.model.chunk_encoder.cls.grad.abs().sum() > 0


def test_retrieval_loss_ignores_evidence_the_reply_cannot_see():
    torch.manual_seed(0)
    model = HSAForCausalLM(get_preset("tiny"))
    _, captures = captured(model, torch.randint(0, 1000, (1, 320)))
    # the reply starts at 250: chunk 3 (192..255) is still open for its first predicting position
    loss, stats = retrieval_loss(captures, [[3]], [250], 64)
    assert loss is None and stats == {}


def test_retrieval_loss_is_low_for_a_router_that_knows_the_answer():
    B, T, HK, Rh, C = 1, 200, 1, 8, 3
    landmarks = torch.eye(C, Rh).view(1, C, Rh) * 10
    queries = torch.zeros(B, T, HK, Rh)
    queries[..., 1] = 10.0  # every query prefers chunk 1
    loss, stats = retrieval_loss([(queries, landmarks)], [[1]], [195], 64)
    assert loss.item() < 1e-3 and stats["retrieval_top1"] == 1.0
    loss, stats = retrieval_loss([(queries, landmarks)], [[2]], [195], 64)
    assert loss.item() > 50 and stats["retrieval_top1"] == 0.0


def test_init_fresh_leaves_untrainable_lower_sinks_off():
    """frozen_lower trains no lower-layer sink: zeroing them (runs 1-3) changed the base for good."""
    torch.manual_seed(0)
    model = HSAForCausalLM(get_preset("tiny"))
    init_fresh(model)
    lower = model.config.num_lower_layers
    for i, layer in enumerate(model.model.layers):
        if isinstance(layer, HSALayer):
            continue
        expected = SINK_INIT if i < lower else 0.0
        assert torch.all(layer.self_attn.sink_logits == expected), i


def test_param_groups_slow_down_only_the_encoder_layers():
    model = HSAForCausalLM(get_preset("tiny"))
    params = [p for n, p in model.named_parameters() if "embed" not in n]
    groups = param_groups(model, params, 0.1)
    slow = {id(p) for p in model.model.chunk_encoder.layers.parameters()}
    assert {id(p) for p in groups[1]["params"]} == slow and groups[1]["lr_scale"] == 0.1
    assert id(model.model.chunk_encoder.cls) not in {id(p) for p in groups[1]["params"]}
    assert sum(len(g["params"]) for g in groups) == len(params)


def test_lr_schedule_ends_its_decay_when_the_time_budget_ends():
    """With --time-budget the cosine must reach its floor when the seconds run out, even if --steps asked
    for more (run 13 stopped at 0.66x peak lr); without a budget only steps count."""
    args = parse_args(["--out", "unused", "--steps", "3000", "--warmup-steps", "10", "--lr", "1e-3",
                       "--time-budget", "1000"])
    assert lr_at(0, args, 0.0) == pytest.approx(1e-4)  # warm-up is by step
    assert lr_at(100, args, 0.0) == pytest.approx(1e-3, rel=0.01)  # neither clock has moved much
    assert lr_at(1262, args, 500.0) == pytest.approx(1e-3 * (0.1 + 0.9 * 0.5), rel=1e-6)  # half the seconds
    assert lr_at(1262, args, 1000.0) == pytest.approx(1e-4)  # the budget is spent: the floor
    assert lr_at(2990, args, 10.0) == pytest.approx(1e-4, rel=0.01)  # steps ran out first
    no_budget = parse_args(["--out", "unused", "--steps", "3000", "--warmup-steps", "10", "--lr", "1e-3"])
    assert lr_at(1262, no_budget, 1e9) == lr_at(1262, no_budget, 0.0) > 5e-4


def test_value_weight_reweights_only_the_answer_tokens():
    """Weights of 1 give the plain mean; a value weight counts the answer's tokens that many times."""
    from types import SimpleNamespace

    import torch.nn.functional as F

    from hsa_memory.training.batches import IGNORE, TokenExample, answer_weights, collate
    from hsa_memory.training.objectives import answer_loss

    torch.manual_seed(0)
    vocab, width, T = 11, 6, 8
    model = SimpleNamespace(lm_head=torch.nn.Linear(width, vocab, bias=False))
    ids = [1, 2, 3, 4, 5, 6, 7, 8]
    example = TokenExample(ids, [IGNORE] * 4 + ids[4:], 4, [], "agent_memory", answer_tokens=(5, 7))
    inputs, labels = collate([example], T, 0)
    hidden = torch.randn(1, T, width)
    plain, _ = answer_loss(model, hidden, labels)
    ones, _ = answer_loss(model, hidden, labels, answer_weights([example], T, 1.0))
    assert torch.allclose(plain, ones)
    weighted, _ = answer_loss(model, hidden, labels, answer_weights([example], T, 3.0))
    ce = F.cross_entropy(model.lm_head(hidden[0, 3:7]), torch.tensor(ids[4:8]), reduction="none")
    # label positions 4..7 are predicted from 3..6; positions 5 and 6 spell the answer
    expected = (ce * torch.tensor([1.0, 3.0, 3.0, 1.0])).sum() / 8.0
    assert torch.allclose(weighted, expected, atol=1e-6)
    # an answer span beyond the truncated length is clipped, not an error
    assert answer_weights([example], 6, 2.0)[0].tolist() == [1, 1, 1, 1, 1, 2]


def test_copy_pairs_point_at_the_answer_in_closed_evidence_chunks():
    from hsa_memory.training.batches import copy_pairs

    S = 4
    #        0  1  2  3  4  5  6  7  8  9 10 11 12 13 14 15
    ids = [9, 9, 7, 8, 9, 9, 9, 9, 9, 9, 9, 9, 5, 7, 8, 0]
    # the answer 7 8 sits at 13..14 (reply) and at 2..3 in the evidence message 0..6 (chunk 0, closed by 12)
    assert copy_pairs(ids, (13, 15), [(0, 6)], S) == [(12, 2), (13, 3)]
    # not verbatim in the evidence: no pairs
    assert copy_pairs(ids, (13, 15), [(4, 10)], S) == []
    # evidence whose chunk is still open before the query: no pairs
    assert copy_pairs(ids, (13, 15), [(0, 6)], 16) == []


def test_copy_loss_is_low_when_the_query_points_at_the_token_and_trains_it():
    from hsa_memory.training.objectives import copy_loss

    torch.manual_seed(0)
    B, T, HQ, HK, D, S = 2, 16, 4, 1, 8, 4
    keys = torch.randn(B, T, HK, D)
    q = torch.randn(B, T, HQ, D, requires_grad=True)
    pairs = [[(12, 2), (13, 3)], [(9, 5)]]
    loss, stats = copy_loss([(q, keys)], pairs, S)
    assert stats["copy_pairs"] == 3 and loss.item() > 0
    # by hand: query 9 of row 1, chunk 1 (keys 4..7), target key 5 (index 1 in the chunk)
    logits = torch.einsum("hd,sd->hs", q[1, 9].detach(), keys[1, 4:8, 0]) * D ** -0.5
    by_hand = -torch.log(logits.softmax(-1)[:, 1].mean())
    alone, _ = copy_loss([(q.detach(), keys)], [[], [(9, 5)]], S)
    assert torch.allclose(alone, by_hand, atol=1e-6)
    # queries that equal (a large multiple of) the target key point at it: loss near 0, top-1 hit
    sharp = q.detach().clone()
    for row, row_pairs in enumerate(pairs):
        for qp, kp in row_pairs:
            sharp[row, qp] = 50 * keys[row, kp, 0]
    pointed, pointed_stats = copy_loss([(sharp, keys)], pairs, S)
    assert pointed.item() < 0.05 and pointed_stats["copy_top1"] == 1.0
    # gradients reach the queries; pairs past the sequence are skipped, no pairs give None
    loss.backward()
    assert q.grad[0, 12].abs().sum() > 0 and q.grad[0, 0].abs().sum() == 0
    assert copy_loss([(q, keys)], [[(40, 2)], []], S) == (None, {})
    assert copy_loss([], pairs, S) == (None, {})


def test_training_with_the_copy_loss_logs_it_under_checkpointing(tmp_path):
    """The HSA layers hand their queries and the sequence's chunk keys to copy_loss once per step (not again
    while gradient checkpointing recomputes), and the loss joins the total."""
    import json

    from hsa_memory.training.train import train

    args = parse_args(["--preset", "tiny", "--out", str(tmp_path), "--steps", "2", "--batch", "2", "--seq-len", "512",
                       "--mix", "s_niah:1", "--filler", "fallback", "--workers", "0", "--eval", "",
                       "--copy-weight", "1.0", "--checkpointing", "--kl-positions", "8", "--device", "cpu",
                       "--backend", "reference"])
    train(args)
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 2
    assert all(row["copy_loss"] > 0 and 0.0 <= row["copy_top1"] <= 1.0 for row in rows)
    # a needle's digits: one pair per answer token, per row
    assert all(row["copy_pairs"] >= 2 for row in rows)


def test_loss_weights_below_their_range_are_usage_errors(capsys):
    for flag, bad, message in (("--value-weight", "0", "--value-weight must be positive"),
                               ("--value-weight", "-2", "--value-weight must be positive"),
                               ("--copy-weight", "-0.3", "--copy-weight must be 0 (off) or positive")):
        with pytest.raises(SystemExit) as exc:
            parse_args(["--out", "unused", flag, bad])
        assert exc.value.code == 2
        assert message in capsys.readouterr().err
    assert parse_args(["--out", "unused", "--copy-weight", "0", "--value-weight", "3"]).value_weight == 3
