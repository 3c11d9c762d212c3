"""The framework-free downstream building blocks: the retry layer and the single-flight cache."""

from __future__ import annotations

import asyncio

import pytest

from service.downstream import (
    DeadlineExceeded,
    RetryPolicy,
    SingleFlightCache,
    Transient,
    call_with_deadline,
)
from service.metrics import Metrics


class Flaky:
    """Fails with the given exceptions in turn, then answers."""

    def __init__(self, *failures: BaseException, result: str = "ok") -> None:
        self.failures, self.result, self.calls = list(failures), result, 0

    async def __call__(self) -> str:
        self.calls += 1
        if self.failures:
            raise self.failures.pop(0)
        return self.result


def transient_connection_errors(exc: BaseException) -> Transient | None:
    return Transient() if isinstance(exc, ConnectionError) else None


async def test_transient_failures_are_retried_until_an_answer():
    attempt = Flaky(ConnectionError(), ConnectionError())
    retries = []
    result = await call_with_deadline(attempt, deadline=5, classify=transient_connection_errors,
                                      policy=RetryPolicy(attempts=3, backoff=0.001),
                                      on_retry=lambda n, exc, wait: retries.append(n))
    assert (result, attempt.calls, retries) == ("ok", 3, [1, 2])


async def test_attempts_are_bounded():
    attempt = Flaky(*(ConnectionError(str(i)) for i in range(10)))
    with pytest.raises(ConnectionError, match="^2$"):
        await call_with_deadline(attempt, deadline=5, classify=transient_connection_errors,
                                 policy=RetryPolicy(attempts=3, backoff=0.001))
    assert attempt.calls == 3


async def test_permanent_failures_are_raised_at_once():
    attempt = Flaky(ValueError("permanent"))
    with pytest.raises(ValueError):
        await call_with_deadline(attempt, deadline=5, classify=transient_connection_errors)
    assert attempt.calls == 1


async def test_a_slow_attempt_ends_at_the_deadline():
    async def slow() -> str:
        await asyncio.sleep(30)
        return "late"
    with pytest.raises(DeadlineExceeded) as err:
        await call_with_deadline(slow, deadline=0.2, classify=transient_connection_errors)
    assert isinstance(err.value, TimeoutError) and err.value.attempts == 1


async def test_a_retry_after_beyond_the_deadline_is_not_waited_for():
    attempt = Flaky(ConnectionError("throttled"), ConnectionError("throttled"))
    sleeps: list[float] = []

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)

    with pytest.raises(ConnectionError):
        await call_with_deadline(attempt, deadline=2, classify=lambda e: Transient(retry_after=60),
                                 sleep=sleep)
    assert (attempt.calls, sleeps) == (1, [])


async def test_a_retry_after_within_the_deadline_is_honoured():
    attempt = Flaky(ConnectionError("throttled"))
    sleeps: list[float] = []

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)

    assert await call_with_deadline(attempt, deadline=5, classify=lambda e: Transient(retry_after=1.5),
                                    sleep=sleep) == "ok"
    assert sleeps == [1.5]


async def test_fifty_concurrent_calls_for_one_key_share_one_factory_call():
    metrics = Metrics()
    cache: SingleFlightCache[str] = SingleFlightCache("test", metrics=metrics)
    calls = 0

    async def factory() -> str:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.05)
        return "value"

    results = await asyncio.gather(*(cache.get_or_create("k", factory, lambda v: 60) for _ in range(50)))
    assert (set(results), calls) == ({"value"}, 1)
    assert await cache.get_or_create("k", factory, lambda v: 60) == "value" and calls == 1
    events = {s.labels["event"]: s.value for s in metrics.cache_events_total.collect()[0].samples
              if s.name.endswith("_total")}
    assert events == {"miss": 1, "coalesced": 49, "hit": 1}


async def test_failures_are_shared_by_waiters_but_never_cached():
    cache: SingleFlightCache[str] = SingleFlightCache("test")
    attempt = Flaky(RuntimeError("down"))

    async def factory() -> str:
        await asyncio.sleep(0.01)
        return await attempt()

    outcomes = await asyncio.gather(*(cache.get_or_create("k", factory, lambda v: 60) for _ in range(5)),
                                    return_exceptions=True)
    assert all(isinstance(o, RuntimeError) for o in outcomes) and attempt.calls == 1
    assert await cache.get_or_create("k", factory, lambda v: 60) == "ok" and attempt.calls == 2


async def test_a_cancelled_caller_does_not_cancel_the_others():
    cache: SingleFlightCache[str] = SingleFlightCache("test")
    release = asyncio.Event()

    async def factory() -> str:
        await release.wait()
        return "value"

    first = asyncio.create_task(cache.get_or_create("k", factory, lambda v: 60))
    second = asyncio.create_task(cache.get_or_create("k", factory, lambda v: 60))
    await asyncio.sleep(0)
    first.cancel()
    release.set()
    assert await second == "value"
    with pytest.raises(asyncio.CancelledError):
        await first


async def test_values_expire_and_non_positive_ttls_are_not_cached():
    now = [1000.0]
    cache: SingleFlightCache[int] = SingleFlightCache("test", clock=lambda: now[0])
    counter = iter(range(100))

    async def factory() -> int:
        return next(counter)

    assert await cache.get_or_create("a", factory, lambda v: 10) == 0
    assert await cache.get_or_create("a", factory, lambda v: 10) == 0
    now[0] += 11
    assert await cache.get_or_create("a", factory, lambda v: 10) == 1
    assert await cache.get_or_create("b", factory, lambda v: 0) == 2
    assert await cache.get_or_create("b", factory, lambda v: 0) == 3


async def test_the_cache_is_bounded_least_recently_used_first():
    cache: SingleFlightCache[str] = SingleFlightCache("test", max_entries=2)

    async def make(value: str) -> str:
        return value

    for key in ("a", "b"):
        await cache.get_or_create(key, lambda k=key: make(k), lambda v: 60)
    await cache.get_or_create("a", lambda: make("a2"), lambda v: 60)   # a is now the most recent
    await cache.get_or_create("c", lambda: make("c"), lambda v: 60)    # evicts b
    assert len(cache) == 2 and cache.get("b") is None and cache.get("a") == "a"
