"""LangChain and LangGraph over ``hsa_memory.Memory``: chat history, retriever, ask tool and store.

>>> from hsa_memory import Memory
>>> from hsa_memory.integrations.langchain import HSAMemoryAskTool, HSAMemoryRetriever
>>> mem = Memory("~/agent-memory")
>>> tools = [HSAMemoryAskTool(memory=mem)]
>>> docs = HSAMemoryRetriever(memory=mem, k=4).invoke("Anna's new city")

Every class only calls ``Memory``; the LangGraph store is in ``hsa_memory.integrations.langgraph``.
Forgetting works on whole 64-token chunks, and a chunk can hold the end of one message and the
start of the next; ``forget_exactly`` forgets what was asked for and appends again the
neighbouring messages that went with it.
"""
from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Literal

from langchain_core.callbacks import (
    AsyncCallbackManagerForRetrieverRun, CallbackManagerForRetrieverRun, CallbackManagerForToolRun,
)
from langchain_core.chat_history import BaseChatMessageHistory
from langchain_core.documents import Document
from langchain_core.messages import (
    AIMessage, BaseMessage, ChatMessage, FunctionMessage, HumanMessage, SystemMessage, ToolMessage, message_to_dict,
    messages_from_dict,
)
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables.config import run_in_executor
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


def _events(memory: Memory):
    """The memory's live events; ``MemoryClosed`` once it is closed (its store still reads, silently empty)."""
    memory._check_open()
    return memory.store.events()


def forget_exactly(memory: Memory, where: Mapping[str, Any]) -> int:
    """Forget the events whose metadata holds every ``where`` item, and only those; returns their count.

    ``Memory.forget`` also drops the other events of every chunk it forgets; those are appended
    again with the same text, role and metadata, plus ``original_time`` (the memory only takes
    events in time order, so they get the current time). Not atomic: a message appended by another
    process while this runs can be lost if it shares a forgotten chunk.
    """
    live = list(_events(memory))
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
    # the memory refuses NUL characters (binary data) in what the model reads; the message itself, NULs
    # and all, is kept in metadata
    text = "\n".join(p for p in parts if p).replace("\x00", "\ufffd")
    return text if text.strip() else "(empty message)"


# ChatMessage roles as LangChain spells them (langchain_core.messages.utils) → the memory's roles
CHAT_ROLES = {"system": "system", "developer": "system", "user": "user", "human": "user", "assistant": "assistant",
              "ai": "assistant", "tool": "tool", "function": "tool"}


def _role_of(message: BaseMessage) -> str:
    if isinstance(message, ChatMessage):
        return CHAT_ROLES.get(message.role, "user")
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
        events = [e for e in _events(self.memory) if e.metadata.get(SESSION_KEY) == self.session_id]
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

    async def _aget_relevant_documents(self, query: str, *, run_manager: AsyncCallbackManagerForRetrieverRun,
                                       k: int | None = None) -> list[Document]:
        # BaseRetriever's default takes no ``k``: ``ainvoke(query, k=2)`` raised TypeError
        return await run_in_executor(None, self._get_relevant_documents, query,
                                     run_manager=run_manager.get_sync(), k=k)


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


def __getattr__(name: str):
    # the LangGraph store lives beside this module and needs langgraph
    if name == "HSAMemoryStore":
        from .langgraph import HSAMemoryStore

        return HSAMemoryStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
