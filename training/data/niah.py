"""Needle-in-a-haystack tasks: S-NIAH, MQ-NIAH, variable tracking and self-copy.

Each generator is a pure function of its seed and arguments (``random.Random(seed)``, no global
state) and returns an :class:`~.records.Example` whose messages are the haystack (user messages of
about ``message_tokens`` tokens, or one message with ``layout="single"``) and whose questions are
asked after it. ``target_tokens`` is the length of the whole ChatML rendering, questions and
replies included, as measured by ``count_tokens``.

Questions list their hard negatives in ``metadata["decoy_spans"]`` (``text`` inside the message
``message_id``): MQ-NIAH the other needles' values, variable tracking the statements of the chains not
asked about; S-NIAH has none.

>>> ex = s_niah(seed=3, target_tokens=512, depth=0.5)
>>> q = ex.questions[0]
>>> q.answer in ex.message(q.evidence_message_ids[0]).content
True
"""
from __future__ import annotations

import bisect
import datetime as dt
import random
import re
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from . import vocab
from .records import Example, Message, Question
from .text import Filler, TextSource, TokenCounter, fit_length, make_source, split_sentences, trim_to_tokens

__all__ = ["s_niah", "mq_niah", "variable_tracking", "self_copy", "Insert", "build_haystack"]

NEEDLE_TEMPLATES = (
    "The special magic {noun} for {key} is: {value}.",
    "The special magic {noun} for {key} is {value}.",
    "Remember it well: the special magic {noun} for {key} is {value}.",
    "One special magic {noun} is worth noting: for {key} it is {value}.",
)
NEEDLE_QUESTIONS = (
    "What is the special magic {noun} for {key} mentioned in the provided text?",
    "What is the special magic {noun} for {key}?",
    "Which special magic {noun} was given for {key}?",
    "Tell me the special magic {noun} for {key}.",
)
NEEDLE_RESPONSE = "The special magic {noun} for {key} is {value}."
VALUE_NOUNS = {"number": "number", "uuid": "uuid", "word": "word"}

VT_QUESTIONS = (
    "Find all variables that are assigned the value {value} in the text above.",
    "Which variables end up equal to {value}? List them all.",
    "List every variable whose value is {value}.",
)
VT_RESPONSE = "The variables equal to {value} are: {answer}"

COPY_QUESTIONS = (
    'Repeat, word for word, the passage that begins "{prefix}".',
    'Copy out exactly the paragraph starting with "{prefix}".',
    'Recite the passage that starts "{prefix}" without changing a word.',
)
COPY_PREFIX_WORDS = 8

# haystack messages get synthetic times one minute apart from this moment
HAYSTACK_START = dt.datetime(2024, 1, 1, 9, 0)


@dataclass
class Insert:
    """Text placed into the haystack at a depth (fraction of the filler's tokens before it)."""

    text: str
    depth: float
    tag: str
    as_paragraph: bool = False
    # filled in when placed
    message_id: str = ""
    actual_depth: float = 0.0


def _avoid_pattern(strings: Sequence[str]) -> Callable[[str], bool]:
    pattern = re.compile("|".join(rf"(?<!\w){re.escape(s)}(?!\w)" for s in strings if s))
    return lambda text: pattern.search(text) is not None


def _time(index: int) -> str:
    return (HAYSTACK_START + dt.timedelta(minutes=index)).strftime("%Y-%m-%dT%H:%M")


def _place(count: TokenCounter, paragraphs: list[str], inserts: list[Insert]) -> list[list[tuple[str, list[Insert]]]]:
    """Paragraphs as lists of (text, inserts in it) pieces, with each insert at its depth.

    A sentence insert goes to the sentence boundary nearest its depth; a paragraph insert
    (``as_paragraph``) to the nearest paragraph boundary. ``actual_depth`` records where it landed.
    """
    cumulative = [0]
    for paragraph in paragraphs:
        cumulative.append(cumulative[-1] + count(paragraph))
    total = max(cumulative[-1], 1)
    before: dict[int, list[Insert]] = {}
    inside: dict[int, dict[int, list[Insert]]] = {}
    sentences_of: dict[int, list[str]] = {}
    for insert in sorted(inserts, key=lambda ins: ins.depth):
        target = insert.depth * total
        i = min(max(bisect.bisect_right(cumulative, target) - 1, 0), len(paragraphs) - 1)
        if not paragraphs or insert.as_paragraph:
            slot = 0
            if paragraphs:
                slot = i + 1 if target - cumulative[i] > cumulative[i + 1] - target else i
            insert.actual_depth = cumulative[slot] / total
            before.setdefault(slot, []).append(insert)
            continue
        sentences = sentences_of.setdefault(i, split_sentences(paragraphs[i]))
        tokens_before, best, best_tokens = cumulative[i], 0, cumulative[i]
        for k, sentence in enumerate(sentences):
            tokens_before += count(sentence)
            if abs(target - tokens_before) < abs(target - best_tokens):
                best, best_tokens = k + 1, tokens_before
        insert.actual_depth = best_tokens / total
        inside.setdefault(i, {}).setdefault(best, []).append(insert)
    out: list[list[tuple[str, list[Insert]]]] = []
    for i in range(len(paragraphs) + 1):
        out += [[(insert.text, [insert])] for insert in before.get(i, [])]
        if i == len(paragraphs):
            break
        if i not in inside:
            out.append([(paragraphs[i], [])])
            continue
        pieces: list[tuple[str, list[Insert]]] = []
        sentences = sentences_of[i]
        for k in range(len(sentences) + 1):
            pieces += [(insert.text, [insert]) for insert in inside[i].get(k, [])]
            if k < len(sentences):
                pieces.append((sentences[k], []))
        out.append(pieces)
    return out


def _to_messages(source: TextSource, placed: list[list[tuple[str, list[Insert]]]], layout: str,
                 message_tokens: int) -> list[Message]:
    count = source.count
    # a unit is a run of text that stays in one message
    units: list[tuple[str, list[Insert]]] = []
    for pieces in placed:
        text = " ".join(t for t, _ in pieces)
        inserts = [i for _, ins in pieces for i in ins]
        if layout == "single" or count(text) <= message_tokens:
            units.append((text, inserts))
            continue
        # a long paragraph is cut at sentence ends into runs of at most message_tokens
        runs: list[tuple[list[str], list[Insert]]] = [([], [])]
        used = 0
        for piece, ins in pieces:
            for sentence in ([piece] if ins else split_sentences(piece)):
                n = count(sentence)
                if runs[-1][0] and used + n > message_tokens:
                    runs.append(([], []))
                    used = 0
                runs[-1][0].append(sentence)
                runs[-1][1].extend(ins)
                used += n
        units += [(" ".join(sentences), ins) for sentences, ins in runs]
    groups: list[tuple[list[str], list[Insert]]] = []
    used = 0
    for text, inserts in units:
        n = count(text)
        if not groups or (layout != "single" and used + n > message_tokens):
            groups.append(([], []))
            used = 0
        groups[-1][0].append(text)
        groups[-1][1].extend(inserts)
        used += n
    messages = []
    for index, (texts, inserts) in enumerate(groups):
        message_id = f"m{index:05d}"
        for insert in inserts:
            insert.message_id = message_id
        messages.append(Message("user", "\n\n".join(texts), message_id, _time(index), "haystack",
                                {"inserts": [i.tag for i in inserts]} if inserts else {}))
    return messages


def build_haystack(source: TextSource, filler_tokens: int, inserts: list[Insert], *, start: int,
                   layout: str = "paragraphs", message_tokens: int = 256,
                   avoid: Callable[[str], bool] | None = None) -> list[Message]:
    """Filler of about ``filler_tokens`` tokens from ``source`` (from paragraph ``start``), with inserts placed."""
    if layout not in ("paragraphs", "single"):
        raise ValueError(f"unknown layout {layout!r}; use 'paragraphs' or 'single'")
    paragraphs = source.take(None, filler_tokens, avoid=avoid, start=start) if filler_tokens > 0 else []
    placed = _place(source.count, paragraphs, inserts)
    return _to_messages(source, placed, layout, message_tokens)


def _key(rng: random.Random, used: set[str], split: str) -> str:
    adjectives = vocab.split_pool(vocab.KEY_ADJECTIVES, split)
    nouns = vocab.split_pool(vocab.KEY_NOUNS, split)
    while True:
        key = f"{rng.choice(adjectives)}-{rng.choice(nouns)}"
        if key not in used:
            used.add(key)
            return key


def _value(rng: random.Random, kind: str, used: set[str]) -> str:
    while True:
        if kind == "number":
            value = str(rng.randrange(1_000_000, 10_000_000))
        elif kind == "uuid":
            h = f"{rng.getrandbits(128):032x}"
            value = f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
        elif kind == "word":
            value = rng.choice(vocab.KEY_NOUNS) + rng.choice(vocab.KEY_NOUNS)
        else:
            raise ValueError(f"unknown value_type {kind!r}; use 'number', 'uuid' or 'word'")
        if value not in used:
            used.add(value)
            return value


def _needle_example(task: str, seed: int, target_tokens: int, depths: list[float], num_queries: int,
                    filler: Filler, count_tokens: Any, layout: str, message_tokens: int,
                    value_type: str, split: str) -> Example:
    rng = random.Random(f"{task}:{seed}")
    source = make_source(filler, count_tokens)
    noun = VALUE_NOUNS.get(value_type, value_type)
    keys: set[str] = set()
    values: set[str] = set()
    needles = []
    for k, depth in enumerate(depths):
        key, value = _key(rng, keys, split), _value(rng, value_type, values)
        template = rng.randrange(len(NEEDLE_TEMPLATES))
        text = NEEDLE_TEMPLATES[template].format(noun=noun, key=key, value=value)
        needles.append((key, value, depth, text))
    queried = sorted(rng.sample(range(len(needles)), num_queries))
    question_templates = [rng.randrange(len(NEEDLE_QUESTIONS)) for _ in queried]
    start = rng.randrange(len(source))
    avoid = _avoid_pattern([n[0] for n in needles] + [n[1] for n in needles])

    def build(filler_tokens: int) -> Example:
        inserts = [Insert(text, depth, f"needle:{k}") for k, (_, _, depth, text) in enumerate(needles)]
        messages = build_haystack(source, filler_tokens, inserts, start=start, layout=layout,
                                  message_tokens=message_tokens, avoid=avoid)
        questions = []
        for k, template in zip(queried, question_templates):
            key, value, depth, _ = needles[k]
            questions.append(Question(
                NEEDLE_QUESTIONS[template].format(noun=noun, key=key), value, [inserts[k].message_id],
                "needle", NEEDLE_RESPONSE.format(noun=noun, key=key, value=value),
                {"key": key, "depth": depth, "actual_depth": inserts[k].actual_depth,
                 # the other needles: another key's value is the plausible wrong answer
                 "decoy_spans": [{"text": needles[j][1], "message_id": inserts[j].message_id, "kind": "other_needle"}
                                 for j in range(len(needles)) if j != k]},
            ))
        return Example(task, seed, messages, questions, {
            "needles": [{"key": key, "value": value, "depth": depth, "text": text,
                         "message_id": ins.message_id, "actual_depth": ins.actual_depth}
                        for (key, value, depth, text), ins in zip(needles, inserts)],
            "layout": layout, "split": split, "source": source.name,
        })

    return fit_length(build, target_tokens, source.count)


def s_niah(seed: int, target_tokens: int = 2048, *, depth: float | None = None, filler: Filler = None,
           count_tokens: Any = None, layout: str = "paragraphs", message_tokens: int = 256,
           value_type: str = "number", split: str = "all") -> Example:
    """Single needle ("The special magic number for {key} is {value}.") at ``depth`` (random if None)."""
    rng = random.Random(f"s_niah-depth:{seed}")
    depth = rng.random() if depth is None else depth
    if not 0.0 <= depth <= 1.0:
        raise ValueError(f"depth must be within [0, 1], got {depth}")
    return _needle_example("s_niah", seed, target_tokens, [depth], 1, filler, count_tokens, layout,
                           message_tokens, value_type, split)


def mq_niah(seed: int, target_tokens: int = 2048, *, num_pairs: int = 6, num_queries: int = 2,
            depths: Sequence[float] | None = None, filler: Filler = None, count_tokens: Any = None,
            layout: str = "paragraphs", message_tokens: int = 256, value_type: str = "number",
            split: str = "all") -> Example:
    """``num_pairs`` key-value needles at random depths; ``num_queries`` of them are asked (paper: 6 and 2)."""
    if not 1 <= num_queries <= num_pairs:
        raise ValueError(f"need 1 <= num_queries <= num_pairs, got num_queries={num_queries}, num_pairs={num_pairs}")
    rng = random.Random(f"mq_niah-depths:{seed}")
    depths = [rng.random() for _ in range(num_pairs)] if depths is None else list(depths)
    if len(depths) != num_pairs:
        raise ValueError(f"got {len(depths)} depths for {num_pairs} pairs")
    return _needle_example("mq_niah", seed, target_tokens, depths, num_queries, filler, count_tokens, layout,
                           message_tokens, value_type, split)


def _variable_name(rng: random.Random, used: set[str]) -> str:
    while True:
        name = "".join(rng.choice(vocab.VT_LETTERS) for _ in range(5))
        if name not in used:
            used.add(name)
            return name


def variable_tracking(seed: int, target_tokens: int = 2048, *, num_chains: int = 2, num_hops: int = 4,
                      filler: Filler = None, count_tokens: Any = None, layout: str = "paragraphs",
                      message_tokens: int = 256) -> Example:
    """Chains ``VAR A = 12345.``, ``VAR B = VAR A.``, … spread through the haystack.

    The first chain is asked about ("which variables equal 12345?"); the others are decoys with
    their own values. The answer lists the chain's variables in assignment order.
    """
    if num_chains < 1 or num_hops < 1:
        raise ValueError(f"need num_chains >= 1 and num_hops >= 1, got {num_chains} and {num_hops}")
    rng = random.Random(f"vt:{seed}")
    source = make_source(filler, count_tokens)
    names: set[str] = set()
    values: set[str] = set()
    chains = []
    for _ in range(num_chains):
        while True:
            value = str(rng.randrange(10_000, 100_000))
            if value not in values:
                values.add(value)
                break
        chain = [_variable_name(rng, names) for _ in range(num_hops + 1)]
        # a chain's statements appear in order, at sorted random depths
        depths = sorted(rng.random() for _ in chain)
        chains.append((value, chain, depths))
    template = rng.randrange(len(VT_QUESTIONS))
    start = rng.randrange(len(source))
    avoid = _avoid_pattern(list(names) + list(values))

    def build(filler_tokens: int) -> Example:
        inserts = []
        for c, (value, chain, depths) in enumerate(chains):
            for h, (name, depth) in enumerate(zip(chain, depths)):
                rhs = value if h == 0 else f"VAR {chain[h - 1]}"
                inserts.append(Insert(f"VAR {name} = {rhs}.", depth, f"vt:{c}:{h}"))
        messages = build_haystack(source, filler_tokens, inserts, start=start, layout=layout,
                                  message_tokens=message_tokens, avoid=avoid)
        value, chain, _ = chains[0]
        evidence = list(dict.fromkeys(i.message_id for i in inserts if i.tag.startswith("vt:0:")))
        answer = ", ".join(chain)
        # the statements of the chains not asked about: their variables are the plausible wrong answers
        decoys = [{"text": i.text, "message_id": i.message_id, "kind": "other_chain"}
                  for i in inserts if not i.tag.startswith("vt:0:")]
        question = Question(VT_QUESTIONS[template].format(value=value), answer, evidence, "variable_tracking",
                            VT_RESPONSE.format(value=value, answer=answer),
                            {"variables": chain, "value": value, "decoy_spans": decoys})
        return Example("variable_tracking", seed, messages, [question], {
            "chains": [{"value": v, "variables": ch, "depths": d} for v, ch, d in chains],
            "statements": [{"text": i.text, "tag": i.tag, "message_id": i.message_id,
                            "actual_depth": i.actual_depth} for i in inserts],
            "layout": layout, "source": source.name,
        })

    return fit_length(build, target_tokens, source.count)


def self_copy(seed: int, target_tokens: int = 2048, *, passage_tokens: int = 64, depth: float | None = None,
              filler: Filler = None, count_tokens: Any = None, layout: str = "paragraphs",
              message_tokens: int = 256) -> Example:
    """A passage early in the haystack (depth 0–0.3 by default); later: "repeat the passage that begins …"."""
    rng = random.Random(f"self_copy:{seed}")
    source = make_source(filler, count_tokens)
    depth = rng.uniform(0.0, 0.3) if depth is None else depth
    # a passage of at least half the wanted length, cut at a word boundary
    index = rng.randrange(len(source))
    for step in range(len(source)):
        candidate = (index + step) % len(source)
        if source.tokens(candidate) >= passage_tokens // 2 and len(source.paragraphs[candidate].split()) > COPY_PREFIX_WORDS:
            index = candidate
            break
    passage = trim_to_tokens(source.paragraphs[index], passage_tokens, source.count)
    prefix = " ".join(passage.split()[:COPY_PREFIX_WORDS])
    template = rng.randrange(len(COPY_QUESTIONS))
    start = rng.randrange(len(source))
    prefix_pattern = " ".join(prefix.split())

    def avoid(text: str) -> bool:
        return prefix_pattern in " ".join(text.split())

    def build(filler_tokens: int) -> Example:
        insert = Insert(passage, depth, "passage", as_paragraph=True)
        messages = build_haystack(source, filler_tokens, [insert], start=start, layout=layout,
                                  message_tokens=message_tokens, avoid=avoid)
        question = Question(COPY_QUESTIONS[template].format(prefix=prefix), passage, [insert.message_id],
                            "self_copy", passage, {"depth": depth, "actual_depth": insert.actual_depth})
        return Example("self_copy", seed, messages, [question], {
            "passage_index": index, "layout": layout, "source": source.name,
        })

    return fit_length(build, target_tokens, source.count)
