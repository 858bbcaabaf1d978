"""Held-out evaluation during and after training: reply exact match and evidence recall.

Teacher-forced exact match (every reply token argmax-correct) and whether the evidence chunk is
among the chunks the reply's tokens routed to — on seeds and entity pools never trained on.
"""
from __future__ import annotations

import random

import torch

from hsa_memory.model import RetrievalTrace

from .batches import collate, tokenize_example
from .objectives import answer_loss
from .tasks import make_example, tokenizer as load_tokenizer


@torch.no_grad()
def evaluate(model, task: str, length: int, count: int = 32, seed: int = 10_000_019, filler: str = "corpora",
             split: str = "heldout") -> dict:
    tokenizer = load_tokenizer()
    device = model.lm_head.weight.device
    exact, recall, n = 0.0, 0.0, 0
    model.eval()
    for i in range(count):
        example = make_example(task, seed + i, length, filler, split)
        tokens = tokenize_example(example, tokenizer, model.config.chunk_size, rng=random.Random(seed + i))
        inputs, labels = collate([tokens], len(tokens.input_ids), model.config.eos_token_id)
        trace = RetrievalTrace(count_from=tokens.answer_start - 1)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            hidden = model.model(inputs.to(device), trace=trace)
            _, stats = answer_loss(model, hidden, labels.to(device))
        exact += stats["exact"]
        routed = {c for c, _ in trace.ranked()[: model.config.hsa_topk]}
        recall += float(bool(set(tokens.evidence_chunks) & routed)) if tokens.evidence_chunks else 1.0
        n += 1
    return {"task": task, "length": length, "n": n, "exact": exact / n, "evidence_recall": recall / n}
