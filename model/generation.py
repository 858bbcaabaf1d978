"""Token-by-token generation with per-layer SWA caches, reading an optional external memory."""
from __future__ import annotations

from typing import Callable, Iterator, Sequence

import torch

from .memory import ExternalMemory, RetrievalTrace
from .modeling import HSAForCausalLM, KVCache


def new_caches(model: HSAForCausalLM) -> list[KVCache | None]:
    """One cache per SWA layer (None at HSA layers), sized to the sliding window."""
    window = model.config.sliding_window
    return [KVCache(window) if kind == "swa" else None for kind in model.config.layer_types]


def next_token(logits: torch.Tensor, temperature: float, top_p: float, generator: torch.Generator | None) -> int:
    """Greedy when temperature is (near) 0, else nucleus sampling."""
    # below 1e-4 the scaled logits overflow to inf/NaN; such a temperature is greedy in effect
    if temperature < 1e-4:
        return int(torch.argmax(logits))
    probs = torch.softmax(logits.float() / temperature, dim=-1)
    if top_p < 1.0:
        sorted_probs, order = torch.sort(probs, descending=True)
        keep = torch.cumsum(sorted_probs, dim=-1) - sorted_probs < top_p
        keep[0] = True  # the most likely token always stays, however small top_p is
        sorted_probs = torch.where(keep, sorted_probs, torch.zeros_like(sorted_probs))
        choice = torch.multinomial(sorted_probs / sorted_probs.sum(), 1, generator=generator)
        return int(order[choice])
    return int(torch.multinomial(probs, 1, generator=generator))


@torch.no_grad()
def generate(model: HSAForCausalLM, prompt_ids: Sequence[int] | torch.Tensor, *,
             memory: ExternalMemory | None = None, start_position: int = 0, max_new_tokens: int = 256,
             stop_ids: Sequence[int] = (), temperature: float = 0.0, top_p: float = 1.0,
             generator: torch.Generator | None = None, trace: RetrievalTrace | None = None,
             caches: list[KVCache | None] | None = None,
             logits_processor: Callable[[list[int], torch.Tensor], torch.Tensor] | None = None) -> Iterator[int]:
    """Yield generated token ids until a stop id (not yielded) or ``max_new_tokens``.

    The prompt sits at stream positions ``start_position`` onwards, so HSA layers see exactly the
    memory chunks that end before each token. Without ``memory`` the HSA layers stay silent.
    ``caches`` (from ``new_caches``, already holding what precedes the prompt) continue a context;
    they are extended in place. ``logits_processor(generated_ids, logits)`` may reshape each step's
    logits (a copy bias, say) before the token is chosen.
    """
    device = model.lm_head.weight.device
    prompt = torch.as_tensor(prompt_ids, dtype=torch.long, device=device).view(1, -1)
    if prompt.shape[1] == 0:
        raise ValueError("generate needs at least one prompt token")
    if caches is None:
        caches = new_caches(model)
    positions = torch.arange(start_position, start_position + prompt.shape[1], device=device)
    hidden = model.model(prompt, positions, memory=memory, caches=caches, trace=trace)
    logits = model.lm_head(hidden[0, -1])
    position = start_position + prompt.shape[1]
    stops = set(int(s) for s in stop_ids)
    generated: list[int] = []
    for _ in range(max_new_tokens):
        if logits_processor is not None:
            logits = logits_processor(generated, logits)
        token = next_token(logits, temperature, top_p, generator)
        if token in stops:
            return
        generated.append(token)
        yield token
        step = torch.tensor([[token]], device=device)
        hidden = model.model(step, torch.tensor([position], device=device), memory=memory, caches=caches, trace=trace)
        logits = model.lm_head(hidden[0, -1])
        position += 1
