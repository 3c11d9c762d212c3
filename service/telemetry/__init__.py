"""OpenTelemetry tracing for the broker: free when off, one trace per exchange when on.

Layers call only the helpers re-exported here (no OpenTelemetry import, so the broker runs
without the `telemetry` extra when tracing is off):

    span(name, **attrs)        a child span (context manager), or one shared no-op
    traced(name, awaitable)    await inside a span; the awaitable itself when off
    cache_event(cache, event)  what a cache lookup found, on the current span
    refusal(reason, error)     the request was refused: status ERROR with the reason code

The OpenTelemetry side (`tracing`, `client`, `console`, `store`) is imported by the app only
when `[telemetry]`/`OTEL_*` configure an exporter, or `dev --trace` asks for the console tree;
`service/http/tracing.py` wires it into the app. See docs/observability.md.
"""

from .spans import NOOP_SPAN, cache_event, refusal, span, traced, tracing_active

__all__ = ["NOOP_SPAN", "cache_event", "refusal", "span", "traced", "tracing_active"]
