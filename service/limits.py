"""Limits: request body size (ASGI middleware), a token bucket per API key, concurrent asks."""
from __future__ import annotations

import asyncio
import json
import threading
import time
from typing import Callable

from .errors import Busy, RateLimited


class BodyTooLarge(Exception):
    pass


class BodyLimit:
    """Rejects bodies over ``limit_for(scope)`` bytes with 413: at once when Content-Length says so,
    otherwise as soon as the bytes received pass the limit (chunked uploads included)."""

    def __init__(self, app, limit_for: Callable[[dict], int]):
        self.app = app
        self.limit_for = limit_for

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        limit = self.limit_for(scope)
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > limit):
            return await self.reject(send, limit, scope)
        received = 0
        exceeded = False
        started = False

        async def limited_receive():
            nonlocal received, exceeded
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    exceeded = True
                    raise BodyTooLarge()
            return message

        async def guarded_send(message):
            nonlocal started
            if message["type"] == "http.response.start":
                if exceeded:
                    # whatever the app made of the failed read (a 400, a 500) becomes the 413
                    raise BodyTooLarge()
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except BodyTooLarge:
            if started:
                raise
            await self.reject(send, limit, scope)

    @staticmethod
    async def reject(send, limit: int, scope) -> None:
        body = json.dumps({"error": {"type": "payload_too_large", "field": None,
                                     "message": f"request body over the limit of {limit:,} bytes for {scope['path']}"}})
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                                (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body.encode()})


class RateLimiter:
    """A token bucket per API key: ``rate`` requests per second on average, bursts of ``burst``."""

    def __init__(self, rate: float, burst: int):
        self.rate = rate
        self.burst = burst
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def take(self, key: str) -> None:
        """Spend one token of ``key``'s bucket, or raise ``RateLimited`` saying when one is back."""
        now = time.monotonic()
        with self._lock:
            tokens, last = self._buckets.get(key, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - last) * self.rate)
            if tokens < 1.0:
                self._buckets[key] = (tokens, now)
                raise RateLimited((1.0 - tokens) / self.rate)
            self._buckets[key] = (tokens - 1.0, now)


class AskSlots:
    """At most ``size`` asks generate at once in this process; a request waits ``wait`` seconds, then 503.

    ``acquire`` runs on the event loop; ``release`` may run in any thread (the one that generated).
    """

    def __init__(self, size: int, wait: float):
        self.size = size
        self.wait = wait
        self._semaphore: asyncio.Semaphore | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.in_use = 0

    async def acquire(self) -> None:
        if self._semaphore is None or self._loop is not asyncio.get_running_loop():
            # first use, or the app runs again on a new event loop (tests restart it)
            self._semaphore, self._loop, self.in_use = asyncio.Semaphore(self.size), asyncio.get_running_loop(), 0
        try:
            await asyncio.wait_for(self._semaphore.acquire(), self.wait)
        except asyncio.TimeoutError:
            raise Busy(f"{self.size} asks are already running in this process; retry shortly") from None
        self.in_use += 1

    def release(self) -> None:
        def _release():
            self.in_use -= 1
            self._semaphore.release()

        if _on_loop(self._loop):
            _release()
        else:
            self._loop.call_soon_threadsafe(_release)


def _on_loop(loop: asyncio.AbstractEventLoop) -> bool:
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False
