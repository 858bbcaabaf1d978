"""``Memory``: what users import. Joins the model (encode, ask) and the store (durability, tiers)."""
from __future__ import annotations

import json
import logging
import math
import operator
import threading
from datetime import datetime, timezone
from os import PathLike
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping

import torch

from .copy_bias import DEFAULT_STRENGTH as DEFAULT_COPY_BIAS
from .errors import InvalidInput, MemoryClosed, ModelMismatch
from hsa_memory.store.events import ROLES
from .types import Answer, Hit

log = logging.getLogger(__name__)

# one append may hold at most this many characters (streamed through in bounded memory)
MAX_APPEND_CHARS = 64 * 1024 * 1024

_MODELS: dict[tuple[str, str, str], Any] = {}
_MODELS_LOCK = threading.Lock()


def resolve_device(device: str | torch.device) -> torch.device:
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        return torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise InvalidInput("device", f"{device!r} is not a device: use auto, cpu, cuda or cuda:N") from exc


def default_dtype(device: torch.device) -> torch.dtype:
    """bf16 on CUDA, fp32 elsewhere (bf16 matmuls are slow on most CPUs)."""
    return torch.bfloat16 if device.type == "cuda" else torch.float32


def shared_model(name: str, device: torch.device, dtype: torch.dtype):
    """One loaded model per (name, device, dtype) in a process, shared by every memory."""
    from hsa_memory.model.loading import load_model

    key = (name, str(device), str(dtype))
    with _MODELS_LOCK:
        if key not in _MODELS:
            from hsa_memory.model.config import ConfigError

            try:
                _MODELS[key] = load_model(name, device=device, dtype=dtype)
            except ConfigError as exc:
                raise InvalidInput("model", str(exc)) from exc
        return _MODELS[key]


def check_text(field: str, value: Any) -> str:
    if not isinstance(value, str):
        raise InvalidInput(field, f"must be a string, got {type(value).__name__}")
    if not value.strip():
        raise InvalidInput(field, "is empty or whitespace only")
    if len(value) > MAX_APPEND_CHARS:
        raise InvalidInput(field, f"has {len(value):,} characters; the limit is {MAX_APPEND_CHARS:,}")
    if "\x00" in value:
        raise InvalidInput(field, "contains NUL characters (binary data?)")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidInput(field, f"is not valid Unicode text (lone surrogate at index {exc.start})") from exc
    return value


def check_role(role: Any) -> str:
    if role not in ROLES:
        raise InvalidInput("role", f"{role!r} is not one of {list(ROLES)}")
    return role


def check_time(time: Any) -> datetime:
    if time is None:
        return datetime.now(timezone.utc)
    if isinstance(time, (int, float)) and not isinstance(time, bool) and math.isfinite(time):
        try:
            return datetime.fromtimestamp(time, timezone.utc)
        except (OverflowError, OSError, ValueError) as exc:
            raise InvalidInput("time", f"{time!r} epoch seconds are out of range") from exc
    if isinstance(time, str):
        try:
            time = datetime.fromisoformat(time.replace("Z", "+00:00"))
        except ValueError as exc:
            raise InvalidInput("time", f"{time!r} is not an ISO 8601 time") from exc
    if not isinstance(time, datetime):
        raise InvalidInput("time", f"must be a datetime, ISO string or epoch seconds, got {type(time).__name__}")
    time = time if time.tzinfo is not None else time.replace(tzinfo=timezone.utc)
    try:  # the store keeps UTC: a time near year 1 or 9999 may not convert
        time.astimezone(timezone.utc)
    except OverflowError as exc:
        raise InvalidInput("time", f"{time.isoformat()} is out of range once converted to UTC") from exc
    return time


def check_metadata(metadata: Any) -> dict:
    if metadata is None:
        return {}
    if not isinstance(metadata, Mapping):
        raise InvalidInput("metadata", f"must be a JSON object (dict), got {type(metadata).__name__}")
    try:
        text = json.dumps(dict(metadata), allow_nan=False, ensure_ascii=False)
        text.encode("utf-8")
        return json.loads(text)
    except (TypeError, ValueError) as exc:  # UnicodeEncodeError is a ValueError
        raise InvalidInput("metadata", f"is not JSON-serialisable UTF-8: {exc}") from exc
    except RecursionError:
        raise InvalidInput("metadata", "is nested too deeply") from None


def check_sampling(temperature: Any, top_p: Any, max_new_tokens: Any) -> None:
    if not isinstance(temperature, (int, float)) or isinstance(temperature, bool) or not 0 <= temperature <= 100 \
            or math.isnan(temperature):
        raise InvalidInput("temperature", f"must be a number in [0, 100] (0 = greedy), got {temperature!r}")
    if not isinstance(top_p, (int, float)) or isinstance(top_p, bool) or not 0 < top_p <= 1:
        raise InvalidInput("top_p", f"must be in (0, 1], got {top_p!r}")
    if not isinstance(max_new_tokens, int) or isinstance(max_new_tokens, bool) or not 1 <= max_new_tokens <= 8192:
        raise InvalidInput("max_new_tokens", f"must be an int in [1, 8192], got {max_new_tokens!r}")


def check_ask_options(seed: Any, citations: Any, answer: Any, copy_bias: Any) -> None:
    if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed < 2**63):
        raise InvalidInput("seed", f"must be None or an int in [0, 2**63), got {seed!r}")
    if not isinstance(citations, int) or isinstance(citations, bool) or citations < 0:
        raise InvalidInput("citations", f"must be an int >= 0, got {citations!r}")
    if answer is not None and not isinstance(answer, Answer):
        raise InvalidInput("answer", f"must be an Answer to fill, got {type(answer).__name__}")
    if not isinstance(copy_bias, (int, float)) or isinstance(copy_bias, bool) or not 0 <= copy_bias <= 100:
        raise InvalidInput("copy_bias", f"must be a number in [0, 100] (0 = off), got {copy_bias!r}")


def check_chunk_ids(chunk_ids: Any) -> list[int]:
    """A list of chunk ids; a string, a mapping or non-integers (floats, bools) are refused, never coerced."""
    if hasattr(chunk_ids, "tolist") and not isinstance(chunk_ids, (str, bytes)):
        chunk_ids = chunk_ids.tolist()
        chunk_ids = [chunk_ids] if isinstance(chunk_ids, int) else chunk_ids
    if isinstance(chunk_ids, (str, bytes, bytearray, Mapping)) or not isinstance(chunk_ids, Iterable):
        raise InvalidInput("chunk_ids", f"must be a list of ints, got {type(chunk_ids).__name__}")
    ids = []
    for i, value in enumerate(chunk_ids):
        if isinstance(value, bool) or not hasattr(value, "__index__"):
            raise InvalidInput(f"chunk_ids[{i}]", f"must be an int, got {type(value).__name__}")
        ids.append(operator.index(value))
    return ids


class Memory:
    """A lifelong memory in a directory: append an agent's stream, ask questions about all of it.

    >>> with Memory("~/agent-memory") as mem:
    ...     mem.append("My sister Anna moved to Lisbon in May.", role="user")
    ...     print(mem.ask("Where does Anna live?").text)
    """

    def __init__(self, path: str | Path, *, model: str = "hsa-smollm2-135m", device: str = "auto",
                 dtype: torch.dtype | None = None, catalog_url: str | None = None, create: bool = True,
                 reencode: bool = False, progress: bool = False):
        from hsa_memory.store import KVLayout, MemoryStore
        from hsa_memory.store.errors import StoreNotFound

        from .ingest import Ingestor
        from .recent import RecentContext
        from .store_memory import ChunkPositions

        if not isinstance(path, (str, PathLike)):
            raise InvalidInput("path", f"must be a path, got {type(path).__name__}")
        self.path = Path(path).expanduser()
        if self.path.exists() and not self.path.is_dir():
            raise InvalidInput("path", f"{self.path} exists and is not a directory")
        self.device = resolve_device(device)
        self.dtype = dtype or default_dtype(self.device)
        self.loaded = shared_model(model, self.device, self.dtype) if isinstance(model, str) else model
        config = self.loaded.model.config
        self.progress = progress
        try:
            self.store = MemoryStore.open(self.path, catalog_url=catalog_url)
        except StoreNotFound:
            if not create:
                raise
            layout = KVLayout(chunk_size=config.chunk_size, kv_heads=config.hsa_kv_heads, head_dim=config.hsa_head_dim,
                              landmark_dim=config.retrieval_dim, kv_dtype="bfloat16")
            self.store = MemoryStore.create(self.path, layout, model_id=self.loaded.model_id,
                                            weight_hash=self.loaded.weight_hash, catalog_url=catalog_url)
        if self.store.weight_hash != self.loaded.weight_hash or self.store.model_id != self.loaded.model_id:
            if not reencode:
                self.store.close()
                raise ModelMismatch(f"{self.path} was encoded by {self.store.model_id} ({self.store.weight_hash[:12]}), "
                                    f"not {self.loaded.model_id} ({self.loaded.weight_hash[:12]}); open it with "
                                    f"reencode=True to rebuild it from its event log")
            self.store.repair(rebuild=None, model_id=self.loaded.model_id, weight_hash=self.loaded.weight_hash)
        self._lock = threading.RLock()
        self._positions = ChunkPositions()
        self._recent = RecentContext(self.loaded.model)
        self._closed = False
        self.ingestor = Ingestor(self.loaded.model, self.loaded.tokenizer, self.store)
        self.catch_up()

    # ---- lifecycle --------------------------------------------------------------------------
    def __enter__(self) -> "Memory":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            try:
                with self.store.writer():
                    self.ingestor.flush()
            finally:
                self.store.close()
                self._closed = True

    def _refresh(self) -> None:
        """Pick up what other processes encoded since our last look (one catalog read when nothing changed)."""
        with self._lock:
            if not self.ingestor.is_current():
                self.catch_up()

    def _check_open(self) -> None:
        if self._closed:
            raise MemoryClosed(f"memory at {self.path} is closed")

    def catch_up(self) -> int:
        """Encode events appended (by this or another process) since the last commit."""
        from .ingest import Ingestor

        self._check_open()
        with self._lock, self.store.writer():
            if not self.ingestor.is_current():
                self.ingestor = Ingestor(self.loaded.model, self.loaded.tokenizer, self.store)
            return self.ingestor.ingest(self.store.events(after_seq=self.ingestor.cursor), self._progress_bar())

    def _progress_bar(self):
        if not self.progress:
            return None
        from tqdm import tqdm

        bar = tqdm(unit="tok", desc="encoding", leave=False)
        return bar.update

    # ---- writing ----------------------------------------------------------------------------
    def append(self, text: str, role: str = "user", time: datetime | str | float | None = None,
               metadata: Mapping[str, Any] | None = None) -> int:
        """Append one message; durable before this returns. Returns its sequence number."""
        return self._append_checked([(check_text("text", text), check_role(role), check_time(time),
                                      check_metadata(metadata))])[0]

    def extend(self, messages: Iterable[Mapping[str, Any]]) -> list[int]:
        """Append messages ({"role", "content", "time"?, "metadata"?}) in order; all are validated first."""
        if isinstance(messages, (str, bytes, Mapping)) or not isinstance(messages, Iterable):
            raise InvalidInput("messages", f"must be a list of message dicts, got {type(messages).__name__}")
        checked = []
        for i, message in enumerate(messages):
            if not isinstance(message, Mapping):
                raise InvalidInput(f"messages[{i}]", f"must be a dict, got {type(message).__name__}")
            unknown = set(message) - {"role", "content", "time", "metadata"}
            if unknown:
                raise InvalidInput(f"messages[{i}]", f"unknown keys {sorted(unknown)}")
            checked.append((check_text(f"messages[{i}].content", message.get("content")),
                            check_role(message.get("role", "user")), check_time(message.get("time")),
                            check_metadata(message.get("metadata"))))
        return self._append_checked(checked)

    def _append_checked(self, checked: list[tuple[str, str, datetime, dict]]) -> list[int]:
        with self._lock:
            self._check_open()
            with self.store.writer():
                if not self.ingestor.is_current():
                    self.catch_up()
                # one fsync for the whole batch; every event is durable before ingest starts
                seqs = self.store.append_events(checked)
                events = list(self.store.events(after_seq=self.ingestor.cursor))
                self.ingestor.ingest(events, self._progress_bar())
        return seqs

    def forget(self, chunk_ids: Iterable[int] | None = None, before: datetime | None = None,
               after: datetime | None = None, where: Mapping[str, Any] | None = None) -> int:
        """Forget chunks (and the events they came from) by id, time range or metadata; returns the count."""
        if chunk_ids is None and before is None and after is None and where is None:
            raise InvalidInput("forget", "give chunk_ids, before, after or where (refusing to forget everything)")
        with self._lock:
            self._check_open()
            with self.store.writer():
                if not self.ingestor.is_current():
                    self.catch_up()
                count = self.store.forget(chunk_ids=check_chunk_ids(chunk_ids) if chunk_ids is not None else None,
                                          before=check_time(before) if before is not None else None,
                                          after=check_time(after) if after is not None else None,
                                          where=check_metadata(where) if where is not None else None)
                # the recent tail and the open chunk may still hold forgotten tokens: scrub them too
                if count:
                    self.ingestor.drop_forgotten(self.store.forgotten())
                    self.ingestor.generation = self.store.generation()
                    self._recent.clear()
                return count

    # ---- reading ----------------------------------------------------------------------------
    def _asker(self):
        from .ask import AskPipeline

        return AskPipeline(self.loaded.model, self.loaded.tokenizer, _ReadingStore(self.store), self._positions,
                           self._recent)

    def ask_stream(self, question: str, *, max_new_tokens: int = 256, temperature: float = 0.0, top_p: float = 1.0,
                   seed: int | None = None, citations: int = 5, answer: Answer | None = None,
                   copy_bias: float = DEFAULT_COPY_BIAS) -> Iterator[str]:
        """Stream the answer's text; pass an ``Answer`` to receive its citations and timings at the end.

        ``copy_bias`` (≥ 0) favours tokens that continue the answer inside the chunks it reads, so values
        are copied rather than paraphrased (``hsa_memory.copy_bias``); 0 leaves the model alone."""
        check_text("question", question)
        check_sampling(temperature, top_p, max_new_tokens)
        check_ask_options(seed, citations, answer, copy_bias)
        from hsa_memory.store.errors import ChunkNotFound

        self._check_open()
        for attempt in range(5):
            self._refresh()
            generation = self.store.generation()
            with self._lock:  # appends hold it while they move the stream: tail and position must match
                state = self.ingestor.state
                tail, position = list(state.tail_ids), state.stream.position
            started = False
            try:
                for piece in self._asker().stream(question, tail, position,
                                                  answer if answer is not None else Answer(""),
                                                  max_new_tokens=max_new_tokens, temperature=temperature,
                                                  top_p=top_p, seed=seed, citations=citations,
                                                  copy_bias=float(copy_bias)):
                    started = True
                    yield piece
                return
            except ChunkNotFound:
                # another process forgot or compacted chunks after this ask read the landmarks: start
                # again on a fresh snapshot, unless text already went out (then the caller sees the error)
                if started or attempt == 4 or self.store.generation() == generation:
                    raise

    def ask(self, question: str, **options) -> Answer:
        """Answer a question from the whole memory, with citations ranked by the attention they got."""
        answer = Answer("")
        for _ in self.ask_stream(question, answer=answer, **options):
            pass
        return answer

    @torch.no_grad()
    def search(self, query: str, k: int = 8) -> list[Hit]:
        """The chunks the model's retrieval routes this query to (no generation)."""
        check_text("query", query)
        if not isinstance(k, int) or isinstance(k, bool) or k < 1:
            raise InvalidInput("k", f"must be a positive int, got {k!r}")
        from hsa_memory.store.errors import ChunkNotFound

        self._check_open()
        for attempt in range(5):
            self._refresh()
            generation = self.store.generation()
            try:
                return self._asker().search(query, k, self.ingestor.state.stream.position)
            except ChunkNotFound:
                # another process forgot or compacted chunks after this search read the landmarks:
                # the snapshot went stale, so read it again (a chunk missing without that is a real error)
                if attempt == 4 or self.store.generation() == generation:
                    raise
        raise AssertionError("unreachable")

    # ---- maintenance ------------------------------------------------------------------------
    @property
    def trained(self) -> bool:
        """Whether the model carries trained HSA weights; without them retrieval is random and
        answers can only use the recent window (the model then equals its base)."""
        return self.loaded.trained

    def stats(self) -> dict[str, Any]:
        self._check_open()
        return {**self.store.stats(), "tokens": self.ingestor.state.stream.position, "model": self.loaded.model_id,
                "trained_weights": self.loaded.trained, "device": str(self.device)}

    def verify(self):
        self._check_open()
        return self.store.verify()

    def export(self, path: str | Path) -> Path:
        """Write a snapshot (.hsamem) of this memory, state included."""
        if not isinstance(path, (str, PathLike)):
            raise InvalidInput("path", f"must be a path, got {type(path).__name__}")
        path = Path(path).expanduser()
        if path.is_dir():
            raise InvalidInput("path", f"{path} is a directory; name the snapshot file to write")
        with self._lock:
            self._check_open()
            with self.store.writer():
                self.ingestor.flush()
                self.store.export(Path(path))
        return Path(path)

    @classmethod
    def import_snapshot(cls, snapshot: str | Path, path: str | Path, *, reencode: bool = False, **options) -> "Memory":
        """Create a memory at ``path`` from a snapshot; everything is verified before anything is written."""
        from hsa_memory.store import MemoryStore

        model = options.get("model", "hsa-smollm2-135m")
        device = resolve_device(options.get("device", "auto"))
        dtype = options.get("dtype") or default_dtype(device)
        loaded = shared_model(model, device, dtype) if isinstance(model, str) else model
        snapshot, path = Path(snapshot).expanduser(), Path(path).expanduser()
        store = MemoryStore.import_snapshot(snapshot, path, expected_model_id=loaded.model_id,
                                            expected_weight_hash=loaded.weight_hash, reencode=reencode,
                                            catalog_url=options.get("catalog_url"))
        memory_id = store._memory_id
        store.close()
        try:
            return cls(path, **{**options, "model": loaded})
        except BaseException as exc:
            # the snapshot passed every check but its state does not load (a hand-made ingest state or
            # cursor): take the half-made memory away again, as a failed check would have left nothing
            import shutil

            from hsa_memory.store.errors import SnapshotError
            from hsa_memory.store.snapshot import _drop_memory_rows

            shutil.rmtree(path, ignore_errors=True)
            if options.get("catalog_url") is not None:
                _drop_memory_rows(options["catalog_url"], memory_id)
            if isinstance(exc, Exception):
                raise SnapshotError(f"the snapshot's data does not open as a memory ({exc}); "
                                    "nothing was kept") from exc
            raise


class _ReadingStore:
    """The store as one ask or search sees it: ``chunks()`` leaves out chunks forgotten (tombstoned or
    already compacted away, possibly by another process) since the read began, instead of raising
    ``ChunkNotFound`` halfway through an answer; citations and the copy bias then skip them."""

    def __init__(self, store):
        self._store = store

    def __getattr__(self, name):
        return getattr(self._store, name)

    def chunks(self, chunk_ids):
        from hsa_memory.store.errors import ChunkNotFound

        ids = [int(i) for i in chunk_ids]
        try:
            infos = self._store.chunks(ids)
        except ChunkNotFound as exc:
            gone = set(exc.chunk_ids)
            infos = self._store.chunks([i for i in ids if i not in gone])
        return [info for info in infos if not info.deleted]
