"""Child process of test_store_concurrency.py: ``python concurrent_writer.py DIR NAME COUNT [URL]``.

Appends COUNT events, each turned into a chunk under the writer lock, printing ``E seq`` and
``C id`` as each call returns.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from fakes import Feeder  # noqa: E402

from hsa_memory.store import MemoryStore  # noqa: E402


def main() -> None:
    root, name, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    url = sys.argv[4] if len(sys.argv) > 4 else None
    with MemoryStore.open(root, catalog_url=url) as store:
        feed = Feeder(store)
        print("ready", flush=True)
        sys.stdin.readline()  # start together
        for i in range(count):
            with store.writer():
                seq = feed.event(f"{name} {i}", metadata={"writer": name, "i": i})
                cid = feed.chunk(seq, seq)[0]
            print(f"E {seq}\nC {cid}", flush=True)


if __name__ == "__main__":
    main()
