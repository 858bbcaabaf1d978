"""Scenarios: chat history keeps each session's messages in order (tool calls included) and
``clear()`` forgets one session without losing the interleaved messages of another; the retriever
passes the langchain-tests standard suite and puts chunk id, score, roles and time in metadata;
the ask tool passes the standard tool suites, returns citations of chunks that exist and turns a
bad question into a tool error; no deprecated LangChain memory API is used."""
from pathlib import Path

import pytest
from langchain_core.documents import Document
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_tests.integration_tests import RetrieversIntegrationTests, ToolsIntegrationTests
from langchain_tests.unit_tests import ToolsUnitTests

import hsa_memory.integrations.langchain as integration
from hsa_memory import InvalidInput
from hsa_memory.integrations.langchain import (
    HSAMemoryAskTool, HSAMemoryChatHistory, HSAMemoryRetriever, forget_exactly,
)

from .conftest import FACTS


def conversation(i: int) -> list:
    return [HumanMessage(f"{FACTS[i % len(FACTS)]} ({i})"),
            AIMessage("", tool_calls=[{"name": "note", "args": {"i": i}, "id": f"call-{i}"}]),
            ToolMessage(f"noted {i}", tool_call_id=f"call-{i}"),
            AIMessage(f"I will remember that ({i}).")]


def test_chat_history_round_trips_messages_per_session(memory):
    alice, bob = HSAMemoryChatHistory(memory, "alice"), HSAMemoryChatHistory(memory, "bob")
    alice.add_messages([SystemMessage("Be brief.")] + conversation(0))
    bob.add_messages(conversation(1))
    alice.add_messages(conversation(2))
    assert alice.messages == [SystemMessage("Be brief.")] + conversation(0) + conversation(2)
    assert bob.messages == conversation(1)
    assert alice.messages[2].tool_calls[0]["args"] == {"i": 0}
    assert HSAMemoryChatHistory(memory, "carol").messages == []


def test_chat_history_reads_messages_written_without_langchain(memory):
    memory.extend([{"role": "user", "content": "hello", "metadata": {"session": "cli"}},
                   {"role": "tool", "content": "42", "metadata": {"session": "cli", "tool_call_id": "c1"}}])
    assert HSAMemoryChatHistory(memory, "cli").messages == [HumanMessage("hello"), ToolMessage("42", tool_call_id="c1")]


def test_clear_forgets_one_session_and_keeps_the_interleaved_other(memory):
    alice, bob = HSAMemoryChatHistory(memory, "alice"), HSAMemoryChatHistory(memory, "bob")
    for i in range(3):
        alice.add_messages(conversation(i))
        bob.add_messages([HumanMessage(f"Bob's message {i}: {FACTS[(i + 3) % len(FACTS)]}")])
    before = bob.messages
    # several chunks, each holding messages of both sessions
    assert memory.stats()["chunks"] >= 3
    alice.clear()
    assert alice.messages == []
    assert bob.messages == before
    assert all(e.metadata["session"] == "bob" for e in memory.store.events())
    # forgetting again is a no-op
    assert forget_exactly(memory, {"session": "alice"}) == 0


def test_chat_history_rejects_an_empty_session_id(memory):
    with pytest.raises(InvalidInput, match="session_id"):
        HSAMemoryChatHistory(memory, "")


@pytest.mark.asyncio
@pytest.mark.filterwarnings("ignore:The test <Function:pytest.PytestWarning")
class TestRetrieverStandard(RetrieversIntegrationTests):
    @pytest.fixture(autouse=True)
    def _bind(self, filled_memory):
        type(self).memory = filled_memory

    @property
    def retriever_constructor(self):
        return HSAMemoryRetriever

    @property
    def retriever_constructor_params(self) -> dict:
        return {"memory": self.memory, "k": 3}

    @property
    def retriever_query_example(self) -> str:
        return "Which city did my sister Anna move to, and what does she work as there?"


def test_retriever_documents_carry_chunk_score_roles_and_time(filled_memory):
    docs = HSAMemoryRetriever(memory=filled_memory, k=2).invoke("Rex the beagle")
    assert len(docs) == 2 and all(isinstance(d, Document) for d in docs)
    chunks = filled_memory.store.chunks([d.metadata["chunk_id"] for d in docs])
    for doc, chunk in zip(docs, chunks):
        assert doc.id == str(chunk.id) and doc.page_content == chunk.text
        assert set(doc.metadata) == {"chunk_id", "score", "roles", "role", "time"}
        assert 0.0 < doc.metadata["score"] <= 1.0
        assert doc.metadata["roles"] == chunk.roles and doc.metadata["role"] == chunk.roles[0]
        assert doc.metadata["time"] == chunk.time_start.isoformat()


class TestAskToolUnit(ToolsUnitTests):
    @pytest.fixture(autouse=True)
    def _bind(self, filled_memory):
        type(self).memory = filled_memory

    @property
    def tool_constructor(self):
        return HSAMemoryAskTool

    @property
    def tool_constructor_params(self) -> dict:
        return {"memory": self.memory, "max_new_tokens": 4}

    @property
    def tool_invoke_params_example(self) -> dict:
        return {"question": "Where does Anna live?"}


@pytest.mark.asyncio
@pytest.mark.filterwarnings("ignore:The test <Function:pytest.PytestWarning")
class TestAskToolIntegration(ToolsIntegrationTests):
    @pytest.fixture(autouse=True)
    def _bind(self, filled_memory):
        type(self).memory = filled_memory

    @property
    def tool_constructor(self):
        return HSAMemoryAskTool

    @property
    def tool_constructor_params(self) -> dict:
        return {"memory": self.memory, "max_new_tokens": 4}

    @property
    def tool_invoke_params_example(self) -> dict:
        return {"question": "Where does Anna live?"}


def test_ask_tool_cites_chunks_that_exist(filled_memory):
    tool = HSAMemoryAskTool(memory=filled_memory, max_new_tokens=4, citations=3)
    message = tool.invoke({"type": "tool_call", "name": tool.name, "id": "1",
                           "args": {"question": "Where does Anna live?"}})
    citations = message.artifact["citations"]
    assert 0 < len(citations) <= 3
    chunks = filled_memory.store.chunks([c["chunk_id"] for c in citations])
    assert [c.text for c in chunks] == [c["text"] for c in citations]
    assert not any(c.deleted for c in chunks)
    assert "\nSources:\n[chunk " in message.content


def test_ask_tool_turns_an_empty_question_into_a_tool_error(filled_memory):
    tool = HSAMemoryAskTool(memory=filled_memory, max_new_tokens=4)
    message = tool.invoke({"type": "tool_call", "name": tool.name, "id": "1", "args": {"question": "  "}})
    assert message.status == "error"
    assert message.content == "question: is empty or whitespace only; ask a non-empty question"


def test_no_deprecated_langchain_memory_api():
    source = Path(integration.__file__).read_text() + Path(integration.__file__).with_name("langgraph.py").read_text()
    for name in ("BaseMemory", "ConversationBufferMemory", "langchain.memory", "langchain_community"):
        assert name not in source


def test_chat_history_gives_the_model_chat_message_roles_as_langchain_spells_them(memory):
    """Found by an audit: ChatMessage(role="ai") (or "developer", "function") reached the model as a user turn;
    LangChain's own message conversion reads these roles as assistant, system and tool."""
    from langchain_core.messages import ChatMessage, FunctionMessage

    history = HSAMemoryChatHistory(memory, "roles")
    messages = [ChatMessage(role="ai", content="an AI turn"), ChatMessage(role="human", content="a human turn"),
                ChatMessage(role="developer", content="a developer turn"), ChatMessage(role="function", content="42"),
                ChatMessage(role="critic", content="an unknown role"), FunctionMessage(name="f", content="f out")]
    history.add_messages(messages)
    assert [e.role for e in memory.store.events()] == ["assistant", "user", "system", "tool", "user", "tool"]
    assert history.messages == messages


def test_chat_history_keeps_a_message_with_nul_characters(memory):
    """Found by an audit: a tool's output holding a NUL character made add_messages raise InvalidInput (the memory
    refuses NUL in text); the model now reads U+FFFD there and the message comes back exactly."""
    history = HSAMemoryChatHistory(memory, "nul")
    message = ToolMessage("header\x00binary tail", tool_call_id="c1")
    history.add_messages([HumanMessage("read the file"), message])
    assert history.messages == [HumanMessage("read the file"), message]
    assert [e.text for e in memory.store.events()][1] == "header\ufffdbinary tail"


def test_chat_history_sync_and_async_methods(memory):
    import asyncio

    history = HSAMemoryChatHistory(memory, "both")
    history.add_user_message("hello there")
    history.add_ai_message(AIMessage("hi"))
    history.add_messages([])
    asyncio.run(history.aadd_messages([SystemMessage("Be brief.")]))
    assert asyncio.run(history.aget_messages()) == history.messages == \
        [HumanMessage("hello there"), AIMessage("hi"), SystemMessage("Be brief.")]
    asyncio.run(history.aclear())
    assert history.messages == []


def test_a_closed_memory_raises_memory_closed_instead_of_an_empty_history(tmp_path, tiny_loaded):
    """Found by an audit: the chat history read the store behind the Memory, which still reads once the Memory is
    closed, so history.messages was [] and clear() did nothing instead of raising MemoryClosed like add_messages."""
    from hsa_memory import Memory, MemoryClosed

    memory = Memory(tmp_path / "memory", model=tiny_loaded)
    history = HSAMemoryChatHistory(memory, "s")
    history.add_user_message("remember this")
    memory.close()
    for call in (lambda: history.messages, history.clear, lambda: history.add_user_message("more"),
                 lambda: forget_exactly(memory, {"session": "s"})):
        with pytest.raises(MemoryClosed):
            call()


def test_retriever_takes_k_per_call_sync_and_async(filled_memory):
    """Found by an audit: invoke(query, k=1) worked but ainvoke(query, k=1) raised TypeError (BaseRetriever's
    async default takes no extra arguments)."""
    import asyncio

    retriever = HSAMemoryRetriever(memory=filled_memory, k=3)
    sync = retriever.invoke("Rex the beagle", k=1)
    assert len(sync) == 1
    assert asyncio.run(retriever.ainvoke("Rex the beagle", k=1)) == sync
    assert asyncio.run(retriever.ainvoke("Rex the beagle")) == retriever.invoke("Rex the beagle")
    assert len(retriever.invoke("Rex the beagle")) == 3
