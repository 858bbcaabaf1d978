"""Load test of the memory service: N concurrent clients appending and asking against a real uvicorn.

The server runs as its own process (``hsa_memory.service.run``) on 127.0.0.1 with a fresh data
directory. Each client owns a share of M memories and loops for ``--duration`` seconds: mostly
single appends, some batches of three, some asks (JSON, or streamed as server-sent events). After
the run the server is stopped (SIGINT: a graceful shutdown that closes every memory) and each
memory's event log is read straight from disk: every acknowledged sequence number must be there
(lost appends) and nothing unacknowledged may be (extra events).

    python bench/service_load.py                     # tiny model, 8 clients, 4 memories, 120 s
    python bench/service_load.py --model hsa-smollm2-135m --duration 60 --clients 4
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from datetime import datetime, timezone
from pathlib import Path

import httpx

WORDS = ("agent memory lisbon anna meeting moved room tuesday budget report train ticket sister cat fish "
         "garden rain coffee deadline project review code deploy server alert password doctor appointment").split()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def message(rng: random.Random) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(20, 60))) + "."


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


class Client:
    def __init__(self, http: httpx.AsyncClient, memory_id: str, rng: random.Random, args, record):
        self.http, self.memory_id, self.rng, self.args, self.record = http, memory_id, rng, args, record
        self.acked: list[int] = []

    async def run(self, until: float) -> None:
        while time.monotonic() < until:
            roll = self.rng.random()
            if roll < self.args.ask_fraction:
                await self.ask(stream=self.rng.random() < 0.5)
            elif roll < self.args.ask_fraction + self.args.batch_fraction:
                await self.append_batch()
            else:
                await self.append()

    async def timed(self, kind: str, method: str, path: str, **options) -> httpx.Response | None:
        started = time.perf_counter()
        try:
            response = await self.http.request(method, path, **options)
        except httpx.HTTPError as exc:
            self.record(kind, time.perf_counter() - started, f"transport:{exc.__class__.__name__}")
            return None
        self.record(kind, time.perf_counter() - started, response.status_code)
        return response

    async def append(self) -> None:
        response = await self.timed("append", "POST", f"/v1/memories/{self.memory_id}/messages",
                                    json={"text": message(self.rng), "role": self.rng.choice(["user", "assistant"])})
        if response is not None and response.status_code == 200:
            self.acked.append(response.json()["seq"])

    async def append_batch(self) -> None:
        messages = [{"content": message(self.rng)} for _ in range(3)]
        response = await self.timed("append_batch", "POST", f"/v1/memories/{self.memory_id}/messages/batch",
                                    json={"messages": messages})
        if response is not None and response.status_code == 200:
            self.acked.extend(response.json()["seqs"])

    async def ask(self, stream: bool) -> None:
        body = {"question": f"What happened with the {self.rng.choice(WORDS)}?",
                "max_new_tokens": self.args.max_new_tokens}
        if not stream:
            await self.timed("ask", "POST", f"/v1/memories/{self.memory_id}/ask", json=body)
            return
        started = time.perf_counter()
        try:
            async with self.http.stream("POST", f"/v1/memories/{self.memory_id}/ask/stream", json=body) as response:
                final = None
                async for line in response.aiter_lines():
                    if line.startswith("event: "):
                        final = line[len("event: "):]
                status = response.status_code if response.status_code != 200 or final == "answer" else f"sse:{final}"
        except httpx.HTTPError as exc:
            status = f"transport:{exc.__class__.__name__}"
        self.record("ask_stream", time.perf_counter() - started, status)


def start_server(args, data_dir: Path, port: int) -> subprocess.Popen:
    code = ("from hsa_memory.service import run; "
            f"run(host='127.0.0.1', port={port}, data_dir={str(data_dir)!r}, model={args.model!r}, "
            f"catalog_url={args.catalog!r}, log_level='warning', rate_per_second=1e6, rate_burst=1000000, "
            f"max_concurrent_asks={args.max_concurrent_asks}, ask_wait_seconds={args.ask_wait}, "
            f"max_new_tokens={max(args.max_new_tokens, 16)}, worker_threads={args.worker_threads})")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    return subprocess.Popen([sys.executable, "-c", code], env=env)


def wait_healthy(url: str, server: subprocess.Popen, timeout: float = 600) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"the server exited with {server.returncode} before answering")
        try:
            return httpx.get(f"{url}/v1/health", timeout=2).json()
        except httpx.HTTPError:
            time.sleep(0.5)
    raise SystemExit(f"the server did not answer within {timeout:.0f} s")


def count_events(data_dir: Path, memory_ids: list[str], catalog: str | None) -> dict[str, list[int]]:
    from hsa_memory.store import MemoryStore

    found = {}
    for memory_id in memory_ids:
        with MemoryStore.open(data_dir / "memories" / memory_id, catalog_url=catalog) as store:
            found[memory_id] = [event.seq for event in store.events()]
    return found


async def drive(args, url: str, token: str) -> tuple[dict, dict, float]:
    latencies: dict[str, list[float]] = defaultdict(list)
    statuses: dict[str, Counter] = defaultdict(Counter)

    def record(kind: str, seconds: float, status) -> None:
        statuses[kind][str(status)] += 1
        if status == 200:
            latencies[kind].append(seconds)

    limits = httpx.Limits(max_connections=args.clients + 4)
    async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=600,
                                 limits=limits) as http:
        memory_ids = []
        for i in range(args.memories):
            response = await http.post("/v1/memories", json={"name": f"load-{i}"})
            response.raise_for_status()
            memory_ids.append(response.json()["id"])
        clients = [Client(http, memory_ids[i % args.memories], random.Random(args.seed + i), args, record)
                   for i in range(args.clients)]
        started = time.monotonic()
        await asyncio.gather(*(c.run(started + args.duration) for c in clients))
        elapsed = time.monotonic() - started
        api_last_seq = {m: (await http.get(f"/v1/memories/{m}/stats")).json()["last_seq"] for m in memory_ids}
    acked: dict[str, list[int]] = defaultdict(list)
    for client in clients:
        acked[client.memory_id].extend(client.acked)
    return ({"latencies": latencies, "statuses": statuses, "acked": dict(acked), "api_last_seq": api_last_seq},
            {"memory_ids": memory_ids}, elapsed)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="tiny", help="preset the server loads (tiny: random weights, fast)")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--memories", type=int, default=4)
    parser.add_argument("--duration", type=float, default=120.0, help="seconds of load")
    parser.add_argument("--ask-fraction", type=float, default=0.2)
    parser.add_argument("--batch-fraction", type=float, default=0.15)
    parser.add_argument("--max-new-tokens", type=int, default=8)
    parser.add_argument("--max-concurrent-asks", type=int, default=2)
    parser.add_argument("--ask-wait", type=float, default=30.0, help="seconds an ask waits for a slot before 503")
    parser.add_argument("--worker-threads", type=int, default=8)
    parser.add_argument("--catalog", default=None, help="SQLAlchemy URL (default: SQLite files in the data dir)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", dest="json_path", help="also write the result as JSON here")
    args = parser.parse_args()

    from hsa_memory.service import Settings
    from hsa_memory.service.admin import create_key

    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="hsa-service-load-") as tmp:
        data_dir = Path(tmp)
        _, token = create_key("load", settings=Settings(data_dir=data_dir, catalog_url=args.catalog))
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        boot = time.monotonic()
        server = start_server(args, data_dir, port)
        try:
            health = wait_healthy(url, server)
            startup = time.monotonic() - boot
            run, meta, elapsed = asyncio.run(drive(args, url, token))
        finally:
            server.send_signal(signal.SIGINT)
            try:
                server.wait(120)
            except subprocess.TimeoutExpired:
                server.kill()
        stored = count_events(data_dir, meta["memory_ids"], args.catalog)

    acked_total = sum(len(v) for v in run["acked"].values())
    lost = {m: sorted(set(run["acked"].get(m, [])) - set(seqs)) for m, seqs in stored.items()}
    extra = {m: sorted(set(seqs) - set(run["acked"].get(m, []))) for m, seqs in stored.items()}
    requests = sum(sum(c.values()) for c in run["statuses"].values())
    result = {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
        "load_average_1min": {"before": round(load_before, 1), "after": round(os.getloadavg()[0], 1)},
        "model": health["model"], "trained_weights": health["trained_weights"], "server_startup_s": round(startup, 1),
        "clients": args.clients, "memories": args.memories, "duration_s": round(elapsed, 1),
        "requests": requests, "requests_per_s": round(requests / elapsed, 2),
        "messages_acked": acked_total, "messages_per_s": round(acked_total / elapsed, 2),
        "ops": {kind: {"statuses": dict(c),
                       "ok": len(run["latencies"][kind]),
                       "p50_ms": round(percentile(run["latencies"][kind], 0.50) * 1000, 1),
                       "p95_ms": round(percentile(run["latencies"][kind], 0.95) * 1000, 1),
                       "p99_ms": round(percentile(run["latencies"][kind], 0.99) * 1000, 1),
                       "max_ms": round(max(run["latencies"][kind] or [float("nan")]) * 1000, 1)}
                for kind, c in sorted(run["statuses"].items())},
        "all_ok_p95_ms": round(percentile([x for v in run["latencies"].values() for x in v], 0.95) * 1000, 1),
        "events_on_disk": sum(len(v) for v in stored.values()),
        "api_last_seq_matches_disk": all(run["api_last_seq"][m] == (max(s) if s else 0) for m, s in stored.items()),
        "lost_appends": sum(len(v) for v in lost.values()),
        "unacknowledged_events": sum(len(v) for v in extra.values()),
        "command": "python bench/service_load.py " + " ".join(sys.argv[1:]),
    }
    text = json.dumps(result, indent=2)
    print(text)
    if args.json_path:
        Path(args.json_path).write_text(text + "\n")
    if result["lost_appends"]:
        raise SystemExit(f"{result['lost_appends']} acknowledged appends are missing from the event logs")


if __name__ == "__main__":
    main()
