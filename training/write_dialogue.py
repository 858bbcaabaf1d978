"""Have the base model write dialogue for the agent histories' filler (ASSETS.md: "dialogue written by the
base model itself on the GPU").

    python -m hsa_memory.training.write_dialogue --exchanges 4000 [--out PATH] [--device auto]
                                                  [--batch-size 128] [--seed 0]

Two passes of batched sampling with SmolLM2-135M-Instruct (full attention, no HSA: the base as
published): first a user message on an everyday topic (``dialogue.ASKS``), then the assistant's reply
to it. The model has no padding mask, so prompts are batched by exact token length (buckets), which
keeps every row's attention exact. A user message that states a personal fact is dropped
(``dialogue.looks_personal``), as are empty or unfinished texts. Deterministic for a given seed,
device and batch size.
"""
from __future__ import annotations

import argparse
import dataclasses
import logging
import random
import re
import time
from collections import defaultdict
from pathlib import Path
from typing import Sequence

import torch

from .data.dialogue import ASKS, TOPICS, Exchange, default_path, looks_personal, save_dialogues

log = logging.getLogger(__name__)

MAX_USER_TOKENS = 48
MAX_REPLY_TOKENS = 120


def load_writer(device: torch.device, dtype: torch.dtype | None = None):
    """SmolLM2-135M-Instruct as published: the project's loader, full attention, no sinks, no HSA weights."""
    from hsa_memory.model.config import DEFAULT_PRESET, get_preset
    from hsa_memory.model.loading import load_model

    dtype = dtype or (torch.bfloat16 if device.type == "cuda" else torch.float32)
    config = dataclasses.replace(get_preset(DEFAULT_PRESET), sliding_window=None, attn_sinks=False)
    return load_model(config, checkpoint=None, device=device, dtype=dtype)


def sample_rows(logits: torch.Tensor, temperature: float, top_p: float, generator: torch.Generator | None) -> torch.Tensor:
    """One token per row (B, V) → (B,): greedy at temperature 0, else nucleus sampling."""
    if temperature < 1e-4:
        return logits.argmax(-1)
    probs = torch.softmax(logits.float() / temperature, dim=-1)
    sorted_probs, order = torch.sort(probs, dim=-1, descending=True)
    keep = torch.cumsum(sorted_probs, dim=-1) - sorted_probs < top_p
    keep[:, 0] = True
    sorted_probs = torch.where(keep, sorted_probs, torch.zeros_like(sorted_probs))
    choice = torch.multinomial(sorted_probs / sorted_probs.sum(-1, keepdim=True), 1, generator=generator)
    return order.gather(-1, choice).squeeze(-1)


@torch.no_grad()
def generate_batch(model, prompts: torch.Tensor, max_new_tokens: int, stop_ids: Sequence[int], *,
                   temperature: float = 0.0, top_p: float = 1.0,
                   generator: torch.Generator | None = None) -> list[tuple[list[int], bool]]:
    """Continue B prompts of one length together; per row (tokens before the first stop, stopped?)."""
    from hsa_memory.model.generation import new_caches

    device = model.lm_head.weight.device
    B, T = prompts.shape
    caches = new_caches(model)
    hidden = model.model(prompts.to(device), torch.arange(T, device=device), caches=caches, use_hsa=False)
    logits = model.lm_head(hidden[:, -1])
    stops = torch.tensor(sorted(set(int(s) for s in stop_ids)), device=device)
    tokens = torch.empty(B, 0, dtype=torch.long, device=device)
    done = torch.zeros(B, dtype=torch.bool, device=device)
    stopped_at = torch.full((B,), max_new_tokens, dtype=torch.long, device=device)
    for step in range(max_new_tokens):
        token = sample_rows(logits, temperature, top_p, generator)
        is_stop = torch.isin(token, stops) & ~done
        stopped_at = torch.where(is_stop, torch.full_like(stopped_at, step), stopped_at)
        done |= is_stop
        tokens = torch.cat([tokens, token[:, None]], dim=1)
        if bool(done.all()):
            break
        position = torch.tensor([T + step], device=device)
        hidden = model.model(token[:, None], position, caches=caches, use_hsa=False)
        logits = model.lm_head(hidden[:, -1])
    rows = tokens.tolist()
    ends = stopped_at.tolist()
    flags = done.tolist()
    return [(row[:end], flag) for row, end, flag in zip(rows, ends, flags)]


def generate_bucketed(loaded, prompts: Sequence[list[int]], max_new_tokens: int, *, batch_size: int,
                      temperature: float, top_p: float, seed: int, progress=None) -> list[tuple[str, bool]]:
    """Generate for prompts of any lengths, batching those of equal length; results in prompt order."""
    config = loaded.model.config
    stops = (config.im_end_token_id, config.eos_token_id)
    buckets: dict[int, list[int]] = defaultdict(list)
    for index, ids in enumerate(prompts):
        buckets[len(ids)].append(index)
    results: list[tuple[str, bool] | None] = [None] * len(prompts)
    generator = torch.Generator(device=loaded.model.lm_head.weight.device)
    generator.manual_seed(seed)
    for length in sorted(buckets):
        members = buckets[length]
        for start in range(0, len(members), batch_size):
            batch = members[start:start + batch_size]
            ids = torch.tensor([prompts[i] for i in batch], dtype=torch.long)
            outputs = generate_batch(loaded.model, ids, max_new_tokens, stops, temperature=temperature,
                                     top_p=top_p, generator=generator)
            for index, (tokens, stopped) in zip(batch, outputs):
                results[index] = (loaded.tokenizer.decode(tokens, skip_special_tokens=True).strip(), stopped)
            if progress is not None:
                progress.update(len(batch))
    return results  # type: ignore[return-value]


def chat_prompt(tokenizer, user: str) -> list[int]:
    """The default SmolLM2 system turn, one user turn, and the assistant's header."""
    from hsa_memory.model.tokenizer import DEFAULT_SYSTEM_PROMPT, render_turn

    text = render_turn("system", DEFAULT_SYSTEM_PROMPT) + render_turn("user", user) + "<|im_start|>assistant\n"
    return tokenizer.encode(text, add_special_tokens=False).ids


_QUOTES = "\"'“”‘’"


# the message the model framed instead of writing it bare: 'A student asks: "Why is the sky blue?"' (a third of
# its user messages in session 7's write were framed like this and were dropped)
_FRAMED = re.compile(r'["“]([^"“”]{12,300}?[.?!])["”]')
_META = re.compile(r"\b(?:smollm|assistant|chatbot|ai|language model|curious person|student asks|you're asking)\b",
                   re.IGNORECASE)


def topic_words(topic: str) -> list[str]:
    """The stems (first 5 letters) of a topic's content words: a written message must mention one."""
    return [word[:5].lower() for word in re.findall(r"[A-Za-z]{4,}", topic)
            if word.lower() not in {"with", "from", "that", "what", "first", "making", "learning", "after"}]


def clean_user_message(text: str, topic: str = "") -> str | None:
    """The first line of a written user message, unquoted (or the quoted message inside a framing line);
    None when it is not a usable message: too short or long, unfinished, about the chat itself rather than
    the topic, or off the topic."""
    line = text.strip().splitlines()[0].strip() if text.strip() else ""
    framed = _FRAMED.search(line)
    if framed:
        line = framed.group(1)
    line = re.sub(r"^(?:question|message|request|user)\s*:\s*", "", line, flags=re.IGNORECASE).strip()
    line = line.strip(_QUOTES).strip()
    if len(line) < 12 or len(line) > 300 or not re.search(r"[A-Za-z]{3}", line):
        return None
    if line[-1] not in ".?!" or _META.search(line) or line.count('"') % 2:
        return None
    stems = topic_words(topic)
    if stems and not any(stem in line.lower() for stem in stems):
        return None
    return line


def clean_reply(text: str, stopped: bool) -> str | None:
    """A finished reply; an unfinished one is cut back to its last full sentence; None when too short."""
    text = text.strip()
    if not stopped:
        cut = max(text.rfind(". "), text.rfind("! "), text.rfind("? "), text.rfind(".\n"))
        text = text[:cut + 1].strip() if cut > 0 else ""
    if len(text) < 20 or not re.search(r"[A-Za-z]{3}", text):
        return None
    return text


def write_exchanges(loaded, count: int, *, seed: int = 0, batch_size: int = 64, temperature: float = 0.7,
                    top_p: float = 0.95, progress: bool = True) -> tuple[list[Exchange], dict]:
    """About ``count`` exchanges (fewer when the filters drop some) and counts of what was dropped."""
    from tqdm import tqdm

    rng = random.Random(f"write_dialogue:{seed}")
    topics = [rng.choice(TOPICS) for _ in range(count)]
    asks = [rng.choice(ASKS).format(topic=topic) for topic in topics]
    tok = loaded.tokenizer
    bar = tqdm(total=2 * count, desc="writing dialogue", unit="text", disable=not progress)
    written = generate_bucketed(loaded, [chat_prompt(tok, ask) for ask in asks], MAX_USER_TOKENS,
                                batch_size=batch_size, temperature=temperature, top_p=top_p, seed=seed, progress=bar)
    users, kept_topics, stats = [], [], {"asked": count, "unusable_user": 0, "personal_user": 0, "unusable_reply": 0}
    for (text, _), topic in zip(written, topics):
        message = clean_user_message(text, topic)
        if message is None:
            stats["unusable_user"] += 1
        elif looks_personal(message):
            stats["personal_user"] += 1
        else:
            users.append(message)
            kept_topics.append(topic)
    bar.total = count + len(users)
    replies = generate_bucketed(loaded, [chat_prompt(tok, user) for user in users], MAX_REPLY_TOKENS,
                                batch_size=batch_size, temperature=temperature, top_p=top_p, seed=seed + 1,
                                progress=bar)
    bar.close()
    exchanges = []
    for user, topic, (text, stopped) in zip(users, kept_topics, replies):
        reply = clean_reply(text, stopped)
        if reply is None:
            stats["unusable_reply"] += 1
            continue
        exchanges.append(Exchange(user, reply, topic))
    stats["kept"] = len(exchanges)
    return exchanges, stats


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--exchanges", type=int, default=4000, help="user messages to ask for (filters drop some)")
    parser.add_argument("--out", type=Path, default=None, help=f"default: {default_path()}")
    parser.add_argument("--device", default="auto", help="cpu, cuda or auto")
    parser.add_argument("--batch-size", type=int, default=None, help="rows per batch (default 128 on a GPU, 16 on a CPU)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--temperature", type=float, default=0.7)
    parser.add_argument("--top-p", type=float, default=0.95)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.exchanges < 1:
        parser.error("--exchanges must be at least 1")
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          ("cpu" if args.device == "auto" else args.device))
    batch_size = args.batch_size or (128 if device.type == "cuda" else 16)
    out = args.out or default_path()
    started = time.perf_counter()
    loaded = load_writer(device)
    exchanges, stats = write_exchanges(loaded, args.exchanges, seed=args.seed, batch_size=batch_size,
                                       temperature=args.temperature, top_p=args.top_p)
    seconds = time.perf_counter() - started
    meta = {"writer": loaded.model_id, "seed": args.seed, "temperature": args.temperature, "top_p": args.top_p,
            "batch_size": batch_size, "device": str(device), "stats": stats, "seconds": round(seconds, 1)}
    save_dialogues(out, exchanges, meta)
    log.info("wrote %d exchanges to %s in %.0f s (%s)", len(exchanges), out, seconds, stats)


if __name__ == "__main__":
    main()
