"""The failure throttle shared by every replica, on the Redis store.

Same keys and rules as `Throttle` (throttle.py), but counters and locks live in the store, so N
replicas do not multiply the guessing rate: a failure is one atomic `incr` of
`throttle:f:<hashed key>` (created with a `window` TTL: a fixed window from the first failure);
the failure that reaches `max_failures` sets `throttle:l:<hashed key>` = {"until": ...} with a
`lockout` TTL (set-if-absent, so concurrent replicas lock once) and drops the counter. Memory
is bounded by those TTLs. Framework-free; the caller passes `now` (wall-clock seconds, which
replicas share).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any, Protocol

from service.grants.throttle import Throttle, slot_id


class CounterStore(Protocol):
    async def incr(self, key: str, *, ttl: float) -> int: ...
    async def get(self, key: str) -> dict | None: ...
    async def put_if_absent(self, key: str, value: dict, *, ttl: float | None = None) -> bool: ...
    async def delete(self, key: str) -> bool: ...


class SharedThrottle:
    def __init__(self, store: CounterStore, max_failures: int, window: float, lockout: float) -> None:
        self.store = store
        self.max_failures, self.window, self.lockout = max_failures, window, lockout

    @property
    def enabled(self) -> bool:
        return self.max_failures > 0

    @property
    def shared(self) -> bool:
        return True

    async def locked_for(self, keys: Iterable[str], now: float) -> int | None:
        """Seconds until every locked key among `keys` is free again, or None if none is locked."""
        if not self.enabled:
            return None
        wait = 0.0
        for key in keys:
            lock = await self.store.get(f"throttle:l:{slot_id(key)}")
            if lock is not None:
                wait = max(wait, float(lock.get("until", 0)) - now)
        return max(1, math.ceil(wait)) if wait > 0 else None

    async def failed(self, keys: Iterable[str], now: float) -> list[str]:
        """Count one failure against each key (in every replica's view); the keys it locked."""
        if not self.enabled:
            return []
        locked = []
        for key in keys:
            sid = slot_id(key)
            if await self.store.incr(f"throttle:f:{sid}", ttl=self.window) < self.max_failures:
                continue
            if await self.store.put_if_absent(f"throttle:l:{sid}", {"until": now + self.lockout},
                                              ttl=self.lockout):
                await self.store.delete(f"throttle:f:{sid}")
                locked.append(key)
        return locked


def throttle_for(settings: Any, store: Any) -> Throttle | SharedThrottle:
    """The shared throttle when the store keeps shared counters (Redis), else the in-memory one."""
    if callable(getattr(store, "incr", None)):
        return SharedThrottle(store, settings.max_failures, settings.window, settings.lockout)
    return Throttle.from_settings(settings)
