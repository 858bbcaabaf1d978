"""K/V codecs by name; a segment's header names the codec that reads it."""
from __future__ import annotations

from ..errors import UnknownCodec
from .base import Codec
from .int8 import Int8ZstdCodec
from .raw import RawCodec
from .zstd_shuffle import ZstdShuffleCodec

_REGISTRY: dict[str, Codec] = {}


def register(codec: Codec) -> None:
    """Make a codec available to segments by its ``name`` (tests register fakes this way)."""
    _REGISTRY[codec.name] = codec


def get(name: str) -> Codec:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UnknownCodec(f"no codec named {name!r} (known: {sorted(_REGISTRY)}); "
                           "upgrade hsa-memory or repair from the event log") from None


def names() -> list[str]:
    return sorted(_REGISTRY)


for _codec in (RawCodec(), ZstdShuffleCodec(), Int8ZstdCodec()):
    register(_codec)

__all__ = ["Codec", "RawCodec", "ZstdShuffleCodec", "Int8ZstdCodec", "register", "get", "names"]
