"""Read R data files with the Python standard library: no R needed.

Three containers are supported, all holding R's XDR serialisation (format versions 2 and 3):

- ``.rds`` (``saveRDS``): one object, whole file gzip, bzip2, xz or uncompressed;
- ``.rda``/``.RData`` (``save``): an ``RDX2``/``RDX3`` header, then a pairlist of named objects;
- lazy-load databases (``.rdx`` index + ``.rdb`` blobs), which is how installed packages with
  ``LazyData: true`` (such as ``janeaustenr``) store their data sets.

Values come back as plain Python: character, integer, logical, double and list vectors become
:class:`RVector` (a ``list`` with ``kind`` and ``attributes``); ``NA`` becomes ``None`` (``nan`` for
doubles); symbols become ``str``. Environments, closures and byte code are not data and are
returned as opaque placeholders or rejected with :class:`RDataError`.

>>> data = read_lazyload_db("/usr/lib/R/site-library/janeaustenr/data/Rdata")  # doctest: +SKIP
>>> data["persuasion"][:2]  # doctest: +SKIP
['Persuasion', '']
"""
from __future__ import annotations

import bz2
import gzip
import lzma
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "RDataError",
    "RVector",
    "REnvironment",
    "RReference",
    "unserialize",
    "read_rds",
    "read_rda",
    "read_lazyload_db",
]

# SEXP types (R's Rinternals.h) and the serialisation pseudo-types (serialize.c)
NILSXP, SYMSXP, LISTSXP, CLOSXP, ENVSXP, PROMSXP, LANGSXP = 0, 1, 2, 3, 4, 5, 6
SPECIALSXP, BUILTINSXP, CHARSXP, LGLSXP = 7, 8, 9, 10
INTSXP, REALSXP, CPLXSXP, STRSXP, DOTSXP = 13, 14, 15, 16, 17
VECSXP, EXPRSXP, BCODESXP, EXTPTRSXP, WEAKREFSXP, RAWSXP, S4SXP = 19, 20, 21, 22, 23, 24, 25
ALTREP_SXP, ATTRLISTSXP, ATTRLANGSXP = 238, 239, 240
BASEENV_SXP, EMPTYENV_SXP = 241, 242
GENERICREFSXP, CLASSREFSXP, PERSISTSXP, PACKAGESXP, NAMESPACESXP = 245, 246, 247, 248, 249
BASENAMESPACE_SXP, MISSINGARG_SXP, UNBOUNDVALUE_SXP, GLOBALENV_SXP = 250, 251, 252, 253
NILVALUE_SXP, REFSXP = 254, 255

_PAIRLIST_TYPES = {LISTSXP, LANGSXP, CLOSXP, PROMSXP, DOTSXP, ATTRLISTSXP, ATTRLANGSXP}
_SPECIAL_ENVS = {
    GLOBALENV_SXP: "R_GlobalEnv",
    BASEENV_SXP: "base",
    EMPTYENV_SXP: "R_EmptyEnv",
    BASENAMESPACE_SXP: "namespace:base",
    UNBOUNDVALUE_SXP: "R_UnboundValue",
    MISSINGARG_SXP: "R_MissingArg",
}
_VECTOR_KINDS = {
    LGLSXP: "logical",
    INTSXP: "integer",
    REALSXP: "double",
    CPLXSXP: "complex",
    STRSXP: "character",
    VECSXP: "list",
    EXPRSXP: "expression",
    RAWSXP: "raw",
}
# CHARSXP encoding bits in the "levels" part of the flags
_LATIN1_MASK, _BYTES_MASK = 1 << 2, 1 << 1
_NA_INTEGER = -(2**31)
_R_LZMA_FILTERS = [{"id": lzma.FILTER_LZMA2, "preset": 9 | lzma.PRESET_EXTREME}]


class RDataError(ValueError):
    """The file is not R data this reader understands; the message names the file and the part."""


class RVector(list):
    """An R vector: its elements in order, its R type (``kind``) and its attributes."""

    def __init__(self, items=(), kind: str = "list", attributes: dict[str, Any] | None = None):
        super().__init__(items)
        self.kind = kind
        self.attributes = attributes or {}

    @property
    def names(self) -> list[str | None] | None:
        return self.attributes.get("names")

    def to_dict(self) -> dict[str, Any]:
        """Named elements as a dict (R's ``names`` attribute as keys)."""
        if self.names is None:
            raise RDataError(f"this {self.kind} vector has no names")
        return dict(zip(self.names, self))

    def __repr__(self) -> str:
        return f"RVector({list.__repr__(self)}, kind={self.kind!r}, attributes={self.attributes!r})"


@dataclass(eq=False)
class REnvironment:
    """An R environment, kept opaque: its variables, if any were serialised."""

    name: str = ""
    variables: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RReference:
    """A persistent reference (``PERSISTSXP``): lazy-load databases use them for environments."""

    key: tuple[str | None, ...]


class _Reader:
    def __init__(self, data: bytes, source: str):
        self.data = data
        self.pos = 0
        self.source = source
        self.refs: list[Any] = []

    def fail(self, what: str) -> RDataError:
        return RDataError(f"{self.source}: {what} (at byte {self.pos})")

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise self.fail(f"truncated: wanted {n} bytes, {len(self.data) - self.pos} left")
        chunk = self.data[self.pos:self.pos + n]
        self.pos += n
        return chunk

    def int(self) -> int:
        return struct.unpack(">i", self.take(4))[0]

    def length(self) -> int:
        n = self.int()
        if n == -1:
            upper, lower = struct.unpack(">II", self.take(8))
            n = (upper << 32) + lower
        return n

    def header(self) -> None:
        fmt = self.take(2)
        if fmt != b"X\n":
            raise self.fail(f"only the XDR format is supported, found format marker {fmt!r}")
        version = self.int()
        self.int()  # the writer's R version
        self.int()  # the minimal reader version
        if version == 3:
            self.take(self.int())  # native encoding name
        elif version != 2:
            raise self.fail(f"unknown serialisation version {version}")

    def charsxp(self, levels: int) -> str | None:
        n = self.int()
        if n == -1:
            return None
        raw = self.take(n)
        if levels & _LATIN1_MASK or levels & _BYTES_MASK:
            return raw.decode("latin-1")
        return raw.decode("utf-8", errors="replace")

    def attributes(self) -> dict[str, Any]:
        pairs = self.item()
        if not isinstance(pairs, RVector) or pairs.kind != "pairlist":
            raise self.fail("attributes are not a pairlist")
        return dict(zip(pairs.names, pairs))

    def item(self) -> Any:
        flags = self.int()
        sexptype = flags & 0xFF
        levels = flags >> 12
        has_attr = bool(flags & (1 << 9))

        if sexptype == NILVALUE_SXP:
            return None
        if sexptype in _SPECIAL_ENVS:
            return REnvironment(_SPECIAL_ENVS[sexptype])
        if sexptype == REFSXP:
            index = flags >> 8
            if index == 0:
                index = self.int()
            return self.refs[index - 1]
        if sexptype == PERSISTSXP:
            ref = RReference(tuple(self.string_vector()))
            self.refs.append(ref)
            return ref
        if sexptype in (NAMESPACESXP, PACKAGESXP):
            env = REnvironment(":".join(s or "" for s in self.string_vector()))
            self.refs.append(env)
            return env
        if sexptype == SYMSXP:
            name = self.item()
            self.refs.append(name)
            return name
        if sexptype == ENVSXP:
            return self.environment()
        if sexptype in _PAIRLIST_TYPES:
            return self.pairlist(flags)
        if sexptype == CHARSXP:
            return self.charsxp(levels)
        if sexptype == ALTREP_SXP:
            return self.altrep()
        if sexptype in _VECTOR_KINDS:
            vector = self.vector(sexptype)
        elif sexptype == S4SXP:
            vector = RVector(kind="S4")
        elif sexptype in (SPECIALSXP, BUILTINSXP):
            return self.take(self.int()).decode("ascii")
        elif sexptype == EXTPTRSXP:
            vector = RVector(kind="externalptr")
            self.refs.append(vector)
            self.item()  # protected value
            self.item()  # tag
        elif sexptype == WEAKREFSXP:
            vector = RVector(kind="weakref")
            self.refs.append(vector)
        else:
            raise self.fail(f"unsupported R object type {sexptype} (byte code, closures' bodies?)")
        if has_attr:
            vector.attributes = self.attributes()
        return vector

    def string_vector(self) -> list[str | None]:
        if self.int() != 0:
            raise self.fail("string vector marker is not 0")
        return [self.item() for _ in range(self.int())]

    def vector(self, sexptype: int) -> RVector:
        n = self.length()
        kind = _VECTOR_KINDS[sexptype]
        if sexptype in (LGLSXP, INTSXP):
            values = struct.unpack(f">{n}i", self.take(4 * n))
            items = [None if v == _NA_INTEGER else (bool(v) if sexptype == LGLSXP else v) for v in values]
        elif sexptype == REALSXP:
            items = list(struct.unpack(f">{n}d", self.take(8 * n)))
        elif sexptype == CPLXSXP:
            parts = struct.unpack(f">{2 * n}d", self.take(16 * n))
            items = [complex(parts[i], parts[i + 1]) for i in range(0, 2 * n, 2)]
        elif sexptype == STRSXP:
            items = []
            for _ in range(n):
                flags = self.int()
                if flags & 0xFF != CHARSXP:
                    raise self.fail(f"character vector element has type {flags & 0xFF}")
                items.append(self.charsxp(flags >> 12))
        elif sexptype == RAWSXP:
            items = list(self.take(n))
        else:
            items = [self.item() for _ in range(n)]
        return RVector(items, kind)

    def pairlist(self, flags: int) -> RVector:
        # long pairlists are read in a loop, not by recursion
        kind = "pairlist" if flags & 0xFF in (LISTSXP, ATTRLISTSXP, DOTSXP) else "language"
        result = RVector(kind=kind)
        names: list[str | None] = []
        while True:
            if flags & (1 << 9):
                self.attributes()
            names.append(self.item() if flags & (1 << 10) else None)
            result.append(self.item())
            flags = self.int()
            if flags & 0xFF not in _PAIRLIST_TYPES:
                self.pos -= 4
                tail = self.item()
                if tail is not None:
                    raise self.fail("dotted pairlist (non-NULL tail) is not supported")
                break
        result.attributes["names"] = names
        return result

    def environment(self) -> REnvironment:
        locked = self.int()
        env = REnvironment("locked" if locked else "")
        self.refs.append(env)
        self.item()  # enclosing environment
        frame = self.item()
        hashtab = self.item()
        attrs = self.item()
        del attrs
        for pairs in [frame] + (list(hashtab) if isinstance(hashtab, RVector) else []):
            if isinstance(pairs, RVector) and pairs.kind == "pairlist":
                env.variables.update(zip(pairs.names, pairs))
        return env

    def altrep(self) -> RVector:
        info = self.item()
        state = self.item()
        attributes = self.item()
        class_name = info[0] if isinstance(info, RVector) and info else None
        if class_name == "compact_intseq":
            n, start, step = (int(x) for x in state)
            vector = RVector(range(start, start + n * step, step), "integer")
        elif class_name == "compact_realseq":
            n, start, step = state
            vector = RVector([start + i * step for i in range(int(n))], "double")
        elif class_name and class_name.startswith("wrap_"):
            vector = RVector(state[0], state[0].kind)
        elif class_name == "deferred_string":
            source = state[0]
            vector = RVector([None if v is None else _deparse_number(v) for v in source], "character")
        else:
            raise self.fail(f"unsupported ALTREP class {class_name!r}")
        if isinstance(attributes, RVector) and attributes.kind == "pairlist":
            vector.attributes = dict(zip(attributes.names, attributes))
        return vector


def _deparse_number(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _decompress(data: bytes) -> bytes:
    if data[:2] == b"\x1f\x8b":
        return gzip.decompress(data)
    if data[:3] == b"BZh":
        return bz2.decompress(data)
    if data[:6] == b"\xfd7zXZ\x00":
        return lzma.decompress(data)
    return data


def unserialize(data: bytes, source: str = "<bytes>") -> Any:
    """Decode one object from R's XDR serialisation (the bytes ``serialize(x, NULL)`` returns)."""
    reader = _Reader(data, source)
    reader.header()
    return reader.item()


def read_rds(path: str | Path) -> Any:
    """Read the object in an ``.rds`` file (``saveRDS``), compressed or not."""
    path = Path(path)
    return unserialize(_decompress(path.read_bytes()), str(path))


def read_rda(path: str | Path) -> dict[str, Any]:
    """Read the named objects in an ``.rda``/``.RData`` file (``save``)."""
    path = Path(path)
    data = _decompress(path.read_bytes())
    if data[:5] not in (b"RDX2\n", b"RDX3\n"):
        raise RDataError(f"{path}: not an R save file (starts with {data[:5]!r}, want RDX2/RDX3)")
    objects = unserialize(data[5:], str(path))
    if not isinstance(objects, RVector) or objects.kind != "pairlist":
        raise RDataError(f"{path}: the saved objects are not a pairlist")
    return objects.to_dict()


def _decompress_blob(blob: bytes, compressed: int, source: str) -> bytes:
    # R's R_decompress1/2/3: a 4-byte big-endian output length, then (for 2 and 3) a type byte
    size = struct.unpack(">I", blob[:4])[0]
    if compressed == 1:
        out = zlib.decompress(blob[4:])
    else:
        kind, payload = blob[4:5], blob[5:]
        if kind == b"0":
            out = payload
        elif kind == b"1":
            out = zlib.decompress(payload)
        elif kind == b"2":
            out = bz2.decompress(payload)
        elif kind == b"Z":
            # R writes a raw LZMA2 stream (no .xz container) with preset 9e
            out = lzma.decompress(payload, format=lzma.FORMAT_RAW, filters=_R_LZMA_FILTERS)
        else:
            raise RDataError(f"{source}: unknown blob compression type {kind!r}")
    if len(out) != size:
        raise RDataError(f"{source}: blob inflated to {len(out)} bytes, header says {size}")
    return out


def read_lazyload_db(stem: str | Path, names: list[str] | None = None) -> dict[str, Any]:
    """Read objects from a lazy-load database: ``stem`` is the path without ``.rdx``/``.rdb``.

    ``names`` limits which objects are decoded (all by default). Persistent references
    (environments) stay :class:`RReference` placeholders.
    """
    stem = Path(stem)
    index_path, blobs_path = stem.with_suffix(".rdx"), stem.with_suffix(".rdb")
    for p in (index_path, blobs_path):
        if not p.is_file():
            raise RDataError(f"{p}: missing; a lazy-load database needs both {index_path.name} and {blobs_path.name}")
    index = read_rds(index_path)
    if not isinstance(index, RVector) or index.names is None or "variables" not in index.names:
        raise RDataError(f"{index_path}: not a lazy-load index (no 'variables' entry)")
    index = index.to_dict()
    compressed = index.get("compressed")
    compressed = int(compressed[0]) if isinstance(compressed, RVector) and compressed else 1
    variables = index["variables"].to_dict()
    wanted = list(variables) if names is None else names
    missing = [n for n in wanted if n not in variables]
    if missing:
        raise RDataError(f"{stem}: no objects named {missing}; it holds {sorted(variables)}")
    result: dict[str, Any] = {}
    with open(blobs_path, "rb") as f:
        for name in wanted:
            offset, length = (int(x) for x in variables[name])
            f.seek(offset)
            blob = f.read(length)
            source = f"{blobs_path}[{name}]"
            result[name] = unserialize(_decompress_blob(blob, compressed, source), source)
    return result
