"""Where a memory's files live inside its directory, and the ``store.json`` marker that names it."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from .errors import StoreCorrupted, StoreNotFound
from .fsio import atomic_write

FORMAT = "hsa-memory-store"
FORMAT_VERSION = 1
TIERS = ("warm", "cold")


@dataclass(frozen=True)
class StorePaths:
    root: Path

    @property
    def meta(self) -> Path:
        return self.root / "store.json"

    @property
    def lock(self) -> Path:
        return self.root / "lock"

    @property
    def catalog(self) -> Path:
        return self.root / "catalog.sqlite"

    @property
    def events(self) -> Path:
        return self.root / "events"

    def tier_dir(self, tier: str) -> Path:
        return self.root / "kv" / tier

    def segment_file(self, tier: str, segment_id: int) -> str:
        """Relative name kept in the catalog, so a moved directory still opens."""
        return f"kv/{tier}/{segment_id:012d}.seg"

    @staticmethod
    def landmark_file(generation: int) -> str:
        return f"landmarks-{generation:08d}.f32"

    def make_dirs(self) -> None:
        self.events.mkdir(parents=True, exist_ok=True)
        for tier in TIERS:
            self.tier_dir(tier).mkdir(parents=True, exist_ok=True)

    def write_meta(self, memory_id: str, catalog: str) -> None:
        meta = {"format": FORMAT, "format_version": FORMAT_VERSION, "memory_id": memory_id, "catalog": catalog}
        atomic_write(self.meta, (json.dumps(meta, indent=1) + "\n").encode())

    def read_meta(self) -> dict:
        if not self.meta.exists():
            raise StoreNotFound(f"no memory store at {self.root} (missing {self.meta.name}); "
                                "check the path or create one with MemoryStore.create")
        try:
            meta = json.loads(self.meta.read_text())
            if meta["format"] != FORMAT or not isinstance(meta["memory_id"], str):
                raise ValueError(meta.get("format"))
        except (ValueError, KeyError, TypeError) as exc:
            raise StoreCorrupted(f"{self.meta} is not a valid store marker ({exc}); "
                                 "restore it from a snapshot") from None
        if meta.get("format_version") != FORMAT_VERSION:
            raise StoreCorrupted(f"{self.meta}: store format {meta.get('format_version')} is unknown to this "
                                 f"hsa-memory (knows {FORMAT_VERSION}); upgrade hsa-memory")
        return meta
