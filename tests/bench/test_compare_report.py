"""The side-by-side report: summaries of worker results, the table, and RESULTS.md's section rewritten in place."""
import pytest

from compare_report import BEGIN, END, SECTION, markdown_table, summarize, write_results


def question(match, recall, latency, em=0.0, f1=0.5, retrieved=(3, 7), evidence=(7,)):
    return {"match": match, "recall": recall, "latency": latency, "em": em, "f1": f1,
            "retrieved": None if retrieved is None else list(retrieved), "evidence": list(evidence)}


RESULT = {
    "system": "bm25+reader", "size": 8192, "state_where": "disk", "peak_rss_mb": 900.0,
    "peak_rss_after_load_mb": 120.0,
    "workloads": [
        {"task": "agent_memory", "tokens": 8000, "ingest_seconds": 2.0, "state_bytes": 40_000, "dropped": 0,
         "questions": [question(1.0, 1.0, 1.0), question(0.0, 0.0, 3.0)]},
        {"task": "niah", "tokens": 8400, "ingest_seconds": 2.1, "state_bytes": 42_000, "dropped": 0,
         "questions": [question(1.0, 1.0, 2.0, em=1.0, f1=1.0, retrieved=(7, 3)), question(1.0, 1.0, 4.0)]},
    ],
}


def test_summarize_pools_the_workloads():
    row = summarize(RESULT)
    assert row["n"] == 4 and row["tokens"] == 16_400
    assert row["match"] == pytest.approx(0.75) and row["recall"] == pytest.approx(0.75)
    assert row["recall1"] == pytest.approx(0.25)  # only one question has its evidence first
    assert row["em"] == pytest.approx(0.25) and row["f1"] == pytest.approx(0.625)
    assert row["ingest_tps"] == pytest.approx(16_400 / 4.1)
    assert row["p50"] == pytest.approx(2.5) and row["p95"] == pytest.approx(3.85)
    assert row["bytes_per_token"] == pytest.approx(82_000 / 16_400)
    assert row["per_task"]["agent_memory"]["match"] == 0.5 and row["per_task"]["niah"]["match"] == 1.0


def test_summarize_without_retrieval_has_no_recall():
    result = {**RESULT, "system": "full-context",
              "workloads": [{**w, "questions": [{**q, "recall": None} for q in w["questions"]]}
                            for w in RESULT["workloads"]]}
    result["workloads"] = [{**w, "questions": [{**q, "retrieved": None} for q in w["questions"]]}
                           for w in result["workloads"]]
    row = summarize(result)
    assert row["recall"] is None and row["recall1"] is None and row["per_task"]["niah"]["recall"] is None
    table = markdown_table([row, {"system": "full-context", "size": 65536, "skipped": "n/a: over the 8K window"}], 8)
    lines = table.splitlines()
    assert lines[0].count("|") == lines[1].count("|") == lines[2].count("|") == lines[3].count("|")
    assert "| full-context | 8K | 16,400 | 4 | – | – |" in lines[2]
    assert "64K" in lines[3] and "over the 8K window" in lines[3]


def test_write_results_appends_then_replaces_only_its_block(tmp_path):
    path = tmp_path / "RESULTS.md"
    path.write_text("# Benchmark results\n\n## Memory API (bench/api.py)\n\nother numbers\n")
    write_results(path, "first table")
    text = path.read_text()
    assert text.index("## Memory API") < text.index(SECTION) < text.index(BEGIN) < text.index("first table")
    # hand-written notes after the block survive a rerun, the other sections too
    path.write_text(text + "\nNotes written by hand.\n")
    write_results(path, "second table")
    text = path.read_text()
    assert "first table" not in text and "second table" in text and "Notes written by hand." in text
    assert text.count(SECTION) == 1 and text.count(BEGIN) == 1 and text.count(END) == 1
    assert "other numbers" in text and text.index("second table") < text.index("Notes written by hand.")


def test_rescore_recomputes_answer_metrics_from_predictions():
    from compare_report import rescore

    result = {"workloads": [{"questions": [{"prediction": "You live in Sao Paulo.", "answer": "São Paulo",
                                            "em": 0.0, "match": 0.0, "f1": 0.0}]}]}
    q = rescore(result)["workloads"][0]["questions"][0]
    assert q["match"] == 1.0 and q["em"] == 0.0 and q["f1"] == pytest.approx(4 / 7)  # 2 of 5 words, 2 of 2


def test_report_only_runs_nothing_and_marks_missing_cells(tmp_path):
    """--report-only tabulates a workdir as it is: a finished cell is read, a missing one is 'not run'."""
    import json
    import subprocess
    import sys

    from compare import BENCH, result_path

    done = {"system": "bm25+reader", "size": 8192, "state_where": "disk", "load_seconds": 0.1,
            "rss_after_load_mb": 900, "peak_rss_mb": 900, "peak_rss_after_load_mb": 900,
            "workloads": [{"task": "niah", "tokens": 8000, "seed": 1, "ingest_seconds": 0.1, "state_bytes": 80_000,
                           "dropped": 0, "peak_rss_mb": 900, "peak_rss_after_load_mb": 900,
                           "questions": [{"question": "q?", "answer": "7", "kind": "mq", "evidence": [3],
                                          "prediction": "It is 7.", "retrieved": [3, 1], "retrieve_seconds": 0.01,
                                          "latency": 1.5, "recall": 1.0, "em": 0.0, "match": 1.0, "f1": 0.5}]}]}
    path = result_path(tmp_path, "bm25+reader", 8192)
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(done))
    out = subprocess.run([sys.executable, str(BENCH / "compare.py"), "--sizes", "8K", "--systems",
                          "bm25+reader,hsa-memory", "--workdir", str(tmp_path), "--report-only"],
                         capture_output=True, text=True, timeout=120, check=True).stdout
    assert "| hsa-memory | 8K |" in out and "not run" in out
    assert "| bm25+reader | 8K | 8,000 | 1 |" in out
    assert not (tmp_path / "workloads").exists()  # nothing was generated, nothing ran
