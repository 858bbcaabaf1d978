"""Ingest: events → ChatML tokens → 64-token chunks → lower decoder + chunk encoder → store.

The event log is already durable when this runs; everything here is derived and can be rebuilt.
A commit writes the new chunks together with the ingest state and the event cursor, so a crash
between commits only means re-encoding the events after the cursor on the next open.
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import AbstractSet, Callable, Iterable, Iterator

import torch

from hsa_memory.model import HSAForCausalLM
from hsa_memory.model.tokenizer import render_turn
from hsa_memory.store import Event, NewChunk
from hsa_memory.store.records import from_micros, to_micros

from .stream import IngestState

log = logging.getLogger(__name__)

# characters per tokenizer call for huge texts; cuts fall before a space that starts a word, where
# the byte-level BPE pre-tokenizer splits anyway, so piecewise tokenisation equals whole tokenisation
TEXT_PIECE = 1 << 16
_CUT = re.compile(r"(?<=\S) (?=\w)")


def split_for_tokenizer(text: str, piece: int = TEXT_PIECE) -> Iterator[str]:
    """Cut a long text into pieces of about ``piece`` characters at word starts."""
    start = 0
    while len(text) - start > piece:
        match = _CUT.search(text, start + piece // 2, start + piece)
        cut = match.start() if match else start + piece
        yield text[start:cut]
        start = cut
    yield text[start:]


@dataclass
class PendingCommit:
    chunks: list[NewChunk]
    landmarks: list[torch.Tensor]
    keys: list[torch.Tensor]
    values: list[torch.Tensor]

    def __len__(self) -> int:
        return len(self.chunks)


class Ingestor:
    """Encodes events into chunks for one memory; owns the in-RAM ingest state between commits."""

    def __init__(self, model: HSAForCausalLM, tokenizer, store, commit_every: int = 64, block_tokens: int = 1024):
        self.model = model
        self.tokenizer = tokenizer
        self.store = store
        self.commit_every = commit_every
        self.block_tokens = block_tokens
        self.generation = store.generation()
        self.cursor, blob = store.ingest_cursor()
        # the store's cursor when this state was loaded or last committed: another writer moving it
        # means our in-RAM state is stale and must be reloaded, never written back
        self.committed = self.cursor
        self.state = IngestState.from_bytes(blob) if blob else IngestState(model.new_stream_state())
        self.dirty = False
        # set when an ingest failed part-way: the RAM state may be ahead of any commit and is never written
        self.poisoned = False

    @property
    def tail_window(self) -> int:
        """Tokens of the stream's end kept for questions: two windows, so that the question's context
        can start at a window-aligned position (hsa_memory.recent) and still fill its whole window."""
        window = self.model.config.sliding_window
        return 2 * (window if window is not None else 4096)

    def tokens_of(self, event: Event) -> Iterator[list[int]]:
        for piece in split_for_tokenizer(render_turn(event.role, event.text)):
            yield self.tokenizer.encode(piece, add_special_tokens=False).ids

    def ingest(self, events: Iterable[Event], progress: Callable[[int], None] | None = None) -> int:
        """Encode events in order; returns the number of chunks committed.

        Tokens of consecutive events are gathered into blocks of ``block_tokens`` before they go through
        the model: an agent history is mostly short messages, and one model call per message ran the lower
        decoder on ~30-token inputs (session 12: 1M tokens of agent history took 48 min on one CPU thread).
        A commit records the frontier of what was encoded: the last whole event (the cursor) and, when the
        frontier is inside an event, how many of its tokens (``state.partial``). An exception part-way (an
        interrupt, a full disk) poisons this ingestor: its RAM state is dropped, never flushed, and the next
        write reloads the last commit and encodes again from there.
        """
        pending = PendingCommit([], [], [], [])
        committed = 0
        buf_ids: list[int] = []
        buf_seqs: list[int] = []
        buf_counts: list[int] = []  # per buffered token: tokens of its event read up to and including it
        event_total: dict[int, int] = {}  # events read to their end: their token count
        previous: dict[int, int] = {}  # event seq → the whole-event frontier before it (the cursor to record)
        last_whole = self.cursor
        current = None

        def encode_front(n: int) -> None:
            nonlocal pending, committed
            ids, seqs, counts = buf_ids[:n], buf_seqs[:n], buf_counts[:n]
            del buf_ids[:n], buf_seqs[:n], buf_counts[:n]
            keep = set(buf_seqs) | ({current} if current is not None else set())
            self.encode_block(ids, seqs, pending, keep)
            if progress is not None:
                progress(n)
            if len(pending) >= self.commit_every:
                seq, count = seqs[-1], counts[-1]
                whole = event_total.get(seq) == count
                self.state.partial = None if whole else (seq, count)
                committed += self.commit(pending, seq if whole else previous[seq])
                pending = PendingCommit([], [], [], [])

        try:
            for event in events:
                if event.seq <= self.cursor:
                    continue
                current = event.seq
                previous[event.seq] = last_whole
                skip = self.state.partial[1] if self.state.partial and self.state.partial[0] == event.seq else 0
                self.state.event_info[event.seq] = (event.role, to_micros(event.time))
                consumed = 0
                for ids in self.tokens_of(event):
                    if consumed + len(ids) <= skip:
                        consumed += len(ids)
                        continue
                    if consumed < skip:
                        ids = ids[skip - consumed:]
                        consumed = skip
                    buf_ids.extend(ids)
                    buf_seqs.extend([event.seq] * len(ids))
                    buf_counts.extend(range(consumed + 1, consumed + len(ids) + 1))
                    consumed += len(ids)
                    while len(buf_ids) >= self.block_tokens:
                        encode_front(self.block_tokens)
                event_total[event.seq] = consumed
                last_whole = event.seq
            current = None
            if buf_ids:
                encode_front(len(buf_ids))
            if last_whole != self.cursor:
                # every event read is encoded whole; with none read, a resumed event's offset must stay
                self.state.partial = None
            self.cursor = last_whole
            if last_whole != self.committed:
                self.dirty = True
            if len(pending):
                committed += self.commit(pending, self.cursor)
        except BaseException:
            self.poisoned = True
            self.dirty = False
            raise
        return committed

    @torch.no_grad()
    def encode_block(self, ids: list[int], seqs: list[int], pending: PendingCommit,
                     keep: AbstractSet[int] = frozenset()) -> None:
        """Encode one block of tokens (``seqs``: each token's event) and queue the chunks it closes.

        ``keep``: events whose role and time must outlive this block (read but not yet encoded)."""
        state = self.state
        state.pending_seqs.extend(seqs)
        encoded = self.model.encode_chunks(torch.tensor(ids, dtype=torch.long), state.stream, self.block_tokens)
        state.tail_ids = (state.tail_ids + ids)[-self.tail_window:]
        state.tail_seqs = (state.tail_seqs + seqs)[-self.tail_window:]
        S = self.model.config.chunk_size
        for j in range(encoded.token_ids.shape[0]):
            chunk_seqs = state.pending_seqs[j * S:(j + 1) * S]
            roles = list(dict.fromkeys(state.event_info[s][0] for s in chunk_seqs))
            # events may arrive out of time order (clocks, imports): the span is their min and max
            times = [state.event_info[s][1] for s in dict.fromkeys(chunk_seqs)]
            position = encoded.first_position + j
            pending.chunks.append(NewChunk(
                position=position, token_start=position * S, token_end=(position + 1) * S,
                time_start=from_micros(min(times)), time_end=from_micros(max(times)),
                roles=roles, text=self.tokenizer.decode(encoded.token_ids[j].tolist(), skip_special_tokens=True),
                first_seq=chunk_seqs[0], last_seq=chunk_seqs[-1]))
        n = encoded.token_ids.shape[0]
        if n:
            pending.landmarks.append(encoded.memory.landmarks.float().cpu())
            pending.keys.append(encoded.memory.keys.cpu())
            pending.values.append(encoded.memory.values.cpu())
            # the event of the last closed token stays known (as it always has: the state's format)
            live = set(state.pending_seqs[n * S:]) | {state.pending_seqs[n * S - 1]} | keep
            state.pending_seqs = state.pending_seqs[n * S:]
            state.event_info = {s: info for s, info in state.event_info.items() if s in live}

    @torch.no_grad()
    def drop_forgotten(self, forgotten) -> bool:
        """Scrub forgotten events' tokens from the state (the recent tail and the open chunk), so no question
        sees them and no later chunk holds them; returns whether anything changed (then commits the state).

        The lower decoder's caches are rebuilt from the surviving tail before the open chunk, and the
        surviving open-chunk tokens are encoded again from its start: the stream continues as if the
        forgotten tokens had never been there (its position moves back by the open chunk's share of them).
        Call under the writer lock, with ``forgotten`` supporting ``seq in forgotten``.
        """
        state = self.state
        if not any(seq in forgotten for seq in set(state.tail_seqs) | set(state.pending_seqs)):
            return False
        stream = state.stream
        n_open = len(stream.pending_ids)
        open_start = stream.position - n_open
        n_closed = len(state.tail_ids) - n_open
        closed = [(t, s) for t, s in zip(state.tail_ids[:n_closed], state.tail_seqs[:n_closed]) if s not in forgotten]
        opened = [(t, s) for t, s in zip(stream.pending_ids, state.pending_seqs) if s not in forgotten]
        new_stream = self.model.resume_stream([t for t, _ in closed], open_start)
        if opened:
            self.model.encode_chunks(torch.tensor([t for t, _ in opened], dtype=torch.long), new_stream,
                                     self.block_tokens)
        state.stream = new_stream
        state.pending_seqs = [s for _, s in opened]
        state.tail_ids = [t for t, _ in closed + opened]
        state.tail_seqs = [s for _, s in closed + opened]
        live = set(state.pending_seqs)
        state.event_info = {s: info for s, info in state.event_info.items() if s in live}
        self.commit(PendingCommit([], [], [], []), self.cursor)
        return True

    def commit(self, pending: PendingCommit, cursor: int) -> int:
        """Write chunks + state + cursor atomically (chunks may be empty: a state-only flush)."""
        S, HK, D = self.model.config.chunk_size, self.model.config.hsa_kv_heads, self.model.config.hsa_head_dim
        R = self.model.config.retrieval_dim
        if len(pending):
            landmarks, keys, values = torch.cat(pending.landmarks), torch.cat(pending.keys), torch.cat(pending.values)
        else:
            landmarks, keys, values = torch.zeros(0, R), torch.zeros(0, S, HK, D), torch.zeros(0, S, HK, D)
        self.store.add_chunks(pending.chunks, landmarks, keys, values, ingest_state=self.state.to_bytes(),
                              encoded_upto_seq=cursor)
        self.committed = cursor
        self.dirty = False
        return len(pending)

    def is_current(self) -> bool:
        """Whether no other writer committed or forgot since we loaded or committed (call under the writer lock)."""
        return not self.poisoned and self.store.ingest_version() == (self.committed, self.generation)

    def flush(self) -> None:
        """Persist the open chunk and SWA state so the next open needs no re-encoding (writer lock held)."""
        if self.dirty and self.is_current():
            self.commit(PendingCommit([], [], [], []), self.cursor)
