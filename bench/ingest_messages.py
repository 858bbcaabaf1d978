"""Ingest rate of an agent-style history: many short messages through ``Memory.extend`` on the CPU.

    python -P bench/ingest_messages.py --messages 600 --threads 1 [--compare-append]

An agent history is mostly 10–40-word messages; the ingest rate there was well below the rate on long
documents (RESULTS "Side by side": 367 against 613 tokens/s at 1M), because each message went through the
model alone. ``--compare-append`` times the same messages appended one call at a time in the same run (each
append is its own durable write and its own ingest: the per-message floor a caller pays by not batching).
"""
from __future__ import annotations

import argparse
import json
import platform
import random
import tempfile
import time
from pathlib import Path

import torch

WORDS = ("the a I my you we sister moved to Lisbon in May and then went hiking with dog called Biscuit on "
         "Sunday morning booked table at eight for dinner asked about train tickets meeting moved Thursday").split()


def messages(n: int, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    return [{"role": rng.choice(["user", "assistant"]),
             "content": " ".join(rng.choice(WORDS) for _ in range(rng.randint(8, 30)))} for _ in range(n)]


def timed(path: Path, batch: list[dict], one_by_one: bool) -> dict:
    from hsa_memory import Memory

    with Memory(path, progress=False) as mem:
        mem.append("warm-up: the model is loaded and run once before the clock starts.")
        tokens0 = mem.stats()["tokens"]
        start = time.perf_counter()
        if one_by_one:
            for m in batch:
                mem.append(m["content"], role=m["role"])
        else:
            mem.extend(batch)
        seconds = time.perf_counter() - start
        tokens = mem.stats()["tokens"] - tokens0
    return {"mode": "append each" if one_by_one else "extend", "tokens": tokens, "seconds": round(seconds, 2),
            "tokens_per_s": round(tokens / seconds, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=600)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--compare-append", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    batch = messages(args.messages)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        rows.append(timed(Path(tmp) / "extend", batch, one_by_one=False))
        if args.compare_append:
            rows.append(timed(Path(tmp) / "append", batch, one_by_one=True))
    for row in rows:
        print(json.dumps({**row, "messages": args.messages, "threads": args.threads,
                          "machine": f"{platform.machine()}, torch {torch.__version__}"}))


if __name__ == "__main__":
    main()
