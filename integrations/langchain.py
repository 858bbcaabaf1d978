"""LangChain and LangGraph over ``hsa_memory.Memory``: chat history, retriever, ask tool and store.

>>> from hsa_memory import Memory
>>> from hsa_memory.integrations.langchain import HSAMemoryAskTool, HSAMemoryRetriever
>>> mem = Memory("~/agent-memory")
>>> tools = [HSAMemoryAskTool(memory=mem)]
>>> docs = HSAMemoryRetriever(memory=mem, k=4).invoke("Anna's new city")

Every class only calls ``Memory``. Forgetting in a memory works on whole 64-token chunks, and a
chunk can hold the end of one message and the start of the next; ``forget_exactly`` forgets what
was asked for and appends again the neighbouring messages that went with it.
"""
from __future__ import annotations

import asyncio
import json
import re
import threading
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

from langchain_core.callbacks import CallbackManagerForRetrieverRun, CallbackManagerForToolRun
from langchain_core.chat_history import BaseChatMessageHistory
from langchain_core.documents import Document
from langchain_core.messages import (
    AIMessage, BaseMessage, ChatMessage, FunctionMessage, HumanMessage, SystemMessage, ToolMessage, message_to_dict,
    messages_from_dict,
)
from langchain_core.retrievers import BaseRetriever
from langchain_core.tools import BaseTool, ToolException
from pydantic import BaseModel, ConfigDict, Field

from hsa_memory.errors import InvalidInput
from hsa_memory.memory import Memory

__all__ = ["HSAMemoryChatHistory", "HSAMemoryRetriever", "HSAMemoryAskTool", "AskInput", "forget_exactly",
           "event_time"]

SESSION_KEY = "session"
LC_MESSAGE_KEY = "lc_message"
ORIGINAL_TIME_KEY = "original_time"
ROLE_OF = {HumanMessage: "user", AIMessage: "assistant", SystemMessage: "system", ToolMessage: "tool",
           FunctionMessage: "tool"}
MESSAGE_OF = {"user": HumanMessage, "assistant": AIMessage, "system": SystemMessage}


def _matches(metadata: Mapping[str, Any], where: Mapping[str, Any]) -> bool:
    return all(key in metadata and metadata[key] == value for key, value in where.items())


def event_time(event) -> datetime:
    """When an event happened: its own time, or the time it had before ``forget_exactly`` put it back."""
    original = event.metadata.get(ORIGINAL_TIME_KEY)
    return datetime.fromisoformat(original) if isinstance(original, str) else event.time


def forget_exactly(memory: Memory, where: Mapping[str, Any]) -> int:
    """Forget the events whose metadata holds every ``where`` item, and only those; returns their count.

    ``Memory.forget`` also drops the other events of every chunk it forgets; those are appended
    again with the same text, role and metadata, plus ``original_time`` (the memory only takes
    events in time order, so they get the current time). Not atomic: a message appended by another
    process while this runs can be lost if it shares a forgotten chunk.
    """
    live = list(memory.store.events())
    keep = [event for event in live if not _matches(event.metadata, where)]
    if len(keep) == len(live):
        return 0
    memory.forget(where=dict(where))
    remaining = {event.seq for event in memory.store.events()}
    lost = [event for event in keep if event.seq not in remaining]
    if lost:
        memory.extend([{"role": e.role, "content": e.text,
                        "metadata": {**e.metadata, ORIGINAL_TIME_KEY: event_time(e).isoformat()}} for e in lost])
    return len(live) - len(keep)


def _message_text(message: BaseMessage) -> str:
    """What the model reads of a message: its text, and its tool calls for an AI message."""
    parts = [message.text]
    for call in getattr(message, "tool_calls", None) or []:
        parts.append(f"[tool call] {call['name']}({json.dumps(call['args'], ensure_ascii=False)})")
    text = "\n".join(p for p in parts if p)
    return text if text.strip() else "(empty message)"


def _role_of(message: BaseMessage) -> str:
    if isinstance(message, ChatMessage):
        return message.role if message.role in ("system", "user", "assistant", "tool") else "user"
    for cls, role in ROLE_OF.items():
        if isinstance(message, cls):
            return role
    return "user"


class HSAMemoryChatHistory(BaseChatMessageHistory):
    """The messages of one session, kept in a memory (metadata ``{"session": session_id}``).

    >>> history = HSAMemoryChatHistory(mem, session_id="user-42")
    >>> history.add_messages([HumanMessage("I moved to Lisbon."), AIMessage("Noted!")])
    >>> history.messages  # this session's messages, oldest first
    """

    def __init__(self, memory: Memory, session_id: str):
        if not isinstance(session_id, str) or not session_id:
            raise InvalidInput("session_id", f"must be a non-empty string, got {session_id!r}")
        self.memory = memory
        self.session_id = session_id

    @property
    def messages(self) -> list[BaseMessage]:  # type: ignore[override]
        events = [e for e in self.memory.store.events() if e.metadata.get(SESSION_KEY) == self.session_id]
        # messages put back by forget_exactly come last in the log but keep their original time
        events.sort(key=lambda e: (event_time(e), e.seq))
        return [self._to_message(e) for e in events]

    @staticmethod
    def _to_message(event) -> BaseMessage:
        stored = event.metadata.get(LC_MESSAGE_KEY)
        if isinstance(stored, dict):
            return messages_from_dict([stored])[0]
        if event.role == "tool":
            return ToolMessage(event.text, tool_call_id=str(event.metadata.get("tool_call_id", "")))
        return MESSAGE_OF[event.role](event.text)

    def add_messages(self, messages: Sequence[BaseMessage]) -> None:
        """Append the messages in one write (one fsync); each keeps its full LangChain form in metadata."""
        self.memory.extend([{"role": _role_of(m), "content": _message_text(m),
                             "metadata": {SESSION_KEY: self.session_id, LC_MESSAGE_KEY: message_to_dict(m)}}
                            for m in messages])

    def clear(self) -> None:
        """Forget this session's messages (and nothing of other sessions: see ``forget_exactly``)."""
        forget_exactly(self.memory, {SESSION_KEY: self.session_id})


def _when(time: datetime | None) -> str | None:
    return time.isoformat() if time else None


class HSAMemoryRetriever(BaseRetriever):
    """The chunks the model's retrieval routes a query to, as ``Document``s.

    ``metadata``: ``chunk_id``, ``score`` (share of routing weight), ``roles``, ``role`` (the first
    role) and ``time`` (ISO 8601, the chunk's first token). ``invoke(query, k=2)`` overrides ``k``.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    memory: Memory
    k: int = Field(default=4, ge=1)

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun,
                                k: int | None = None) -> list[Document]:
        hits = self.memory.search(query, k=k if k is not None else self.k)
        return [Document(page_content=hit.text, id=str(hit.chunk_id),
                         metadata={"chunk_id": hit.chunk_id, "score": hit.score, "roles": list(hit.roles),
                                   "role": hit.roles[0] if hit.roles else None, "time": _when(hit.time)})
                for hit in hits]


class AskInput(BaseModel):
    question: str = Field(description="A self-contained question about earlier conversations, facts or events, "
                                      "e.g. 'Where does the user's sister Anna live?'")


class HSAMemoryAskTool(BaseTool):
    """Lets an agent ask its long-term memory; returns the answer and the passages it cites.

    The content is text for the model; the artifact (``ToolMessage.artifact``) is
    ``{"answer": str, "citations": [{"chunk_id", "text", "weight", "roles", "time"}]}``.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    name: str = "ask_memory"
    description: str = ("Answer a question from the long-term memory of all earlier conversations. Returns the "
                        "answer followed by the remembered passages it is based on.")
    args_schema: type[BaseModel] = AskInput
    response_format: Literal["content", "content_and_artifact"] = "content_and_artifact"
    handle_tool_error: bool = True

    memory: Memory
    max_new_tokens: int = Field(default=256, ge=1)
    citations: int = Field(default=5, ge=0)

    def _run(self, question: str, run_manager: CallbackManagerForToolRun | None = None) -> tuple[str, dict]:
        try:
            answer = self.memory.ask(question, max_new_tokens=self.max_new_tokens, citations=self.citations)
        except InvalidInput as exc:
            raise ToolException(f"{exc}; ask a non-empty question") from exc
        citations = [{"chunk_id": c.chunk_id, "text": c.text, "weight": c.weight, "roles": list(c.roles),
                      "time": _when(c.time)} for c in answer.citations]
        lines = [answer.text or "(the memory gave no answer)"]
        if citations:
            lines.append("\nSources:")
            lines += [f"[chunk {c['chunk_id']}, weight {c['weight']:.2f}, {','.join(c['roles'])}, {c['time']}] "
                      f"{' '.join(c['text'].split())}" for c in citations]
        return "\n".join(lines), {"answer": answer.text, "citations": citations}


try:
    from langgraph.store.base import (
        BaseStore, GetOp, InvalidNamespaceError, Item, ListNamespacesOp, MatchCondition, Op, PutOp, Result,
        SearchItem, SearchOp,
    )
    from langgraph.store.base.embed import get_text_at_path
except ImportError:  # langgraph is optional
    BaseStore = None

if BaseStore is not None:
    __all__.append("HSAMemoryStore")

    KEY, VALUE, CREATED = "lg_key", "lg_value", "lg_created_at"
    # a namespace becomes one directory name; longer names would hit file-system limits
    MAX_DIR_NAME = 200

    def _dir_label(label: str) -> str:
        # "%" would break the store's SQLite URL, so labels beyond [A-Za-z0-9_-] are spelled in hex
        return label if re.fullmatch(r"[A-Za-z0-9_-]+", label) else "~" + label.encode().hex()

    def _dir_name(namespace: tuple[str, ...]) -> str:
        name = ".".join(_dir_label(label) for label in namespace)
        if len(name) > MAX_DIR_NAME:
            raise InvalidNamespaceError(f"namespace {namespace!r} is too long: its directory name would have "
                                        f"{len(name)} characters, the limit is {MAX_DIR_NAME}")
        return name

    def _namespace(dir_name: str) -> tuple[str, ...]:
        return tuple(bytes.fromhex(label[1:]).decode() if label.startswith("~") else label
                     for label in dir_name.split("."))

    def _compare(value: Any, condition: Any) -> bool:
        """LangGraph's filter semantics: equality, nested dicts, and ``$eq $ne $gt $gte $lt $lte``."""
        if isinstance(condition, dict):
            if any(k.startswith("$") for k in condition):
                return all(_operator(value, op, operand) for op, operand in condition.items())
            return isinstance(value, dict) and all(_compare(value.get(k), v) for k, v in condition.items())
        return value == condition

    def _operator(value: Any, op: str, operand: Any) -> bool:
        if op == "$eq":
            return value == operand
        if op == "$ne":
            return value != operand
        if value is None:
            return False
        checks = {"$gt": float.__gt__, "$gte": float.__ge__, "$lt": float.__lt__, "$lte": float.__le__}
        if op not in checks:
            raise ValueError(f"unsupported filter operator {op!r}; use one of $eq $ne $gt $gte $lt $lte")
        return checks[op](float(value), float(operand))

    def _matches_condition(condition: MatchCondition, namespace: tuple[str, ...]) -> bool:
        path = tuple(condition.path)
        if len(namespace) < len(path):
            return False
        part = namespace[:len(path)] if condition.match_type == "prefix" else namespace[len(namespace) - len(path):]
        return all(p == "*" or p == n for p, n in zip(path, part))

    class HSAMemoryStore(BaseStore):
        """A LangGraph store: one memory directory per namespace under ``root``; items are events.

        ``put`` appends the item as a message (its ``index`` fields, or ``key: JSON value``, is the
        text the model reads; the value itself rides in metadata), so ``search(query=...)`` ranks
        items by the routing weight their chunks get. An update or delete forgets the old version
        (``forget_exactly``). ``index=False`` is not honoured: the model reads everything in a memory.
        ``memory_options`` go to every ``Memory`` (``model=``, ``device=``, ...).

        >>> store = HSAMemoryStore("~/agent-store", model="hsa-smollm2-135m")
        >>> agent = create_agent(model, tools, store=store)
        """

        def __init__(self, root: str | Path, *, role: str = "user", **memory_options: Any):
            self.root = Path(root).expanduser()
            self.role = role
            self.memory_options = memory_options
            self._memories: dict[tuple[str, ...], Memory] = {}
            self._lock = threading.RLock()

        # ---- memories -------------------------------------------------------------------------
        def memory(self, namespace: tuple[str, ...], create: bool = True) -> Memory | None:
            """The ``Memory`` behind a namespace (for an ``HSAMemoryAskTool`` over the same items)."""
            with self._lock:
                if namespace not in self._memories:
                    path = self.root / _dir_name(tuple(namespace))
                    if not create and not path.exists():
                        return None
                    self._memories[namespace] = Memory(path, **self.memory_options)
                return self._memories[namespace]

        def namespaces(self) -> list[tuple[str, ...]]:
            if not self.root.is_dir():
                return []
            return sorted(_namespace(p.name) for p in self.root.iterdir()
                          if p.is_dir() and not p.name.startswith("."))

        def close(self) -> None:
            with self._lock:
                for memory in self._memories.values():
                    memory.close()
                self._memories.clear()

        def __enter__(self) -> "HSAMemoryStore":
            return self

        def __exit__(self, *exc) -> None:
            self.close()

        # ---- items ------------------------------------------------------------------------------
        @staticmethod
        def _current(memory: Memory) -> dict[str, Any]:
            """The latest live event of every key, by key, in append order."""
            latest: dict[str, Any] = {}
            for event in memory.store.events():
                key = event.metadata.get(KEY)
                if isinstance(key, str):
                    latest.pop(key, None)
                    latest[key] = event
            return latest

        @staticmethod
        def _item(namespace: tuple[str, ...], event, cls=Item, **extra) -> Item:
            return cls(value=event.metadata[VALUE], key=event.metadata[KEY], namespace=namespace,
                       created_at=datetime.fromisoformat(event.metadata.get(CREATED) or event.time.isoformat()),
                       updated_at=event_time(event), **extra)

        def _text(self, key: str, value: Mapping[str, Any], index: Any) -> str:
            if isinstance(index, list) and index:
                text = "\n".join(t for path in index for t in get_text_at_path(value, path))
                if text.strip():
                    return text
            return f"{key}: {json.dumps(value, ensure_ascii=False, default=str)}"

        def _put(self, op: PutOp) -> None:
            memory = self.memory(op.namespace, create=op.value is not None)
            if memory is None:
                return
            earlier = self._current(memory).get(op.key)
            if earlier is not None:
                forget_exactly(memory, {KEY: op.key})
            if op.value is None:
                return
            created = earlier.metadata.get(CREATED) if earlier is not None else None
            now = datetime.now(timezone.utc)
            memory.append(self._text(op.key, op.value, op.index), role=self.role, time=now,
                          metadata={KEY: op.key, VALUE: dict(op.value), CREATED: created or now.isoformat()})

        def _get(self, op: GetOp) -> Item | None:
            memory = self.memory(op.namespace, create=False)
            event = self._current(memory).get(op.key) if memory is not None else None
            return self._item(op.namespace, event) if event is not None else None

        def _search(self, op: SearchOp) -> list[SearchItem]:
            prefix = tuple(op.namespace_prefix)
            found: list[tuple[float | None, int, SearchItem]] = []
            for order, namespace in enumerate(ns for ns in self.namespaces() if ns[:len(prefix)] == prefix):
                memory = self.memory(namespace)
                events = [e for e in self._current(memory).values()
                          if not op.filter or all(_compare(e.metadata[VALUE].get(k), v) for k, v in op.filter.items())]
                scores = self._scores(memory, op.query, len(events), op.limit + op.offset) if op.query else {}
                for event in events:
                    score = max((s for (lo, hi), s in scores.items() if lo <= event.seq <= hi), default=None)
                    found.append((score, order, self._item(namespace, event, SearchItem, score=score)))
            # scored items first, best first; then the rest in namespace and append order
            found.sort(key=lambda f: (f[0] is None, -(f[0] or 0.0), f[1]))
            return [item for _, _, item in found][op.offset: op.offset + op.limit]

        @staticmethod
        def _scores(memory: Memory, query: str, items: int, wanted: int) -> dict[tuple[int, int], float]:
            """Routing weight of each chunk the query reaches, by the span of events it holds."""
            if not items:
                return {}
            hits = memory.search(query, k=max(8, wanted))
            chunks = memory.store.chunks([hit.chunk_id for hit in hits]) if hits else []
            return {(c.first_seq, c.last_seq): hit.score for c, hit in zip(chunks, hits)}

        def _list_namespaces(self, op: ListNamespacesOp) -> list[tuple[str, ...]]:
            namespaces = [ns for ns in self.namespaces()
                          if all(_matches_condition(c, ns) for c in op.match_conditions or ())]
            if op.max_depth is not None:
                namespaces = sorted({ns[: op.max_depth] for ns in namespaces})
            return namespaces[op.offset: op.offset + op.limit]

        def batch(self, ops: Iterable[Op]) -> list[Result]:
            """Run the operations in order (a put is seen by a later get of the same batch)."""
            results: list[Result] = []
            with self._lock:
                for op in ops:
                    if isinstance(op, GetOp):
                        results.append(self._get(op))
                    elif isinstance(op, SearchOp):
                        results.append(self._search(op))
                    elif isinstance(op, PutOp):
                        results.append(self._put(op))
                    elif isinstance(op, ListNamespacesOp):
                        results.append(self._list_namespaces(op))
                    else:
                        raise ValueError(f"unknown store operation {type(op).__name__}")
            return results

        async def abatch(self, ops: Iterable[Op]) -> list[Result]:
            return await asyncio.get_running_loop().run_in_executor(None, self.batch, list(ops))
