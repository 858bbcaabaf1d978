"""Landmark top-K on the CPU: the blocked path ``auto`` dispatches to, beside the reference and plain torch.

    python bench/kernels_cpu.py [--threads 1] [--memories 64K,1M,4M] [--queries 1,512]

Side by side in one run, per memory size (landmarks = tokens / 64, R = 256, K = 8, fp32) and query count:
``landmark_topk_reference`` (the spec: a stable sort per block), ``landmark_topk_blocked`` (float topk +
packed int64 keys on ties, the CPU path) and ``torch.topk(q @ Lᵀ)`` (materialises queries × landmarks:
the floor of what scoring costs here, not memory-bounded). Median of ``--repeat`` runs; ratios are the
figures that transfer between machines (absolute CPU times depend on the load).
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import torch

from hsa_memory.kernels.topk_retrieval import landmark_topk_reference
from hsa_memory.kernels.topk_retrieval.blocked import landmark_topk_blocked


def parse_size(text: str) -> int:
    text = text.strip().upper()
    return int(float(text[:-1]) * {"K": 1024, "M": 1024 ** 2}[text[-1]]) if text[-1] in "KM" else int(text)


def median_seconds(fn, repeat: int) -> float:
    fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--memories", default="64K,1M,4M")
    parser.add_argument("--queries", default="1,512")
    parser.add_argument("--topk", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--threads", type=int)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(f"`python bench/kernels_cpu.py --memories {args.memories} --queries {args.queries} --topk {args.topk}` — "
          f"{time.strftime('%Y-%m-%d %H:%M', time.gmtime())} UTC, {platform.machine()}, {os.cpu_count()} cores, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads, load average {os.getloadavg()[0]:.1f}\n")
    print("| memory | landmarks | queries | reference ms | blocked ms | torch topk(q·Lᵀ) ms | reference / blocked | blocked / torch |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for memory in (parse_size(m) for m in args.memories.split(",")):
        n = memory // 64
        landmarks = torch.randn(1, n, 1, 256)
        for t in (int(q) for q in args.queries.split(",")):
            queries = torch.randn(1, t, 1, 256)
            visible = torch.full((1, t), n)
            ref = median_seconds(lambda: landmark_topk_reference(queries, landmarks, args.topk, visible), args.repeat)
            blocked = median_seconds(lambda: landmark_topk_blocked(queries, landmarks, args.topk, visible), args.repeat)
            plain = median_seconds(lambda: torch.topk(queries[0, :, 0] @ landmarks[0, :, 0].T, args.topk), args.repeat)
            print(f"| {memory // 1024:,}K | {n:,} | {t} | {ref * 1e3:.1f} | {blocked * 1e3:.1f} | {plain * 1e3:.1f} | "
                  f"{ref / blocked:.1f}× | {blocked / plain:.2f}× |", flush=True)


if __name__ == "__main__":
    main()
