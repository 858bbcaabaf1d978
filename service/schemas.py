"""Request and response bodies of REST v1; they mirror ``Memory``'s arguments and return types."""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from hsa_memory.memory import ROLES
from hsa_memory.copy_bias import DEFAULT_STRENGTH as DEFAULT_COPY_BIAS

MAX_INT64 = 2**63 - 1


def _utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    try:
        return value.astimezone(timezone.utc)
    except OverflowError:
        raise ValueError("time is out of range once converted to UTC") from None


def _utf8(value: str) -> str:
    # JSON may carry lone surrogates (\\ud800) that no UTF-8 file or tokenizer accepts
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("contains a lone UTF-16 surrogate; send valid Unicode text") from None
    return value


def _utf8_json(value: Any) -> Any:
    if isinstance(value, str):
        _utf8(value)
    elif isinstance(value, dict):
        for key, item in value.items():
            _utf8_json(key)
            _utf8_json(item)
    elif isinstance(value, list):
        for item in value:
            _utf8_json(item)
    return value


def _temperature(value: float) -> float:
    # a positive temperature this small overflows the logits to inf
    if 0.0 < value < MIN_TEMPERATURE:
        raise ValueError(f"use 0 for greedy decoding, or at least {MIN_TEMPERATURE}")
    return value


MIN_TEMPERATURE = 1e-3
Text = Annotated[str, AfterValidator(_utf8)]
Time = Annotated[datetime, AfterValidator(_utc)]
Role = Literal[ROLES]
Metadata = Annotated[dict[str, Any], AfterValidator(_utf8_json)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CreateMemory(Strict):
    name: str = Field("", max_length=200, pattern=r"^[^\x00-\x1f\x7f]*$",
                      description="a label for people; ids identify memories")


class MemoryOut(BaseModel):
    id: str
    name: str
    created: datetime


class MemoryList(BaseModel):
    memories: list[MemoryOut]


class AppendMessage(Strict):
    text: Text = Field(description="the message; durable when the response arrives")
    role: Role = "user"
    time: Time | None = Field(None, description="when it happened (ISO 8601 or epoch seconds); default now")
    metadata: Metadata | None = None


class Appended(BaseModel):
    seq: int


class BatchMessage(Strict):
    content: Text
    role: Role = "user"
    time: Time | None = None
    metadata: Metadata | None = None


class AppendBatch(Strict):
    messages: list[BatchMessage] = Field(min_length=1)


class AppendedBatch(BaseModel):
    seqs: list[int]


class AskRequest(Strict):
    question: Text
    max_new_tokens: int | None = Field(None, ge=1, description="default 128 or the service's limit if lower; "
                                                                 "at most the limit (max_new_tokens in /v1/health)")
    temperature: Annotated[float, AfterValidator(_temperature)] = Field(
        0.0, ge=0.0, le=5.0, description=f"0 is greedy; sampling needs at least {MIN_TEMPERATURE}")
    top_p: float = Field(1.0, ge=1e-6, le=1.0)
    seed: int | None = Field(None, ge=0, le=MAX_INT64)
    citations: int = Field(5, ge=0, le=50)
    copy_bias: float = Field(DEFAULT_COPY_BIAS, ge=0.0, le=100.0,
                             description="logit bonus for tokens that continue the answer inside the chunks it "
                                         "reads (0 = the model alone)")


class CitationOut(BaseModel):
    chunk_id: int
    text: str
    weight: float
    roles: list[str]
    time: datetime | None


class AnswerOut(BaseModel):
    text: str
    citations: list[CitationOut]
    tokens: int
    timings: dict[str, float]


class SearchRequest(Strict):
    query: Text
    k: int = Field(8, ge=1, le=100)


class HitOut(BaseModel):
    chunk_id: int
    text: str
    score: float
    roles: list[str]
    time: datetime | None


class SearchOut(BaseModel):
    hits: list[HitOut]


class ForgetRequest(Strict):
    """At least one selector; chunk ids add up, the time bounds and ``where`` narrow the event filter."""

    chunk_ids: list[Annotated[int, Field(ge=0, le=MAX_INT64)]] | None = Field(None, max_length=100_000)
    before: Time | None = None
    after: Time | None = None
    where: Metadata | None = Field(None, description="metadata items an event must all hold")


class Forgotten(BaseModel):
    forgotten: int = Field(description="chunks plus events newly forgotten")


class TierStats(BaseModel):
    segments: int
    bytes: int
    chunks: int


class StatsOut(BaseModel):
    id: str
    model: str
    trained_weights: bool
    device: str
    tokens: int
    last_seq: int
    encoded_upto_seq: int
    chunks: int
    forgotten_chunks: int
    landmark_rows: int
    tiers: dict[str, TierStats]
    disk_bytes: dict[str, int]


class Health(BaseModel):
    status: Literal["ok"]
    version: str
    model: str
    trained_weights: bool
    open_memories: int
    asks_running: int
    max_new_tokens: int
    max_append_chars: int
    max_batch_messages: int
