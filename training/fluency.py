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
from .read_options import add_read_arguments, apply_read_arguments
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
def token_nll(model, sequence: list[int], device) -> torch.Tensor:
    """Next-token NLL at every position (length - 1 values)."""
    inputs = torch.tensor([sequence], device=device)
    logits = model(inputs).float()[0, :-1]
    return F.cross_entropy(logits, inputs[0, 1:], reduction="none")


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", default="bundled", help="HSA weights (default: the shipped ones)")
    p.add_argument("--length", type=int, default=2048)
    p.add_argument("--count", type=int, default=8)
    p.add_argument("--skip", type=int, default=0, help="score only positions from here on (e.g. beyond the window)")
    p.add_argument("--filler", default="corpora", choices=["corpora", "fallback"])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    add_read_arguments(p)
    args = p.parse_args(argv)
    model = load_model("hsa-smollm2-135m", checkpoint=args.checkpoint, device=args.device).model.eval()
    apply_read_arguments(p, args, model)
    sequences = heldout_sequences(args.length, args.count, args.filler)
    window = model.config.sliding_window or args.length
    # positions below the window see the same tokens windowed or not: what differs there is the sinks
    spans = {"all": (args.skip, args.length), f"before {window}": (args.skip, window), f"from {window}": (window, args.length)}
    names = ("base_full_attention", "retrofit_with_memory", "retrofit_memory_off")
    totals = {span: {name: [0.0, 0] for name in names} for span in spans}
    for sequence in sequences:
        nll = {}
        with base_behaviour(model):
            nll["base_full_attention"] = token_nll(lambda x: model.lm_head(model.model(x, use_hsa=False)), sequence, args.device)
        for name, use_hsa in (("retrofit_with_memory", True), ("retrofit_memory_off", False)):
            forward = lambda x, u=use_hsa: model.lm_head(model.model(x, use_hsa=u))  # noqa: E731
            nll[name] = token_nll(forward, sequence, args.device)
        for span, (lo, hi) in spans.items():
            for name in names:
                part = nll[name][lo:hi]
                totals[span][name][0] += part.sum().item()
                totals[span][name][1] += part.numel()
    ppl = {span: {name: math.exp(s / max(1, n)) for name, (s, n) in by_name.items()} for span, by_name in totals.items()}
    print(json.dumps({"text": "Persuasion (held out)" if args.filler == "corpora" else "fallback",
                      "sequences": len(sequences), "length": args.length, "scored_from": args.skip,
                      "perplexity": ppl["all"], "ratio_to_base": {k: v / ppl["all"]["base_full_attention"]
                                                                 for k, v in ppl["all"].items()},
                      "by_position": {span: {k: round(v / by_name["base_full_attention"], 4) for k, v in by_name.items()}
                                      for span, by_name in ppl.items()},
                      "by_position_perplexity": ppl,
                      "target": "retrofit_with_memory within 1.05x of base_full_attention"}, indent=1))

if __name__ == "__main__":
    main()
