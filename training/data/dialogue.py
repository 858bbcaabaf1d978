"""Dialogue written by the base model: the corpus format, its topics and the filter that keeps it safe.

ASSETS.md has no conversational corpus, so the agent histories' small talk came only from the
hand-written exchanges of ``chatter``. SmolLM2-135M-Instruct can write more, in its own voice and
with a variety no template has: ``training.write_dialogue`` asks it for a user message on an
everyday topic, then for the assistant's reply, and saves the exchanges here (JSON lines, zstd).
Its outputs are Apache-2.0-clean.

The filler must never compete with the facts a question asks about (``chatter``'s rule), so a user
message that states something about the user (where they live or work, their family, pets, dates,
numbers) is dropped by :func:`looks_personal` — the generated text would otherwise plant decoys
with no label.
"""
from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterable, Sequence

from .corpora import cache_dir

FORMAT = 1
DEFAULT_NAME = "dialogue.jsonl.zst"
# bounded so a damaged or hostile file cannot exhaust memory while it is read
MAX_FILE_BYTES = 256 << 20
MAX_FIELD_CHARS = 4000

TOPICS = (
    "cooking pasta", "baking bread", "making soup", "brewing coffee", "loose-leaf tea", "meal planning",
    "houseplants", "growing tomatoes", "composting", "bird watching", "hiking boots", "camping in the rain",
    "learning to swim", "running a first 5K", "stretching after exercise", "yoga for beginners", "chess openings",
    "jigsaw puzzles", "knitting", "watercolour painting", "taking better photos", "learning the guitar",
    "reading more books", "poetry", "science fiction novels", "old films", "board games for a group",
    "keeping a journal", "sleeping better", "drinking enough water", "waking up early", "focusing at work",
    "writing a cover letter", "preparing for an interview", "public speaking", "learning a new language",
    "memorising vocabulary", "spreadsheets", "organising files", "backing up a computer", "choosing a password",
    "slow wifi", "a laptop that overheats", "cleaning a keyboard", "the history of the printing press",
    "how rainbows form", "why the sky is blue", "how tides work", "volcanoes", "the moon's phases",
    "black holes", "how bees make honey", "why leaves change colour", "octopuses", "migrating birds",
    "dinosaurs", "the Roman empire", "ancient Egypt", "the invention of the telephone", "how bridges stay up",
    "how airplanes fly", "electric cars", "recycling plastic", "saving energy at home", "fixing a leaky tap",
    "painting a room", "removing a stain", "folding shirts", "packing a suitcase", "travelling by train",
    "jet lag", "visiting a museum", "budgeting", "saving for a holiday", "comparing prices", "tipping",
    "writing a thank-you note", "planning a birthday party", "hosting a dinner", "choosing a gift",
    "small talk with strangers", "being a good listener", "handling stress", "taking breaks", "meditation",
    "walking meetings", "keeping a tidy desk", "time management", "to-do lists", "learning to code",
    "Python lists", "what an algorithm is", "how search engines work", "spam emails", "prime numbers",
    "fractions", "the metric system", "telling the time in other time zones", "weather forecasts", "snow",
    "thunderstorms", "the four seasons", "autumn walks", "picnics", "beaches", "mountains", "rivers",
    "city parks", "public libraries", "bicycles", "repairing a puncture", "learning to drive", "road trips",
    "podcasts", "crossword puzzles", "riddles", "jokes", "magic tricks", "origami", "kites", "sandcastles",
)

# how the writer is asked for a user message: a question or a remark an assistant can answer
ASKS = (
    "Write one short question that a curious person might ask an assistant about {topic}. "
    "Write only the question.",
    "Write one short message asking for advice about {topic}. Write only the message.",
    "Write one short question about {topic} that a student might ask. Write only the question.",
    "Write a one-sentence request for a fun fact about {topic}. Write only the request.",
    "Write one short question asking how to get started with {topic}. Write only the question.",
)

_RELATIONS = (
    r"wife|husband|partner|girlfriend|boyfriend|fianc[eé]e?|sister|brother|sibling|mother|father|mom|mum|dad|"
    r"parents?|son|daughter|kids?|children|child|baby|aunt|uncle|cousin|niece|nephew|grand\w+|in-laws?|"
    r"friend|boss|manager|colleague|coworker|neighbou?r|roommate|flatmate|landlord|doctor|teacher|dog|cat|pet|"
    r"name|birthday|address|phone|email|flight|appointment|car|house|flat|apartment|job|office|company|school|"
    r"team|salary|password|locker|code|account"
)
_PERSONAL = re.compile(
    r"\bmy\s+(?:\w+\s+)?(?:" + _RELATIONS + r")\b"
    r"|\bI(?:'m| am)\s+(?:from|moving|living|married|engaged|pregnant|allergic|vegan|vegetarian|\d)"
    r"|\bI\s+(?:live|lived|work|worked|moved|was born|grew up|study|studied|teach|own|drive|adopted|got married)\b"
    r"|\bwe\s+(?:live|moved|bought|adopted|got married)\b"
    r"|\d{2,}"  # years, dates, codes, prices: anything a question could ask back
    r"|\b(?:January|February|March|April|May|June|July|August|September|October|November|December)\b",
    re.IGNORECASE,
)


class DialogueCorpusError(ValueError):
    """A dialogue corpus file is missing, damaged, or not in this format."""


@dataclass(frozen=True)
class Exchange:
    """One user message and the assistant's reply, both written by the base model."""

    user: str
    assistant: str
    topic: str = ""


def looks_personal(text: str) -> bool:
    """True when ``text`` states something about the speaker that an agent-memory question could ask."""
    return bool(_PERSONAL.search(text))


def default_path() -> Path:
    """Where the written corpus is kept beside the parsed Debian corpora (``HSA_MEMORY_CORPORA``)."""
    return cache_dir() / DEFAULT_NAME


def save_dialogues(path: Path, exchanges: Iterable[Exchange], meta: dict | None = None) -> int:
    """Write ``exchanges`` as zstd JSON lines (a header line first); atomic; returns the count."""
    import zstandard

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps({"format": FORMAT, "kind": "hsa-memory dialogue", **(meta or {})})]
    count = 0
    for exchange in exchanges:
        lines.append(json.dumps(asdict(exchange), ensure_ascii=False))
        count += 1
    payload = zstandard.ZstdCompressor(level=19).compress(("\n".join(lines) + "\n").encode("utf-8"))
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(payload)
    tmp.replace(path)
    return count


def load_dialogues(path: Path) -> list[Exchange]:
    """Read a corpus written by :func:`save_dialogues`; any damage raises :class:`DialogueCorpusError`."""
    import zstandard

    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as error:
        raise DialogueCorpusError(f"dialogue corpus {path} cannot be read: {error}") from error
    if size > MAX_FILE_BYTES:
        raise DialogueCorpusError(f"dialogue corpus {path} is {size:,} bytes, over the {MAX_FILE_BYTES:,} limit")
    try:
        with path.open("rb") as handle:
            reader = zstandard.ZstdDecompressor().stream_reader(handle)
            pieces, total = [], 0
            while total <= MAX_FILE_BYTES * 8:
                piece = reader.read(1 << 20)
                if not piece:
                    break
                pieces.append(piece)
                total += len(piece)
            raw = b"".join(pieces)
    except (OSError, zstandard.ZstdError) as error:
        raise DialogueCorpusError(f"dialogue corpus {path} is not a valid zstd file: {error}") from error
    if len(raw) > MAX_FILE_BYTES * 8:
        raise DialogueCorpusError(f"dialogue corpus {path} decompresses beyond {MAX_FILE_BYTES * 8:,} bytes")
    try:
        lines = raw.decode("utf-8").splitlines()
    except UnicodeDecodeError as error:
        raise DialogueCorpusError(f"dialogue corpus {path} is not UTF-8: {error}") from error
    if not lines:
        raise DialogueCorpusError(f"dialogue corpus {path} is empty")
    header = _json_line(path, 1, lines[0])
    if header.get("format") != FORMAT or header.get("kind") != "hsa-memory dialogue":
        raise DialogueCorpusError(f"dialogue corpus {path}: unknown header {lines[0][:120]!r}")
    exchanges = []
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        record = _json_line(path, number, line)
        fields = {key: record.get(key) for key in ("user", "assistant", "topic")}
        if not all(isinstance(fields[k], str) and fields[k].strip() for k in ("user", "assistant")):
            raise DialogueCorpusError(f"dialogue corpus {path}, line {number}: 'user' and 'assistant' must be "
                                      "non-empty strings")
        if any(isinstance(v, str) and len(v) > MAX_FIELD_CHARS for v in fields.values()):
            raise DialogueCorpusError(f"dialogue corpus {path}, line {number}: a field is over {MAX_FIELD_CHARS} "
                                      "characters")
        exchanges.append(Exchange(fields["user"], fields["assistant"], fields["topic"] or ""))
    if not exchanges:
        raise DialogueCorpusError(f"dialogue corpus {path} holds no exchanges")
    return exchanges


def _json_line(path: Path, number: int, line: str) -> dict:
    try:
        record = json.loads(line)
    except json.JSONDecodeError as error:
        raise DialogueCorpusError(f"dialogue corpus {path}, line {number}: not JSON ({error})") from error
    if not isinstance(record, dict):
        raise DialogueCorpusError(f"dialogue corpus {path}, line {number}: not a JSON object")
    return record


def split_exchanges(exchanges: Sequence[Exchange], split: str) -> list[Exchange]:
    """Train / held-out halves by topic (every 5th topic held out), so evaluations meet unseen talk."""
    held = set(TOPICS[4::5])
    if split == "heldout":
        return [e for e in exchanges if e.topic in held]
    if split == "train":
        return [e for e in exchanges if e.topic not in held]
    raise ValueError(f"unknown split {split!r}; use 'train' or 'heldout'")
