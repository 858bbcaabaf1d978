"""Memory API benchmark: ingest tokens/s and ask latency (p50/p95, first token, breakdown) by memory size.

    python bench/api.py                                   # CPU: 10K, 100K (real ingest), 1M (fast-fill)
    python bench/api.py --device cuda --sizes 100K,1M,16M --real-upto 1M

Every size is a real ``Memory`` on disk, asked through ``Memory.ask`` with the same recent
conversation (a fixed ~400-token exchange appended last, so the question's sliding-window context
is identical) and the same questions. Side by side in the same run, the baseline is a memory holding
only that conversation: the ratio column is the memory's cost.

Two ways to fill a memory:

- **real**: corpus text (Austen, fortunes, WordNet glosses; see training/corpora.md) appended as
  user/assistant turns through ``Memory.extend``, i.e. tokenizer → lower decoder → chunk encoder →
  store. This is where ingest tokens/s comes from. Sizes up to ``--real-upto`` grow one memory.
- **fast-fill** (sizes above ``--real-upto``): the CPU encodes ≈400 tokens/s, so 1M real tokens
  would take ~40 min. Fast-fill writes synthetic-but-well-formed chunks instead: one event per batch
  of chunks (its text = the chunks' real corpus text), and landmarks/K/V drawn from a normal
  distribution with the per-dimension mean/std of really encoded chunks, in the store's own shapes and
  dtypes, through the store's real ``add_chunks`` path, with a consistent ingest state (stream
  position after the last chunk). Ask cost then depends on the real number of chunks: landmark
  scoring over all of them, top-K, K/V reads from the tiers. What fast-fill does not give: a realistic
  retrieval *choice* (random landmarks) — latency only.

Each round asks every memory twice: once unchanged (the recent context is cached from the previous
ask, so only the question and answer run), once right after a short appended turn (the cached context
is extended by that turn's tokens first; the append's own time is its own column).

Timings come from ``Answer.timings``: context (bringing the cached recent tail up to date), then for
the question and answer retrieval (landmark scoring + top-K, both HSA layers), kv_load (store reads of
the chosen chunks), attention (HSA attention inside chunks); "dense" is the rest of the total (SWA
layers, MLPs, lm head, sampling, catalog look-ups). On CUDA these host timers do not
synchronise, so the breakdown there is indicative; total and first token are wall clock.
"""
from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import random
import shutil
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Iterator

import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from hsa_memory import Memory  # noqa: E402

# the recent conversation every memory ends with (≥ 512 tokens, the sliding window, so every memory's
# question sees the same window); the questions are about it
RECENT = [
    ("user", "Quick update before I forget: the team offsite moved to Porto, on the 14th of March."),
    ("assistant", "Noted: the offsite is now in Porto on March 14th. Do you want me to book travel?"),
    ("user", "Yes please, a morning flight. Also my manager is now Priya Raman, she took over from Tom."),
    ("assistant", "Got it, Priya Raman is your new manager. I'll look for morning flights to Porto."),
    ("user", "My laptop's serial number is KX-4471-B, IT asked for it in case it gets lost on the trip."),
    ("assistant", "Saved the serial number KX-4471-B for your laptop."),
    ("user", "One more thing: I'm allergic to peanuts, so mention that when you book the team dinner."),
    ("assistant", "Understood, I'll flag the peanut allergy for the dinner reservation."),
    ("user", "How long is the flight from Berlin to Porto, roughly? I want to plan some reading."),
    ("assistant", "A direct flight takes about three hours and fifteen minutes; with a change, five to six."),
    ("user", "Direct if possible. And I'd rather have an aisle seat, my knees hate the window."),
    ("assistant", "Aisle seat, direct flight, morning departure. I'll check the options and come back to you."),
    ("user", "For the hotel, something walkable to the venue. The venue is the old customs house by the river."),
    ("assistant", "I'll search for hotels within a fifteen-minute walk of the customs house on the riverside."),
    ("user", "Budget is about 150 euros a night. Breakfast included would be nice but not essential."),
    ("assistant", "Noted: around 150 euros per night, breakfast preferred. I'll shortlist three places."),
    ("user", "Also remind me to bring the projector adapter, last time we couldn't present for half an hour."),
    ("assistant", "I'll put the projector adapter on your packing list and remind you the evening before."),
    ("user", "Priya wants everyone to prepare a five-minute update on their quarter. Mine is the data pipeline."),
    ("assistant", "A five-minute update on the data pipeline: want me to draft an outline from your notes?"),
    ("user", "Yes, keep it to three slides: what shipped, what broke, and what's next."),
    ("assistant", "Three slides it is: shipped, broke, next. I'll have a draft ready by Thursday."),
    ("user", "Perfect. Last thing, can you check whether my passport is still valid for the trip?"),
    ("assistant", "Your passport is valid until 2029, so the trip is fine. Anything else for today?"),
]
QUESTIONS = [
    "Where is the offsite happening now?",
    "Who is my manager these days?",
    "What was the serial number of my laptop?",
    "What food allergy should the restaurant know about?",
    "When is the offsite?",
    "Which flight time did I ask for?",
]
# short turns an agent appends between questions: the "after an append" asks follow one of these
FOLLOW_UPS = [
    ("user", "Thanks. Remind me later to water the plants on the balcony."),
    ("assistant", "Sure, I'll remind you about the balcony plants this evening."),
    ("user", "Also, the printer on the third floor is broken again, I reported it."),
    ("assistant", "Understood, the third-floor printer is reported as broken."),
]
SUFFIX = {"K": 1_000, "M": 1_000_000}


def parse_size(text: str) -> int:
    text = text.strip().upper()
    return int(float(text[:-1]) * SUFFIX[text[-1]]) if text[-1] in SUFFIX else int(text)


def label(n: int) -> str:
    for suffix, scale in (("M", 1_000_000), ("K", 1_000)):
        if n >= scale and n % (scale // 10) == 0:
            return f"{n / scale:g}{suffix}"
    return f"{n:,}"


def corpus_messages(seed: int = 0) -> Iterator[tuple[str, str]]:
    """An endless, deterministic stream of real text as alternating user/assistant turns."""
    from hsa_memory.training.data.corpora import available_corpora, fallback_paragraphs, load_corpus

    names = [n for n in ("austen", "fortunes", "wordnet", "kjv") if n in available_corpora()]
    pools = [load_corpus(n, split="train") if n == "austen" else load_corpus(n) for n in names] \
        or [fallback_paragraphs()]
    rng = random.Random(seed)
    for turn in itertools.count():
        pool = pools[turn % len(pools)]
        text = " ".join(rng.choice(pool) for _ in range(2)).strip()
        if text:
            yield ("user" if turn % 2 == 0 else "assistant", text)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


@dataclass
class Row:
    size: str
    tokens: int
    chunks: int
    fill: str
    fill_seconds: float
    ingest_tok_s: float | None
    asks: list[dict] = field(default_factory=list)
    cold_ask: float = 0.0

    def stat(self, key: str, q: float, after_append: bool = False) -> float:
        return percentile([a[key] for a in self.asks if a.get("after_append", False) == after_append], q)


class Bench:
    def __init__(self, args):
        self.args = args
        self.root = Path(args.workdir or tempfile.mkdtemp(prefix="hsa-api-bench-"))
        self.root.mkdir(parents=True, exist_ok=True)
        self.messages = corpus_messages()
        self.clock = datetime(2024, 1, 1, tzinfo=timezone.utc)
        self.follow_ups = 0
        self.options = dict(model=args.model, device=args.device,
                            dtype={"fp32": torch.float32, "bf16": torch.bfloat16}.get(args.dtype))

    def tick(self) -> str:
        self.clock += timedelta(seconds=30)
        return self.clock.isoformat()

    def open(self, name: str) -> Memory:
        path = self.root / name
        shutil.rmtree(path, ignore_errors=True)
        return Memory(path, **self.options)

    def append_recent(self, mem: Memory) -> None:
        mem.extend([{"role": r, "content": c, "time": self.tick()} for r, c in RECENT])

    def grow_real(self, mem: Memory, target_tokens: int) -> tuple[float, int]:
        """Append corpus turns (batches of ~2K tokens, as an agent would) until the stream holds the target."""
        seconds, added = 0.0, 0
        while mem.stats()["tokens"] < target_tokens:
            batch, chars = [], 0
            while chars < 8_000:
                role, text = next(self.messages)
                batch.append({"role": role, "content": text, "time": self.tick()})
                chars += len(text)
            before = mem.stats()["tokens"]
            start = time.perf_counter()
            mem.extend(batch)
            seconds += time.perf_counter() - start
            added += mem.stats()["tokens"] - before
        return seconds, added

    def ask(self, mem: Memory, question: str, after_append: bool = False) -> dict:
        append_seconds = 0.0
        if after_append:
            role, text = FOLLOW_UPS[self.follow_ups % len(FOLLOW_UPS)]
            self.follow_ups += 1
            start = time.perf_counter()
            mem.append(text, role=role, time=self.tick())
            append_seconds = time.perf_counter() - start
        answer = mem.ask(question, max_new_tokens=self.args.max_new_tokens)
        t = answer.timings
        return {**t, "dense": t["total"] - t["context_seconds"] - t["retrieval"] - t["kv_load"] - t["attention"],
                "after_append": after_append, "append": append_seconds,
                "new_tokens": answer.tokens, "answer": answer.text, "load": os.getloadavg()[0]}

    def measure(self, built: list[tuple[Row, Path]]) -> list[Row]:
        """Round-robin asks over all memories, so the shared CPU's load swings hit every size alike."""
        memories = [(row, Memory(path, **self.options)) for row, path in built]
        try:
            for row, mem in memories:
                stats = mem.stats()
                row.tokens, row.chunks = stats["tokens"], stats["chunks"]
                # the first ask of an opened memory: catalog look-ups of every chunk's position, cold tiers
                row.cold_ask = self.ask(mem, QUESTIONS[0])["total"]
            for i in range(self.args.asks):
                for row, mem in memories:
                    # every round: one ask of an unchanged memory, then one right after a short append
                    row.asks.append(self.ask(mem, QUESTIONS[i % len(QUESTIONS)]))
                    row.asks.append(self.ask(mem, QUESTIONS[(i + 3) % len(QUESTIONS)], after_append=True))
                print(f"round {i + 1}/{self.args.asks}: " + ", ".join(
                    f"{row.size} {row.asks[-1]['total']:.2f}s" for row, _ in memories)
                    + f" (load {os.getloadavg()[0]:.1f})", flush=True)
        finally:
            for _, mem in memories:
                mem.close()
        for row, _ in memories:
            self.report(row)
        return [row for row, _ in memories]

    @staticmethod
    def report(row: Row) -> None:
        print(f"[{row.size}] {row.tokens:,} tokens, {row.chunks:,} chunks ({row.fill}); "
              f"ask p50 {row.stat('total', 50):.2f}s p95 {row.stat('total', 95):.2f}s, "
              f"first token p50 {row.stat('first_token', 50):.2f}s, cold ask {row.cold_ask:.2f}s; "
              f"answers: {[a['answer'][:40] for a in row.asks[:3]]}", flush=True)

    def baseline(self) -> tuple[Row, Path]:
        mem = self.open("baseline")
        with mem:
            self.append_recent(mem)
        return Row("recent conversation only", 0, 0, "real", 0.0, None), mem.path

    def real_sizes(self, sizes: list[int]) -> list[tuple[Row, Path]]:
        """One memory grows through every size; a copy of it at each size gets the recent conversation."""
        built = []
        mem = self.open("real")
        try:
            for size in sizes:
                seconds, added = self.grow_real(mem, size)
                print(f"[{label(size)}] ingested {added:,} tokens in {seconds:.1f}s: {added / seconds:,.0f} tok/s "
                      f"(load {os.getloadavg()[0]:.1f})", flush=True)
                mem.close()
                copy = self.root / f"real-{label(size)}"
                shutil.rmtree(copy, ignore_errors=True)
                shutil.copytree(mem.path, copy)
                with Memory(copy, **self.options) as sized:
                    self.append_recent(sized)
                built.append((Row(label(size), 0, 0, "real", seconds, added / seconds), copy))
                mem = Memory(mem.path, **self.options)
        finally:
            mem.close()
        return built

    def fast_sizes(self, sizes: list[int]) -> list[tuple[Row, Path]]:
        built = []
        for size in sizes:
            mem = self.open(f"fast-{label(size)}")
            with mem:
                start = time.perf_counter()
                fast_fill(mem, size // mem.loaded.model.config.chunk_size, self.clock)
                self.clock += timedelta(days=1)
                self.append_recent(mem)
                row = Row(label(size), 0, 0, "fast-fill", time.perf_counter() - start, None)
            print(f"[{row.size}] fast-filled in {row.fill_seconds:.1f}s", flush=True)
            built.append((row, mem.path))
        return built


def reference_chunks(mem: Memory, tokens: int = 1024):
    """Really encoded chunks of corpus text: the distribution fast-fill samples from, and a text pool."""
    model, tokenizer = mem.loaded.model, mem.loaded.tokenizer
    messages = corpus_messages(seed=1)
    ids: list[int] = []
    while len(ids) < max(tokens, 64 * 512):  # ≥ 512 distinct chunk texts
        ids.extend(tokenizer.encode(next(messages)[1], add_special_tokens=False).ids)
    with torch.no_grad():
        encoded = model.encode_chunks(torch.tensor(ids[:tokens]))
    S = model.config.chunk_size
    texts = [tokenizer.decode(ids[i:i + S]) for i in range(0, len(ids) - S + 1, S)]
    return encoded.memory, texts


def fast_fill(mem: Memory, n_chunks: int, start_time: datetime, batch: int = 512, seed: int = 0) -> None:
    """Write ``n_chunks`` synthetic chunks through ``store.add_chunks`` (see the module docstring)."""
    from hsa_memory.ingest import Ingestor
    from hsa_memory.store import NewChunk
    from hsa_memory.stream import IngestState

    model = mem.loaded.model
    S = model.config.chunk_size
    reference, texts = reference_chunks(mem)
    stats = {}
    for name in ("landmarks", "keys", "values"):
        t = getattr(reference, name).float().cpu()
        stats[name] = (t.mean(0), t.std(0).clamp_min(1e-6))
    generator = torch.Generator().manual_seed(seed)
    store = mem.store
    with mem._lock, store.writer():
        if store.ingest_cursor()[0] != 0 or len(store.landmarks()[1]):
            raise RuntimeError("fast_fill needs an empty memory")
        for first in range(0, n_chunks, batch):
            n = min(batch, n_chunks - first)
            chunk_texts = [texts[(first + j) % len(texts)] for j in range(n)]
            time_start = start_time + timedelta(seconds=first)
            time_end = time_start + timedelta(seconds=n)
            seq = store.append_events([("".join(chunk_texts), "user", time_start, {"bench": "fast-fill"})])[0]
            chunks = [NewChunk(position=first + j, token_start=(first + j) * S, token_end=(first + j + 1) * S,
                               time_start=time_start, time_end=time_end, roles=["user"], text=chunk_texts[j],
                               first_seq=seq, last_seq=seq) for j in range(n)]
            drawn = {name: mean + std * torch.randn((n, *mean.shape), generator=generator)
                     for name, (mean, std) in stats.items()}
            # the stream continues right after the last chunk: fresh SWA caches, empty open chunk and tail
            stream = model.new_stream_state()
            stream.position = (first + n) * S
            store.add_chunks(chunks, drawn["landmarks"], drawn["keys"], drawn["values"],
                             ingest_state=IngestState(stream).to_bytes(), encoded_upto_seq=seq)
        mem.ingestor = Ingestor(model, mem.loaded.tokenizer, store)


def machine(device: str) -> str:
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    text = f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, load average {load}"
    if device.startswith("cuda") and torch.cuda.is_available():
        text += f", {torch.cuda.get_device_name()}"
    return text


def table(rows: list[Row], base: Row, args) -> str:
    header = ("| memory | fill | tokens | chunks | ingest tok/s | ask p50 s | ask p95 s | × baseline (p50) "
              "| first token p50 s | context / retrieval / kv_load / attention / dense (p50, s) "
              "| after an append: append p50 s, ask p50 / p95 s (context tokens) | new tokens | cold 1st ask s |")
    lines = [header, "|---|---|---:|---:|---:|---:|---:|---:|---:|---|---|---:|---:|"]
    for row in [base, *rows]:
        ratio = row.stat("total", 50) / base.stat("total", 50)
        parts = " / ".join(f"{row.stat(k, 50):.3f}" for k in ("context_seconds", "retrieval", "kv_load", "attention", "dense"))
        after = (f"{row.stat('append', 50, True):.2f}, {row.stat('total', 50, True):.2f} / "
                 f"{row.stat('total', 95, True):.2f} ({row.stat('context_tokens', 50, True):.0f})")
        ingest = f"{row.ingest_tok_s:,.0f}" if row.ingest_tok_s else "–"
        tokens = statistics.mean(a["new_tokens"] for a in row.asks)
        lines.append(f"| {row.size} | {row.fill} | {row.tokens:,} | {row.chunks:,} | {ingest} | "
                     f"{row.stat('total', 50):.2f} | {row.stat('total', 95):.2f} | {ratio:.2f}× | "
                     f"{row.stat('first_token', 50):.2f} | {parts} | {after} | {tokens:.1f} | {row.cold_ask:.2f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10K,100K,1M", help="memory sizes in tokens, e.g. 10K,100K,1M,16M")
    parser.add_argument("--real-upto", default="100K", help="sizes up to this are filled by real ingest; "
                                                             "larger ones by fast-fill")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", choices=("auto", "fp32", "bf16"), default="auto")
    parser.add_argument("--model", default="hsa-smollm2-135m")
    parser.add_argument("--asks", type=int, default=6, help="measured asks per size (after one cold ask)")
    parser.add_argument("--max-new-tokens", type=int, default=16)
    parser.add_argument("--workdir", help="where the memories go (default: a temp dir, removed at the end)")
    parser.add_argument("--json", help="write every measurement to this file")
    parser.add_argument("--measure-only", action="store_true",
                        help="ask the memories a previous run built in --workdir (its built.json) again")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    sizes = sorted(parse_size(s) for s in args.sizes.split(","))
    real_upto = parse_size(args.real_upto)
    started = datetime.now(timezone.utc)
    load_before = machine(args.device)
    bench = Bench(args)
    try:
        manifest = bench.root / "built.json"
        if args.measure_only:
            built = [(Row(**row), Path(path)) for row, path in json.loads(manifest.read_text())]
        else:
            built = [bench.baseline(), *bench.real_sizes([s for s in sizes if s <= real_upto]),
                     *bench.fast_sizes([s for s in sizes if s > real_upto])]
            manifest.write_text(json.dumps([(vars(row), str(path)) for row, path in built]))
        base, *rows = bench.measure(built)
    finally:
        if not args.workdir:
            shutil.rmtree(bench.root, ignore_errors=True)
    command = "python bench/api.py " + " ".join(
        f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items() if v not in (None, False) and k not in ("json", "workdir", "measure_only"))
    text = (f"\n`{command}` — {started:%Y-%m-%d %H:%M} UTC, {args.device}, "
            f"{args.asks} asks per size after one cold ask (round-robin over sizes), max {args.max_new_tokens} new tokens, "
            f"{torch.get_num_threads()} torch threads, load average during the asks "
            f"{min(a['load'] for r in rows + [base] for a in r.asks):.1f}–{max(a['load'] for r in rows + [base] for a in r.asks):.1f}\n"
            f"machine at start: {load_before}\nmachine at end:   {machine(args.device)}\n\n{table(rows, base, args)}\n")
    print(text)
    if args.json:
        Path(args.json).write_text(json.dumps({"command": command, "started": started.isoformat(),
                                               "rows": [vars(r) for r in [base, *rows]]}, indent=1, default=str))


if __name__ == "__main__":
    main()
