"""Long memories from real haystack text, encoded once, fast and exactly (issue 7: S-NIAH up to 16M tokens).

    python bench/haystack.py --tokens 64K [--device cuda] [--threads 1] [--extend] [--sequential] [--json out.json]

``Memory.extend`` encodes a stream in order, in 1K-token blocks with a commit every 64 chunks: ~5K tokens/s
on an H100, an hour for 16M tokens. ``fill`` makes the same memory another way:

1. ``Stream``: the messages rendered and tokenised exactly as the ingest does (ChatML turns, per event);
2. ``encode``: the token stream through ``HSAForCausalLM.encode_parallel`` (segments run in batches, each
   after the lower decoder's reach of the text before it: equal to in-order ingest up to float rounding);
3. ``write``: the events, the chunk rows (text, time span, roles, seqs), landmarks and K/V, and the ingest
   state (SWA caches, open chunk, recent tail, cursor) through ``store.append_events`` / ``add_chunks``, one
   commit per encoded batch with the exact state there. That is what ``extend`` stores
   (tests/bench/test_haystack.py), so the memory keeps appending normally.

``with_needle`` puts a needle into an encoded haystack without encoding the haystack again
(bench/niah.py ``--shared-haystack``).

The command times the three steps on a haystack of held-out corpus text. ``--extend`` also builds the same
memory with ``Memory.extend`` and compares the two (landmarks, chunk rows, ``search``); ``--sequential``
times ``encode_chunks`` alone in the ingest's 1K blocks: the lower decoder + encoder's own rate.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable, Mapping

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from hsa_memory import Memory  # noqa: E402
from hsa_memory.ingest import Ingestor, split_for_tokenizer  # noqa: E402
from hsa_memory.memory import check_role, check_text, check_time  # noqa: E402
from hsa_memory.model import KVCache, StreamState  # noqa: E402
from hsa_memory.model.modeling import lower_reach  # noqa: E402
from hsa_memory.model.tokenizer import render_turn  # noqa: E402
from hsa_memory.store import NewChunk  # noqa: E402
from hsa_memory.store.records import from_micros, to_micros  # noqa: E402
from hsa_memory.stream import IngestState  # noqa: E402

# (text, role, time, metadata), as store.append_events takes them
Event = tuple[str, str, datetime, dict]
# far from every seed the training runs drew, like bench/niah.py's
HAYSTACK_SEED = 10_000_019


def events_of(messages: Iterable[Mapping]) -> list[Event]:
    """Messages ({"role", "content", "time"}) checked as ``Memory.extend`` checks them."""
    return [(check_text("content", m["content"]), check_role(m.get("role", "user")), check_time(m.get("time")), {})
            for m in messages]


def haystack_messages(tokens: int, source=None, seed: int = HAYSTACK_SEED) -> list[dict]:
    """About ``tokens`` of held-out corpus text (Austen, KJV; repeated as often as needed) as user messages of
    ≤ 256 tokens one minute apart: the S-NIAH generator's haystack, without a needle."""
    import random

    from hsa_memory.training.data.niah import build_haystack
    from hsa_memory.training.tasks import sources

    source = source or sources("corpora", "heldout").haystack
    start = random.Random(f"haystack:{seed}").randrange(len(source))
    return [{"role": m.role, "content": m.content, "time": m.time} for m in build_haystack(source, tokens, [], start=start)]


def turn_ids(tokenizer, role: str, text: str) -> list[int]:
    """One event's tokens, as ``Ingestor.tokens_of`` makes them."""
    return [t for piece in split_for_tokenizer(render_turn(role, text))
            for t in tokenizer.encode(piece, add_special_tokens=False).ids]


@dataclass
class Stream:
    """Events and the token stream the ingest makes of them."""

    events: list[Event]
    ids: torch.Tensor  # (T,) int64
    bounds: np.ndarray  # (E + 1,) where each event's tokens start; bounds[-1] = T

    @classmethod
    def of(cls, tokenizer, events: list[Event], limit: int | None = None) -> "Stream":
        """Tokenise every event (in parallel batches); with ``limit``, keep the events that end within it."""
        pieces, owners = [], []
        for index, (text, role, _, _) in enumerate(events):
            for piece in split_for_tokenizer(render_turn(role, text)):
                pieces.append(piece)
                owners.append(index)
        counts = np.zeros(len(events), dtype=np.int64)
        arrays = []
        for owner, encoding in zip(owners, tokenizer.encode_batch(pieces, add_special_tokens=False)):
            counts[owner] += len(encoding.ids)
            arrays.append(np.asarray(encoding.ids, dtype=np.int64))
        bounds = np.concatenate([[0], np.cumsum(counts)])
        keep = len(events) if limit is None else max(1, int(np.searchsorted(bounds, limit, side="right")) - 1)
        ids = torch.from_numpy(np.concatenate(arrays)[: bounds[keep]])
        return cls(events[:keep], ids, bounds[: keep + 1])

    def __len__(self) -> int:
        return int(self.ids.shape[0])

    def event_at(self, positions) -> np.ndarray:
        """Index of the event each token position belongs to."""
        return np.searchsorted(self.bounds, positions, side="right") - 1

    def replaced(self, tokenizer, index: int, text: str) -> "Stream":
        """This stream with event ``index`` holding ``text``, which must tokenise to as many tokens."""
        _, role, when, metadata = self.events[index]
        lo, hi = int(self.bounds[index]), int(self.bounds[index + 1])
        new = turn_ids(tokenizer, role, text)
        if len(new) != hi - lo:
            raise ValueError(f"event {index} has {hi - lo} tokens, the new text {len(new)}: every other token would move")
        ids = self.ids.clone()
        ids[lo:hi] = torch.tensor(new)
        events = list(self.events)
        events[index] = (text, role, when, metadata)
        return Stream(events, ids, self.bounds)

    def chunk_texts(self, tokenizer, chunk_size: int, first: int = 0, stop: int | None = None) -> list[str]:
        """The stored text of full chunks ``first..stop-1``, decoded as the ingest decodes it."""
        stop = len(self) // chunk_size if stop is None else stop
        rows = self.ids[first * chunk_size:stop * chunk_size].view(-1, chunk_size).tolist()
        return tokenizer.decode_batch(rows, skip_special_tokens=True)


@dataclass
class Encoded:
    """Full chunks of a stream, encoded, on the CPU, and exact stream states at some positions."""

    landmarks: torch.Tensor  # (C, R) float32
    keys: torch.Tensor  # (C, S, HK, D), the model's dtype
    values: torch.Tensor
    # the stream state at each encoded batch's end and at the stream's end (open chunk included)
    states: dict[int, StreamState]


def on_cpu(state: StreamState) -> StreamState:
    caches = []
    for cache in state.caches:
        copy = KVCache(cache.window)
        if cache.keys is not None:
            copy.keys, copy.values = cache.keys.cpu(), cache.values.cpu()
        caches.append(copy)
    pending = state.pending_hidden.cpu() if state.pending_hidden is not None else None
    return StreamState(state.position, caches, pending, list(state.pending_ids))


def encode(model, ids: torch.Tensor, segment_tokens: int, batch_segments: int, start: int = 0,
           stop: int | None = None) -> Encoded:
    """``encode_parallel`` gathered on the CPU (rows from chunk ``start // chunk_size``)."""
    landmarks, keys, values, states = [], [], [], {}
    for piece in model.encode_parallel(ids, segment_tokens, batch_segments, start, stop):
        landmarks.append(piece.memory.landmarks.float().cpu())
        keys.append(piece.memory.keys.cpu())
        values.append(piece.memory.values.cpu())
        states[piece.state.position] = on_cpu(piece.state)
    return Encoded(torch.cat(landmarks), torch.cat(keys), torch.cat(values), states)


def ingest_state(stream: Stream, state: StreamState, seqs: np.ndarray, micros: np.ndarray,
                 tail_window: int) -> tuple[IngestState, int]:
    """The ingest state (and cursor) ``Ingestor`` holds with the stream fed up to ``state.position``."""
    position = state.position
    full = position - len(state.pending_ids)
    pending = stream.event_at(np.arange(full, position))
    fed = int(stream.event_at(position - 1))
    if position == len(stream) or stream.bounds[fed + 1] == position:
        cursor, partial = int(seqs[fed]), None
    else:
        cursor, partial = (int(seqs[fed - 1]) if fed else 0), (int(seqs[fed]), int(position - stream.bounds[fed]))
    # the ingest forgets an event's role and time once no open token and no event being fed needs them
    live = set(pending.tolist()) | ({int(stream.event_at(full - 1))} if full else set(range(fed + 1)))
    roles = [stream.events[e][1] for e in sorted(live)]
    event_info = {int(seqs[e]): (role, int(micros[e])) for e, role in zip(sorted(live), roles)}
    lo = max(0, position - tail_window)
    tail_seqs = seqs[stream.event_at(np.arange(lo, position))].tolist()
    return IngestState(state, seqs[pending].tolist(), event_info, stream.ids[lo:position].tolist(), tail_seqs,
                       partial), cursor


def new_chunks(stream: Stream, texts: list[str], seqs: np.ndarray, micros: np.ndarray, first: int, stop: int,
               chunk_size: int) -> list[NewChunk]:
    """Catalog rows of chunks ``first..stop-1`` as the ingest writes them: the events each spans give its time
    span, roles (in order) and seqs."""
    starts = np.arange(first, stop) * chunk_size
    firsts, lasts = stream.event_at(starts), stream.event_at(starts + chunk_size - 1)
    rows = []
    for c, a, b in zip(range(first, stop), firsts.tolist(), lasts.tolist()):
        roles = list(dict.fromkeys(stream.events[e][1] for e in range(a, b + 1)))
        span = micros[a:b + 1]
        rows.append(NewChunk(position=c, token_start=c * chunk_size, token_end=(c + 1) * chunk_size,
                             time_start=from_micros(int(span.min())), time_end=from_micros(int(span.max())),
                             roles=roles, text=texts[c], first_seq=int(seqs[a]), last_seq=int(seqs[b])))
    return rows


def write(mem: Memory, stream: Stream, encoded: Encoded, texts: list[str]) -> None:
    """Write a whole encoded stream into an empty memory, as ``extend`` would have: events, then one commit of
    chunks per known state (each with the ingest state there)."""
    model, store = mem.loaded.model, mem.store
    S = model.config.chunk_size
    with mem._lock, store.writer():
        if store.ingest_cursor()[0] or len(store.landmarks()[1]):
            raise RuntimeError(f"{mem.path} is not empty: write() fills a new memory with a whole stream")
        seqs = np.asarray(store.append_events(stream.events), dtype=np.int64)
        micros = np.array([to_micros(when) for _, _, when, _ in stream.events], dtype=np.int64)
        done = 0
        for position in sorted(encoded.states):
            stop = position // S
            state, cursor = ingest_state(stream, encoded.states[position], seqs, micros, mem.ingestor.tail_window)
            store.add_chunks(new_chunks(stream, texts, seqs, micros, done, stop, S), encoded.landmarks[done:stop],
                             encoded.keys[done:stop], encoded.values[done:stop], ingest_state=state.to_bytes(),
                             encoded_upto_seq=cursor)
            done = stop
        mem.ingestor = Ingestor(model, mem.loaded.tokenizer, store)
        mem._recent.clear()


def fill(mem: Memory, messages: Iterable[Mapping], segment_tokens: int = 65536, batch_segments: int = 4,
         limit: int | None = None) -> tuple[Stream, Encoded, list[str], dict[str, float]]:
    """Fill an empty memory with ``messages`` (optionally only those within ``limit`` tokens); returns the
    stream, its encoding and chunk texts (for ``with_needle``) and the seconds of each step."""
    tokenizer, model = mem.loaded.tokenizer, mem.loaded.model
    seconds = {}
    started = time.perf_counter()
    stream = Stream.of(tokenizer, events_of(messages), limit)
    texts = stream.chunk_texts(tokenizer, model.config.chunk_size)
    seconds["tokenize"] = time.perf_counter() - started
    started = time.perf_counter()
    encoded = encode(model, stream.ids, segment_tokens, batch_segments)
    seconds["encode"] = time.perf_counter() - started
    started = time.perf_counter()
    write(mem, stream, encoded, texts)
    seconds["write"] = time.perf_counter() - started
    return stream, encoded, texts, seconds


_SENTENCE_END = re.compile(r"[.!?][\"')\]]*\s+")


def insert_needle(tokenizer, role: str, text: str, needle: str, fraction: float) -> str:
    """``text`` with ``needle`` at its sentence boundary nearest ``fraction`` of it, cut back to its own token
    count: the text after the needle loses its end, or, when nothing follows the needle, the text before it
    loses its start."""
    target = len(turn_ids(tokenizer, role, text))
    boundaries = [0, *(m.end() for m in _SENTENCE_END.finditer(text)), len(text)]
    cut = min(boundaries, key=lambda b: abs(b - fraction * len(text)))
    head, tail = text[:cut], text[cut:]
    head = head + " " if head and not head[-1].isspace() else head
    candidates = [head + needle + (" " + tail[:end] if end else "") for end in range(len(tail), -1, -1)]
    candidates += [head[start:] + needle for start in range(1, len(head) + 1)]
    for candidate in candidates:
        if candidate.strip() and len(turn_ids(tokenizer, role, candidate)) == target:
            return candidate
    raise ValueError(f"no cut of a {target}-token message holds the needle in exactly {target} tokens")


@dataclass
class Needle:
    stream: Stream
    encoded: Encoded
    texts: list[str]
    event: int  # the message that holds it
    tokens: tuple[int, int]  # the stream positions whose token changed: [first, last]
    chunks: tuple[int, int]  # the chunks encoded again: [first, stop)
    depth: float  # where it landed: the share of the stream before its first token


def with_needle(model, tokenizer, stream: Stream, encoded: Encoded, texts: list[str], needle: str, depth: float,
                segment_tokens: int = 65536, batch_segments: int = 4) -> Needle:
    """The encoded haystack with ``needle`` at ``depth``, exactly as in-order ingest would encode it, without
    encoding the haystack again.

    The needle goes into the message at that depth (at its sentence boundary nearest the depth), and the message
    is cut back to its own token count (``insert_needle``): every other token keeps its place. A chunk reads only
    the lower decoder's reach (n·(W−1) tokens) before it, so only the chunks from the first changed token to a
    reach past the last differ: ~(message + reach) / 64 of them (~125 for hsa-smollm2-135m), encoded again from
    the reach before them. Every other chunk, and every stream state outside that span, is the haystack's
    (tests/bench/test_haystack.py checks the result against ``Memory.extend`` of the changed messages). Depth 1
    puts the needle at the end of the last message, inside the question's recent window.
    """
    S = model.config.chunk_size
    target = min(int(depth * len(stream)), len(stream) - 1)
    room = len(turn_ids(tokenizer, "user", needle)) + 16
    sizes = np.diff(stream.bounds)
    index = int(stream.event_at(target))
    candidates = [e for e in sorted(range(len(sizes)), key=lambda e: abs(e - index))[:64] if sizes[e] >= room]
    if not candidates:
        raise ValueError(f"no message near depth {depth} has the {room} tokens the needle needs")
    index = candidates[0]
    text, role, _, _ = stream.events[index]
    lo = int(stream.bounds[index])
    fraction = min(max((target - lo) / sizes[index], 0.0), 1.0)
    changed_text = insert_needle(tokenizer, role, text, needle, fraction)
    changed = stream.replaced(tokenizer, index, changed_text)
    # the needle's first token (up to a merge at its edge): the turn's header, then the text before it
    at = lo + len(turn_ids(tokenizer, role, changed_text[:changed_text.index(needle)])) - 2
    moved = torch.nonzero(changed.ids[lo:lo + sizes[index]] != stream.ids[lo:lo + sizes[index]])[:, 0]
    first, last = lo + int(moved[0]), lo + int(moved[-1])
    reach = lower_reach(model.config)
    full = len(stream) // S
    start, stop = first // S, math.ceil((last + 1 + reach) / S)
    region = encode(model, changed.ids, segment_tokens, batch_segments, start * S, stop * S if stop < full else None)
    stop = start + region.landmarks.shape[0]
    landmarks, keys, values = encoded.landmarks.clone(), encoded.keys.clone(), encoded.values.clone()
    landmarks[start:stop], keys[start:stop], values[start:stop] = region.landmarks, region.keys, region.values
    # a state at p holds what tokens p - reach .. p - 1 made
    states = {p: s for p, s in encoded.states.items() if p <= first or p >= last + 1 + reach}
    states.update(region.states)
    changed_texts = list(texts)
    changed_texts[first // S:last // S + 1] = changed.chunk_texts(tokenizer, S, first // S, min(last // S + 1, full))
    return Needle(changed, Encoded(landmarks, keys, values, states), changed_texts[:full], index, (first, last),
                  (start, stop), at / len(stream))


def encode_rate(model, ids: torch.Tensor, block_tokens: int = 1024) -> float:
    """Tokens/s of ``encode_chunks`` in the ingest's blocks, in order (the model alone, no store)."""
    started = time.perf_counter()
    state = None
    for lo in range(0, ids.shape[0], 16 * block_tokens):
        state = model.encode_chunks(ids[lo:lo + 16 * block_tokens], state, block_tokens).state
    if ids.is_cuda or model.lm_head.weight.is_cuda:
        torch.cuda.synchronize()
    return ids.shape[0] / (time.perf_counter() - started)


def compare(a: Memory, b: Memory, queries: list[str]) -> dict:
    """How far two memories of the same stream differ: landmarks, chunk rows, search hits."""
    landmarks_a, ids_a = a.store.landmarks()
    landmarks_b, ids_b = b.store.landmarks()
    rows_a, rows_b = a.store.chunks(ids_a.tolist()), b.store.chunks(ids_b.tolist())
    fields = ("position", "token_start", "token_end", "time_start", "time_end", "roles", "text", "first_seq", "last_seq")
    same_rows = len(rows_a) == len(rows_b) and all(
        getattr(x, f) == getattr(y, f) for x, y in zip(rows_a, rows_b) for f in fields)
    hits = [[h.chunk_id for h in mem.search(q, k=4)] for q in queries for mem in (a, b)]
    scale = landmarks_b.abs().max().item() if len(landmarks_b) else 1.0
    return {"chunks": len(rows_a), "same_rows": same_rows,
            "landmark_max_rel_diff": (landmarks_a - landmarks_b).abs().max().item() / scale if same_rows else None,
            "same_search_hits": hits[0::2] == hits[1::2]}


def parse_size(text: str) -> int:
    text = text.strip().upper()
    return int(float(text[:-1]) * {"K": 1024, "M": 1024 ** 2}[text[-1]]) if text[-1] in "KM" else int(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", default="64K")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--model", default="hsa-smollm2-135m")
    parser.add_argument("--threads", type=int)
    parser.add_argument("--segment-tokens", type=int, default=65536)
    parser.add_argument("--batch-segments", type=int, default=4)
    parser.add_argument("--extend", action="store_true", help="also build it with Memory.extend and compare")
    parser.add_argument("--sequential", action="store_true", help="also time encode_chunks alone in 1K blocks")
    parser.add_argument("--workdir", help="where the memories go (default: a temp dir, removed at the end)")
    parser.add_argument("--json")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    tokens = parse_size(args.tokens)
    started_at = datetime.now(timezone.utc)
    root = Path(args.workdir or tempfile.mkdtemp(prefix="hsa-haystack-"))
    messages = haystack_messages(int(tokens * 1.05))
    result: dict = {"tokens": tokens, "device": args.device, "segment_tokens": args.segment_tokens,
                    "batch_segments": args.batch_segments}
    with Memory(root / "fill", model=args.model, device=args.device) as filled:
        stream, _, _, seconds = fill(filled, messages, args.segment_tokens, args.batch_segments, limit=tokens)
        kept = messages[:len(stream.events)]
        total = sum(seconds.values())
        result.update(stream_tokens=len(stream), events=len(kept), **{f"{k}_s": v for k, v in seconds.items()},
                      fill_tok_s=len(stream) / total, encode_tok_s=len(stream) / seconds["encode"])
        print(json.dumps(result), flush=True)
        if args.sequential:
            result["sequential_encode_tok_s"] = encode_rate(filled.loaded.model, stream.ids)
            print(f"encode_chunks alone, 1K blocks: {result['sequential_encode_tok_s']:,.0f} tok/s", flush=True)
        if args.extend:
            with Memory(root / "extend", model=args.model, device=args.device) as extended:
                began = time.perf_counter()
                extended.extend(kept)
                result["extend_s"] = time.perf_counter() - began
                result["extend_tok_s"] = len(stream) / result["extend_s"]
                result["compare"] = compare(filled, extended, ["Who was at the ball?", "What did the king command?"])
    result["machine"] = (f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
                         f"{torch.get_num_threads()} threads, load {os.getloadavg()[0]:.1f}"
                         + (f", {torch.cuda.get_device_name()}" if args.device.startswith("cuda") else ""))
    result["started"] = started_at.isoformat()
    print(json.dumps(result, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))
    if not args.workdir:
        import shutil

        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
