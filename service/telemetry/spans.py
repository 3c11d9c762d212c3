"""The span helpers every layer may call; free when tracing is off. No OpenTelemetry import here.

    with span("entra.obo", tenant=tid) as s:      # attributes become `tokenbroker.<name>`
        ...
        s.set_attribute("tokenbroker.cache", "hit")

Tracing is "on" for a request only while the tracing middleware (installed only when telemetry
is configured) has put its tracer into `_TRACER`. Otherwise `span()` is one ContextVar read and
returns one shared no-op context manager; `cache_event()` and `traced()` cost the same read.

On an exception leaving a span, its status becomes ERROR with the exception's `reason` (the
broker's reason code, the same the metrics and logs use) or its class name; the exception's
message is never recorded (it may hold details we do not export).
"""

from __future__ import annotations

from collections.abc import Awaitable
from contextvars import ContextVar
from typing import Any, Protocol, TypeVar

T = TypeVar("T")
Attr = str | bool | int | float


class SpanLike(Protocol):
    def set_attribute(self, key: str, value: Attr) -> Any: ...
    def is_recording(self) -> bool: ...


class SpanTracer(Protocol):
    """What the tracing module puts in `_TRACER` (service.telemetry.tracing.Tracing)."""

    def span(self, name: str, attributes: dict[str, Attr]) -> Any: ...
    def annotate(self, key: str, value: Attr) -> None: ...
    def refused(self, reason: str, error: str) -> None: ...


_TRACER: ContextVar[SpanTracer | None] = ContextVar("tokenbroker_tracer", default=None)


class _NoopSpan:
    """One shared, stateless instance: a context manager and a span that records nothing."""

    __slots__ = ()

    def __enter__(self) -> _NoopSpan:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def set_attribute(self, key: str, value: Attr) -> None:
        return None

    def is_recording(self) -> bool:
        return False


NOOP_SPAN = _NoopSpan()


def attribute_name(key: str) -> str:
    return key if "." in key else f"tokenbroker.{key}"


def span(name: str, /, **attrs: Attr | None) -> Any:
    """A child span of the current one (a context manager yielding the span), or the no-op."""
    tracer = _TRACER.get()
    if tracer is None:
        return NOOP_SPAN
    return tracer.span(name, {attribute_name(k): v for k, v in attrs.items() if v is not None})


def cache_event(cache: str, event: str) -> None:
    """Say on the current span what a cache lookup found: `tokenbroker.cache.<cache>` = hit |
    miss | coalesced (evictions are housekeeping, not the lookup's outcome, and are skipped)."""
    tracer = _TRACER.get()
    if tracer is not None and event != "evicted":
        tracer.annotate(f"tokenbroker.cache.{cache}", event)


def refusal(reason: str | None, error: str) -> None:
    """A request is refused: its server span gets status ERROR with the reason code."""
    tracer = _TRACER.get()
    if tracer is not None:
        tracer.refused(reason or error, error)


def traced(name: str, awaitable: Awaitable[T], /, **attrs: Attr | None) -> Awaitable[T]:
    """`await traced("acs.get_token", call())`: the awaitable itself when tracing is off."""
    if _TRACER.get() is None:
        return awaitable
    return _in_span(name, awaitable, attrs)


async def _in_span(name: str, awaitable: Awaitable[T], attrs: dict[str, Attr | None]) -> T:
    with span(name, **attrs):
        return await awaitable


def tracing_active() -> bool:
    return _TRACER.get() is not None
