"""The shape of what the store keeps per chunk: all it knows of the model."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass

from .errors import InvalidChunks

# the store keeps K/V in one of these; 16-bit types are what the cold codecs shuffle
KV_DTYPES = {"bfloat16": 2, "float16": 2, "float32": 4}


@dataclass(frozen=True)
class KVLayout:
    """Per-chunk array shapes: keys and values are ``(chunk_size, kv_heads, head_dim)`` each."""

    chunk_size: int = 64
    kv_heads: int = 1
    head_dim: int = 64
    landmark_dim: int = 256
    kv_dtype: str = "bfloat16"

    def __post_init__(self) -> None:
        for name in ("chunk_size", "kv_heads", "head_dim", "landmark_dim"):
            value = getattr(self, name)
            if not isinstance(value, int) or value <= 0:
                raise InvalidChunks(f"KVLayout.{name} must be a positive int, got {value!r}")
        if self.kv_dtype not in KV_DTYPES:
            raise InvalidChunks(f"KVLayout.kv_dtype {self.kv_dtype!r} is not one of {sorted(KV_DTYPES)}")

    @property
    def itemsize(self) -> int:
        return KV_DTYPES[self.kv_dtype]

    @property
    def kv_shape(self) -> tuple[int, int, int]:
        """Shape of one chunk's keys (and of its values)."""
        return (self.chunk_size, self.kv_heads, self.head_dim)

    @property
    def kv_elements(self) -> int:
        """Elements in one chunk's keys plus values."""
        return 2 * self.chunk_size * self.kv_heads * self.head_dim

    @property
    def kv_bytes(self) -> int:
        """Raw bytes of one chunk's keys plus values in ``kv_dtype``."""
        return self.kv_elements * self.itemsize

    @property
    def landmark_bytes(self) -> int:
        return self.landmark_dim * 4

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "KVLayout":
        return cls(**json.loads(text))
