"""Side by side: hsa-memory against what users would pick instead, on the same memories and chunks.

    python bench/compare.py --sizes 8K,64K --questions 8 [--systems ...] [--checkpoint PATH]
                            [--device auto] [--workdir DIR] [--write] [--json PATH]

Systems (``compare_systems``): ``hsa-memory`` (the public ``Memory`` API: extend / search / ask),
``bm25+reader`` and ``dense+reader`` (BM25 or all-MiniLM-L6-v2 over the same 64-token chunks, the
base SmolLM2 reading the top-K), ``full-context`` (the base SmolLM2 with the whole memory in its 8K
window; sizes above 8K are skipped), ``infllm`` (training-free block retrieval on the base SmolLM2 in
the style of InfLLM: the stream's K/V on disk in 64-token blocks with representative keys, each layer
attending over the initial tokens, its top-K blocks and a local window; ``compare_infllm``),
``infllm-attn`` (the same blocks chosen by the question's own attention over every stored key instead of
representative keys: the strongest block score of the family, reading every key at each ask) and, run only
when named, ``infllm-quest`` (chosen by Quest's per-channel min/max key bounds).
Workloads (``compare_workloads``): held-out agent-memory QA and multi-key NIAH from the training
generators, one memory per (workload, size).

Each (system, size) runs in its own process, so its peak RSS is its own; results land in
``--workdir`` one JSON per (system, size) and a rerun with the same workdir skips what is done (a
long run can be split into calls). ``--write`` updates bench/RESULTS.md and the PNGs in bench/;
``--json PATH`` writes this call's rows and per-question results (its systems and sizes only) to PATH.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

from compare_workloads import DEFAULT_SEED, WORKLOADS, Workload, parse_size, size_label  # noqa: E402

# cheap systems first: at a big size the long pole (hsa-memory's ingest) comes last
ALL_SYSTEMS = ("bm25+reader", "dense+reader", "full-context", "infllm", "infllm-attn", "hsa-memory")
OPTIONAL_SYSTEMS = ("infllm-quest",)  # run and reported when --systems names them


def workload_path(workdir: Path, task: str, size: int) -> Path:
    return workdir / "workloads" / f"{task}-{size}.json"


def result_path(workdir: Path, system: str, size: int) -> Path:
    return workdir / "results" / f"{system}-{size}.json"


def partial_path(workdir: Path, system: str, size: int, task: str) -> Path:
    return workdir / "partial" / f"{system}-{size}-{task}.json"


def peak_rss_mb() -> float:
    """Peak RSS of this process since it started (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def reset_peak_rss() -> bool:
    """Restart the kernel's peak-RSS counter (VmHWM), so loading the models is not counted twice."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def vm_hwm_mb() -> float | None:
    """Peak RSS since the last reset (VmHWM), or None off Linux."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def run_worker(args: argparse.Namespace) -> None:
    """One system at one size, every workload; writes its result JSON."""
    import torch

    import hsa_memory
    from compare_metrics import answer_match, exact_match, recall_at_k, token_f1
    from compare_systems import make_system

    if args.threads:
        torch.set_num_threads(args.threads)
    workdir, size = Path(args.workdir), args.worker_size
    folder = workdir / "state" / f"{args.worker}-{size}"
    folder.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    system = make_system(args.worker, folder, args.device, args.checkpoint, args.top_k)
    load_seconds = time.perf_counter() - started
    rss_loaded = peak_rss_mb()
    reset = reset_peak_rss()
    workloads = []
    for task in args.workloads.split(","):
        # a workload finished by an earlier (interrupted) worker is not run again
        partial = partial_path(workdir, args.worker, size, task)
        if partial.exists():
            workloads.append({**json.loads(partial.read_text()), "resumed": True})
            print(f"  {args.worker} {task} {size_label(size)}: done by an earlier worker", flush=True)
            continue
        workload = Workload.load(workload_path(workdir, task, size))
        ingest_seconds = system.ingest(workload)
        print(f"  {args.worker} {task} {size_label(size)}: ingested {workload.tokens:,} tokens in "
              f"{ingest_seconds:.1f} s", flush=True)
        questions = []
        for qa in workload.questions:
            t0 = time.perf_counter()
            retrieved = system.retrieve(qa.question, args.top_k)
            t1 = time.perf_counter()
            prediction = system.answer(qa.question, args.max_new_tokens)
            t2 = time.perf_counter()
            questions.append({
                "question": qa.question, "answer": qa.answer, "kind": qa.kind, "evidence": qa.evidence,
                "prediction": prediction, "retrieved": retrieved, "retrieve_seconds": t1 - t0, "latency": t2 - t1,
                "recall": None if retrieved is None else recall_at_k(retrieved, qa.evidence, args.top_k),
                "em": exact_match(prediction, qa.answer), "match": answer_match(prediction, qa.answer),
                "f1": token_f1(prediction, qa.answer),
            })
            print(f"    {t2 - t1:5.1f} s  match={questions[-1]['match']:.0f} recall={questions[-1]['recall']}  "
                  f"{qa.answer!r} <- {prediction[:70]!r}", flush=True)
        workloads.append({"task": task, "tokens": workload.tokens, "seed": workload.seed,
                          "ingest_seconds": ingest_seconds, "state_bytes": system.state_bytes(),
                          "dropped": getattr(system, "dropped", 0), "questions": questions,
                          "peak_rss_mb": peak_rss_mb(), "peak_rss_after_load_mb": vm_hwm_mb() if reset else None,
                          "loadavg": os.getloadavg()})
        partial.parent.mkdir(parents=True, exist_ok=True)
        partial.write_text(json.dumps(workloads[-1], indent=1))
    system.close()
    result = {"system": args.worker, "size": size, "state_where": system.state_where, "workloads": workloads,
              "load_seconds": load_seconds, "rss_after_load_mb": rss_loaded,
              # a resumed workload's peak is its own worker's, kept in its partial result
              "peak_rss_mb": max([peak_rss_mb()] + [w.get("peak_rss_mb", 0) for w in workloads]),
              "peak_rss_after_load_mb": max([vm_hwm_mb() or 0] + [w.get("peak_rss_after_load_mb") or 0
                                                                  for w in workloads]) if reset else None,
              "trained_hsa_weights": getattr(system, "trained", None), "threads": torch.get_num_threads(),
              "hsa_memory_from": str(Path(hsa_memory.__file__).parent),
              "loadavg_end": os.getloadavg()}
    path = result_path(workdir, args.worker, size)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=1))


def machine() -> str:
    import torch

    if torch.cuda.is_available():
        where = torch.cuda.get_device_name(0)
    else:
        where = f"CPU {platform.machine()}, {os.cpu_count()} cores"
    return f"{where}, torch {torch.__version__}, Python {platform.python_version()}"


def command_line(args: argparse.Namespace) -> str:
    parts = ["python bench/compare.py", f"--sizes {args.sizes}", f"--questions {args.questions}"]
    if args.systems != ",".join(ALL_SYSTEMS):
        parts.append(f"--systems {args.systems}")
    if args.workloads != ",".join(WORKLOADS):
        parts.append(f"--workloads {args.workloads}")
    if args.checkpoint:
        parts.append(f"--checkpoint {args.checkpoint}")
    if args.device != "cpu":
        parts.append(f"--device {args.device}")
    if args.max_new_tokens != 24:
        parts.append(f"--max-new-tokens {args.max_new_tokens}")
    if args.threads:
        parts.append(f"--threads {args.threads}")
    return " ".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="8K,64K", help="memory sizes in tokens, e.g. 8K,64K,256K,1M")
    parser.add_argument("--systems", default=",".join(ALL_SYSTEMS))
    parser.add_argument("--workloads", default=",".join(WORKLOADS))
    parser.add_argument("--questions", type=int, default=8, help="questions per workload and size")
    parser.add_argument("--top-k", type=int, default=8, help="chunks retrieved (hsa-memory's own top-K is 8)")
    parser.add_argument("--max-new-tokens", type=int, default=24)
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--checkpoint", default=None, help="trained HSA modules for hsa-memory (default: "
                        "whatever Memory loads, i.e. the bundled weights when they exist)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    parser.add_argument("--workdir", default=None, help="keeps workloads, stores and per-run results")
    parser.add_argument("--threads", type=int, default=0, help="torch threads per worker (0: torch's default)")
    parser.add_argument("--write", action="store_true", help="update bench/RESULTS.md and bench/compare_*.png")
    parser.add_argument("--json", default=None, help="write this call's summary and per-question results "
                        "(its systems and sizes only) to this path; bench/compare_results.json is --write's")
    parser.add_argument("--report-only", action="store_true",
                        help="run nothing: tabulate what --workdir holds, missing cells marked 'not run'")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--worker-size", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        run_worker(args)
        return

    from compare_report import markdown_table, plot, rescore, summarize, write_results
    from compare_workloads import generate

    sizes = [parse_size(s) for s in args.sizes.split(",")]
    systems = args.systems.split(",")
    unknown = sorted(set(systems) - set(ALL_SYSTEMS + OPTIONAL_SYSTEMS))
    if unknown:
        parser.error(f"unknown systems {unknown}; choose from {list(ALL_SYSTEMS + OPTIONAL_SYSTEMS)}")
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="hsa-compare-"))
    print(f"workdir: {workdir}", flush=True)
    began = datetime.now(timezone.utc)

    def ensure_workloads(size: int) -> None:
        for task in args.workloads.split(","):
            path = workload_path(workdir, task, size)
            if not path.exists():
                path.parent.mkdir(parents=True, exist_ok=True)
                generate(task, size, args.questions, args.seed).save(path)

    rows = []
    for size in sizes:
        for system in systems:
            path = result_path(workdir, system, size)
            if system == "full-context" and size > 8192:
                rows.append({"system": system, "size": size, "skipped": "n/a: over the 8K window"})
                continue
            if not path.exists() and args.report_only:
                rows.append({"system": system, "size": size, "skipped": "not run"})
                continue
            if not path.exists():
                ensure_workloads(size)  # only sizes that still have work: a finished size is not regenerated
                started = time.perf_counter()
                print(f"{system} @ {size_label(size)} …", flush=True)
                cmd = [sys.executable, str(BENCH / "compare.py"), "--worker", system, "--worker-size", str(size),
                       "--workdir", str(workdir), "--workloads", args.workloads, "--top-k", str(args.top_k),
                       "--max-new-tokens", str(args.max_new_tokens), "--device", args.device]
                if args.checkpoint:
                    cmd += ["--checkpoint", args.checkpoint]
                if args.threads:
                    cmd += ["--threads", str(args.threads)]
                subprocess.run(cmd, check=True)
                print(f"{system} @ {size_label(size)} done in {time.perf_counter() - started:.0f} s", flush=True)
            rows.append(summarize(rescore(json.loads(path.read_text()))))
    table = markdown_table(rows, args.top_k)
    print(table)
    summary = {"command": command_line(args), "machine": machine(), "date": f"{began:%Y-%m-%d %H:%M} UTC",
               "rows": rows}
    (workdir / "summary.json").write_text(json.dumps(summary, indent=1))
    if args.json:
        runs = [rescore(json.loads(result_path(workdir, s, size).read_text())) for size in sizes for s in systems
                if result_path(workdir, s, size).exists()]
        Path(args.json).write_text(json.dumps({**summary, "runs": runs}, indent=1))
        print(f"wrote {args.json}")
    if args.write:
        for png in plot(rows, BENCH):
            print(f"wrote {png}")
        results = sorted((workdir / "results").glob("*.json"))
        merged = [rescore(json.loads(p.read_text())) for p in results]
        (BENCH / "compare_results.json").write_text(json.dumps({**summary, "runs": merged}, indent=1))
        block = (f"`{summary['command']}` — {summary['machine']}; {summary['date']} "
                 f"(load average at the end {os.getloadavg()[0]:.1f}).\n\n{table}\n\n"
                 f"Per-question predictions, retrieved chunks and timings: `bench/compare_results.json`. "
                 f"Plots: `bench/compare_accuracy.png`, `bench/compare_latency.png`.")
        write_results(BENCH / "RESULTS.md", block)
        print("updated bench/RESULTS.md")


if __name__ == "__main__":
    main()
