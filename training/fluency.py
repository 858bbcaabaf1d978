"""Fluency kept? Perplexity on held-out text (Persuasion) of the retrofit vs its base.

Issue 7's target: the retrofitted model (sliding window + sinks + HSA over the text's own earlier chunks)
within 5 % of the base model's perplexity, the base running as shipped (full causal attention, no
memory). Also reports the windowed model with memory off, which shows what the window alone costs.

    python -m hsa_memory.training.fluency --length 2048 --count 8
"""
from __future__ import annotations

import argparse
import json
import math

import torch
import torch.nn.functional as F

from hsa_memory.model.loading import load_model

from .data.corpora import load_corpus
from .objectives import base_behaviour
from .tasks import tokenizer as load_tokenizer


def heldout_sequences(length: int, count: int, filler: str = "corpora") -> list[list[int]]:
    """``count`` consecutive, non-overlapping ``length``-token windows of Persuasion (or the fallback text)."""
    if filler == "corpora":
        paragraphs = load_corpus("austen", split="heldout")
    else:
        from .data.fallback import FALLBACK_PARAGRAPHS as paragraphs
    tokenizer = load_tokenizer()
    ids: list[int] = []
    for paragraph in paragraphs:
        ids.extend(tokenizer.encode(paragraph + "\n\n").ids)
        if len(ids) >= length * count:
            break
    return [ids[i * length:(i + 1) * length] for i in range(len(ids) // length)][:count]


@torch.no_grad()
def mean_nll(model, sequence: list[int], device, skip: int) -> tuple[float, int]:
    """Summed next-token NLL over positions ≥ ``skip`` (and how many)."""
    inputs = torch.tensor([sequence], device=device)
    logits = model(inputs).float()[0, :-1]
    targets = inputs[0, 1:]
    nll = F.cross_entropy(logits[skip:], targets[skip:], reduction="sum")
    return nll.item(), targets[skip:].numel()


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", default="bundled", help="HSA weights (default: the shipped ones)")
    p.add_argument("--length", type=int, default=2048)
    p.add_argument("--count", type=int, default=8)
    p.add_argument("--skip", type=int, default=0, help="score only positions from here on (e.g. beyond the window)")
    p.add_argument("--filler", default="corpora", choices=["corpora", "fallback"])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = p.parse_args(argv)
    model = load_model("hsa-smollm2-135m", checkpoint=args.checkpoint, device=args.device).model.eval()
    sequences = heldout_sequences(args.length, args.count, args.filler)
    totals = {"base_full_attention": [0.0, 0], "retrofit_with_memory": [0.0, 0], "retrofit_memory_off": [0.0, 0]}
    for sequence in sequences:
        with base_behaviour(model):
            forward = lambda x: model.lm_head(model.model(x, use_hsa=False))  # noqa: E731
            nll, n = mean_nll(forward, sequence, args.device, args.skip)
        totals["base_full_attention"][0] += nll
        totals["base_full_attention"][1] += n
        for name, use_hsa in (("retrofit_with_memory", True), ("retrofit_memory_off", False)):
            forward = lambda x, u=use_hsa: model.lm_head(model.model(x, use_hsa=u))  # noqa: E731
            nll, n = mean_nll(forward, sequence, args.device, args.skip)
            totals[name][0] += nll
            totals[name][1] += n
    ppl = {name: math.exp(s / max(1, n)) for name, (s, n) in totals.items()}
    base = ppl["base_full_attention"]
    print(json.dumps({"text": "Persuasion (held out)" if args.filler == "corpora" else "fallback",
                      "sequences": len(sequences), "length": args.length, "scored_from": args.skip,
                      "perplexity": ppl, "ratio_to_base": {k: v / base for k, v in ppl.items()},
                      "target": "retrofit_with_memory within 1.05x of base_full_attention"}, indent=1))


if __name__ == "__main__":
    main()
