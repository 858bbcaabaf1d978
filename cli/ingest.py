"""``ingest``: chat logs (JSONL), message arrays (JSON), text files and whole directories.

Everything is read and validated before anything is written, so a bad record leaves the memory as
it was; each file then goes in with one ``Memory.extend`` (one fsync). Ingested files are recorded
by content hash in ``<memory>/cli-ingested.json`` and skipped when seen again.
"""
from __future__ import annotations

import bisect
import hashlib
import io
import json
import os
import sys
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, BinaryIO, Iterator

import click

from .state import State, emit, output_options, pass_state

REGISTRY_NAME = "cli-ingested.json"
# one message (a JSONL line or a text file) may hold at most this much: Memory.append's own limit
MAX_RECORD_BYTES = 64 << 20
# a JSON message array is parsed whole, so it gets a ceiling too
MAX_DOCUMENT_BYTES = 256 << 20
# bytes sniffed for NUL to call a file binary
SNIFF_BYTES = 8192

JSONL_SUFFIXES = {".jsonl", ".ndjson"}
JSON_SUFFIXES = {".json"}
ROLES = ("system", "user", "assistant", "tool")
ROLE_ALIASES = {"human": "user", "ai": "assistant", "developer": "system", "function": "tool"}
MESSAGE_KEYS = {"role", "content", "time", "metadata"}
# OpenAI chat-completion fields kept in metadata (or rendered, for tool calls) rather than refused
OPENAI_KEYS = {"name", "tool_calls", "tool_call_id", "function_call", "refusal"}


class InputError(Exception):
    """A file (and line) the ingest cannot use; the message says what is wrong and what to do."""

    def __init__(self, source: str, line: int | None, message: str):
        self.source, self.line, self.message = source, line, message
        super().__init__(f"{source}:{line}: {message}" if line else f"{source}: {message}")


@dataclass
class Source:
    label: str
    path: Path | None  # None: standard input
    from_directory: bool = False
    root: Path | None = None  # the resolved folder it was found in: a link out of it is not followed


@dataclass
class Parsed:
    source: Source
    sha256: str
    format: str
    # (line or None, message) in file order
    records: list[tuple[int | None, dict]] = field(default_factory=list)

    @property
    def messages(self) -> list[dict]:
        return [message for _, message in self.records]


@dataclass
class Outcome:
    source: str
    status: str  # ingested, would-ingest, duplicate, error, skipped
    format: str | None = None
    messages: int = 0
    seqs: list[int] | None = None
    detail: str | None = None


def _reject_constant(name: str):
    raise ValueError(f"{name} is not valid JSON")


DECODER = json.JSONDecoder(parse_constant=_reject_constant)


def _loads(text: str) -> Any:
    """``DECODER.decode``; nesting past Python's recursion limit is malformed input, not a crash."""
    try:
        return DECODER.decode(text)
    except RecursionError:
        raise ValueError("nested too deeply") from None


def _walk(root: Path, exclude: Path | None) -> Iterator[Path]:
    """Files under ``root``, sorted, without hidden names and without the memory directory itself."""
    for folder, dirs, files in os.walk(root):
        here = Path(folder)
        dirs[:] = sorted(d for d in dirs if not d.startswith(".")
                         and (exclude is None or (here / d).resolve() != exclude))
        for name in sorted(files):
            if not name.startswith("."):
                yield here / name


def find_sources(paths: tuple[str, ...], memory_dir: Path | None) -> list[Source]:
    exclude = memory_dir.resolve() if memory_dir is not None else None
    sources = []
    for raw in paths:
        if raw == "-":
            sources.append(Source("<stdin>", None))
        elif Path(raw).is_dir():
            root = Path(raw).resolve()
            sources += [Source(str(p), p, from_directory=True, root=root) for p in _walk(Path(raw), exclude)]
        else:
            sources.append(Source(raw, Path(raw)))
    return sources


def _line_starts(text: str) -> list[int]:
    starts, i = [0], text.find("\n")
    while i != -1:
        starts.append(i + 1)
        i = text.find("\n", i + 1)
    return starts


def _decode(source: str, data: bytes, first_line: int = 1) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = first_line + data.count(b"\n", 0, exc.start)
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise InputError(source, line, f"not valid UTF-8 (byte 0x{data[exc.start]:02x} at column {column}); "
                                       f"convert the file to UTF-8, e.g. `iconv -f latin1 -t utf-8`") from None


def _json_error(source: str, exc: ValueError, line: int | None = None) -> InputError:
    """``line``: the JSONL line that held the text; a JSON document counts its own lines."""
    if isinstance(exc, json.JSONDecodeError):
        return InputError(source, line or exc.lineno, f"malformed JSON: {exc.msg} (column {exc.colno})")
    return InputError(source, line, f"malformed JSON: {exc}")


def _content_text(source: str, line: int | None, content: Any) -> str:
    """A message's text: a string, or the text parts of an OpenAI content array."""
    if content is None or isinstance(content, str):
        return content or ""
    if isinstance(content, list):
        parts = []
        for part in content:
            if isinstance(part, str):
                parts.append(part)
            elif isinstance(part, dict) and isinstance(part.get("text"), str):
                parts.append(part["text"])
            else:
                raise InputError(source, line, f"content part {json.dumps(part)[:80]} has no text; only text parts "
                                               "can be ingested")
        return "\n".join(parts)
    raise InputError(source, line, f"content must be a string or a list of text parts, got {type(content).__name__}")


def _tool_calls_text(calls: Any) -> str:
    lines = []
    for call in calls if isinstance(calls, list) else [calls]:
        function = call.get("function", call) if isinstance(call, dict) else {}
        lines.append(f"[tool call] {function.get('name', '?')}({function.get('arguments', '')})")
    return "\n".join(lines)


def to_message(source: str, line: int | None, obj: Any) -> dict:
    """One validated message for ``Memory.extend``; errors name the file and line."""
    from hsa_memory.errors import InvalidInput
    from hsa_memory.memory import check_metadata, check_role, check_text, check_time

    if not isinstance(obj, dict):
        raise InputError(source, line, f"expected a JSON object with role and content, got {type(obj).__name__}")
    unknown = set(obj) - MESSAGE_KEYS - OPENAI_KEYS
    if unknown:
        raise InputError(source, line, f"unknown keys {sorted(unknown)}; a message has role, content, "
                                       "time and metadata")
    role = obj.get("role", "user")
    role = ROLE_ALIASES.get(role, role) if isinstance(role, str) else role
    text = _content_text(source, line, obj.get("content"))
    calls = obj.get("tool_calls") or obj.get("function_call")
    if calls:
        text = "\n".join(t for t in (text, _tool_calls_text(calls)) if t)
    metadata = obj.get("metadata")
    extra = {k: obj[k] for k in ("name", "tool_call_id") if obj.get(k) is not None}
    if extra:
        if metadata is not None and not isinstance(metadata, dict):
            raise InputError(source, line, f"metadata must be a JSON object, got {type(metadata).__name__}")
        metadata = {**extra, **(metadata or {})}
    try:
        time = obj.get("time")
        # a message without a time gets the time of the write, not of this reading
        return {"role": check_role(role), "content": check_text("content", text),
                "time": check_time(time) if time is not None else None, "metadata": check_metadata(metadata)}
    except InvalidInput as exc:
        raise InputError(source, line, str(exc)) from None


def _array_lines(text: str, value: Any) -> list[int] | None:
    """The line each message of a parsed array (or ``{"messages": [...]}``) starts on."""
    starts = _line_starts(text)

    def skip(i: int) -> int:
        while i < len(text) and text[i] in " \t\r\n":
            i += 1
        return i

    def scan_array(i: int) -> list[int]:
        lines, i = [], skip(i + 1)
        if text[i] == "]":
            return lines
        while True:
            lines.append(bisect.bisect_right(starts, i))
            i = skip(DECODER.raw_decode(text, i)[1])
            if text[i] == "]":
                return lines
            i = skip(i + 1)

    i = skip(0)
    if isinstance(value, list):
        return scan_array(i)
    i = skip(i + 1)
    while text[i] != "}":
        key, i = DECODER.raw_decode(text, i)
        i = skip(skip(i) + 1)
        if key == "messages":
            return scan_array(i)
        i = skip(DECODER.raw_decode(text, i)[1])
        if text[i] == ",":
            i = skip(i + 1)
    return None


def parse_json_document(source: str, data: bytes) -> list[tuple[int | None, dict]]:
    text = _decode(source, data).lstrip("\ufeff")
    try:
        value = _loads(text)
    except ValueError as exc:
        raise _json_error(source, exc) from None
    if isinstance(value, dict) and "messages" in value:
        messages = value["messages"]
        if not isinstance(messages, list):
            raise InputError(source, None, f'"messages" must be a list, got {type(messages).__name__}')
    elif isinstance(value, list):
        messages = value
    else:
        raise InputError(source, None, 'expected a list of messages or {"messages": [...]}; '
                                       f"got a JSON {type(value).__name__}")
    if not messages:
        raise InputError(source, None, "holds no messages")
    lines = _array_lines(text, value)
    return [(lines[i] if lines else None, to_message(source, lines[i] if lines else None, m))
            for i, m in enumerate(messages)]


def parse_jsonl(source: str, stream: BinaryIO, digest) -> list[tuple[int | None, dict]]:
    messages, number = [], 0
    while True:
        raw = stream.readline(MAX_RECORD_BYTES + 1)
        if not raw:
            break
        number += 1
        digest.update(raw)
        if len(raw) > MAX_RECORD_BYTES and not raw.endswith(b"\n"):
            raise InputError(source, number, f"line is longer than {MAX_RECORD_BYTES:,} bytes, the limit for one "
                                             "message; split it into several messages")
        text = _decode(source, raw, number).rstrip("\r\n")
        if number == 1:
            text = text.lstrip("\ufeff")
        if not text.strip():
            continue
        try:
            obj = _loads(text)
        except ValueError as exc:
            raise _json_error(source, exc, number) from None
        messages.append((number, to_message(source, number, obj)))
    if not messages:
        raise InputError(source, None, "is empty (no messages)" if number == 0 else "holds only blank lines")
    return messages


def parse_text(source: str, data: bytes, role: str) -> list[tuple[int | None, dict]]:
    if len(data) > MAX_RECORD_BYTES:
        raise InputError(source, None, f"has {len(data):,} bytes; one message may hold at most "
                                       f"{MAX_RECORD_BYTES:,}; split the file")
    text = _decode(source, data).lstrip("\ufeff")
    if not text.strip():
        raise InputError(source, None, "is empty" if not data else "holds only whitespace")
    return [(None, to_message(source, None, {"role": role, "content": text, "metadata": {"source": source}}))]


def _read_limited(source: str, stream: BinaryIO, limit: int) -> bytes:
    data = stream.read(limit + 1)
    if len(data) > limit:
        raise InputError(source, None, f"is larger than {limit:,} bytes, the limit for a JSON document; "
                                       "write it as JSONL (one message per line) instead")
    return data


def _sniff(data: bytes) -> str:
    head = data.lstrip()[:1]
    if head == b"[":
        return "json"
    if head == b"{":
        try:
            value = json.loads(data)
        except (ValueError, RecursionError):
            return "jsonl"
        return "json" if isinstance(value, dict) and "messages" in value else "jsonl"
    return "text"


def _format_of(path: Path, forced: str) -> str:
    if forced != "auto":
        return forced
    suffix = path.suffix.lower()
    return "jsonl" if suffix in JSONL_SUFFIXES else "json" if suffix in JSON_SUFFIXES else "text"


def read_source(source: Source, forced: str, role: str) -> Parsed:
    """Parse one source; raises ``InputError`` (bad content) or returns a ``Parsed`` with its hash."""
    if source.path is None:
        data = _read_limited(source.label, sys.stdin.buffer, MAX_DOCUMENT_BYTES)
        stream: BinaryIO = io.BytesIO(data)
        fmt = _sniff(data) if forced == "auto" else forced
    else:
        if source.from_directory and not source.path.is_file():
            # a FIFO would block the whole ingest on open; a device or socket is no chat log either
            raise InputError(source.label, None, "is not a regular file (a FIFO, socket or device); skipped")
        if source.root is not None and not source.path.resolve().is_relative_to(source.root):
            # a folder handed over for ingest must not pull in files from elsewhere (~/.ssh, /etc) by links
            raise InputError(source.label, None, "is a link to a file outside the folder; skipped (name it "
                                                 "on its own to ingest it)")
        stream = open(source.path, "rb")
        fmt = _format_of(source.path, forced)
    with stream:
        head = stream.read(SNIFF_BYTES)
        if b"\x00" in head:
            raise InputError(source.label, None, "looks binary (NUL bytes); only text, JSON and JSONL are ingested")
        stream.seek(0)
        digest = hashlib.sha256()
        if fmt == "jsonl":
            messages = parse_jsonl(source.label, stream, digest)
        else:
            limit = MAX_DOCUMENT_BYTES if fmt == "json" else MAX_RECORD_BYTES
            data = _read_limited(source.label, stream, limit) if fmt == "json" else stream.read(limit + 1)
            digest.update(data)
            messages = parse_json_document(source.label, data) if fmt == "json" else parse_text(source.label,
                                                                                                  data, role)
    return Parsed(source, digest.hexdigest(), fmt, messages)


class Registry:
    """``{"version": 1, "files": {sha256: {source, messages, first_seq, last_seq, at}}}``, written atomically."""

    def __init__(self, memory_dir: Path):
        self.path = memory_dir / REGISTRY_NAME
        self.files: dict[str, dict] = {}

    def load(self) -> "Registry":
        if self.path.exists():
            try:
                data = json.loads(self.path.read_text("utf-8"))
                self.files = dict(data["files"])
            except (ValueError, KeyError, TypeError, RecursionError) as exc:
                raise click.ClickException(f"{self.path} is damaged ({exc}); delete it to start a new record of "
                                           "ingested files (files ingested before would then go in again)") from None
        return self

    def save(self) -> None:
        body = json.dumps({"version": 1, "files": self.files}, indent=1, sort_keys=True).encode()
        tmp = self.path.with_name(f"{self.path.name}.{os.getpid()}.partial")
        with open(tmp, "wb") as f:
            f.write(body)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
        fd = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    @contextmanager
    def locked(self) -> Iterator["Registry"]:
        """Hold a lock so two ingests into one memory cannot both take the same file as new."""
        import fcntl

        with open(self.path.with_name(self.path.name + ".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield self.load()
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)


def _summary(outcomes: list[Outcome], dry_run: bool) -> dict:
    count = lambda status: sum(o.status == status for o in outcomes)  # noqa: E731
    written = "would-ingest" if dry_run else "ingested"
    return {"dry_run": dry_run, "files": [vars(o) for o in outcomes],
            "ingested_files": count(written), "messages": sum(o.messages for o in outcomes if o.status == written),
            "duplicates": count("duplicate"), "errors": count("error"), "skipped": count("skipped")}


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _text(summary: dict) -> str:
    lines = []
    for o in summary["files"]:
        detail = f"  {_plural(o['messages'], 'message')}" if o["messages"] else ""
        if o["seqs"]:
            detail += f" (seq {o['seqs'][0]}-{o['seqs'][1]})"
        if o["detail"]:
            detail += f"  {o['detail']}"
        lines.append(f"{o['status']:<12} {o['source']}{detail}")
    verb = "would be ingested" if summary["dry_run"] else "ingested"
    lines.append(f"{_plural(summary['messages'], 'message')} from {_plural(summary['ingested_files'], 'file')} "
                 f"{verb}; {_plural(summary['duplicates'], 'duplicate')}, {_plural(summary['errors'], 'error')}, "
                 f"{summary['skipped']} skipped")
    return "\n".join(lines)


@click.command()
@click.argument("paths", nargs=-1, required=True,
                type=click.Path(exists=True, allow_dash=True, readable=True))
@click.option("--format", "fmt", type=click.Choice(["auto", "jsonl", "json", "text"]), default="auto",
              show_default=True, help="Input format; auto goes by suffix (.jsonl/.ndjson, .json, else text) "
                                      "and sniffs standard input.")
@click.option("--role", type=click.Choice(ROLES), default="user", show_default=True,
              help="Role of plain-text files.")
@click.option("--dry-run", is_flag=True, help="Read and validate everything, write nothing.")
@click.option("--on-error", type=click.Choice(["abort", "skip"]), default="abort", show_default=True,
              help="abort: stop before writing anything; skip: leave out each file with an error, whole.")
@click.option("--force", is_flag=True, help="Ingest files even when their content was ingested before.")
@output_options
@pass_state
def ingest(state: State, paths: tuple[str, ...], fmt: str, role: str, dry_run: bool, on_error: str, force: bool):
    """Add chat logs, message arrays, text files or folders.

    \b
    hsa-memory --memory ~/mem ingest chats/ notes.md
    cat log.jsonl | hsa-memory --memory ~/mem ingest - --on-error skip
    """
    memory_dir = state.require_path()
    sources = find_sources(paths, memory_dir)
    outcomes: list[Outcome | None] = [None] * len(sources)

    def reject(index: int, label: str, exc: InputError, binary: bool = False) -> None:
        if on_error == "abort" and not binary:
            raise click.ClickException(f"{exc}; nothing was written"
                                       + ("" if dry_run else " (--on-error skip leaves such files out)"))
        state.warn(f"skipping {exc}")
        outcomes[index] = Outcome(label, "skipped" if binary else "error",
                                  detail=f"line {exc.line}: {exc.message}" if exc.line else exc.message)

    parsed: list[tuple[int, Parsed]] = []
    for index, source in enumerate(sources):
        try:
            parsed.append((index, read_source(source, fmt, role)))
        except InputError as exc:
            reject(index, source.label, exc, binary=source.from_directory and
                   ("looks binary" in exc.message or "not a regular file" in exc.message
                    or "outside the folder" in exc.message))
        except OSError as exc:
            raise click.ClickException(f"{source.label}: {exc.strerror or exc}") from exc

    registry = Registry(memory_dir)
    todo = _in_time_order(_plan(registry.load(), parsed, force, outcomes), None, reject)
    if dry_run:
        for index, item in todo:
            outcomes[index] = Outcome(item.source.label, "would-ingest", item.format, len(item.records))
    elif todo:
        mem = state.memory(create=True)
        # again under the lock: another ingest may have written meanwhile
        with registry.locked():
            todo = _in_time_order(_plan(registry, todo, force, outcomes), last_event_time(mem), reject)
            _write(state, mem, registry, todo, outcomes)
    summary = _summary([o for o in outcomes if o is not None], dry_run)
    emit(state, summary, text=_text(summary))


def _plan(registry: Registry, parsed: list[tuple[int, Parsed]], force: bool, outcomes: list) -> list:
    """Mark duplicates (ingested before, or twice in this run); returns the rest."""
    todo, seen = [], set()
    for index, item in parsed:
        earlier = registry.files.get(item.sha256)
        if earlier and not force:
            outcomes[index] = Outcome(item.source.label, "duplicate", item.format,
                                      detail=f"same content as {earlier['source']}, ingested {earlier['at']}; "
                                             "--force ingests it again")
        elif item.sha256 in seen:
            outcomes[index] = Outcome(item.source.label, "duplicate", item.format,
                                      detail="same content as a file earlier in this run")
        else:
            todo.append((index, item))
        seen.add(item.sha256)
    return todo


def last_event_time(mem) -> datetime | None:
    """The time of the memory's newest live event (None when it has none)."""
    last = mem.stats()["last_seq"]
    window = 16
    while True:
        events = list(mem.store.events(after_seq=max(0, last - window)))
        if events or window >= last:
            return events[-1].time if events else None
        window *= 16


def _in_time_order(todo: list[tuple[int, Parsed]], since: datetime | None, reject) -> list[tuple[int, Parsed]]:
    """Files whose times never go back, from the memory's last event on; ``reject`` gets the others.

    The memory takes events in time order (a chunk's first event may not be later than its last).
    """
    kept, since_what = [], "the memory's newest event"
    for index, item in todo:
        previous, what = since, since_what
        try:
            for line, message in item.records:
                when = message["time"] or datetime.now(timezone.utc)
                if previous is not None and when < previous:
                    raise InputError(item.source.label, line,
                                     f"time {when.isoformat()} is before {previous.isoformat()}, the time of {what}; "
                                     "the memory takes messages in time order: sort them, or leave out \"time\" "
                                     "to use the time of ingest")
                previous, what = when, "the previous message"
        except InputError as exc:
            reject(index, item.source.label, exc)
            continue
        since, since_what = previous, f"the last message of {item.source.label}"
        kept.append((index, item))
    return kept


def _write(state: State, mem, registry: Registry, todo: list[tuple[int, Parsed]], outcomes: list) -> None:
    total = sum(len(item.messages) for _, item in todo)
    with click.progressbar(length=total, label="ingesting", file=sys.stderr, show_pos=True,
                           hidden=state.quiet or total == 0 or not sys.stderr.isatty()) as bar:
        for index, item in todo:
            seqs = mem.extend(item.messages)
            registry.files[item.sha256] = {"source": item.source.label, "messages": len(seqs),
                                           "first_seq": seqs[0], "last_seq": seqs[-1],
                                           "at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
            registry.save()
            outcomes[index] = Outcome(item.source.label, "ingested", item.format, len(seqs), [seqs[0], seqs[-1]])
            bar.update(len(seqs))


COMMANDS = [ingest]
