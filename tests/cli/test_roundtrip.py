"""Scenario: the installed ``hsa-memory`` script, in real processes with the tiny model, takes a chat
log through ingest → search → ask → export → import, and the restored memory holds the same events
and chunks; ``python -m hsa_memory.cli`` is the same command."""
import json
import os
import subprocess
import sys

from .conftest import CHAT, write_jsonl

SCRIPT = os.path.join(os.path.dirname(sys.executable), "hsa-memory")


def run(*args, memory=None):
    env = {**os.environ, "HSA_MEMORY_MODEL": "tiny", "HSA_MEMORY_DEVICE": "cpu"}
    if memory is not None:
        env["HSA_MEMORY_DIR"] = str(memory)
    done = subprocess.run([SCRIPT, *map(str, args)], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_python_dash_m_is_the_same_command():
    done = subprocess.run([sys.executable, "-m", "hsa_memory.cli", "--version"], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0 and done.stdout.startswith("hsa-memory, version ")


def test_ingest_search_ask_export_import(tmp_path):
    memory, restored, snapshot = tmp_path / "memory", tmp_path / "restored", tmp_path / "memory.hsamem"
    log = write_jsonl(tmp_path / "chat.jsonl", CHAT * 4)
    ingested = json.loads(run("--json", "ingest", log, memory=memory))
    assert ingested["messages"] == len(CHAT) * 4
    hits = json.loads(run("--json", "search", "Anna Lisbon", "-k", 3, memory=memory))
    assert 1 <= len(hits) <= 3 and all(h["text"] for h in hits)
    answer = json.loads(run("--json", "ask", "Where does Anna live?", "--max-tokens", 4, memory=memory))
    assert {c["chunk_id"] for c in answer["citations"]} <= set(range(1, 100))
    run("export", snapshot, memory=memory)
    imported = json.loads(run("--json", "import", snapshot, memory=restored))
    assert imported["events"] == len(CHAT) * 4 and imported["chunks"] >= len(hits)
