"""Backends for the storage tests: one `backend` fixture parametrized over every Store.

memory and sqlite get a hand-driven clock; Redis (127.0.0.1:6379, db 9) counts TTLs itself, so
`advance()` really sleeps there — keep Redis TTLs in tests short and few. Each Redis test uses
its own key prefix and deletes only its own keys afterwards.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from service.storage.base import Store
from service.storage.memory import MemoryStore
from service.storage.redis import RedisStore
from service.storage.sqlite import SqliteStore

REDIS_URL = "redis://127.0.0.1:6379/9"


class FakeClock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Backend:
    name: str
    store: Store
    clock: Callable[[], float]
    open_another: Callable[[], Store]      # a second client of the same data
    _opened: list[Store] = field(default_factory=list)

    async def advance(self, seconds: float) -> None:
        """Let `seconds` pass for TTL purposes."""
        if isinstance(self.clock, FakeClock):
            self.clock.advance(seconds)
        else:
            await asyncio.sleep(seconds)

    def another(self) -> Store:
        store = self.open_another()
        self._opened.append(store)
        return store


async def _delete_prefix(prefix: str) -> None:
    client = aioredis.Redis.from_url(REDIS_URL)
    try:
        names = [n async for n in client.scan_iter(match=prefix + "*")]
        if names:
            await client.delete(*names)
    finally:
        await client.aclose()


@pytest.fixture(name="redis_prefix")
def _redis_prefix() -> str:
    return f"tokenbroker-test:{uuid.uuid4().hex}:"


@pytest.fixture(name="backend", params=["memory", "sqlite", "redis"])
async def _backend(request, tmp_path: Path, redis_prefix: str):
    if request.param == "memory":
        clock = FakeClock()
        store = MemoryStore(clock=clock)
        backend = Backend("memory", store, clock, lambda: store)
    elif request.param == "sqlite":
        clock = FakeClock()
        path = tmp_path / "state" / "store.db"
        backend = Backend("sqlite", SqliteStore(path, clock=clock), clock,
                          lambda: SqliteStore(path, clock=clock))
    else:
        backend = Backend("redis", RedisStore(REDIS_URL, prefix=redis_prefix), time.time,
                          lambda: RedisStore(REDIS_URL, prefix=redis_prefix))
    try:
        yield backend
    finally:
        for store in [backend.store, *backend._opened]:
            await store.close()
        if request.param == "redis":
            await _delete_prefix(redis_prefix)
