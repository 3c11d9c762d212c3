"""SingleFlightCache expiry without a scan: a heap of expiries with lazy deletion.

Full caches drop expired entries first (oldest expiry first), then the least recently used;
replaced or invalidated entries leave stale heap entries that never evict a live value, and
the heap stays proportional to the cache however often keys are replaced.
"""

from __future__ import annotations

from service.downstream.cache import SingleFlightCache
from service.metrics import Metrics


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _evicted(metrics: Metrics, name: str) -> float:
    return metrics.registry.get_sample_value("tokenbroker_cache_events_total",
                                             {"cache": name, "event": "evicted"}) or 0.0


async def _put(cache: SingleFlightCache[str], key: str, ttl: float) -> None:
    async def factory() -> str:
        return f"v-{key}"

    await cache.get_or_create(key, factory, lambda _v: ttl)


async def test_a_full_cache_drops_the_expired_entries_before_any_live_one():
    clock, metrics = Clock(), Metrics()
    cache: SingleFlightCache[str] = SingleFlightCache("t", max_entries=4, metrics=metrics, clock=clock)
    await _put(cache, "short-1", 10)
    await _put(cache, "long-1", 1000)
    await _put(cache, "short-2", 20)
    await _put(cache, "long-2", 1000)
    clock.now += 30                       # both short ones expired; the cache is full
    await _put(cache, "new", 1000)
    assert sorted(k for k in ("short-1", "short-2", "long-1", "long-2", "new") if cache.get(k)) == [
        "long-1", "long-2", "new"]
    assert len(cache) == 3 and _evicted(metrics, "t") == 2


async def test_without_expired_entries_the_least_recently_used_goes():
    clock = Clock()
    cache: SingleFlightCache[str] = SingleFlightCache("t", max_entries=2, metrics=None, clock=clock)
    await _put(cache, "a", 100)
    await _put(cache, "b", 100)
    await _put(cache, "a", 100)           # a hit: "a" becomes the most recent
    await _put(cache, "c", 100)
    assert (cache.get("a"), cache.get("b"), cache.get("c")) == ("v-a", None, "v-c")


async def test_a_replaced_entry_keeps_its_new_expiry_and_stale_heap_entries_never_evict_it():
    clock = Clock()
    cache: SingleFlightCache[str] = SingleFlightCache("t", max_entries=2, metrics=None, clock=clock)
    await _put(cache, "other", 500)
    await _put(cache, "k", 5)
    cache.invalidate("k")
    await _put(cache, "k", 500)           # same key, later expiry; the old heap entry is stale
    clock.now += 10                       # the stale (k, +5) entry is due
    await _put(cache, "third", 500)       # full, nothing really expired: the LRU ("other") goes
    assert (cache.get("k"), cache.get("other"), cache.get("third")) == ("v-k", None, "v-third")


async def test_the_expiry_heap_stays_proportional_to_the_cache():
    clock = Clock()
    cache: SingleFlightCache[str] = SingleFlightCache("t", max_entries=10, metrics=None, clock=clock)
    for i in range(5000):
        cache.invalidate(f"k{i % 3}")
        await _put(cache, f"k{i % 3}", 100 + i)
    assert len(cache) == 3
    assert len(cache._expiry) <= 2 * len(cache) + 64   # rebuilt, not growing with every store


async def test_nothing_is_served_past_its_expiry():
    clock = Clock()
    cache: SingleFlightCache[str] = SingleFlightCache("t", max_entries=10, metrics=None, clock=clock)
    await _put(cache, "k", 60)
    clock.now += 59.9
    assert cache.get("k") == "v-k"
    clock.now += 0.1
    assert cache.get("k") is None
