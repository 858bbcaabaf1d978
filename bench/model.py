"""CPU throughput of the default model: ingest (`encode_chunks`) and generation against a memory.

    python bench/model.py [--tokens 2048] [--new-tokens 32] [--write]

Side by side in one run: ingest (lower half + chunk encoder only) vs a full forward over the same
tokens (what ingest would cost without the split), and generation with and without an external
memory of encoded chunks. Absolute CPU times depend on the machine and its load; ratios travel.
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from datetime import datetime, timezone
from pathlib import Path

import torch

from hsa_memory.model import TensorMemory
from hsa_memory.model.generation import generate
from hsa_memory.model.loading import load_model


def timed(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=2048)
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--write", action="store_true", help="append the table to bench/RESULTS.md")
    args = parser.parse_args()
    loaded = load_model(checkpoint=None)
    model = loaded.model
    torch.manual_seed(0)
    ids = torch.randint(100, 40000, (args.tokens,))
    with torch.no_grad():
        ingest = timed(lambda: model.encode_chunks(ids), args.repeat)
        full = timed(lambda: model(ids[None]), args.repeat)
        encoded = model.encode_chunks(ids).memory
        memory = TensorMemory(encoded.landmarks, encoded.keys, encoded.values)
        prompt = ids[:256].tolist()
        start = args.tokens  # the prompt sits after the memory in the stream
        def run(mem):
            out = list(generate(model, prompt, memory=mem, start_position=start, max_new_tokens=args.new_tokens))
            assert len(out) == args.new_tokens
        plain = timed(lambda: run(None), args.repeat)
        with_memory = timed(lambda: run(memory), args.repeat)
    rows = [
        ("ingest: encode_chunks (lower 15 layers + encoder)", args.tokens / ingest, f"{args.tokens} tokens"),
        ("full forward, all 30 layers + HSA (reference)", args.tokens / full, f"{args.tokens} tokens"),
        ("generation, no memory (256-token prompt)", args.new_tokens / plain, f"{args.new_tokens} new tokens"),
        (f"generation reading {encoded.landmarks.shape[0]} chunks", args.new_tokens / with_memory,
         f"{args.new_tokens} new tokens"),
    ]
    machine = f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}"
    lines = [
        f"\n### Model throughput on the CPU ({datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC)\n",
        f"`python bench/model.py --tokens {args.tokens} --new-tokens {args.new_tokens}` — {machine}, fp32, "
        f"median of {args.repeat}; prefill included in generation time.\n",
        "| what | tokens/s | size |", "|---|---:|---|",
        *[f"| {name} | {rate:,.0f} | {size} |" for name, rate, size in rows],
        f"\ningest / full-forward speed ratio: {full / ingest:.2f}× (ingest skips the upper half)\n",
    ]
    print("\n".join(lines))
    if args.write:
        path = Path(__file__).parent / "RESULTS.md"
        text = path.read_text() if path.exists() else "# Benchmark results\n"
        if "## Model" not in text:
            text += "\n## Model\n"
        path.write_text(text + "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
