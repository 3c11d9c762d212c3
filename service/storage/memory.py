"""`memory://`: a dict with lazy expiry, for development and tests only.

State is lost on restart and is not shared between processes or replicas (`durable = False`;
`open_store` logs a loud warning when it is used outside `dev`). No method awaits while it
touches the dict, so every operation is atomic on the event loop; a lock also keeps it safe if
a thread ever calls in.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from service.storage.base import check_key, check_ttl, decode_value, encode_value

_SWEEP_EVERY = 256      # writes between sweeps of expired entries


class MemoryStore:
    durable = False

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._data: dict[str, tuple[str, float | None]] = {}   # key -> (json, expires_at)
        self._lock = threading.Lock()
        self._writes = 0

    def _live(self, key: str, now: float) -> str | None:
        entry = self._data.get(key)
        if entry is None:
            return None
        text, expires_at = entry
        if expires_at is not None and expires_at <= now:
            del self._data[key]
            return None
        return text

    def _wrote(self, now: float) -> None:
        self._writes += 1
        if self._writes % _SWEEP_EVERY == 0:
            dead = [k for k, (_, exp) in self._data.items() if exp is not None and exp <= now]
            for k in dead:
                del self._data[k]

    @staticmethod
    def _expiry(now: float, ttl: float | None) -> float | None:
        return None if ttl is None else now + ttl

    async def get(self, key: str) -> dict | None:
        check_key(key)
        with self._lock:
            text = self._live(key, self._clock())
        return None if text is None else decode_value(text)

    async def put(self, key: str, value: dict, *, ttl: float | None = None) -> None:
        check_key(key)
        text, ttl = encode_value(value), check_ttl(ttl)
        with self._lock:
            now = self._clock()
            self._data[key] = (text, self._expiry(now, ttl))
            self._wrote(now)

    async def put_if_absent(self, key: str, value: dict, *, ttl: float | None = None) -> bool:
        check_key(key)
        text, ttl = encode_value(value), check_ttl(ttl)
        with self._lock:
            now = self._clock()
            if self._live(key, now) is not None:
                return False
            self._data[key] = (text, self._expiry(now, ttl))
            self._wrote(now)
            return True

    async def delete(self, key: str) -> bool:
        check_key(key)
        with self._lock:
            if self._live(key, self._clock()) is None:
                return False
            del self._data[key]
            return True

    async def take(self, key: str) -> dict | None:
        check_key(key)
        with self._lock:
            text = self._live(key, self._clock())
            if text is not None:
                del self._data[key]
        return None if text is None else decode_value(text)

    async def scan(self, prefix: str) -> list[tuple[str, dict]]:
        with self._lock:
            now = self._clock()
            found = [(k, self._live(k, now)) for k in list(self._data) if k.startswith(prefix)]
        return sorted((k, decode_value(t)) for k, t in found if t is not None)

    async def ping(self) -> bool:
        return True

    async def close(self) -> None:
        return None
