"""Examples → token tensors: ChatML turns, labels on the whole reply, evidence and decoy chunk positions.

Each message is tokenised as its own ChatML turn (turns start with a special token, so the token
stream is the concatenation), which gives exact token spans for evidence without offset mapping.
"""
from __future__ import annotations

import random
import re
from dataclasses import dataclass, field

import torch

from hsa_memory.model.tokenizer import render_turn

IGNORE = -100


@dataclass
class TokenExample:
    input_ids: list[int]
    labels: list[int]  # IGNORE except on the reply tokens (whole reply + <|im_end|>)
    answer_start: int  # index of the first reply token
    evidence_chunks: list[int]  # chunk positions holding the evidence
    task: str
    # self-distillation (issue 7): the evidence messages alone, then the same question and reply, for the
    # base model to read with the evidence in its window; empty when the example has no evidence
    teacher_ids: list[int] = field(default_factory=list)
    teacher_answer_start: int = 0
    # hard negatives (issue 7): chunk positions of the question's decoys (an older value of the fact, another
    # person's or key's value), never an evidence chunk; empty when the generator gives none
    decoy_chunks: list[int] = field(default_factory=list)
    # the reply tokens that spell the answer itself ([start, stop) in input_ids): the evaluation's value match
    # scores these alone, so a reply phrased another way around a right value still counts
    answer_tokens: tuple[int, int] = (0, 0)
    # (query position, key position) pairs: the position predicting each answer token, and where that token
    # sits in the evidence (a closed chunk before the reply); empty when the answer is not there verbatim
    copy_pairs: list[tuple[int, int]] = field(default_factory=list)


def tokenize_example(example, tokenizer, chunk_size: int = 64, question_index: int | None = None,
                     rng: random.Random | None = None) -> TokenExample:
    """One training sequence: every message, then one question and its reply."""
    ids: list[int] = []
    spans: dict[str, tuple[int, int]] = {}
    for message in example.messages:
        turn = tokenizer.encode(render_turn(message.role, message.content), add_special_tokens=False).ids
        spans[message.id] = (len(ids), len(ids) + len(turn))
        ids.extend(turn)
    if not example.questions:
        return TokenExample(ids, list(ids), 0, [], example.task)
    if question_index is None:
        question_index = (rng or random).randrange(len(example.questions))
    question = example.questions[question_index]
    prompt_start = len(ids)
    ids.extend(tokenizer.encode(render_turn("user", question.text) + "<|im_start|>assistant\n",
                                add_special_tokens=False).ids)
    answer_start = len(ids)
    encoded_reply = tokenizer.encode(question.reply + "<|im_end|>\n", add_special_tokens=False)
    reply = encoded_reply.ids
    start, stop = answer_token_range(question.reply, question.answer, encoded_reply.offsets)
    answer_tokens = (answer_start + start, answer_start + stop)
    ids.extend(reply)
    labels = [IGNORE] * answer_start + reply
    # the trailing newline after <|im_end|> is formatting, not answer
    labels[-1] = IGNORE
    evidence = sorted(evidence_chunks(example, question, spans, tokenizer, chunk_size))
    teacher = [t for m in example.messages if m.id in set(question.evidence_message_ids)
               for t in ids[spans[m.id][0]:spans[m.id][1]]]
    if teacher:
        teacher.extend(ids[prompt_start:answer_start])  # the question turn and the reply header
        teacher_answer_start = len(teacher)
        teacher.extend(reply)
    else:
        teacher_answer_start = 0
    decoys = sorted(decoy_chunks(example, question, spans, tokenizer, chunk_size) - set(evidence))
    evidence_spans = [spans[m] for m in question.evidence_message_ids if m in spans]
    pairs = copy_pairs(ids, answer_tokens, evidence_spans, chunk_size)
    return TokenExample(ids, labels, answer_start, evidence, example.task, teacher, teacher_answer_start, decoys,
                        answer_tokens, pairs)


def copy_pairs(ids: list[int], answer_tokens: tuple[int, int], evidence_spans: list[tuple[int, int]],
               chunk_size: int) -> list[tuple[int, int]]:
    """For each token of the answer, (the position that predicts it, its position in the evidence): the first
    verbatim occurrence of the answer's token sequence inside an evidence message whose chunks are closed
    before the reply (what HSA can read). Empty when there is none (a value tokenised differently there)."""
    start, stop = answer_tokens
    value = ids[start:stop]
    if not value:
        return []
    for lo, hi in evidence_spans:
        for at in range(lo, hi - len(value) + 1):
            if ids[at:at + len(value)] == value:
                pairs = [(start + j - 1, at + j) for j in range(len(value))]
                # the chunk of every key must be complete before its query
                if all((k // chunk_size + 1) * chunk_size <= q for q, k in pairs):
                    return pairs
    return []


def answer_token_range(reply: str, answer: str, offsets: list[tuple[int, int]]) -> tuple[int, int]:
    """The reply tokens (by index) that overlap the answer's characters; the whole reply without its end
    marker when the answer is not in it verbatim (a list answer rephrased, say)."""
    at = reply.find(answer) if answer else -1
    if at < 0:
        whole = [i for i, (lo, _) in enumerate(offsets) if lo < len(reply)]
        return (whole[0], whole[-1] + 1) if whole else (0, 0)
    hits = [i for i, (lo, hi) in enumerate(offsets) if lo < at + len(answer) and hi > at]
    return hits[0], hits[-1] + 1


def evidence_chunks(example, question, spans, tokenizer, chunk_size: int) -> set[int]:
    """Chunks holding the evidence: where the answer (or each listed item) sits inside its message.

    Falls back to every chunk of the evidence message when the answer text is not found verbatim.
    """
    found: set[int] = set()
    items = [question.answer] + [part.strip() for part in question.answer.split(",") if part.strip()]
    for message_id in question.evidence_message_ids:
        if message_id not in spans:
            continue
        message = example.message(message_id)
        start, stop = spans[message_id]
        hits = [message.content.find(item) for item in items if item and item in message.content]
        if not hits:
            found.update(p // chunk_size for p in range(start, stop))
            continue
        found.add(_chunk_of_char(message, min(hits), spans[message_id], tokenizer, chunk_size))
    return found


def _chunk_of_char(message, hit: int, span: tuple[int, int], tokenizer, chunk_size: int) -> int:
    """The chunk of the token that holds character ``hit`` of ``message``'s content, from the turn's offsets.

    (Encoding the text before it alone can land one token late: there the space before a value is a token
    of its own, while in the turn it merges into the value's first token.)
    """
    start, stop = span
    offset = len(f"<|im_start|>{message.role}\n") + hit
    turn = tokenizer.encode(render_turn(message.role, message.content), add_special_tokens=False)
    index = next((k for k, (_, end) in enumerate(turn.offsets) if end > offset), len(turn.ids) - 1)
    return min(start + index, stop - 1) // chunk_size


def decoy_chunks(example, question, spans, tokenizer, chunk_size: int) -> set[int]:
    """Chunks holding the question's decoys (``question.metadata["decoy_spans"]``): where each decoy's text
    starts inside its message, found as ``evidence_chunks`` finds the answer. A decoy whose text is not in its
    message is left out (no position is guessed). The caller drops chunks that also hold evidence."""
    found: set[int] = set()
    for decoy in question.metadata.get("decoy_spans", ()):
        message_id, text = decoy["message_id"], decoy["text"]
        if message_id not in spans or not text:
            continue
        message = example.message(message_id)
        # a whole-word occurrence first ("3 May" must not match inside "13 May")
        match = re.search(rf"(?<!\w){re.escape(text)}(?!\w)", message.content)
        hit = match.start() if match else message.content.find(text)
        if hit < 0:
            continue
        found.add(_chunk_of_char(message, hit, spans[message_id], tokenizer, chunk_size))
    return found


def collate(examples: list[TokenExample], length: int, pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-truncate/pad to ``length``: (B, length) inputs and labels."""
    inputs = torch.full((len(examples), length), pad_id, dtype=torch.long)
    labels = torch.full((len(examples), length), IGNORE, dtype=torch.long)
    for row, example in enumerate(examples):
        n = min(length, len(example.input_ids))
        inputs[row, :n] = torch.tensor(example.input_ids[:n])
        labels[row, :n] = torch.tensor(example.labels[:n])
    return inputs, labels


def answer_weights(examples: list[TokenExample], length: int, value_weight: float) -> torch.Tensor:
    """(B, length) loss weights aligned with ``collate``'s labels: ``value_weight`` on the tokens that spell
    each answer, 1 elsewhere. Most reply tokens are a fixed wording ("Your locker code is"); the value is a
    few tokens, and the copy errors (Darius → "Domen") sit there (training/LOG.md, session 9)."""
    weights = torch.ones(len(examples), length)
    for row, example in enumerate(examples):
        start, stop = example.answer_tokens
        weights[row, min(start, length):min(stop, length)] = value_weight
    return weights


def collate_teacher(examples: list[TokenExample], pad_id: int) -> tuple[torch.Tensor, torch.Tensor] | None:
    """The teacher sequences padded to the longest: (B, T) inputs and labels on their reply tokens
    (exactly the student's reply labels, so position k of one reply matches position k of the other);
    None when no example has one. Rows without evidence are all padding and IGNORE."""
    if not any(e.teacher_ids for e in examples):
        return None
    length = max(len(e.teacher_ids) for e in examples)
    inputs = torch.full((len(examples), length), pad_id, dtype=torch.long)
    labels = torch.full((len(examples), length), IGNORE, dtype=torch.long)
    for row, example in enumerate(examples):
        if example.teacher_ids:
            n = len(example.teacher_ids)
            inputs[row, :n] = torch.tensor(example.teacher_ids)
            reply = example.labels[example.answer_start:]
            labels[row, example.teacher_answer_start:n] = torch.tensor(reply)
    return inputs, labels
