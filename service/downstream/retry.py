"""One retry layer for downstream calls: a deadline over all attempts, transient failures only.

    result = await call_with_deadline(attempt, deadline=10, classify=classify_fn)

- `attempt()` is one try; it runs under `asyncio.timeout(<remaining deadline>)`, so a slow
  upstream never holds a request past the deadline. Time is up → `DeadlineExceeded`.
- `classify(exc)` says whether a failure is transient: `Transient(retry_after=None)` (retry
  after a short jittered backoff) or `Transient(retry_after=s)` (the upstream's `Retry-After`),
  or `None` (permanent: re-raised at once). Callers decide what is transient for their
  upstream (connection errors, timeouts, 5xx, 429; only what is safe for non-idempotent
  calls), so this module stays framework-free (used by ACS and Entra OBO alike).
- At most `policy.attempts` tries; never a sleep longer than what is left of the deadline.
  When the upstream asks to wait longer than that, the last failure is re-raised at once
  (with its `Retry-After`, the caller can tell its own client when to come back).
- Never pass tokens as arguments of `attempt` in a way that gets logged: this module logs
  only the operation name, the attempt number and the exception type.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from service.logs import get_logger

T = TypeVar("T")
log = get_logger("tokenbroker.downstream.retry")


class DeadlineExceeded(TimeoutError):
    """The deadline covering every attempt passed before an answer came."""

    def __init__(self, operation: str, deadline: float, attempts: int) -> None:
        super().__init__(f"{operation}: no answer within {deadline:g} s ({attempts} attempt(s))")
        self.operation, self.deadline, self.attempts = operation, deadline, attempts


@dataclass(frozen=True)
class Transient:
    """A retryable failure; `retry_after` (seconds) when the upstream said how long to wait."""
    retry_after: float | None = None


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 3              # total tries, the first included
    backoff: float = 0.1           # first backoff; doubles each retry, full jitter
    max_backoff: float = 2.0
    min_attempt_time: float = 0.05  # do not start an attempt with less time than this left


DEFAULT_POLICY = RetryPolicy()
NO_RETRY = RetryPolicy(attempts=1)

Classifier = Callable[[BaseException], "Transient | None"]
RetryHook = Callable[[int, BaseException, float], None]


def _backoff(policy: RetryPolicy, retry: int) -> float:
    ceiling = min(policy.max_backoff, policy.backoff * (2 ** (retry - 1)))
    return random.uniform(0, ceiling)


async def call_with_deadline(attempt: Callable[[], Awaitable[T]], *, deadline: float,
                             classify: Classifier, policy: RetryPolicy = DEFAULT_POLICY,
                             operation: str = "call", on_retry: RetryHook | None = None,
                             clock: Callable[[], float] = time.monotonic,
                             sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> T:
    """Run `attempt` until it succeeds, fails permanently, runs out of tries or of time.

    `on_retry(attempt_number, exc, wait_seconds)` is called before each retry (metrics/logs).
    """
    end = clock() + deadline
    tries = 0
    while True:
        remaining = end - clock()
        if remaining <= 0:
            raise DeadlineExceeded(operation, deadline, tries)
        tries += 1
        try:
            async with asyncio.timeout(remaining):
                return await attempt()
        except TimeoutError as exc:
            # our own deadline (asyncio.timeout), unless the attempt raised one itself early
            if end - clock() <= 0:
                raise DeadlineExceeded(operation, deadline, tries) from exc
            failure: BaseException = exc
        except Exception as exc:  # noqa: BLE001 - classified just below
            failure = exc
        verdict = classify(failure)
        if verdict is None or tries >= policy.attempts:
            raise failure
        wait = verdict.retry_after if verdict.retry_after is not None else _backoff(policy, tries)
        left = end - clock()
        if wait + policy.min_attempt_time > left:
            # the upstream wants more time than we have: answer now, with its Retry-After
            log.info("downstream.retry_abandoned", operation=operation, attempt=tries,
                     error=type(failure).__name__, wait=round(wait, 3), left=round(left, 3))
            raise failure
        log.info("downstream.retry", operation=operation, attempt=tries,
                 error=type(failure).__name__, wait=round(wait, 3))
        if on_retry is not None:
            on_retry(tries, failure, wait)
        if wait > 0:
            await sleep(wait)
