"""Needles through the public API: S-NIAH over lengths × depths, MQ-NIAH and variable tracking by length.

    python bench/niah.py --lengths 4K,8K,16K --depths 0,0.25,0.5,0.75,1 --count 2 --tasks s_niah,mq_niah,vt \
        [--device cpu] [--threads 1] [--json out.json] [--heatmap bench/niah_heatmap.png]

Every example is a real ``Memory``: the haystack (held-out seeds and key pools, Austen/KJV paragraphs) is
appended with ``Memory.extend`` (tokenizer → lower decoder → chunk encoder → store) and each question
is asked with ``Memory.ask`` (greedy, the answer generated, not teacher-forced). Scores per cell:

- exact: the answer holds the value (for variable tracking: every variable of the chain);
- cited: the answer's top citation is a chunk holding the needle's value (or part of it, where the
  value straddles two chunks): the router found it;
- far: the share of needles whose chunk lies wholly outside the question's recent context (the sliding
  window cannot see them: only HSA retrieval can answer), and exact over those alone.

Slow on the CPU (ingest ≈ 300 tokens/s): lengths to 16K there; longer ones belong on the GPU.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

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
    haystack = sources("corpora", "heldout").haystack
    if task == "s_niah":
        return s_niah(seed, length, depth=depth, filler=haystack, split="heldout")
    if task == "mq_niah":
        return mq_niah(seed, length, filler=haystack, split="heldout")
    return variable_tracking(seed, length, filler=haystack)


def needle_chunks(mem: Memory, values: list[str]) -> dict[str, tuple[set[int], int]]:
    """value → (ids of the chunks it spans, stream position where the last of them ends). A value may
    straddle a chunk boundary, so consecutive chunks are read together."""
    S = mem.loaded.model.config.chunk_size
    _, ids = mem.store.landmarks()
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
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    lengths = [parse_size(x) for x in args.lengths.split(",")]
    depths = [float(x) for x in args.depths.split(",")]
    tasks = [t.strip() for t in args.tasks.split(",")]
    unknown = set(tasks) - set(TASKS)
    if unknown:
        parser.error(f"unknown tasks {sorted(unknown)}; choose from {sorted(TASKS)}")
    options = {"model": args.model, "device": args.device}
    done = json.loads(Path(args.json).read_text())["rows"] if args.json and Path(args.json).exists() else []
    started = datetime.now(timezone.utc)
    jobs = [("s_niah", n, d, i) for n in lengths for d in depths for i in range(args.count) if "s_niah" in tasks]
    jobs += [(t, n, None, i) for t in ("mq_niah", "vt") if t in tasks for n in lengths for i in range(args.count)]
    rows = list(done)
    for task, length, depth, i in jobs:
        seed = SEED + i
        if args.report_only or any(r["task"] == task and r["length"] == length and r["depth"] == depth
                                   and r["seed"] == seed for r in done):
            continue
        new = run_example(task, seed, length, depth, options, args.max_new_tokens)
        rows += new
        print(json.dumps({k: new[0][k] for k in ("task", "length", "depth", "exact", "cited", "far", "answer", "expected")}),
              f"load {os.getloadavg()[0]:.1f}", flush=True)
        if args.json:
            Path(args.json).write_text(json.dumps({"rows": rows}, indent=1))
    lengths = [n for n in lengths if any(r["length"] == n for r in rows)]
    print(f"\n`python bench/niah.py --lengths {args.lengths} --depths {args.depths} --count {args.count} "
          f"--tasks {args.tasks} --device {args.device}` — {started:%Y-%m-%d %H:%M} UTC, {platform.machine()}, "
          f"{os.cpu_count()} cores, torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"load average at the end {os.getloadavg()[0]:.1f}\n\n{table(rows, lengths, depths)}")
    if args.heatmap:
        heatmap(rows, lengths, depths, Path(args.heatmap))


if __name__ == "__main__":
    main()
