"""Losses for retrofitting memory onto a frozen base.

Two terms (ASSETS.md's lessons): cross-entropy on the *whole* reply (not only the key digits, which
broke the answer's format), and a KL term that keeps ordinary tokens close to the base model with
full attention — the teacher — so fluency survives the sliding window and the new sink logits learn
to stand in for the first-token attention sink.
"""
from __future__ import annotations

from contextlib import contextmanager

import torch
import torch.nn.functional as F

from hsa_memory.model.modeling import HSAForCausalLM, SelfAttention

from .batches import IGNORE


@contextmanager
def base_behaviour(model: HSAForCausalLM):
    """Temporarily the original base model: full causal attention, no sink logits (HSA off by the caller)."""
    saved = []
    for module in model.modules():
        if isinstance(module, SelfAttention) and module.causal:
            saved.append((module, module.window, module._parameters.get("sink_logits")))
            module.window = None
            if "sink_logits" in module._parameters:
                module._parameters["sink_logits"] = None
    try:
        yield model
    finally:
        for module, window, sink in saved:
            module.window = window
            if sink is not None:
                module._parameters["sink_logits"] = sink


def answer_loss(model: HSAForCausalLM, hidden: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, dict]:
    """Mean cross-entropy over reply tokens, plus exact-match statistics (teacher forced)."""
    targets = labels[:, 1:]
    mask = targets != IGNORE
    rows, cols = mask.nonzero(as_tuple=True)
    logits = model.lm_head(hidden[:, :-1][rows, cols]).float()
    gold = targets[rows, cols]
    loss = F.cross_entropy(logits, gold)
    correct = (logits.argmax(-1) == gold)
    wrong = torch.zeros(hidden.shape[0], device=hidden.device).scatter_reduce(0, rows, (~correct).float(), "amax")
    row_ok = 1.0 - wrong
    return loss, {"token_acc": correct.float().mean().item(), "exact": row_ok.mean().item()}


def kl_to_base(model: HSAForCausalLM, hidden: torch.Tensor, teacher_hidden: torch.Tensor, labels: torch.Tensor,
               positions_per_row: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """KL(teacher ‖ student) on random non-reply positions (at most ``positions_per_row`` per row)."""
    B, T, _ = hidden.shape
    ordinary = labels[:, 1:] == IGNORE
    scores = torch.rand(B, T - 1, device=hidden.device, generator=generator).masked_fill(~ordinary, -1.0)
    take = min(positions_per_row, T - 1)
    chosen = scores.topk(take, dim=-1)
    rows = torch.arange(B, device=hidden.device).view(B, 1).expand(B, take)[chosen.values >= 0]
    cols = chosen.indices[chosen.values >= 0]
    student = F.log_softmax(model.lm_head(hidden[rows, cols]).float(), -1)
    with torch.no_grad():
        teacher = F.log_softmax(model.lm_head(teacher_hidden[rows, cols]).float(), -1)
    return F.kl_div(student, teacher, log_target=True, reduction="batchmean")
