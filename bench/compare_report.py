"""Per-(system, size) summaries of ``bench/compare.py`` runs: the markdown table, the plots, RESULTS.md.

The section "Side by side (bench/compare.py)" of ``bench/RESULTS.md`` holds hand-written notes;
only the block between the BEGIN/END markers is rewritten by a run with ``--write``.
"""
from __future__ import annotations

import math
from pathlib import Path
from statistics import mean

from compare_metrics import answer_match, exact_match, percentile, recall_at_k, token_f1
from compare_workloads import size_label

SECTION = "## Side by side (bench/compare.py)"
BEGIN = "<!-- compare.py: generated table, begin -->"
END = "<!-- compare.py: generated table, end -->"

# one colour and marker per system in every plot and every run, whichever subset of systems a run has
# (bm25 … hsa-memory keep the colours of the plots made before infllm existed)
SYSTEM_STYLES = {
    "bm25+reader": {"color": "C0", "marker": "o"},
    "dense+reader": {"color": "C1", "marker": "s"},
    "full-context": {"color": "C2", "marker": "D"},
    "hsa-memory": {"color": "C3", "marker": "^"},
    "infllm": {"color": "C4", "marker": "v"},
    "infllm-attn": {"color": "C5", "marker": "<"},
    "infllm-quest": {"color": "C6", "marker": ">"},
}


def system_style(system: str, index: int) -> dict:
    """The fixed style of a known system; an unknown one gets the next free colour of the cycle."""
    return SYSTEM_STYLES.get(system, {"color": f"C{len(SYSTEM_STYLES) + index}", "marker": "<>p*h"[index % 5]})


def rescore(result: dict) -> dict:
    """Answer metrics recomputed from the stored predictions (a metric fix then reaches runs made before it)."""
    for workload in result.get("workloads", []):
        for q in workload["questions"]:
            q.update(em=exact_match(q["prediction"], q["answer"]), match=answer_match(q["prediction"], q["answer"]),
                     f1=token_f1(q["prediction"], q["answer"]))
    return result


def summarize(result: dict) -> dict:
    """One worker result (one system at one size, every workload) → the table's numbers."""
    if result.get("skipped"):
        return {"system": result["system"], "size": result["size"], "skipped": result["skipped"]}
    questions = [q for w in result["workloads"] for q in w["questions"]]
    tokens = sum(w["tokens"] for w in result["workloads"])
    ingest = sum(w["ingest_seconds"] for w in result["workloads"])
    recalls = [q["recall"] for q in questions if q["recall"] is not None]
    # top-1: with as many needles as questions, recall@K can be won by finding needle-looking chunks
    # at all; the first hit says whether the retriever told this question's evidence apart
    firsts = [recall_at_k(q["retrieved"], q["evidence"], 1) for q in questions if q.get("retrieved") is not None]
    latencies = [q["latency"] for q in questions]
    per_task = {w["task"]: {"match": mean(q["match"] for q in w["questions"]) if w["questions"] else math.nan,
                            "recall": mean(q["recall"] for q in w["questions"])
                            if w["questions"] and w["questions"][0]["recall"] is not None else None}
                for w in result["workloads"]}
    return {
        "system": result["system"], "size": result["size"], "n": len(questions), "tokens": tokens,
        "recall": mean(recalls) if recalls else None, "recall1": mean(firsts) if firsts else None,
        "em": mean(q["em"] for q in questions), "match": mean(q["match"] for q in questions),
        "f1": mean(q["f1"] for q in questions),
        "ingest_tps": tokens / ingest if ingest > 0 else math.nan,
        "p50": percentile(latencies, 50), "p95": percentile(latencies, 95),
        "bytes_per_token": sum(w["state_bytes"] for w in result["workloads"]) / tokens,
        "state_where": result["state_where"], "peak_rss_mb": result["peak_rss_mb"],
        "peak_rss_run_mb": result.get("peak_rss_after_load_mb"), "per_task": per_task,
        "dropped": sum(w.get("dropped", 0) for w in result["workloads"]),
    }


def _num(value, fmt: str) -> str:
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else format(value, fmt)


def markdown_table(rows: list[dict], k: int) -> str:
    lines = [f"| system | size | tokens | n | recall@{k} | recall@1 | EM | match | F1 | match: agent / niah "
             f"| ingest tok/s | ask p50 s | ask p95 s | bytes/token (where) | peak RSS MB: all / after load |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---|---:|"]
    for r in rows:
        label = size_label(r["size"])
        if "skipped" in r:
            lines.append(f"| {r['system']} | {label} | | | | | | | | | | | | {r['skipped']} | |")
            continue
        tasks = r["per_task"]
        split = " / ".join(_num(tasks.get(t, {}).get("match"), ".2f") for t in ("agent_memory", "niah"))
        lines.append(
            f"| {r['system']} | {label} | {r['tokens']:,} | {r['n']} | {_num(r['recall'], '.2f')} | "
            f"{_num(r.get('recall1'), '.2f')} | "
            f"{r['em']:.2f} | {r['match']:.2f} | {r['f1']:.2f} | {split} | {_num(r['ingest_tps'], ',.0f')} | "
            f"{_num(r['p50'], '.2f')} | {_num(r['p95'], '.2f')} | {r['bytes_per_token']:,.0f} ({r['state_where']}) | "
            f"{r['peak_rss_mb']:,.0f} / {_num(r['peak_rss_run_mb'], ',.0f')} |")
    return "\n".join(lines)


def plot(rows: list[dict], folder: Path) -> list[Path]:
    """accuracy (answer match, recall) vs size and latency vs size, one line per system."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    done = [r for r in rows if "skipped" not in r]
    systems = list(dict.fromkeys(r["system"] for r in done))
    sizes = sorted({r["size"] for r in done})
    paths = []
    # one colour and marker per system in every panel (full-context has no recall line: a colour cycle
    # per panel would give the next system its colour) and in every run
    style = {system: system_style(system, i) for i, system in enumerate(systems)}

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for system in systems:
        mine = sorted((r for r in done if r["system"] == system), key=lambda r: r["size"])
        xs = [r["size"] for r in mine]
        axes[0].plot(xs, [r["match"] for r in mine], label=system, alpha=0.8, **style[system])
        if any(r["recall"] is not None for r in mine):
            axes[1].plot([r["size"] for r in mine if r["recall"] is not None],
                         [r["recall"] for r in mine if r["recall"] is not None], label=system, alpha=0.8,
                         **style[system])
    for ax, title in zip(axes, ("answer match", "evidence recall@K")):
        ax.set_xscale("log", base=2)
        ax.set_xticks(sizes, [size_label(s) for s in sizes])
        ax.set_ylim(-0.03, 1.03)
        ax.set_xlabel("memory size (tokens)")
        ax.set_title(title)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    paths.append(folder / "compare_accuracy.png")
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 4))
    for system in systems:
        mine = sorted((r for r in done if r["system"] == system), key=lambda r: r["size"])
        xs = [r["size"] for r in mine]
        ax.plot(xs, [r["p50"] for r in mine], label=f"{system} p50", **style[system])
        ax.plot(xs, [r["p95"] for r in mine], marker="x", linestyle="--", color=style[system]["color"], alpha=0.6)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xticks(sizes, [size_label(s) for s in sizes])
    ax.set_xlabel("memory size (tokens)")
    ax.set_ylabel("ask latency, s (dashed: p95)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    fig.tight_layout()
    paths.append(folder / "compare_latency.png")
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)
    return paths


def write_results(path: Path, block: str) -> None:
    """Put ``block`` between the markers of the side-by-side section (created at the end if missing)."""
    text = path.read_text() if path.exists() else "# Benchmark results\n"
    generated = f"{BEGIN}\n{block.strip()}\n{END}"
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        text = head + generated + rest.split(END, 1)[1]
    elif SECTION in text:
        head, rest = text.split(SECTION, 1)
        text = head + SECTION + "\n\n" + generated + "\n" + rest
    else:
        text = text.rstrip("\n") + f"\n\n{SECTION}\n\n{generated}\n"
    path.write_text(text)
