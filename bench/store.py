"""Store benchmark: bytes per token on disk per tier and codec, chunk reads per tier, appends.

    python bench/store.py [--chunks 2048] [--kv-heads 1] [--head-dim 64] [--landmark-dim 256]

The K/V is random data shaped like real K/V (no trained weights exist yet), in two flavours:
``iid`` is standard normal, the hardest case for compression; ``structured`` gives each channel
its own lognormal scale and offset, a few keys channels 8x outliers, and Student-t (df 5) tails,
as real key/value activations have. Prints markdown tables for bench/RESULTS.md.
"""
from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np

from hsa_memory.store import KVLayout, MemoryStore, NewChunk, TierPolicy

T0 = datetime(2024, 1, 1, tzinfo=timezone.utc)
BATCH = 64
TOPK = 16


def make_kv(rng: np.random.Generator, n: int, layout: KVLayout, flavour: str) -> tuple[np.ndarray, np.ndarray]:
    shape = (n, *layout.kv_shape)  # (n, S, HK, D)
    if flavour == "iid":
        return rng.standard_normal(shape, dtype=np.float32), rng.standard_normal(shape, dtype=np.float32)
    d = layout.head_dim
    k_scale = np.exp(rng.normal(0, 0.6, (layout.kv_heads, d)))
    for h in range(layout.kv_heads):
        k_scale[h, rng.choice(d, 2, replace=False)] *= 8
    k_mean = rng.normal(0, 0.5, (layout.kv_heads, d)) * k_scale
    v_scale = np.exp(rng.normal(0, 0.3, (layout.kv_heads, d)))
    keys = rng.standard_t(5, shape) * k_scale + k_mean
    values = rng.standard_t(5, shape) * v_scale
    return keys.astype(np.float32), values.astype(np.float32)


def words(rng: np.random.Generator, n_chars: int) -> str:
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz     "))
    return "".join(rng.choice(letters, n_chars))


def build(root: Path, layout: KVLayout, n_chunks: int, flavour: str, policy: TierPolicy, seed: int) -> MemoryStore:
    """A store of ``n_chunks`` chunks, one ~256-character event (≈64 tokens) per chunk."""
    rng = np.random.default_rng(seed)
    store = MemoryStore.create(root, layout, "bench", "0" * 64, policy=policy)
    for start in range(0, n_chunks, BATCH):
        n = min(BATCH, n_chunks - start)
        texts = [words(rng, 256) for _ in range(n)]
        seqs = store.append_events([(t, "user", T0 + timedelta(seconds=start + i), {"n": start + i})
                                    for i, t in enumerate(texts)])
        chunks = [NewChunk(start + i, (start + i) * 64, (start + i + 1) * 64, T0, T0, ["user"], texts[i],
                           seqs[i], seqs[i]) for i in range(n)]
        keys, values = make_kv(rng, n, layout, flavour)
        landmarks = rng.standard_normal((n, layout.landmark_dim), dtype=np.float32)
        store.add_chunks(chunks, landmarks, keys, values, b"", seqs[-1])
    return store


def disk_by_part(root: Path) -> dict[str, int]:
    parts: dict[str, int] = {}
    for p in root.rglob("*"):
        if p.is_file():
            rel = p.relative_to(root).parts
            key = {"kv": "K/V " + (rel[1] if len(rel) > 1 else ""), "events": "event log"}.get(rel[0], None)
            if key is None:
                key = ("catalog WAL" if rel[0].endswith(("-wal", "-shm")) else "catalog") \
                    if rel[0].startswith("catalog") else "landmarks" if rel[0].startswith("landmarks") else "other"
            parts[key] = parts.get(key, 0) + p.stat().st_size
    return parts


def read_rate(store: MemoryStore, ids: list[int], rounds: int, rng: np.random.Generator) -> tuple[float, float]:
    """Median µs per get_kv of TOPK random chunks, and decoded MB/s."""
    times = []
    for _ in range(rounds):
        batch = rng.choice(ids, TOPK, replace=False).tolist()
        start = time.perf_counter()
        keys, values = store.get_kv(batch)
        times.append(time.perf_counter() - start)
    per_batch = statistics.median(times)
    return per_batch * 1e6, (keys.nbytes + values.nbytes) / per_batch / 1e6


def bench_codecs(args, layout: KVLayout, work: Path) -> None:
    tokens = args.chunks * layout.chunk_size
    raw_per_token = layout.kv_bytes / layout.chunk_size
    print(f"\n### Bytes per token on disk ({args.chunks} chunks = {tokens} tokens; raw bf16 K/V = "
          f"{raw_per_token:.0f} B/token)\n")
    print("| data | tier / codec | K/V B/token | % of raw bf16 | landmarks | event log | catalog (SQLite) | + its WAL |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    reads = []
    for flavour in ("iid", "structured"):
        for tier, codec in (("warm", "raw"), ("cold", "zstd_shuffle"), ("cold", "int8_zstd")):
            root = work / f"{flavour}-{codec}"
            cold = tier == "cold"
            policy = TierPolicy(warm_bytes=0 if cold else 1 << 40, warm_max_age_s=0 if cold else 1e9,
                                segment_bytes=1 << 20, cold_codec=codec, hot_bytes=0)
            store = build(root, layout, args.chunks, flavour, policy, args.seed)
            if tier == "cold":
                store.retier()
            parts = disk_by_part(root)
            kv = parts.get(f"K/V {tier}", 0)
            share = 100 * kv / (raw_per_token * tokens)
            print(f"| {flavour} | {tier} / {codec} | {kv / tokens:.1f} | {share:.1f}% "
                  f"| {parts.get('landmarks', 0) / tokens:.1f} | {parts.get('event log', 0) / tokens:.1f} "
                  f"| {parts.get('catalog', 0) / tokens:.1f} | {parts.get('catalog WAL', 0) / tokens:.1f} |")
            if flavour == "structured":
                ids = store.landmarks()[1].tolist()
                rng = np.random.default_rng(args.seed)
                store.get_kv(ids)  # steady state: locations cached, files in the page cache (hot is off)
                reads.append((f"{tier} / {codec}", *read_rate(store, ids, args.rounds, rng)))
                if codec == "raw":
                    hot = MemoryStore.open(root, policy=TierPolicy(hot_bytes=1 << 30))
                    hot.get_kv(ids)
                    reads.insert(0, ("hot (RAM LRU)", *read_rate(hot, ids, args.rounds, rng)))
                    hot.close()
            store.close()
            shutil.rmtree(root)
    print(f"\n### Chunk reads (get_kv of {TOPK} random chunks of {args.chunks}, structured data, median of "
          f"{args.rounds}; steady state: files in the OS page cache, the per-call catalog check included)\n")
    print("| tier | µs per get_kv | chunks/s | decoded MB/s |")
    print("|---|---:|---:|---:|")
    for name, us, mbs in reads:
        print(f"| {name} | {us:.0f} | {TOPK / us * 1e6:,.0f} | {mbs:.0f} |")


def bench_appends(args, layout: KVLayout, work: Path) -> None:
    rng = np.random.default_rng(args.seed)
    store = MemoryStore.create(work / "appends", layout, "bench", "0" * 64)
    text = words(rng, 256)
    n = 200
    start = time.perf_counter()
    for i in range(n):
        store.append_event(text, "user", T0, {"i": i})
    single = n / (time.perf_counter() - start)
    start = time.perf_counter()
    for _ in range(10):
        store.append_events([(text, "user", T0, None)] * BATCH)
    batched = 10 * BATCH / (time.perf_counter() - start)
    rows = []
    position = 0
    last = store.append_event(text, "user", T0)
    for batch in (1, BATCH):
        keys, values = make_kv(rng, batch, layout, "structured")
        landmarks = rng.standard_normal((batch, layout.landmark_dim), dtype=np.float32)
        calls = 100 if batch == 1 else 16
        start = time.perf_counter()
        for _ in range(calls):
            chunks = [NewChunk(position + i, 0, 64, T0, T0, ["user"], text, last, last) for i in range(batch)]
            store.add_chunks(chunks, landmarks, keys, values, b"state" * 100, last)
            position += batch
        rows.append((batch, calls * batch / (time.perf_counter() - start)))
    start = time.perf_counter()
    store.landmarks()
    full = time.perf_counter() - start
    store.add_chunks([NewChunk(position, 0, 64, T0, T0, ["user"], text, last, last)],
                     landmarks[:1], keys[:1], values[:1], b"", last)
    start = time.perf_counter()
    store.landmarks()
    incremental = time.perf_counter() - start
    store.close()
    print("\n### Appends (each call durable: fsync'd log / segment + landmarks + catalog commit)\n")
    print("| operation | rate |")
    print("|---|---:|")
    print(f"| append_event, one per call | {single:,.0f} events/s |")
    print(f"| append_events, {BATCH} per call | {batched:,.0f} events/s |")
    for batch, rate in rows:
        print(f"| add_chunks, {batch} chunk(s) per call | {rate:,.0f} chunks/s = {rate * 64:,.0f} tokens/s |")
    print(f"| landmarks(): first load of {position} rows / after one more chunk | "
          f"{full * 1e3:.1f} ms / {incremental * 1e3:.2f} ms |")


def fsync_latency(work: Path) -> float:
    path = work / "fsync-probe"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT)
    start = time.perf_counter()
    for i in range(50):
        os.pwrite(fd, b"x" * 4096, i * 4096)
        os.fdatasync(fd)
    os.close(fd)
    return (time.perf_counter() - start) / 50 * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=2048)
    parser.add_argument("--kv-heads", type=int, default=1)
    parser.add_argument("--head-dim", type=int, default=64)
    parser.add_argument("--landmark-dim", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dir", default=None, help="where to build the stores (default: a temp dir)")
    args = parser.parse_args()
    layout = KVLayout(64, args.kv_heads, args.head_dim, args.landmark_dim, "bfloat16")
    work = Path(tempfile.mkdtemp(prefix="hsa-store-bench-", dir=args.dir))
    try:
        print(f"layout {layout}; {os.cpu_count()} CPUs, {platform.processor() or platform.machine()}, "
              f"fdatasync {fsync_latency(work):.2f} ms")
        bench_codecs(args, layout, work)
        bench_appends(args, layout, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
