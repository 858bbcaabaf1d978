"""Scenarios: forget needs a selector (exit 2), parses KEY=VALUE (JSON when it parses) and times,
asks for confirmation unless --yes, and forgets what it is told; stats prints counts (text or JSON);
verify exits 0 on a sound memory and 1, naming the problem, on a damaged one."""
import json

import pytest

from .conftest import CHAT, write_jsonl


@pytest.fixture
def memory(cli, tmp_path):
    log = write_jsonl(tmp_path / "chat.jsonl", [{**m, "metadata": {"session": f"s{i % 2}", "n": i}}
                                                for i, m in enumerate(CHAT * 3)])
    assert cli("ingest", log).exit_code == 0
    return tmp_path / "memory"


def test_forget_needs_a_selector(cli):
    result = cli("forget", "--yes")
    assert result.exit_code == 2
    assert result.stderr.endswith("Error: give --chunk, --before, --after or --where (refusing to forget everything)\n")


@pytest.mark.parametrize("args, error", [
    (["--where", "session"], "Invalid value for '--where': 'session' is not KEY=VALUE"),
    (["--before", "yesterday"], "Invalid value for '--before': 'yesterday' is neither an ISO 8601 time "
                                "(2025-05-01T10:00:00Z) nor epoch seconds"),
    (["--chunk", "0"], "Invalid value for '--chunk'"),
])
def test_forget_rejects_bad_selectors(cli, args, error):
    result = cli("forget", "--yes", *args)
    assert result.exit_code == 2 and error in result.stderr


def test_forget_asks_first(cli, memory):
    result = cli("forget", "--where", "session=s1", input="n\n")
    assert result.exit_code == 1 and result.stderr.endswith("Aborted!\n")
    assert json.loads(cli("stats", "--json").stdout)["forgotten_chunks"] == 0


def test_forget_by_metadata_and_time(cli, memory):
    before = json.loads(cli("stats", "--json").stdout)
    result = cli("--json", "forget", "--where", "n=0", "--yes")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["forgotten"] >= 2  # the event and the chunk(s) holding it
    after = json.loads(cli("stats", "--json").stdout)
    assert after["forgotten_chunks"] >= 1 and after["chunks"] < before["chunks"]
    result = cli("forget", "--after", "2000-01-01", "--yes")
    assert result.exit_code == 0 and result.stdout.startswith("forgot ")
    assert json.loads(cli("stats", "--json").stdout)["chunks"] == 0


def test_forget_an_unknown_chunk(cli, memory):
    result = cli("forget", "--chunk", 999, "--yes")
    assert result.exit_code == 1
    assert result.stderr == f"Error: no chunk 999 in {memory}; `hsa-memory search` shows chunk ids\n"


def test_stats(cli, memory):
    stats = json.loads(cli("stats", "--json").stdout)
    assert stats["last_seq"] == len(CHAT) * 3 and stats["chunks"] >= 1 and stats["model"] == "tiny"
    text = cli("stats").stdout
    assert f"last_seq: {len(CHAT) * 3}\n" in text and "tiers:\n" in text


def test_verify_ok_and_damaged(cli, memory):
    result = cli("verify")
    assert result.exit_code == 0 and result.stdout.endswith("ok\n")
    segment = next((memory / "kv").rglob("*.seg"), None) or next(p for p in (memory / "kv").rglob("*") if p.is_file())
    data = bytearray(segment.read_bytes())
    data[len(data) // 2] ^= 0xFF
    segment.write_bytes(bytes(data))
    result = cli("--json", "verify")
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert not report["ok"] and report["problems"]
    assert result.stderr == (f"Error: verify found {len(report['problems'])} problems in {memory}; restore a "
                             "snapshot (`hsa-memory import`) or re-ingest the sources\n")
