"""A copy prior for answers: favour tokens that continue the answer inside the chunks it reads.

Why: the 135M reader usually routes to the right chunk and then miscopies the value it finds there
("Hafford" for Halvorsen, a booking number with its digits shuffled; bench/RESULTS.md, "Copy bias").
Pointer-generator models fix this with a copy distribution over the source; ours reads its source
through HSA, so the source is the chunks the answer's tokens routed to so far (the ``RetrievalTrace``).

At each step the answer's last n generated tokens (n = 3, then 2, then 1: the longest that occurs) are
looked up in the token sequences of the ``top_chunks`` heaviest chunks; every token that follows such an
occurrence gets ``strength`` added to its logit. The model still decides: a strong enough preference for
another token wins, and nothing is boosted before the first generated token.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the CLI and the service read DEFAULT_STRENGTH without importing torch
    import torch

    from hsa_memory.model import RetrievalTrace

# measured on agent-memory QA held out from training (bench/RESULTS.md, "Copy bias at ask time")
DEFAULT_STRENGTH = 3.0
TOP_CHUNKS = 4
LONGEST_MATCH = 3


class CopyBias:
    """A ``logits_processor`` for ``generate``: adds ``strength`` to the tokens that continue the answer's
    tail in the chunks the trace ranks highest."""

    def __init__(self, store, tokenizer, trace: RetrievalTrace, strength: float = DEFAULT_STRENGTH,
                 top_chunks: int = TOP_CHUNKS, longest_match: int = LONGEST_MATCH):
        self.store = store
        self.tokenizer = tokenizer
        self.trace = trace
        self.strength = float(strength)
        self.top_chunks = top_chunks
        self.longest_match = longest_match
        self._tokens: dict[int, list[int]] = {}  # chunk id → its text's token ids (a forgotten chunk: [])

    def sources(self) -> list[list[int]]:
        """Token ids of the heaviest chunks so far (their text re-encoded: the store keeps text, not ids)."""
        top = [chunk_id for chunk_id, _ in self.trace.ranked(self.top_chunks)]
        missing = [chunk_id for chunk_id in top if chunk_id not in self._tokens]
        if missing:
            found = {info.id: info for info in self.store.chunks(missing)}
            for chunk_id in missing:  # a chunk the store no longer returns (forgotten, compacted) is asked once
                info = found.get(chunk_id)
                text = "" if info is None or info.deleted else info.text
                self._tokens[chunk_id] = self.tokenizer.encode(text, add_special_tokens=False).ids if text else []
        return [self._tokens[chunk_id] for chunk_id in top]

    def continuations(self, generated: list[int]) -> set[int]:
        """Tokens that follow the longest tail of ``generated`` found in the sources."""
        sources = self.sources()
        for n in range(min(self.longest_match, len(generated)), 0, -1):
            tail = generated[-n:]
            found = {source[i + n] for source in sources for i in range(len(source) - n)
                     if source[i:i + n] == tail}
            if found:
                return found
        return set()

    def __call__(self, generated: list[int], logits: torch.Tensor) -> torch.Tensor:
        import torch

        if not generated or self.strength == 0.0:
            return logits
        found = self.continuations(generated)
        if not found:
            return logits
        logits = logits.clone()
        logits[torch.tensor(sorted(found), device=logits.device)] += self.strength
        return logits
