"""Held-out evaluation during and after training: reply exact match and evidence recall.

Teacher-forced exact match (every reply token argmax-correct) and whether the evidence chunk is
among the chunks the reply's tokens routed to — on seeds and entity pools never trained on.

Evidence recall only means something for examples whose evidence the HSA layers can and must read:
the evidence chunk must be closed before the reply starts (else no token may route to it) and, for
``evidence_recall_far``, lie wholly outside the sliding window (else the window answers anyway). Runs
1-3 counted needles in the open chunk as misses; ``evidence_recall`` now averages over retrievable
examples only (``n_retrievable``), and ``evidence_top1`` / ``evidence_in_topk`` read the router's
scores over every visible chunk directly (first reply-predicting position, every HSA layer).
``decoy_top1`` reads the same scores restricted to the evidence and the question's decoy chunks (an
older value of the fact, another person's or key's value): the rate at which the evidence outscores
every decoy, over the ``n_decoy`` retrievable examples with a visible decoy chunk.
"""
from __future__ import annotations

import random

import torch

from hsa_memory.model import RetrievalTrace
from hsa_memory.model.modeling import HSALayer

from .batches import collate, tokenize_example
from .objectives import answer_loss
from .read_options import add_read_arguments, apply_read_arguments
from .tasks import FILLERS, make_example, tokenizer as load_tokenizer


def evidence_status(evidence: list[int], answer_start: int, chunk_size: int, window: int | None) -> tuple[bool, bool]:
    """(retrievable, far): some evidence chunk is closed before the reply's first predicting position,
    and such a chunk ends at least ``window`` tokens before it (so the sliding window cannot see it)."""
    first = answer_start - 1
    visible = [e for e in evidence if (e + 1) * chunk_size <= first]
    far = [e for e in visible if window is None or first - (e + 1) * chunk_size + 1 >= window]
    return bool(visible), bool(far)


def set_topk(model, topk: int | None, seq_len: int) -> None:
    """Every HSA layer's routing top-K (None: unchanged; 0: every chunk of a ``seq_len`` sequence)."""
    if topk is None:
        return
    k = topk if topk > 0 else max(1, seq_len // model.config.chunk_size)
    for layer in model.model.layers:
        if isinstance(layer, HSALayer):
            layer.retrieval.topk = k


def value_match(model, hidden: torch.Tensor, tokens) -> float:
    """1.0 when every reply token that spells the answer is the argmax given the gold reply before it
    (teacher forced). ``exact`` also asks for the reply's wording ("Your locker code is" vs "Your locker
    number is"), which a right answer need not share."""
    start, stop = tokens.answer_tokens
    if stop <= start:
        return 0.0
    predicted = model.lm_head(hidden[start - 1:stop - 1]).argmax(-1).cpu()
    return float(bool((predicted == torch.tensor(tokens.input_ids[start:stop])).all()))


@torch.no_grad()
def evaluate(model, task: str, length: int, count: int = 32, seed: int = 10_000_019, filler: str = "corpora",
             split: str = "heldout") -> dict:
    tokenizer = load_tokenizer()
    device = model.lm_head.weight.device
    S, K = model.config.chunk_size, model.config.hsa_topk
    window = model.config.sliding_window
    retrievals = [layer.retrieval for layer in model.model.layers if isinstance(layer, HSALayer)]
    exact, value_exact, n = 0.0, 0.0, 0
    recall, recall_far, top1, in_topk, n_vis, n_far, exact_far = 0.0, 0.0, 0.0, 0.0, 0, 0, 0.0
    value_exact_far = 0.0
    decoy_top1, n_decoy = 0.0, 0
    model.eval()
    for i in range(count):
        example = make_example(task, seed + i, length, filler, split)
        tokens = tokenize_example(example, tokenizer, S, rng=random.Random(seed + i))
        inputs, labels = collate([tokens], len(tokens.input_ids), model.config.eos_token_id)
        trace = RetrievalTrace(count_from=tokens.answer_start - 1)
        captures = []
        for retrieval in retrievals:
            retrieval.capture = captures
        try:
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
                hidden = model.model(inputs.to(device), trace=trace)
                _, stats = answer_loss(model, hidden, labels.to(device))
                value_ok = value_match(model, hidden[0], tokens)
        finally:
            for retrieval in retrievals:
                retrieval.capture = None
        exact += stats["exact"]
        value_exact += value_ok
        n += 1
        retrievable, far = evidence_status(tokens.evidence_chunks, tokens.answer_start, S, window)
        if not retrievable:
            continue
        n_vis += 1
        routed = {c for c, _ in trace.ranked(K)}
        hit = float(bool(set(tokens.evidence_chunks) & routed))
        recall += hit
        first = tokens.answer_start - 1
        visible = first // S
        target = torch.tensor([e for e in tokens.evidence_chunks if e < visible])
        negatives = torch.tensor([d for d in tokens.decoy_chunks if d < visible], dtype=torch.long)
        t1, tk, td = 0.0, 0.0, 0.0
        for queries, landmarks in captures:
            HK, Rh = queries.shape[2:]
            scores = torch.einsum("hr,chr->hc", queries[0, first].float(),
                                  landmarks[0, :visible].view(visible, HK, Rh).float().to(queries.device)).cpu()
            t1 += float(torch.isin(scores.argmax(-1), target).float().mean())
            top = scores.topk(min(K, visible), dim=-1).indices
            tk += float(torch.isin(top, target).any(-1).float().mean())
            if len(negatives):
                td += float((scores[:, target].amax(-1) > scores[:, negatives].amax(-1)).float().mean())
        top1 += t1 / max(1, len(captures))
        in_topk += tk / max(1, len(captures))
        if len(negatives) and captures:
            n_decoy += 1
            decoy_top1 += td / len(captures)
        if far:
            n_far += 1
            recall_far += hit
            exact_far += stats["exact"]
            value_exact_far += value_ok
    return {"task": task, "length": length, "n": n, "exact": exact / n, "value_exact": value_exact / n,
            "n_retrievable": n_vis, "evidence_recall": recall / max(1, n_vis),
            "evidence_top1": top1 / max(1, n_vis), "evidence_in_topk": in_topk / max(1, n_vis),
            "n_decoy": n_decoy, "decoy_top1": decoy_top1 / max(1, n_decoy),
            "n_far": n_far, "evidence_recall_far": recall_far / max(1, n_far), "exact_far": exact_far / max(1, n_far),
            "value_exact_far": value_exact_far / max(1, n_far)}


def disable_supersession(model: torch.nn.Module) -> int:
    """Zero each retrieval's supersession scale, so its penalty vanishes: an ablation of what training put
    there (the margin and temperature stay, but do nothing at scale 0). Returns how many layers had one."""
    n = 0
    for module in model.modules():
        params = getattr(module, "supersession", None)
        if isinstance(params, torch.nn.Parameter):
            with torch.no_grad():
                params[0] = 0.0
            n += 1
    return n


def disable_lora(model: torch.nn.Module) -> int:
    """Drop every attention layer's low-rank deltas (HSAConfig.lora_rank): an ablation of what they add over
    the frozen base projections. Returns how many layers had them."""
    n = 0
    for module in model.modules():
        if isinstance(getattr(module, "lora", None), torch.nn.ModuleDict):
            module.lora = None
            n += 1
    return n


def main(argv=None) -> None:
    """Held-out evaluation of a checkpoint from the command line (the same numbers train.py logs at its end):

        python -m hsa_memory.training.evaluate --checkpoint run9.safetensors --eval agent_memory:8192,s_niah:8192
    """
    import argparse
    import json

    from hsa_memory.model.loading import load_model

    p = argparse.ArgumentParser(description="held-out evaluation of HSA weights (teacher-forced exact match, routing)")
    p.add_argument("--checkpoint", default="bundled", help="HSA weights (default: the shipped ones)")
    p.add_argument("--eval", default="s_niah:8192,agent_memory:8192", help="task:length pairs")
    p.add_argument("--count", type=int, default=16)
    p.add_argument("--filler", default="corpora", choices=list(FILLERS),
                   help="corpora+dialogue adds the base model's written dialogue (training.write_dialogue)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--threads", type=int, help="torch CPU threads")
    p.add_argument("--topk", type=int, help="routing top-K at inference (default: the checkpoint's config)")
    p.add_argument("--no-supersession", action="store_true",
                   help="ablation: zero every HSA layer's trained supersession scale (the rest of the weights unchanged)")
    add_read_arguments(p)
    p.add_argument("--no-lora", action="store_true",
                   help="ablation: drop the low-rank deltas of the upper attention layers (the rest unchanged)")
    args = p.parse_args(argv)
    if args.topk is not None and args.topk < 1:
        p.error(f"--topk must be a positive number of chunks, got {args.topk}")
    if args.threads:
        torch.set_num_threads(args.threads)
    model = load_model("hsa-smollm2-135m", checkpoint=args.checkpoint, device=args.device).model.eval()
    if args.topk:
        # a runtime field (model/checkpoint.py): every HSA layer's router and the metrics' K alike
        model.config.hsa_topk = args.topk
        set_topk(model, args.topk, 0)
    read = apply_read_arguments(p, args, model)
    if args.no_supersession:
        disable_supersession(model)
    if args.no_lora and not disable_lora(model):
        p.error("--no-lora: these weights have no low-rank deltas (config lora_rank 0)")
    ablated = {**read, **({"supersession": "off"} if args.no_supersession else {}),
               **({"lora": "off"} if args.no_lora else {})}
    for item in filter(None, args.eval.split(",")):
        task, _, length = item.partition(":")
        result = evaluate(model, task, int(length), count=args.count, filler=args.filler)
        print(json.dumps({"checkpoint": str(args.checkpoint), "topk": model.config.hsa_topk,
                          **ablated, **result}), flush=True)


if __name__ == "__main__":
    main()
