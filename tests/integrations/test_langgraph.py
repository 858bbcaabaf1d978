"""Scenarios: the LangGraph store puts, updates, gets, deletes, filters, searches and lists
namespaces (labels of any characters), works through abatch, and survives a reopen; an agent from
``create_agent(..., store=HSAMemoryStore(...))`` with a scripted chat model calls a tool that writes
to the store and the ask tool over the same memory, and answers from the ask tool's result.

With the tiny random model, "grounded" means the ask tool ran against the memory and cited chunks
that exist in it and hold the stored text; the answer's wording means nothing.
"""
import asyncio
import warnings

import pytest
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult

from hsa_memory.integrations.langchain import HSAMemoryAskTool
from hsa_memory.integrations.langgraph import HSAMemoryStore

from .conftest import FACTS


@pytest.fixture
def store(tmp_path, tiny_loaded):
    with HSAMemoryStore(tmp_path / "store", model=tiny_loaded) as store:
        yield store


def test_store_put_get_update_delete(store):
    ns = ("users", "u1")
    assert store.get(ns, "prefs") is None
    store.put(ns, "prefs", {"color": "blue", "size": 3})
    first = store.get(ns, "prefs")
    assert first.value == {"color": "blue", "size": 3} and first.key == "prefs" and first.namespace == ns
    store.put(ns, "prefs", {"color": "red", "size": 5})
    second = store.get(ns, "prefs")
    assert second.value == {"color": "red", "size": 5}
    assert second.created_at == first.created_at and second.updated_at > first.updated_at
    texts = [e.text for e in store.memory(ns).store.events()]
    assert not any("blue" in t for t in texts)
    store.delete(ns, "prefs")
    assert store.get(ns, "prefs") is None
    store.delete(("users", "nobody"), "prefs")
    assert ("users", "nobody") not in store.list_namespaces()


def test_store_search_filters_and_ranks_with_a_query(store):
    for i, fact in enumerate(FACTS * 2):
        store.put(("facts", "u1"), f"fact-{i}", {"text": fact, "n": i}, index=["text"])
    store.put(("facts", "u2"), "other", {"text": "unrelated", "n": 100})
    assert {i.key for i in store.search(("facts", "u1"), filter={"n": {"$gte": 10}})} == {"fact-10", "fact-11"}
    assert [i.key for i in store.search(("facts",), filter={"n": 100})] == ["other"]
    assert len(store.search(("facts",), limit=3, offset=11)) == 2
    ranked = store.search(("facts", "u1"), query="Where does my sister Anna live?", limit=5)
    assert len(ranked) == 5
    scores = [item.score for item in ranked]
    assert scores[0] is not None and 0.0 < scores[0] <= 1.0
    known = [s for s in scores if s is not None]
    assert known == sorted(known, reverse=True)
    assert store.memory(("facts", "u1")).store.events().__next__().text == FACTS[0]


def test_store_lists_namespaces_and_survives_a_reopen(store, tiny_loaded):
    for ns in [("a", "x"), ("a", "y"), ("b", "x", "deep"), ("a b/c", "%d"), ("ü?#~",)]:
        store.put(ns, "k", {"v": list(ns)})
    assert store.list_namespaces() == [("a", "x"), ("a", "y"), ("a b/c", "%d"), ("b", "x", "deep"), ("ü?#~",)]
    assert store.list_namespaces(prefix=("a",)) == [("a", "x"), ("a", "y")]
    assert store.list_namespaces(suffix=("x",)) == [("a", "x")]
    assert store.list_namespaces(prefix=("*", "x")) == [("a", "x"), ("b", "x", "deep")]
    assert store.list_namespaces(max_depth=1) == [("a",), ("a b/c",), ("b",), ("ü?#~",)]
    assert store.list_namespaces(limit=1, offset=1) == [("a", "y")]
    store.close()
    with HSAMemoryStore(store.root, model=tiny_loaded) as again:
        assert again.get(("a b/c", "%d"), "k").value == {"v": ["a b/c", "%d"]}


def test_store_async_batch(store):
    async def go():
        await store.aput(("n",), "k", {"v": 1})
        item = await store.aget(("n",), "k")
        found = await store.asearch(("n",))
        return item, found

    item, found = asyncio.run(go())
    assert item.value == {"v": 1} and [f.key for f in found] == ["k"]


class ScriptedChatModel(BaseChatModel):
    """Emits the scripted tool calls in turn, then answers with the last tool result it was given."""

    script: list[AIMessage]
    step: int = 0

    @property
    def _llm_type(self) -> str:
        return "scripted"

    def bind_tools(self, tools, **kwargs):
        return self

    def _generate(self, messages, stop=None, run_manager=None, **kwargs) -> ChatResult:
        if self.step < len(self.script):
            message = self.script[self.step]
        else:
            tool_result = next(m for m in reversed(messages) if isinstance(m, ToolMessage))
            message = AIMessage(f"From memory: {tool_result.content}")
        self.step += 1
        return ChatResult(generations=[ChatGeneration(message=message)])


def test_agent_remembers_in_the_store_and_answers_with_the_ask_tool(tmp_path, tiny_loaded):
    from langchain.agents import create_agent
    from langchain.tools import ToolRuntime, tool

    namespace = ("memories", "u1")

    @tool
    def remember(fact: str, runtime: ToolRuntime) -> str:
        """Store a fact about the user for later."""
        key = f"fact-{len(runtime.store.search(namespace, limit=1000))}"
        runtime.store.put(namespace, key, {"text": fact}, index=["text"])
        return f"stored as {key}"

    with HSAMemoryStore(tmp_path / "store", model=tiny_loaded) as store, warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        for i, fact in enumerate(FACTS * 2):
            store.put(namespace, f"fact-{i}", {"text": fact}, index=["text"])
        ask = HSAMemoryAskTool(memory=store.memory(namespace), max_new_tokens=4)
        model = ScriptedChatModel(script=[
            AIMessage("", tool_calls=[{"name": "remember", "args": {"fact": "Anna's cat is called Tom."},
                                       "id": "call-1"}]),
            AIMessage("", tool_calls=[{"name": "ask_memory", "args": {"question": "Where does Anna live?"},
                                       "id": "call-2"}]),
        ])
        agent = create_agent(model, [remember, ask], store=store)
        result = agent.invoke({"messages": [HumanMessage("Remember that Anna's cat is Tom, then: where is Anna?")]})

        assert store.get(namespace, f"fact-{len(FACTS) * 2}").value == {"text": "Anna's cat is called Tom."}
        answer = next(m for m in result["messages"] if isinstance(m, ToolMessage) and m.name == "ask_memory")
        citations = answer.artifact["citations"]
        assert citations
        chunks = store.memory(namespace).store.chunks([c["chunk_id"] for c in citations])
        assert all(not c.deleted and c.text == cited["text"] for c, cited in zip(chunks, citations))
        stream = "".join(f"{e.role}\n{e.text}\n" for e in store.memory(namespace).store.events())
        assert all(c.text.strip() in stream for c in chunks)
        assert result["messages"][-1].content == f"From memory: {answer.content}"


def test_the_store_is_also_reachable_from_the_langchain_module():
    from hsa_memory.integrations import langchain

    assert langchain.HSAMemoryStore is HSAMemoryStore
