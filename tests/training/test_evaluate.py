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
    import torch

    from hsa_memory.model import HSAForCausalLM, get_preset
    from hsa_memory.training import evaluate as evaluate_module

    torch.manual_seed(0)
    model = HSAForCausalLM(get_preset("tiny")).train()
    seen = []
    real_answer_loss = evaluate_module.answer_loss

    def recording_answer_loss(model, hidden, labels):
        seen.append((torch.is_grad_enabled(), hidden.requires_grad))
        return real_answer_loss(model, hidden, labels)

    monkeypatch.setattr(evaluate_module, "answer_loss", recording_answer_loss)
    result = evaluate_module.evaluate(model, "s_niah", 512, count=2, filler="fallback")
    assert seen == [(False, False), (False, False)]
    assert result["n"] == 2 and 0.0 <= result["exact"] <= 1.0
    # a reply right token for token has its answer tokens right too
    assert result["exact"] <= result["value_exact"] <= 1.0
    assert all(p.grad is None for p in model.parameters())
    assert torch.is_grad_enabled()


def test_answer_tokens_cover_the_answer_inside_the_reply():
    from hsa_memory.training.batches import answer_token_range
    from hsa_memory.training.tasks import tokenizer

    tok = tokenizer()
    reply = "Your locker code is 9094."
    encoded = tok.encode(reply + "<|im_end|>\n", add_special_tokens=False)
    start, stop = answer_token_range(reply, "9094", encoded.offsets)
    assert tok.decode(encoded.ids[start:stop]).strip() == "9094"
    assert stop < len(encoded.ids) - 1  # the end marker is not part of the answer
    # not verbatim in the reply: the whole reply, without <|im_end|>
    start, stop = answer_token_range(reply, "R-1", encoded.offsets)
    assert tok.decode(encoded.ids[start:stop]) == reply


def test_value_match_scores_only_the_answer_tokens():
    """A wrong wording around a right value is a value match; a wrong value is not."""
    from types import SimpleNamespace

    import torch

    from hsa_memory.training.evaluate import value_match

    vocab, width = 10, 4
    head = torch.nn.Linear(width, vocab, bias=False)
    with torch.no_grad():
        head.weight.copy_(torch.eye(vocab, width))  # hidden unit i votes for id i
    model = SimpleNamespace(lm_head=head)
    # sequence positions 0..5; the answer is tokens 3..4 = ids [2, 3]
    tokens = SimpleNamespace(answer_tokens=(3, 5), input_ids=[9, 9, 9, 2, 3, 9])
    hidden = torch.zeros(6, width)
    hidden[2, 2] = 1.0  # predicts id 2 at position 3
    hidden[3, 3] = 1.0  # predicts id 3 at position 4
    assert value_match(model, hidden, tokens) == 1.0
    hidden[3] = 0.0
    hidden[3, 1] = 1.0  # predicts id 1: wrong value
    assert value_match(model, hidden, tokens) == 0.0


def test_no_supersession_zeroes_each_layers_scale_and_nothing_else():
    """The ablation must turn the trained penalty off in every HSA layer and leave every other weight,
    margin and temperature included, as trained."""
    import dataclasses

    import torch

    from hsa_memory.model import HSAForCausalLM, get_preset
    from hsa_memory.training.evaluate import disable_supersession

    def tiny_hsa(**fields):
        return HSAForCausalLM(dataclasses.replace(get_preset("tiny"), **fields))

    model = tiny_hsa(hsa_supersession=True)
    with torch.no_grad():
        for module in model.modules():
            if getattr(module, "supersession", None) is not None:
                module.supersession.copy_(torch.tensor([-1.2, -0.8, -1.0]))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    assert disable_supersession(model) == len(model.config.hsa_layer_indices)
    after = model.state_dict()
    for name, value in before.items():
        if name.endswith("supersession"):
            torch.testing.assert_close(after[name], torch.tensor([0.0, -0.8, -1.0]))
        else:
            assert torch.equal(after[name], value), name
    assert disable_supersession(tiny_hsa()) == 0  # weights trained without it: nothing to turn off


def test_no_lora_drops_the_deltas_so_the_model_computes_as_without_them():
    """The ablation must remove every low-rank delta, and the result must compute exactly what the same weights
    with no deltas compute (the deltas here are non-zero, so a no-op ablation would fail)."""
    import dataclasses

    import torch

    from hsa_memory.model import HSAForCausalLM, get_preset
    from hsa_memory.model.modeling import takes_lora
    from hsa_memory.training.evaluate import disable_lora

    torch.manual_seed(0)
    config = dataclasses.replace(get_preset("tiny"), lora_rank=4)
    with_lora = HSAForCausalLM(config).eval()
    with torch.no_grad():
        for name, param in with_lora.named_parameters():
            if ".lora." in name:
                param.normal_(0, 0.5)
    plain = HSAForCausalLM(dataclasses.replace(config, lora_rank=0)).eval()
    plain.load_state_dict({k: v for k, v in with_lora.state_dict().items() if ".lora." not in k})
    tokens = torch.randint(0, config.vocab_size, (1, 3 * config.chunk_size))
    with torch.no_grad():
        assert not torch.allclose(with_lora(tokens).logits, plain(tokens).logits)
        expected = sum(takes_lora(config, i) for i in range(len(config.layer_types)))
        assert disable_lora(with_lora) == expected > 0
        torch.testing.assert_close(with_lora(tokens).logits, plain(tokens).logits)
    assert disable_lora(plain) == 0
