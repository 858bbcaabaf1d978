"""Needles through the public API: S-NIAH over lengths × depths, MQ-NIAH and variable tracking by length.

    python bench/niah.py --lengths 4K,8K,16K --depths 0,0.25,0.5,0.75,1 --count 2 --tasks s_niah,mq_niah,vt \
        [--device cpu] [--threads 1] [--json out.json] [--heatmap bench/niah_heatmap.png]
    python bench/niah.py --shared-haystack --lengths 1M,4M,16M --tasks s_niah --device cuda   # long S-NIAH

Every example is a real ``Memory``: the haystack (held-out seeds and key pools, Austen/KJV paragraphs) is
appended with ``Memory.extend`` (tokenizer → lower decoder → chunk encoder → store) and each question
is asked with ``Memory.ask`` (greedy, the answer generated, not teacher-forced). Scores per cell:

- exact: the answer holds the value (for variable tracking: every variable of the chain);
- cited: the answer's top citation is a chunk holding the needle's value (or part of it, where the
  value straddles two chunks): the router found it;
- far: the share of needles whose chunk lies wholly outside the question's recent context (the sliding
  window cannot see them: only HSA retrieval can answer), and exact over those alone.

Slow on the CPU (ingest ≈ 300 tokens/s): lengths to 16K there; longer ones belong on the GPU.

``--shared-haystack`` (S-NIAH only) is for lengths ingest cannot reach (1M–16M: an hour per memory at the
GPU's ~5K tokens/s). One haystack per length (held-out text, the generator's message layout, no needle) is
tokenised and encoded once, segment-parallel (bench/haystack.py). Each needle goes into the message at its
depth, that message is cut back to its own token count, and only the chunks within the lower decoder's reach
of it are encoded again (``haystack.with_needle``): the result is what ``extend`` of that haystack would store
(tests/bench/test_haystack.py). Each needle is then asked in a fresh memory written from those chunks through
``store.add_chunks``. Why a fresh store and not the haystack's memory with the needle's chunks added and
forgotten again: the store only appends chunks after its last position, and chunk ids give the recency order
retrieval may use, so the needle's chunks cannot be slotted in at their depth; rewriting a store costs
~N / 300K tokens/s (this CPU: ~1 min at 16M) against an hour of ingest. The needle, key and question are the
per-example generator's for the same seed; the haystack is one for all of them (its start paragraph drawn
from ``haystack.HAYSTACK_SEED``), so depth is the only thing that moves.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

os.environ.setdefault("HF_HUB_OFFLINE", "1")
# bench/ is a folder of scripts (haystack.py is imported by name); appended, so bench/kernels.py shadows nothing
sys.path.append(str(Path(__file__).resolve().parent))

import haystack  # noqa: E402
import torch  # noqa: E402

from hsa_memory import Memory  # noqa: E402
from hsa_memory.training.data.niah import mq_niah, s_niah, variable_tracking  # noqa: E402
from hsa_memory.training.tasks import sources  # noqa: E402

# far from every seed the training runs drew (their mixtures index examples from small seeds)
SEED = 10_000_019
TASKS = {"s_niah": "S-NIAH", "mq_niah": "MQ-NIAH (6 pairs, 2 asked)", "vt": "variable tracking (2 chains, 4 hops)"}


def parse_size(text: str) -> int:
    text = text.strip().upper()
    return int(float(text[:-1]) * {"K": 1024, "M": 1024 ** 2}[text[-1]]) if text[-1] in "KM" else int(text)


def make_example(task: str, seed: int, length: int, depth: float | None):
    filler = sources("corpora", "heldout").haystack
    if task == "s_niah":
        return s_niah(seed, length, depth=depth, filler=filler, split="heldout")
    if task == "mq_niah":
        return mq_niah(seed, length, filler=filler, split="heldout")
    return variable_tracking(seed, length, filler=filler)


def needle_chunks(mem: Memory, values: list[str], positions: range | None = None) -> dict[str, tuple[set[int], int]]:
    """value → (ids of the chunks it spans, stream position where the last of them ends). A value may
    straddle a chunk boundary, so consecutive chunks are read together. ``positions``: look only at those
    chunks (of a memory written in order, where a chunk's row is its position)."""
    S = mem.loaded.model.config.chunk_size
    _, ids = mem.store.landmarks()
    if positions is not None:
        ids = ids[positions.start:positions.stop]
    infos = sorted(mem.store.chunks(ids.tolist()), key=lambda info: info.position)
    found: dict[str, tuple[set[int], int]] = {}
    for i, info in enumerate(infos):
        for value in values:
            if value in info.text:
                found[value] = ({info.id}, (info.position + 1) * S)
            elif i + 1 < len(infos) and infos[i + 1].position == info.position + 1 \
                    and value in info.text + infos[i + 1].text and value not in infos[i + 1].text:
                found[value] = ({info.id, infos[i + 1].id}, (info.position + 2) * S)
    return found


def run_example(task: str, seed: int, length: int, depth: float | None, options: dict, max_new_tokens: int) -> list[dict]:
    example = make_example(task, seed, length, depth)
    rows = []
    with tempfile.TemporaryDirectory(prefix="hsa-niah-") as folder, Memory(Path(folder) / "m", **options) as mem:
        started = time.perf_counter()
        mem.extend([{"role": m.role, "content": m.content, "time": m.time} for m in example.messages])
        ingest = time.perf_counter() - started
        tokens = mem.ingestor.state.stream.position
        for question in example.questions:
            wanted = question.metadata["variables"] if task == "vt" else [question.answer]
            answer = mem.ask(question.text, max_new_tokens=max_new_tokens)
            located = needle_chunks(mem, wanted)
            context = answer.timings["context_length"]
            far = bool(located) and all(tokens - end >= context for _, end in located.values())
            top = answer.citations[0].chunk_id if answer.citations else None
            rows.append({
                "task": task, "length": length, "depth": depth, "seed": seed, "tokens": tokens,
                "exact": all(w in answer.text for w in wanted),
                "cited": any(top in spans for spans, _ in located.values()),
                "far": far, "located": len(located) == len(wanted), "answer": answer.text, "expected": question.answer,
                "ingest_s": ingest, "ask_s": answer.timings["total"],
            })
    return rows


def run_shared(length: int, depths: list[float], seeds: list[int], options: dict, max_new_tokens: int,
               segment_tokens: int, batch_segments: int, skip) -> Iterator[dict]:
    """S-NIAH rows at ``length`` over one haystack encoded once (see the module docstring); ``skip(depth, seed)``
    says which needles the --json file already holds."""
    from hsa_memory.memory import default_dtype, resolve_device, shared_model

    device = resolve_device(options["device"])
    loaded = shared_model(options["model"], device, default_dtype(device))
    model, tokenizer = loaded.model, loaded.tokenizer
    S = model.config.chunk_size
    source = sources("corpora", "heldout").haystack
    started = time.perf_counter()
    stream = haystack.Stream.of(tokenizer, haystack.events_of(haystack.haystack_messages(int(length * 1.05), source)),
                                limit=length)
    texts = stream.chunk_texts(tokenizer, S)
    words = "\n".join(text for text, *_ in stream.events)
    tokenize_s = time.perf_counter() - started
    started = time.perf_counter()
    encoded = haystack.encode(model, stream.ids, segment_tokens, batch_segments)
    encode_s = time.perf_counter() - started
    print(f"[{length:,}] haystack: {len(stream):,} tokens, {len(stream.events):,} messages; tokenised in {tokenize_s:.1f}s, "
          f"encoded in {encode_s:.1f}s ({len(stream) / encode_s:,.0f} tok/s)", flush=True)
    for depth in depths:
        for seed in seeds:
            if skip(depth, seed):
                continue
            # the per-example generator's needle and question for this seed (they do not depend on the length)
            example = make_example("s_niah", seed, 1024, depth)
            spec, question = example.metadata["needles"][0], example.questions[0]
            if spec["value"] in words or spec["key"] in words:
                raise RuntimeError(f"the haystack holds the needle's key or value {spec['key']}/{spec['value']}")
            began = time.perf_counter()
            needle = haystack.with_needle(model, tokenizer, stream, encoded, texts, spec["text"], depth,
                                          segment_tokens, batch_segments)
            needle_s = time.perf_counter() - began
            with tempfile.TemporaryDirectory(prefix="hsa-niah-") as folder, Memory(Path(folder) / "m", **options) as mem:
                began = time.perf_counter()
                haystack.write(mem, needle.stream, needle.encoded, needle.texts)
                write_s = time.perf_counter() - began
                answer = mem.ask(question.text, max_new_tokens=max_new_tokens)
                first, last = needle.tokens
                located = needle_chunks(mem, [question.answer], range(first // S, last // S + 2))
                context = answer.timings["context_length"]
                top = answer.citations[0].chunk_id if answer.citations else None
                yield {
                    "task": "s_niah", "haystack": "shared", "length": length, "depth": depth, "seed": seed,
                    "tokens": len(stream), "actual_depth": needle.depth,
                    "exact": question.answer in answer.text, "cited": any(top in spans for spans, _ in located.values()),
                    "far": bool(located) and all(len(stream) - end >= context for _, end in located.values()),
                    "located": len(located) == 1, "answer": answer.text, "expected": question.answer,
                    "tokenize_s": tokenize_s, "encode_s": encode_s, "needle_s": needle_s,
                    "reencoded_chunks": needle.chunks[1] - needle.chunks[0], "ingest_s": write_s,
                    "ask_s": answer.timings["total"],
                }


def summarise(rows: list[dict]) -> dict:
    far = [r for r in rows if r["far"]]
    return {"n": len(rows), "exact": statistics.mean(r["exact"] for r in rows),
            "cited": statistics.mean(r["cited"] for r in rows), "far_share": len(far) / len(rows),
            "exact_far": statistics.mean(r["exact"] for r in far) if far else None}


def table(rows: list[dict], lengths: list[int], depths: list[float]) -> str:
    lines = []
    s = [r for r in rows if r["task"] == "s_niah"]
    if s:
        lines += ["S-NIAH exact (cited) by depth; last columns over all depths",
                  "| length | " + " | ".join(f"depth {d:g}" for d in depths) + " | all: n | exact | cited | far share | exact (far) |",
                  "|---:|" + "---:|" * (len(depths) + 5)]
        for length in lengths:
            cells = []
            for d in depths:
                cell = [r for r in s if r["length"] == length and r["depth"] == d]
                cells.append(f"{summarise(cell)['exact']:.2f} ({summarise(cell)['cited']:.2f})" if cell else "–")
            everything = summarise([r for r in s if r["length"] == length])
            far = "–" if everything["exact_far"] is None else f"{everything['exact_far']:.2f}"
            lines.append(f"| {length:,} | " + " | ".join(cells) + f" | {everything['n']} | {everything['exact']:.2f} | "
                         f"{everything['cited']:.2f} | {everything['far_share']:.2f} | {far} |")
    for task in ("mq_niah", "vt"):
        t = [r for r in rows if r["task"] == task]
        if not t:
            continue
        lines += ["", f"{TASKS[task]}", "| length | n | exact | cited | far share | exact (far) |", "|---:|---:|---:|---:|---:|---:|"]
        for length in lengths:
            cell = [r for r in t if r["length"] == length]
            if cell:
                m = summarise(cell)
                far = "–" if m["exact_far"] is None else f"{m['exact_far']:.2f}"
                lines.append(f"| {length:,} | {m['n']} | {m['exact']:.2f} | {m['cited']:.2f} | {m['far_share']:.2f} | {far} |")
    return "\n".join(lines)


def heatmap(rows: list[dict], lengths: list[int], depths: list[float], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    grid = [[summarise([r for r in rows if r["task"] == "s_niah" and r["length"] == n and r["depth"] == d])["exact"]
             if any(r["task"] == "s_niah" and r["length"] == n and r["depth"] == d for r in rows) else float("nan")
             for n in lengths] for d in depths]
    fig, ax = plt.subplots(figsize=(1.6 + 1.1 * len(lengths), 1.2 + 0.55 * len(depths)))
    image = ax.imshow(grid, vmin=0, vmax=1, cmap="RdYlGn", aspect="auto")
    ax.set_xticks(range(len(lengths)), [f"{n // 1024}K" for n in lengths])
    ax.set_yticks(range(len(depths)), [f"{d:g}" for d in depths])
    ax.set_xlabel("memory length (tokens)")
    ax.set_ylabel("needle depth")
    for i, row in enumerate(grid):
        for j, value in enumerate(row):
            if value == value:
                ax.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=8)
    ax.set_title("S-NIAH exact, hsa-smollm2-135m, through Memory.ask")
    fig.colorbar(image, ax=ax, fraction=0.05)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", default="4K,8K,16K")
    parser.add_argument("--depths", default="0,0.25,0.5,0.75,1")
    parser.add_argument("--count", type=int, default=2, help="examples per S-NIAH cell and per MQ/VT length")
    parser.add_argument("--tasks", default="s_niah,mq_niah,vt")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--model", default="hsa-smollm2-135m")
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--threads", type=int)
    parser.add_argument("--json", help="write every example's row here (and resume from it)")
    parser.add_argument("--heatmap", help="write the S-NIAH heatmap PNG here")
    parser.add_argument("--report-only", action="store_true", help="print the table of the rows in --json, run nothing")
    parser.add_argument("--shared-haystack", action="store_true",
                        help="S-NIAH on one haystack per length, encoded once (for 1M-16M; see the docstring)")
    parser.add_argument("--segment-tokens", type=int, default=65536, help="--shared-haystack: encode_parallel's segments")
    parser.add_argument("--batch-segments", type=int, default=4, help="--shared-haystack: segments per batch")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    lengths = [parse_size(x) for x in args.lengths.split(",")]
    depths = [float(x) for x in args.depths.split(",")]
    tasks = [t.strip() for t in args.tasks.split(",")]
    unknown = set(tasks) - set(TASKS)
    if unknown:
        parser.error(f"unknown tasks {sorted(unknown)}; choose from {sorted(TASKS)}")
    if args.shared_haystack and tasks != ["s_niah"]:
        parser.error("--shared-haystack runs S-NIAH only: pass --tasks s_niah")
    options = {"model": args.model, "device": args.device}
    done = json.loads(Path(args.json).read_text())["rows"] if args.json and Path(args.json).exists() else []
    started = datetime.now(timezone.utc)
    jobs = [("s_niah", n, d, i) for n in lengths for d in depths for i in range(args.count) if "s_niah" in tasks]
    jobs += [(t, n, None, i) for t in ("mq_niah", "vt") if t in tasks for n in lengths for i in range(args.count)]
    rows = list(done)
    mode = "shared" if args.shared_haystack else "own"

    def held(task, length, depth, seed) -> bool:
        return any(r["task"] == task and r["length"] == length and r["depth"] == depth and r["seed"] == seed
                   and r.get("haystack", "own") == mode for r in done)

    if args.shared_haystack:
        seeds = [SEED + i for i in range(args.count)]
        jobs = []
        for length in lengths:
            if args.report_only or all(held("s_niah", length, d, seed) for d in depths for seed in seeds):
                continue
            for row in run_shared(length, depths, seeds, options, args.max_new_tokens, args.segment_tokens,
                                  args.batch_segments, lambda d, seed: held("s_niah", length, d, seed)):
                rows.append(row)
                print(json.dumps({k: row[k] for k in ("length", "depth", "actual_depth", "exact", "cited", "far", "answer",
                                                      "expected", "needle_s", "ingest_s", "ask_s")}), flush=True)
                if args.json:
                    Path(args.json).write_text(json.dumps({"rows": rows}, indent=1))
    for task, length, depth, i in jobs:
        seed = SEED + i
        if args.report_only or held(task, length, depth, seed):
            continue
        new = [{**row, "haystack": "own"} for row in run_example(task, seed, length, depth, options, args.max_new_tokens)]
        rows += new
        print(json.dumps({k: new[0][k] for k in ("task", "length", "depth", "exact", "cited", "far", "answer", "expected")}),
              f"load {os.getloadavg()[0]:.1f}", flush=True)
        if args.json:
            Path(args.json).write_text(json.dumps({"rows": rows}, indent=1))
    lengths = [n for n in lengths if any(r["length"] == n for r in rows)]
    rows = [r for r in rows if r.get("haystack", "own") == mode]
    shared = (f" --shared-haystack --segment-tokens {args.segment_tokens} --batch-segments {args.batch_segments}"
              if args.shared_haystack else "")
    print(f"\n`python bench/niah.py{shared} --lengths {args.lengths} --depths {args.depths} --count {args.count} "
          f"--tasks {args.tasks} --device {args.device}` — {started:%Y-%m-%d %H:%M} UTC, {platform.machine()}, "
          f"{os.cpu_count()} cores, torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"load average at the end {os.getloadavg()[0]:.1f}\n\n{table(rows, lengths, depths)}")
    if args.heatmap:
        heatmap(rows, lengths, depths, Path(args.heatmap))


if __name__ == "__main__":
    main()
