"""The record every generator returns, and its ChatML / plain-text renderings with offsets.

An :class:`Example` is plain data: ``messages`` go into memory (or the context) in order,
``questions`` are asked afterwards. Training renders it with :meth:`Example.to_chatml` and uses
the character spans to find the evidence and answer tokens; evaluation feeds the messages to the
public ``Memory`` API one by one and compares the reply with ``Question.answer``.

>>> ex = Example("demo", 0, [Message("user", "My cat is called Tom.", "m0")],
...              [Question("What is my cat called?", "Tom", ["m0"], "static")])
>>> r = ex.to_chatml()
>>> r.text[slice(*r.answers[0])]
'Tom'
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Callable

__all__ = ["Message", "Question", "Example", "Rendered", "render_chatml_turn"]

Span = tuple[int, int]


@dataclass
class Message:
    """One message of a stream: ``role`` is ``user``/``assistant``/``tool``/``system``.

    ``time`` is ISO 8601 (``2024-03-05T14:22``); ``session`` groups messages into conversations.
    """

    role: str
    content: str
    id: str
    time: str | None = None
    session: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass
class Question:
    """A question asked after the messages, with its exact-match answer.

    ``answer`` is short and appears verbatim in the messages named by ``evidence_message_ids``
    (for variable tracking it lists the variables, which appear one per evidence message).
    ``response`` is a natural reply containing ``answer``; training can supervise on it.
    """

    text: str
    answer: str
    evidence_message_ids: list[str]
    kind: str
    response: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def reply(self) -> str:
        return self.response if self.response is not None else self.answer


@dataclass
class Rendered:
    """A rendering and where things are in it (``[start, end)`` character offsets).

    ``messages`` maps a message id to the span of its content; ``questions``, ``responses`` and
    ``answers`` list, per question, the span of the question's text, of the whole reply and of
    the exact answer inside the reply.
    """

    text: str
    messages: dict[str, Span]
    questions: list[Span]
    responses: list[Span]
    answers: list[Span]

    def span_text(self, span: Span) -> str:
        return self.text[span[0]:span[1]]


def render_chatml_turn(role: str, content: str) -> str:
    return f"<|im_start|>{role}\n{content}<|im_end|>\n"


@dataclass
class Example:
    """What a generator returns: a message stream, questions about it, and how it was made."""

    task: str
    seed: int
    messages: list[Message]
    questions: list[Question]
    metadata: dict[str, Any] = field(default_factory=dict)

    def message(self, message_id: str) -> Message:
        for message in self.messages:
            if message.id == message_id:
                return message
        raise KeyError(f"no message {message_id!r} in this {self.task} example")

    def to_chatml(self, *, questions: bool = True, system: str | None = None,
                  with_time: bool = False) -> Rendered:
        """ChatML (``<|im_start|>{role}\\n{content}<|im_end|>\\n``), questions as user/assistant turns.

        ``system`` adds a system turn first; ``with_time`` prefixes each message's content with
        ``[time] `` (outside its content span).
        """
        parts: list[str] = []
        length = 0
        spans: dict[str, Span] = {}

        def add(piece: str) -> int:
            nonlocal length
            start = length
            parts.append(piece)
            length += len(piece)
            return start

        def turn(role: str, content: str, prefix: str = "") -> Span:
            add(f"<|im_start|>{role}\n{prefix}")
            start = add(content)
            add("<|im_end|>\n")
            return start, start + len(content)

        if system is not None:
            turn("system", system)
        for message in self.messages:
            prefix = f"[{message.time}] " if with_time and message.time else ""
            spans[message.id] = turn(message.role, message.content, prefix)
        q_spans, r_spans, a_spans = self._questions(turn) if questions else ([], [], [])
        return Rendered("".join(parts), spans, q_spans, r_spans, a_spans)

    def to_text(self, *, questions: bool = True, separator: str = "\n\n") -> Rendered:
        """Plain text: message contents joined by ``separator``; each question and reply on its own line."""
        parts: list[str] = []
        length = 0
        spans: dict[str, Span] = {}

        def add(piece: str) -> int:
            nonlocal length
            start = length
            parts.append(piece)
            length += len(piece)
            return start

        def turn(role: str, content: str) -> Span:
            if parts:
                add(separator if role != "assistant" else "\n")
            start = add(content)
            return start, start + len(content)

        for message in self.messages:
            spans[message.id] = turn(message.role, message.content)
        q_spans, r_spans, a_spans = self._questions(turn) if questions else ([], [], [])
        return Rendered("".join(parts), spans, q_spans, r_spans, a_spans)

    def _questions(self, turn: Callable[[str, str], Span]) -> tuple[list[Span], list[Span], list[Span]]:
        q_spans, r_spans, a_spans = [], [], []
        for question in self.questions:
            q_spans.append(turn("user", question.text))
            reply = question.reply
            start, end = turn("assistant", reply)
            r_spans.append((start, end))
            # the answer is the last occurrence in the reply (replies end with it)
            offset = reply.rfind(question.answer)
            if offset < 0:
                raise ValueError(f"the reply {reply!r} does not contain the answer {question.answer!r}")
            a_spans.append((start + offset, start + offset + len(question.answer)))
        return q_spans, r_spans, a_spans

    def n_tokens(self, count_tokens: Callable[[str], int], *, questions: bool = True) -> int:
        """Tokens of the ChatML rendering (what the length targets refer to)."""
        return count_tokens(self.to_chatml(questions=questions).text)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Example":
        return cls(
            task=data["task"],
            seed=data["seed"],
            messages=[Message(**m) for m in data["messages"]],
            questions=[Question(**q) for q in data["questions"]],
            metadata=dict(data.get("metadata", {})),
        )
