"""Self-distillation (issue 7): the base model reading the evidence in its window teaches the retrofit.

Scenarios: a tokenised agent-memory example carries a teacher sequence made of its evidence messages,
the question and the very same reply tokens; the teacher batch labels exactly the reply; the loss is
zero when student and teacher see the same thing, positive when they do not, and its gradient reaches
the HSA modules while the teacher pass stays out of the graph.
"""
import torch

from hsa_memory.model import HSAForCausalLM, get_preset
from hsa_memory.training.batches import IGNORE, collate, collate_teacher, tokenize_example
from hsa_memory.training.objectives import base_behaviour, distill_loss
from hsa_memory.training.tasks import make_example, tokenizer


def test_teacher_sequence_is_evidence_question_and_the_same_reply():
    tok = tokenizer()
    example = make_example("agent_memory", 3, 2048, "fallback", "heldout")
    token = tokenize_example(example, tok, question_index=0)
    question = example.questions[0]
    assert 0 < token.teacher_answer_start < len(token.teacher_ids) < len(token.input_ids)
    reply = token.input_ids[token.answer_start:]
    assert token.teacher_ids[token.teacher_answer_start:] == reply
    text = tok.decode(token.teacher_ids[:token.teacher_answer_start])
    assert question.text in text
    for message_id in question.evidence_message_ids:
        assert example.message(message_id).content in text
    inputs, labels = collate_teacher([token], pad_id=0)
    assert inputs.shape == (1, len(token.teacher_ids))
    assert (labels[0] != IGNORE).sum() == (torch.tensor(token.labels) != IGNORE).sum() > 0


def test_collate_teacher_without_evidence_is_none():
    tok = tokenizer()
    token = tokenize_example(make_example("lm", 1, 256, "fallback", "heldout"), tok)
    assert token.teacher_ids == [] and collate_teacher([token], pad_id=0) is None


def test_distill_loss_zero_for_same_view_positive_otherwise_and_trains_hsa():
    torch.manual_seed(0)
    model = HSAForCausalLM(get_preset("tiny"))
    for index in model.config.hsa_layer_indices:
        torch.nn.init.normal_(model.model.layers[index].o_proj.weight, std=0.2)
    tok = tokenizer()
    examples = [tokenize_example(make_example("agent_memory", seed, 1024, "fallback", "heldout"), tok, question_index=0)
                for seed in (5, 7)]
    inputs, labels = collate(examples, max(len(e.input_ids) for e in examples), 0)
    hidden = model.model(inputs)
    # the same sequence as its own teacher, the HSA layers silenced in both: nothing to learn
    with torch.no_grad():
        same = model.model(inputs, use_hsa=False)
    assert distill_loss(model, model.model(inputs, use_hsa=False), labels, same, labels).item() < 1e-6
    teacher_inputs, teacher_labels = collate_teacher(examples, 0)
    with torch.no_grad(), base_behaviour(model):
        teacher = model.model(teacher_inputs, use_hsa=False)
    loss = distill_loss(model, hidden, labels, teacher, teacher_labels)
    assert loss.item() > 1e-3
    loss.backward()
    for index in model.config.hsa_layer_indices:
        assert model.model.layers[index].o_proj.weight.grad.abs().sum() > 0
