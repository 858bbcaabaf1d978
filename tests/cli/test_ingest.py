"""Scenarios: JSONL logs, OpenAI message arrays (a list or {"messages": [...]}, content parts, tool
calls), text files and whole directories (sorted, hidden files skipped, binary files skipped with a
warning, the memory's own directory left out) go in with their roles, times and metadata; standard
input is sniffed; --dry-run writes nothing; re-ingesting the same content is a duplicate unless
--force; hostile input (malformed JSON, invalid UTF-8, empty files, huge lines, unknown keys, bad
roles or times, times that go back) fails with the exact file:line and writes nothing, or with
--on-error skip leaves that file out whole; the registry of ingested files is valid JSON."""
import json
from datetime import datetime, timezone

import pytest

from hsa_memory.cli import ingest as ingest_module
from hsa_memory.store import MemoryStore

from .conftest import CHAT, write_jsonl


def events(memory):
    store = MemoryStore.open(memory)
    try:
        return list(store.events())
    finally:
        store.close()


def summary(result) -> dict:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_jsonl_goes_in_with_roles_times_and_metadata(cli, tmp_path):
    log = write_jsonl(tmp_path / "chat.jsonl", [
        {"role": "user", "content": "Anna lives in Lisbon.", "time": "2025-05-01T10:00:00Z", "metadata": {"s": 1}},
        {"role": "assistant", "content": "Noted.", "time": "2025-05-01T10:00:05+00:00"},
    ])
    out = summary(cli("ingest", log, "--json"))
    assert out["messages"] == 2 and out["files"][0]["seqs"] == [1, 2] and out["files"][0]["status"] == "ingested"
    got = events(tmp_path / "memory")
    assert [(e.role, e.text, e.metadata) for e in got] == [("user", "Anna lives in Lisbon.", {"s": 1}),
                                                          ("assistant", "Noted.", {})]
    assert got[0].time == datetime(2025, 5, 1, 10, 0, tzinfo=timezone.utc)


def test_openai_arrays_text_files_and_directories(cli, tmp_path):
    data = tmp_path / "data"
    (data / "sub").mkdir(parents=True)
    (data / ".git").mkdir()
    (data / ".git" / "config").write_text("hidden folder")
    (data / ".hidden.txt").write_text("hidden file")
    (data / "b.md").write_text("# Notes\nRex is a beagle.\n")
    (data / "a.json").write_text(json.dumps([
        {"role": "developer", "content": "Be brief."},
        {"role": "user", "content": [{"type": "text", "text": "Where"}, {"type": "text", "text": "is Anna?"}]},
        {"role": "assistant", "content": None,
         "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "lookup", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "Lisbon"},
    ], indent=1))
    (data / "sub" / "c.json").write_text(json.dumps({"model": "gpt", "messages": [{"role": "user", "content": "hi"}]}))
    (data / "sub" / "d.bin").write_bytes(b"\x89PNG\x00\x00binary")
    (data / "memory").mkdir()
    result = cli("--memory", data / "memory", "ingest", data)  # the memory inside the folder is left out
    assert result.exit_code == 0, result.output
    assert result.stderr == f"Warning: skipping {data / 'sub' / 'd.bin'}: looks binary (NUL bytes); only text, " \
                            "JSON and JSONL are ingested\n"
    got = events(data / "memory")
    assert [(e.role, e.text) for e in got] == [
        ("system", "Be brief."), ("user", "Where\nis Anna?"), ("assistant", "[tool call] lookup({})"),
        ("tool", "Lisbon"), ("user", "# Notes\nRex is a beagle.\n"), ("user", "hi")]
    assert got[3].metadata == {"tool_call_id": "c1"}
    assert got[4].metadata == {"source": str(data / "b.md")}
    assert result.stdout.splitlines()[-1] == "6 messages from 3 files ingested; 0 duplicates, 0 errors, 1 skipped"


@pytest.mark.parametrize("piped, expected", [
    (json.dumps(CHAT[0]) + "\n" + json.dumps(CHAT[1]) + "\n", [("user", CHAT[0]["content"]),
                                                               ("assistant", CHAT[1]["content"])]),
    (json.dumps({"messages": CHAT[:1]}, indent=2), [("user", CHAT[0]["content"])]),
    ("just a note from a pipe\n", [("user", "just a note from a pipe\n")]),
])
def test_standard_input_is_sniffed(cli, tmp_path, piped, expected):
    assert cli("ingest", "-", input=piped).exit_code == 0
    assert [(e.role, e.text) for e in events(tmp_path / "memory")] == expected


def test_dry_run_writes_nothing(cli, tmp_path):
    log = write_jsonl(tmp_path / "chat.jsonl", CHAT)
    out = summary(cli("ingest", log, "--dry-run", "--json"))
    assert out["dry_run"] and out["messages"] == len(CHAT) and out["files"][0]["status"] == "would-ingest"
    assert not (tmp_path / "memory").exists()


def test_same_content_is_a_duplicate_unless_forced(cli, tmp_path):
    log = write_jsonl(tmp_path / "chat.jsonl", CHAT)
    assert cli("ingest", log).exit_code == 0
    (tmp_path / "copy.jsonl").write_bytes(log.read_bytes())
    again = summary(cli("ingest", log, tmp_path / "copy.jsonl", "--json"))
    assert [f["status"] for f in again["files"]] == ["duplicate", "duplicate"]
    assert again["files"][1]["detail"].startswith(f"same content as {log}, ingested ")
    assert summary(cli("ingest", log, "--dry-run", "--json"))["files"][0]["status"] == "duplicate"
    forced = summary(cli("ingest", log, "--force", "--json"))
    assert forced["files"][0]["seqs"] == [len(CHAT) + 1, 2 * len(CHAT)]
    registry = json.loads((tmp_path / "memory" / "cli-ingested.json").read_text())
    assert registry["version"] == 1 and len(registry["files"]) == 1
    assert [p.name for p in (tmp_path / "memory").iterdir() if ".partial" in p.name] == []


HOSTILE = [
    ("malformed.jsonl", b'{"role": "user", "content": "ok"}\n{"role": "user", "content": "x"\n',
     "malformed.jsonl:2: malformed JSON: Expecting ',' delimiter (column 32)"),
    ("latin1.jsonl", '{"role": "user", "content": "ok"}\n{"role": "user", "content": "café"}\n'.encode("latin-1"),
     "latin1.jsonl:2: not valid UTF-8 (byte 0xe9 at column 33); convert the file to UTF-8, e.g. "
     "`iconv -f latin1 -t utf-8`"),
    ("empty.jsonl", b"", "empty.jsonl: is empty (no messages)"),
    ("blank.jsonl", b"\n \n", "blank.jsonl: holds only blank lines"),
    ("empty.txt", b"", "empty.txt: is empty"),
    ("space.md", b"  \n\t\n", "space.md: holds only whitespace"),
    ("nan.jsonl", b'{"role": "user", "content": NaN}\n', "nan.jsonl:1: malformed JSON: NaN is not valid JSON"),
    ("keys.jsonl", b'{"role": "user", "content": "x", "mood": "ok"}\n',
     "keys.jsonl:1: unknown keys ['mood']; a message has role, content, time and metadata"),
    ("role.jsonl", b'{"role": "robot", "content": "x"}\n',
     "role.jsonl:1: role: 'robot' is not one of ['system', 'user', 'assistant', 'tool']"),
    ("time.json", b'[\n {"role": "user", "content": "a"},\n {"role": "user", "content": "b", "time": "soon"}\n]',
     "time.json:3: time: 'soon' is not an ISO 8601 time"),
    ("content.json", b'{"messages": [\n\n {"role": "user", "content": ""}]}',
     "content.json:3: content: is empty or whitespace only"),
    ("scalar.json", b'"hello"', 'scalar.json: expected a list of messages or {"messages": [...]}; got a JSON str'),
    ("nul.txt", b"text\x00more", "nul.txt: looks binary (NUL bytes); only text, JSON and JSONL are ingested"),
    ("back.jsonl", b'{"role": "user", "content": "b", "time": "2025-01-02T00:00:00Z"}\n'
                   b'{"role": "user", "content": "a", "time": "2025-01-01T00:00:00Z"}\n',
     'back.jsonl:2: time 2025-01-01T00:00:00+00:00 is before 2025-01-02T00:00:00+00:00, the time of the previous '
     'message; the memory takes messages in time order: sort them, or leave out "time" to use the time of ingest'),
    # found by a bad-input audit: nesting past the recursion limit was a RecursionError traceback
    ("deep.json", b"[" * 100_000 + b"]" * 100_000, "deep.json: malformed JSON: nested too deeply"),
    ("deep.jsonl", b'{"role": "user", "content": "x", "metadata": {"a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}}\n",
     "deep.jsonl:1: malformed JSON: nested too deeply"),
]


@pytest.mark.parametrize("name, data, error", HOSTILE, ids=[h[0] for h in HOSTILE])
def test_hostile_input_fails_with_file_and_line_and_writes_nothing(cli, tmp_path, name, data, error):
    (tmp_path / name).write_bytes(data)
    good = write_jsonl(tmp_path / "good.jsonl", CHAT)
    result = cli("ingest", tmp_path / name, good)
    assert result.exit_code == 1
    assert result.stderr == (f"Error: {tmp_path / error}; nothing was written "
                             "(--on-error skip leaves such files out)\n")
    assert not (tmp_path / "memory").exists()


def test_huge_lines_are_refused(cli, tmp_path, monkeypatch):
    monkeypatch.setattr(ingest_module, "MAX_RECORD_BYTES", 100)
    write_jsonl(tmp_path / "big.jsonl", [{"role": "user", "content": "x" * 200}])
    result = cli("ingest", tmp_path / "big.jsonl", "--dry-run")
    assert result.exit_code == 1
    assert result.stderr == (f"Error: {tmp_path / 'big.jsonl'}:1: line is longer than 100 bytes, the limit for one "
                             "message; split it into several messages; nothing was written\n")


def test_on_error_skip_leaves_bad_files_out_whole(cli, tmp_path):
    (tmp_path / "bad.jsonl").write_text(json.dumps(CHAT[0]) + "\n{oops\n")
    good = write_jsonl(tmp_path / "good.jsonl", CHAT[:2])
    result = cli("ingest", tmp_path / "bad.jsonl", good, "--on-error", "skip", "--json")
    out = summary(result)
    assert [(f["status"], f["detail"]) for f in out["files"]] == [
        ("error", "line 2: malformed JSON: Expecting property name enclosed in double quotes (column 2)"),
        ("ingested", None)]
    assert result.stderr.startswith(f"Warning: skipping {tmp_path / 'bad.jsonl'}:2: malformed JSON")
    assert [e.text for e in events(tmp_path / "memory")] == [m["content"] for m in CHAT[:2]]
    # --quiet silences the warning
    assert cli("ingest", tmp_path / "bad.jsonl", "--on-error", "skip", "--quiet").stderr == ""


def test_times_before_the_memory_newest_event_are_refused(cli, tmp_path):
    assert cli("ingest", write_jsonl(tmp_path / "now.jsonl", CHAT[:1])).exit_code == 0
    old = write_jsonl(tmp_path / "old.jsonl", [{**CHAT[1], "time": "2020-01-01T00:00:00Z"}])
    result = cli("ingest", old)
    assert result.exit_code == 1
    assert result.stderr.startswith(f"Error: {old}:1: time 2020-01-01T00:00:00+00:00 is before ")
    assert "the time of the memory's newest event" in result.stderr
    assert len(events(tmp_path / "memory")) == 1


def test_a_damaged_registry_is_reported(cli, tmp_path):
    assert cli("ingest", write_jsonl(tmp_path / "a.jsonl", CHAT[:1])).exit_code == 0
    (tmp_path / "memory" / "cli-ingested.json").write_text("{not json")
    result = cli("ingest", write_jsonl(tmp_path / "b.jsonl", CHAT[1:2]))
    assert result.exit_code == 1
    assert result.stderr.startswith(f"Error: {tmp_path / 'memory' / 'cli-ingested.json'} is damaged (")


def test_deep_standard_input_and_fifos_in_folders(cli, tmp_path):
    """Found by a bad-input audit: deep JSON on standard input was a RecursionError traceback, and a FIFO in
    an ingested folder blocked the whole command forever on open()."""
    import os

    result = cli("ingest", "-", input="[" * 100_000 + "]" * 100_000)
    assert result.exit_code == 1 and "nested too deeply" in result.stderr, result.output
    folder = tmp_path / "chats"
    folder.mkdir()
    write_jsonl(folder / "a.jsonl", CHAT[:2])
    os.mkfifo(folder / "pipe.txt")
    out = summary(cli("ingest", folder, "--json"))
    assert [(f["source"].split("/")[-1], f["status"]) for f in out["files"]] == [("a.jsonl", "ingested"),
                                                                                ("pipe.txt", "skipped")]


def test_links_out_of_an_ingested_folder_are_not_followed(cli, tmp_path):
    """Found by a bad-input audit: a folder's symlink to /etc/passwd (or any file elsewhere) was ingested."""
    import os

    outside = tmp_path / "secret.txt"
    outside.write_text("the private key is hunter2\n")
    folder = tmp_path / "chats"
    (folder / "sub").mkdir(parents=True)
    write_jsonl(folder / "a.jsonl", CHAT[:2])
    os.symlink(outside, folder / "leak.txt")
    os.symlink(folder / "a.jsonl", folder / "sub" / "inside.jsonl")  # a link within the folder is followed
    out = summary(cli("ingest", folder, "--json"))
    statuses = {f["source"].split("/")[-1]: f["status"] for f in out["files"]}
    assert statuses == {"a.jsonl": "ingested", "leak.txt": "skipped", "inside.jsonl": "duplicate"}, out
    named = summary(cli("ingest", folder / "leak.txt", "--json"))  # named on its own, it is the user's choice
    assert [f["status"] for f in named["files"]] == ["ingested"]
