"""A small async single-flight TTL cache (bounded LRU), for exchanged downstream tokens.

    cache = SingleFlightCache("acs_teams", metrics=metrics, max_entries=10_000)
    value = await cache.get_or_create(key, factory, ttl_fn)

- Keys are strings — use a hash of the token (`digest.sha256_hex`), never the token itself.
- Concurrent calls for the same key share ONE `factory()` call ("coalesced"); the factory
  runs in its own task, so one caller giving up (cancelled) does not fail the others.
- `ttl_fn(value)` gives the seconds to keep the value; `<= 0` means "do not cache" (the
  call is still single-flight). Failures are never cached: the next call tries again.
- At most `max_entries` values: expired ones go first, then the least recently used.
  Expiry is O(log n) amortised, never a scan: a heap of (expires_at, key) with lazy
  deletion (a popped entry counts only if the key still holds that expiry), rebuilt when
  stale entries outnumber live ones.
- `cache_events_total{cache,event}`: hit | miss | coalesced | evicted.

Framework-free: used by the ACS Teams exchange and reusable for Entra OBO results.
"""

from __future__ import annotations

import asyncio
import heapq
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any, Generic, TypeVar

from service.metrics import Metrics

from ..telemetry import cache_event, span

V = TypeVar("V")


class SingleFlightCache(Generic[V]):
    def __init__(self, name: str, *, max_entries: int = 10_000, metrics: Metrics | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self.name = name
        self._max = max_entries
        self._metrics = metrics
        self._clock = clock
        self._values: OrderedDict[str, tuple[V, float]] = OrderedDict()
        self._inflight: dict[str, asyncio.Task[V]] = {}
        self._expiry: list[tuple[float, str]] = []    # heap; may hold stale entries
        self._events: dict[str, Any] = {}            # label children, bound on first use

    def __len__(self) -> int:
        return len(self._values)

    def _count(self, event: str, n: int = 1) -> None:
        cache_event(self.name, event)   # telemetry: on the current span (no-op when off)
        if self._metrics is None or not n:
            return
        child = self._events.get(event)
        if child is None:
            child = self._events[event] = self._metrics.cache_events_total.labels(cache=self.name, event=event)
        child.inc(n)

    def get(self, key: str) -> V | None:
        """The live cached value, or None (no factory call, no metrics)."""
        entry = self._values.get(key)
        if entry is None or entry[1] <= self._clock():
            return None
        return entry[0]

    def hit(self, key: str) -> V | None:
        """The live cached value, counted as a hit (what `get_or_create` does on a hit, without
        its factory and ttl arguments: callers build those only when this says None, which
        counts nothing — `get_or_create` then counts the miss or expiry)."""
        entry = self._values.get(key)
        if entry is None or entry[1] <= self._clock():
            return None
        self._values.move_to_end(key)
        self._count("hit")
        return entry[0]

    def invalidate(self, key: str) -> None:
        self._values.pop(key, None)

    async def get_or_create(self, key: str, factory: Callable[[], Awaitable[V]],
                            ttl_fn: Callable[[V], float]) -> V:
        entry = self._values.get(key)
        if entry is not None:
            if entry[1] > self._clock():
                self._values.move_to_end(key)
                self._count("hit")
                return entry[0]
            del self._values[key]
            self._count("evicted")
        task = self._inflight.get(key)
        if task is not None:
            with span("singleflight.wait", cache=self.name):   # telemetry: waiting on another call
                self._count("coalesced")
                return await asyncio.shield(task)
        with span("cache.lookup", cache=self.name):   # telemetry: a miss; the fetch's spans are its children
            self._count("miss")
            task = asyncio.ensure_future(self._run(key, factory, ttl_fn))
            self._inflight[key] = task
            task.add_done_callback(partial(self._done, key))
            # shield: a cancelled caller must not cancel the shared call of the others
            return await asyncio.shield(task)

    async def _run(self, key: str, factory: Callable[[], Awaitable[V]],
                   ttl_fn: Callable[[V], float]) -> V:
        value = await factory()
        ttl = ttl_fn(value)
        if ttl > 0:
            self._store(key, value, self._clock() + ttl)
        return value

    def _done(self, key: str, task: asyncio.Task[V]) -> None:
        if self._inflight.get(key) is task:
            del self._inflight[key]
        if not task.cancelled():
            task.exception()  # retrieved: every waiter may have gone away

    def _store(self, key: str, value: V, expires_at: float) -> None:
        values = self._values
        values[key] = (value, expires_at)
        values.move_to_end(key)
        heapq.heappush(self._expiry, (expires_at, key))
        if len(values) > self._max:
            now = self._clock()
            evicted = 0
            heap = self._expiry
            while heap and heap[0][0] <= now:
                exp, k = heapq.heappop(heap)
                entry = values.get(k)
                if entry is not None and entry[1] == exp:
                    del values[k]
                    evicted += 1
            while len(values) > self._max:
                values.popitem(last=False)
                evicted += 1
            self._count("evicted", evicted)
        if len(self._expiry) > 2 * len(values) + 64:
            # stale heap entries (replaced, invalidated, LRU-evicted): rebuild, O(n) once per n stores
            self._expiry = [(exp, k) for k, (_, exp) in values.items()]
            heapq.heapify(self._expiry)
