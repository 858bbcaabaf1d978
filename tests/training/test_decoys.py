"""Hard negatives (issue 7): decoy spans from the generators, their chunks, and the router loss over them.

Scenarios: an updated agent-memory fact's decoy chunk holds the superseded value, not the current one;
other relatives' values of the same slot are decoys too; MQ-NIAH's decoys are the other needles and
variable tracking's the chains not asked about, S-NIAH has none; the loss is near zero when the evidence
clearly outscores the decoys (whatever the filler does), high when a decoy wins, trains queries and
landmarks, and skips rows without a visible decoy; train.py runs a few steps with the option on.
"""
import json

import torch

from hsa_memory.model import HSAForCausalLM, get_preset
from hsa_memory.model.modeling import HSALayer
from hsa_memory.training.batches import tokenize_example
from hsa_memory.training.objectives import decoy_loss, retrieval_loss
from hsa_memory.training.tasks import make_example, tokenizer

S = 64


def chunk_text(token, chunk, extra=0):
    return tokenizer().decode(token.input_ids[chunk * S:(chunk + 1) * S + extra])


def test_updated_fact_decoys_sit_on_the_superseded_values():
    tok = tokenizer()
    checked = 0
    for seed in range(1, 41, 2):
        example = make_example("agent_memory", seed, 2048, "fallback", "heldout")
        for index, question in enumerate(example.questions):
            spans = question.metadata["decoy_spans"]
            superseded = [d for d in spans if d["kind"] == "superseded"]
            # the superseded spans are exactly the older values of the fact, in the messages that stated them
            assert [d["text"] for d in superseded] == question.metadata["decoys"]
            assert [d["message_id"] for d in superseded] == question.metadata["decoy_message_ids"]
            token = tokenize_example(example, tok, S, question_index=index)
            assert not set(token.decoy_chunks) & set(token.evidence_chunks)
            if len(superseded) != len(spans) or not superseded:
                continue  # only updated facts without other decoys: each decoy chunk has one known value
            for decoy in superseded:
                assert decoy["text"] in example.message(decoy["message_id"]).content
                assert question.answer not in example.message(decoy["message_id"]).content
            for chunk in token.decoy_chunks:
                # the value starts in this chunk (it may run into the next one); the current value is elsewhere
                assert any(d["text"] in chunk_text(token, chunk, extra=12) for d in superseded)
                assert question.answer not in chunk_text(token, chunk)
                checked += 1
    assert checked >= 5


def test_other_people_of_the_same_slot_are_decoys():
    found = 0
    for seed in range(1, 61, 2):
        example = make_example("agent_memory", seed, 4096, "fallback", "heldout")
        facts = {f["key"]: f for f in example.metadata["facts"]}
        for question in example.questions:
            asked = facts[question.metadata["fact"]]
            for decoy in question.metadata["decoy_spans"]:
                if decoy["kind"] != "other_entity":
                    continue
                found += 1
                owner = [f for f in facts.values() if decoy["message_id"] in f["message_ids"]]
                assert owner and owner[0]["key"] != asked["key"]
                assert decoy["text"] != question.answer
                assert decoy["text"] in example.message(decoy["message_id"]).content
    assert found >= 5


def test_mq_niah_decoys_are_the_other_needles_and_s_niah_has_none():
    tok = tokenizer()
    example = make_example("mq_niah", 3, 2048, "fallback", "heldout")
    needles = {n["key"]: n for n in example.metadata["needles"]}
    for index, question in enumerate(example.questions):
        spans = question.metadata["decoy_spans"]
        others = {(n["value"], n["message_id"]) for k, n in needles.items() if k != question.metadata["key"]}
        assert {(d["text"], d["message_id"]) for d in spans} == others and len(spans) == len(needles) - 1
        token = tokenize_example(example, tok, S, question_index=index)
        assert token.decoy_chunks
        for chunk in token.decoy_chunks:
            assert any(value in chunk_text(token, chunk, extra=12) for value, _ in others)
            assert question.answer not in chunk_text(token, chunk)
    single = make_example("s_niah", 3, 2048, "fallback", "heldout")
    assert single.questions[0].metadata["decoy_spans"] == []
    assert tokenize_example(single, tok, S).decoy_chunks == []


def test_variable_tracking_decoys_are_the_other_chains():
    example = make_example("variable_tracking", 5, 2048, "fallback", "heldout")
    (question,) = example.questions
    spans = question.metadata["decoy_spans"]
    chains = example.metadata["chains"]
    assert len(spans) == sum(len(c["variables"]) for c in chains[1:])
    for decoy in spans:
        assert decoy["kind"] == "other_chain" and decoy["text"] in example.message(decoy["message_id"]).content
        assert not any(f"VAR {name} " in decoy["text"] for name in question.metadata["variables"])
    token = tokenize_example(example, tokenizer(), S)
    assert token.decoy_chunks and not set(token.decoy_chunks) & set(token.evidence_chunks)


def synthetic(prefer: int, C: int = 4, T: int = 300):
    """Orthogonal landmarks; every query scores ``prefer`` at 10 and chunk 0 (filler) at 20."""
    landmarks = torch.eye(C, 8).view(1, C, 8) * 10
    queries = torch.zeros(1, T, 1, 8)
    queries[..., prefer] = 1.0
    queries[..., 0] = 2.0
    return [(queries, landmarks)]


def test_decoy_loss_low_when_evidence_wins_high_when_a_decoy_wins():
    captures = synthetic(prefer=1)
    loss, stats = decoy_loss(captures, [[1]], [[2, 3]], [290], S)
    assert loss.item() < 1e-3 and stats == {"decoy_top1": 1.0, "decoy_rows": 1}
    # the filler chunk 0 beats the evidence: the router loss is high, the decoy loss does not care
    assert retrieval_loss(captures, [[1]], [290], S)[0].item() > 5
    loss, stats = decoy_loss(captures, [[2]], [[1, 3]], [290], S)
    assert loss.item() > 5 and stats["decoy_top1"] == 0.0
    # several evidence chunks: one of them winning is enough
    loss, _ = decoy_loss(captures, [[1, 2]], [[3]], [290], S)
    assert loss.item() < 1e-3


def test_decoy_loss_skips_rows_without_a_visible_decoy():
    captures = [(q.expand(3, -1, -1, -1), lm.expand(3, -1, -1)) for q, lm in synthetic(prefer=1)]
    # row 0 has decoys; row 1 none; row 2 only a decoy in the chunk still open at its reply (191 // 64 = 2)
    loss, stats = decoy_loss(captures, [[1], [1], [1]], [[2], [], [2]], [290, 290, 192], S)
    assert stats["decoy_rows"] == 1 and loss.item() < 1e-3
    assert decoy_loss(captures, [[1], [1], [1]], [[], [], [1]], [290, 290, 290], S) == (None, {})
    # a tie is not a win
    flat = [(torch.zeros(1, 300, 1, 8), torch.zeros(1, 4, 8))]
    loss, stats = decoy_loss(flat, [[1]], [[2]], [290], S)
    assert abs(loss.item() - 0.6931) < 1e-3 and stats["decoy_top1"] == 0.0


def test_decoy_loss_trains_queries_and_landmarks():
    torch.manual_seed(0)
    model = HSAForCausalLM(get_preset("tiny"))
    retrievals = [layer.retrieval for layer in model.model.layers if isinstance(layer, HSALayer)]
    captures = []
    for retrieval in retrievals:
        retrieval.capture = captures
    model.model(torch.randint(0, 1000, (2, 320)))
    for retrieval in retrievals:
        retrieval.capture = None
    loss, stats = decoy_loss(captures, [[1], [0]], [[2, 3], []], [300, 310], S)
    # two candidates, near-random scores: about log 3 for one evidence over two decoys
    assert 0.5 < loss.item() < 2.0 and stats["decoy_rows"] == len(retrievals)
    loss.backward()
    for retrieval in retrievals:
        assert retrieval.q_proj.weight.grad.abs().sum() > 0
    assert model.model.chunk_encoder.landmark_proj.weight.grad.abs().sum() > 0


def test_train_smoke_with_decoy_weight(tmp_path):
    from hsa_memory.training.train import parse_args, train

    args = parse_args(["--preset", "tiny", "--out", str(tmp_path), "--steps", "2", "--batch", "2", "--seq-len", "512",
                       "--mix", "mq_niah:1", "--filler", "fallback", "--workers", "0", "--eval", "",
                       "--decoy-weight", "1.0", "--kl-positions", "8", "--device", "cpu", "--backend", "reference"])
    summary = train(args)
    assert summary["steps"] == 2
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert all("decoy_loss" in r and 0.0 <= r["decoy_top1"] <= 1.0 for r in records)
    assert all(torch.isfinite(torch.tensor(r["loss"])) and r["grad_norm"] > 0 for r in records)
    assert (tmp_path / "checkpoint.safetensors").exists()
