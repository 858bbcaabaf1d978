"""Which examples count for evidence recall (training/evaluate.evidence_status)."""
import pytest

from hsa_memory.training.evaluate import evidence_status, main


def test_evidence_in_the_open_chunk_is_not_retrievable():
    # reply at 1003: chunk 15 (960..1023) is open for position 1002 — runs 1-3 counted this as a miss
    assert evidence_status([15], 1003, 64, 512) == (False, False)


def test_evidence_inside_the_window_is_retrievable_but_not_far():
    assert evidence_status([14], 1003, 64, 512) == (True, False)


def test_evidence_beyond_the_window_is_far():
    # chunk 6 ends at 447; position 1002 is 555 ≥ 512 tokens later
    assert evidence_status([6], 1003, 64, 512) == (True, True)
    assert evidence_status([7], 1003, 64, 512) == (True, False)
    assert evidence_status([3, 15], 1003, 64, None) == (True, True)


def test_cli_refuses_a_topk_below_one(capsys):
    # checked before any model is loaded: a clear usage error, not a crash inside the router
    for bad in ("0", "-3"):
        with pytest.raises(SystemExit) as exc:
            main(["--topk", bad, "--device", "cpu"])
        assert exc.value.code == 2
        assert "--topk must be a positive number of chunks" in capsys.readouterr().err


def test_evaluate_runs_without_autograd(monkeypatch):
    """Evaluation must not build a graph: with grad on, an 8K eval held every layer's activations
    (~8 GB at 2K on the CPU, out of memory at 8K) although it never calls backward."""
    import dataclasses

    import torch

    from hsa_memory.model import HSAForCausalLM, get_preset
    from hsa_memory.training import evaluate as evaluate_module

    torch.manual_seed(0)
    model = HSAForCausalLM(dataclasses.replace(get_preset("tiny"))).train()
    seen = []
    real_answer_loss = evaluate_module.answer_loss

    def recording_answer_loss(model, hidden, labels):
        seen.append((torch.is_grad_enabled(), hidden.requires_grad))
        return real_answer_loss(model, hidden, labels)

    monkeypatch.setattr(evaluate_module, "answer_loss", recording_answer_loss)
    result = evaluate_module.evaluate(model, "s_niah", 512, count=2, filler="fallback")
    assert seen == [(False, False), (False, False)]
    assert result["n"] == 2 and 0.0 <= result["exact"] <= 1.0
    assert all(p.grad is None for p in model.parameters())
    assert torch.is_grad_enabled()
