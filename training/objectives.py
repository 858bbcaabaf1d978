"""Losses for retrofitting memory onto a frozen base.

Two terms (ASSETS.md's lessons): cross-entropy on the *whole* reply (not only the key digits, which
broke the answer's format), and a KL term that keeps ordinary tokens close to the base model with
full attention — the teacher — so fluency survives the sliding window and the new sink logits learn
to stand in for the first-token attention sink. Then the router loss on evidence chunks, and
self-distillation: on the reply, the base model reading the evidence in its own window teaches the
retrofit, which has the same evidence only in distant memory; and hard negatives: the evidence chunk
must outscore the decoy chunks (older values, other keys) the router confuses it with.
"""
from __future__ import annotations

from contextlib import contextmanager

import torch
import torch.nn.functional as F

from hsa_memory.model.modeling import HSAForCausalLM, SelfAttention

from .batches import IGNORE


@contextmanager
def base_behaviour(model: HSAForCausalLM):
    """Temporarily the original base model: full causal attention, no sink logits, no low-rank deltas (HSA
    off by the caller)."""
    saved = []
    for module in model.modules():
        if isinstance(module, SelfAttention) and module.causal:
            saved.append((module, module.window, module._parameters.get("sink_logits"), module.lora))
            module.window = None
            if "sink_logits" in module._parameters:
                module._parameters["sink_logits"] = None
            module.lora = None
    try:
        yield model
    finally:
        for module, window, sink, lora in saved:
            module.window = window
            if sink is not None:
                module._parameters["sink_logits"] = sink
            module.lora = lora


def answer_loss(model: HSAForCausalLM, hidden: torch.Tensor, labels: torch.Tensor,
                weights: torch.Tensor | None = None) -> tuple[torch.Tensor, dict]:
    """Mean cross-entropy over reply tokens, plus exact-match statistics (teacher forced).

    ``weights`` (B, T, aligned with ``labels``): a weighted mean instead, e.g. the answer's own tokens
    counted more than the reply's wording around them (batches.answer_weights)."""
    targets = labels[:, 1:]
    mask = targets != IGNORE
    rows, cols = mask.nonzero(as_tuple=True)
    logits = model.lm_head(hidden[:, :-1][rows, cols]).float()
    gold = targets[rows, cols]
    if weights is None:
        loss = F.cross_entropy(logits, gold)
    else:
        w = weights[:, 1:][rows, cols].to(logits.dtype)
        loss = (F.cross_entropy(logits, gold, reduction="none") * w).sum() / w.sum().clamp_min(1e-6)
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


def retrieval_loss(captures: list, evidence: list[list[int]], answer_starts: list[int], chunk_size: int,
                   labels: torch.Tensor | None = None) -> tuple[torch.Tensor | None, dict]:
    """Supervise the router directly: cross-entropy of the evidence chunk(s) over every visible chunk.

    ``captures``: (queries (B, T, HK, Rh) already scaled, landmarks (B, C, HK·Rh)) per HSA layer, as
    ``Retrieval.capture`` collects them. For each row whose evidence chunks are closed before its
    reply, every reply-predicting position (answer_start - 1 .. last label) scores all chunks it may
    see; the loss is -log Σ_{e ∈ evidence} softmax(scores)_e, averaged over positions, heads, layers.

    Why: the fusion softmax only teaches the router about the K chunks it already picked, and with
    near-random early routing (Gumbel noise ≫ score spread) the needle's chunk is rarely among them;
    the run1-3 landmarks collapsed (relative spread across chunks 0.72 → 0.011) instead of learning.
    Returns (loss or None when no row has a visible evidence chunk, stats with top-1 / in-top-K rates).
    """
    losses, top1, total = [], 0.0, 0
    for row, q, lm, visible in _reply_rows(captures, answer_starts, labels, chunk_size):
        targets = [e for e in evidence[row] if e < visible]
        if not targets:
            continue
        scores = torch.einsum("thr,chr->thc", q, lm[:visible].float())  # (t, HK, c)
        logp = F.log_softmax(scores, dim=-1)
        target = torch.tensor(targets, device=scores.device)
        losses.append(-torch.logsumexp(logp[..., target], dim=-1).mean())
        best = scores.argmax(-1)  # (t, HK)
        top1 += float(torch.isin(best, target).float().mean())
        total += 1
    if not losses:
        return None, {}
    return torch.stack(losses).mean(), {"retrieval_top1": top1 / total, "retrieval_rows": total}


def decoy_loss(captures: list, evidence: list[list[int]], decoys: list[list[int]], answer_starts: list[int],
               chunk_size: int, labels: torch.Tensor | None = None) -> tuple[torch.Tensor | None, dict]:
    """Hard negatives for the router: the evidence chunk(s) must outscore the *decoy* chunks.

    Same captures and reply-predicting positions as :func:`retrieval_loss`. For each row with a visible
    evidence chunk and at least one visible decoy chunk (an older value of the fact, another person's or
    key's value: ``TokenExample.decoy_chunks``), every reply-predicting position scores only the chunks of
    {evidence ∪ decoys}; the loss is the cross-entropy of the evidence over that set,
    -log Σ_{e ∈ evidence} softmax_{evidence ∪ decoys}(scores)_e, averaged over positions, heads, layers.

    Why this form: ``retrieval_loss`` normalises over hundreds of filler chunks, so it is nearly satisfied
    once the evidence beats the filler, while the fusion softmax and the reader still weigh the few
    look-alike chunks almost equally (held-out top-1 0.44-0.57 with the evidence in the top 8). Restricting
    the same softmax to evidence ∪ decoys keeps the loss on the scale and form of the router loss (and of
    the fusion weights, which are a softmax of these scores), weights each decoy's gradient by its softmax
    share (the strongest decoy is pushed hardest) and needs no margin hyperparameter in score units, which
    differ between layers and heads; its gradient fades by itself once the evidence dominates. A row
    without decoys (S-NIAH, most static agent facts) is skipped, not counted as solved.
    Returns (loss or None when no row qualifies, stats: ``decoy_top1`` — the rate at which the evidence
    outscores every decoy — and ``decoy_rows``).
    """
    losses, top1, total = [], 0.0, 0
    for row, q, lm, visible in _reply_rows(captures, answer_starts, labels, chunk_size):
        targets = sorted({e for e in evidence[row] if e < visible})
        negatives = sorted({d for d in decoys[row] if d < visible} - set(targets))
        if not targets or not negatives:
            continue
        chosen = torch.tensor(targets + negatives, device=q.device)
        scores = torch.einsum("thr,chr->thc", q, lm[chosen].float())  # (t, HK, |E|+|D|)
        logp = F.log_softmax(scores, dim=-1)
        losses.append(-torch.logsumexp(logp[..., :len(targets)], dim=-1).mean())
        # strictly above the best decoy: a tie (e.g. collapsed landmarks) is not a win
        wins = scores[..., :len(targets)].amax(-1) > scores[..., len(targets):].amax(-1)  # (t, HK)
        top1 += float(wins.float().mean())
        total += 1
    if not losses:
        return None, {}
    return torch.stack(losses).mean(), {"decoy_top1": top1 / total, "decoy_rows": total}


def _reply_rows(captures: list, answer_starts: list[int], labels: torch.Tensor | None, chunk_size: int):
    """Per HSA layer and row with a reply: (row, the reply-predicting queries (t, HK, Rh) in fp32, the row's
    landmarks (C, HK, Rh), how many chunks every one of those positions may read)."""
    for queries, landmarks in captures:
        B, T, HK, Rh = queries.shape
        C = landmarks.shape[1]
        lm = landmarks.view(B, C, HK, Rh)
        for row in range(B):
            start, stop = _reply_positions(row, answer_starts, labels)
            if start < 0:
                continue
            yield row, queries[row, start:stop].float(), lm[row], min(start // chunk_size, C)


def _reply_positions(row: int, answer_starts: list[int], labels: torch.Tensor | None) -> tuple[int, int]:
    """[start, stop) of a row's reply-predicting positions: answer_start - 1 up to the last labelled target
    (only the first when ``labels`` is None)."""
    start = answer_starts[row] - 1
    if labels is not None and bool((labels[row, 1:] != IGNORE).any()):
        return start, int((labels[row, 1:] != IGNORE).nonzero().max()) + 1
    return start, start + 1


def distill_loss(model: HSAForCausalLM, hidden: torch.Tensor, labels: torch.Tensor, teacher_hidden: torch.Tensor,
                 teacher_labels: torch.Tensor) -> torch.Tensor | None:
    """KL(teacher ‖ student) per reply token: the student reads the evidence from memory, the teacher (the
    base with the evidence in its window) from context. Rows pair up by reply token order; a row whose
    counts differ (a truncated sequence) is left out. None when no row pairs up."""
    student_mask, teacher_mask = labels[:, 1:] != IGNORE, teacher_labels[:, 1:] != IGNORE
    keep = (student_mask.sum(-1) == teacher_mask.sum(-1)) & teacher_mask.any(-1)
    if not bool(keep.any()):
        return None
    student_mask, teacher_mask = student_mask & keep[:, None], teacher_mask & keep[:, None]
    student = F.log_softmax(model.lm_head(hidden[:, :-1][student_mask]).float(), -1)
    with torch.no_grad():
        teacher = F.log_softmax(model.lm_head(teacher_hidden[:, :-1][teacher_mask]).float(), -1)
    return F.kl_div(student, teacher, log_target=True, reduction="batchmean")


def copy_loss(captures: list, pairs: list[list[tuple[int, int]]], chunk_size: int) -> tuple[torch.Tensor | None, dict]:
    """Where inside the evidence chunk the answer's tokens look: for each (query, key) pair of
    ``TokenExample.copy_pairs``, −log of the head-averaged attention probability that the query's in-chunk
    softmax puts on the key holding the same token (a pointer, as in pointer networks).

    Why: with the router's weight 0.99 on the evidence chunk, the run-12 reader still wrote 'Domen' for
    'Darius' (training/LOG.md, session 9) — the reply loss reaches in-chunk attention only through the
    language model. The head average leaves heads free to do other work as long as some point at the token.
    ``captures``: one (q (B, T, HQ, D), keys (B, C·S, HK, D)) per HSA layer.
    """
    rows = [(b, q, k) for b, row in enumerate(pairs) for q, k in row]
    if not captures or not rows:
        return None, {}
    terms, hits = [], []
    for q, keys in captures:
        _, T, HQ, D = q.shape
        HK = keys.shape[2]
        kept = [(b, qp, kp) for b, qp, kp in rows if qp < T and kp < keys.shape[1]]
        if not kept:
            continue
        b_idx, q_pos, k_pos = (torch.tensor(col, device=q.device) for col in zip(*kept))
        start = (k_pos // chunk_size) * chunk_size
        window = start[:, None] + torch.arange(chunk_size, device=q.device)  # (N, S)
        chunk_keys = keys[b_idx[:, None], window]  # (N, S, HK, D)
        queries = q[b_idx, q_pos].view(len(kept), HK, HQ // HK, D)  # (N, HK, G, D)
        logits = torch.einsum("nhgd,nshd->nhgs", queries.float(), chunk_keys.float()) * D ** -0.5
        target = (k_pos - start).view(-1, 1, 1, 1).expand(-1, HK, HQ // HK, 1)
        probability = logits.softmax(-1).gather(-1, target).squeeze(-1).mean(dim=(1, 2))  # (N,)
        terms.append(-torch.log(probability.clamp_min(1e-9)))
        hits.append((logits.argmax(-1) == target.squeeze(-1)).float().mean())
    if not terms:
        return None, {}
    return torch.cat(terms).mean(), {"copy_top1": torch.stack(hits).mean().item(), "copy_pairs": len(rows)}
