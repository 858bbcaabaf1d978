"""A LangGraph ``BaseStore`` over memories: one memory directory per namespace, items as events.

>>> from langchain.agents import create_agent
>>> from hsa_memory.integrations.langgraph import HSAMemoryStore
>>> agent = create_agent(model, tools, store=HSAMemoryStore("~/agent-store"))
"""
from __future__ import annotations

import asyncio
import json
import re
import threading
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from langgraph.store.base import (
    BaseStore, GetOp, InvalidNamespaceError, Item, ListNamespacesOp, MatchCondition, Op, PutOp, Result, SearchItem,
    SearchOp,
)
from langgraph.store.base.embed import get_text_at_path

from hsa_memory.memory import Memory

from .langchain import event_time, forget_exactly

__all__ = ["HSAMemoryStore"]

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

    def memory(self, namespace: tuple[str, ...], create: bool = True) -> Memory | None:
        """The ``Memory`` behind a namespace (for an ``HSAMemoryAskTool`` over the same items)."""
        namespace = tuple(namespace)
        with self._lock:
            if namespace not in self._memories:
                path = self.root / _dir_name(namespace)
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
