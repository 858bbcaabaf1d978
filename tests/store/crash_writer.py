"""Child process of test_store_crash.py: writes to a store until it is SIGKILLed.

Prints one line per step, flushed: ``E seq`` after append_event returned, ``C id seq`` after
add_chunks returned, ``F? id`` before a forget and ``F id`` after it, ``R``/``K`` after retier/compact.
Started as a script so that it imports no torch (fast start): ``python crash_writer.py DIR SEED [URL]``.
"""
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from fakes import LAYOUT, Feeder  # noqa: E402

from hsa_memory.store import MemoryStore, TierPolicy  # noqa: E402

# tiny segments and warm budget, so retier and compaction rewrite files often
POLICY = TierPolicy(warm_bytes=4 * LAYOUT.kv_bytes, segment_bytes=3 * LAYOUT.kv_bytes + 1024, cold_codec="int8_zstd")


def main() -> None:
    root, seed = sys.argv[1], int(sys.argv[2])
    url = sys.argv[3] if len(sys.argv) > 3 else None
    store = MemoryStore.open(root, catalog_url=url, policy=POLICY)
    feed = Feeder(store)
    rng = random.Random(seed)
    chunks: list[int] = []
    print("ready", flush=True)
    step = 0
    while True:
        seq = feed.event(f"crash event {seed}-{step}", metadata={"step": step})
        print(f"E {seq}", flush=True)
        roll = rng.random()
        if roll < 0.7:
            cid = feed.chunk(seq, seq)[0]
            chunks.append(cid)
            print(f"C {cid} {seq}", flush=True)
        elif roll < 0.8:
            store.retier()
            print("R", flush=True)
        elif roll < 0.9 and chunks:
            victim = chunks.pop(rng.randrange(len(chunks)))
            print(f"F? {victim}", flush=True)
            store.forget(chunk_ids=[victim])
            print(f"F {victim}", flush=True)
        else:
            store.compact()
            print("K", flush=True)
        step += 1


if __name__ == "__main__":
    main()
