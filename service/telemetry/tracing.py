"""The OpenTelemetry side: one TracerProvider per app, its exporters, and the span factory.

Imported only when telemetry is configured (it needs the `telemetry` extra). The provider is the
app's own, not OpenTelemetry's global one, so two apps in one process (tests, `dev`) never share
exporters; the current span still travels in OpenTelemetry's context (contextvars), so the
single-flight tasks and the aiohttp client hooks see the request's span.

- Sampling: `ParentBased(TraceIdRatioBased(sample_ratio))` — a caller's sampled flag is followed.
- Export: OTLP/HTTP protobuf to `traces_endpoint`; Azure Monitor when a connection string is set;
  any extra span processors (the console tree of `dev --trace`). Batched, off the event loop.
- Propagation: W3C `traceparent`/`tracestate` in and out.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import uuid
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from .. import __version__
from ..logs import set_trace_source
from ..settings import TelemetrySettings
from .spans import _TRACER, Attr

SCOPE = "tokenbroker"
FLUSH_SECONDS = 3.0     # at shutdown, the longest we wait for the last spans to be exported
_PROPAGATOR = TraceContextTextMapPropagator()


def _pairs(text: str) -> dict[str, str]:
    """`k=v,k2=v2` (OTEL_RESOURCE_ATTRIBUTES / OTEL_EXPORTER_OTLP_HEADERS), values URL-decoded."""
    from urllib.parse import unquote

    out: dict[str, str] = {}
    for item in text.split(","):
        key, sep, value = item.partition("=")
        if sep and key.strip():
            out[unquote(key.strip())] = unquote(value.strip())
    return out


def failure_reason(exc: BaseException) -> str:
    """The broker's reason code of an error (BrokerError.reason), else the exception's class."""
    reason = getattr(exc, "reason", None)
    return reason if isinstance(reason, str) and reason else type(exc).__name__


def mark_failed(span: Span, reason: str, error_type: str | None = None) -> None:
    span.set_attribute("tokenbroker.reason", reason)
    if error_type:
        span.set_attribute("error.type", error_type)
    span.set_status(Status(StatusCode.ERROR, reason))


_CONTEXT_KEYS = ("kid", "tid", "app_id")


def _refusal_context(span: Span, exc: BaseException) -> None:
    """A refused token's kid/tid/app id (TokenValidationError.context, sanitised for logs)."""
    context = getattr(exc, "context", None)
    if isinstance(context, dict):
        for key in _CONTEXT_KEYS:
            value = context.get(key)
            if isinstance(value, str) and value:
                span.set_attribute(f"tokenbroker.{key}", value)


def current_ids() -> tuple[str, str] | None:
    """(trace_id, span_id) in hex of the current span while a traced request runs, for the logs."""
    if _TRACER.get() is None:
        return None
    ctx = trace.get_current_span().get_span_context()
    if not ctx.is_valid:
        return None
    return format(ctx.trace_id, "032x"), format(ctx.span_id, "016x")


class Tracing:
    """One app's tracer; `service.telemetry.spans` reaches it through the `_TRACER` contextvar."""

    def __init__(self, settings: TelemetrySettings, *, processors: Sequence[SpanProcessor] = ()) -> None:
        attributes: dict[str, Any] = {"service.instance.id": str(uuid.uuid4()),   # one per process/replica
                                      **_pairs(settings.resource_attributes)}
        attributes.update({"service.name": settings.service_name, "service.version": __version__})
        self.provider = TracerProvider(resource=Resource.create(attributes), shutdown_on_exit=False,
                                       sampler=ParentBased(TraceIdRatioBased(settings.sample_ratio)))
        for processor in (*self._exporters(settings, self.provider), *processors):
            self.provider.add_span_processor(processor)
        self.tracer = self.provider.get_tracer(SCOPE, __version__)
        set_trace_source(current_ids)

    @staticmethod
    def _exporters(settings: TelemetrySettings, provider: TracerProvider) -> list[SpanProcessor]:
        out: list[SpanProcessor] = []
        if settings.traces_endpoint:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            exporter = OTLPSpanExporter(endpoint=settings.traces_endpoint, timeout=10,
                                        headers=_pairs(settings.otlp_headers.reveal()))
            out.append(BatchSpanProcessor(exporter))
        if settings.azure_monitor_connection_string:
            from azure.monitor.opentelemetry.exporter import AzureMonitorTraceExporter

            out.append(BatchSpanProcessor(AzureMonitorTraceExporter(   # our provider, not the global one
                connection_string=settings.azure_monitor_connection_string.reveal(), tracer_provider=provider)))
        return out

    # --- spans --------------------------------------------------------------------------------

    @contextlib.contextmanager
    def span(self, name: str, attributes: Mapping[str, Attr], *, kind: SpanKind = SpanKind.INTERNAL,
             context: Context | None = None) -> Iterator[Span]:
        with self.tracer.start_as_current_span(name, context=context, kind=kind, attributes=attributes,
                                               record_exception=False,
                                               set_status_on_exception=False) as span:
            try:
                yield span
            except BaseException as exc:
                mark_failed(span, failure_reason(exc), type(exc).__name__)
                _refusal_context(span, exc)
                raise

    def server_span(self, name: str, headers: Mapping[str, str],
                    attributes: Mapping[str, Attr]) -> contextlib.AbstractContextManager[Span]:
        """The request's span, a child of the caller's `traceparent` when it sent a valid one."""
        return self.span(name, attributes, kind=SpanKind.SERVER, context=_PROPAGATOR.extract(headers))

    def start_client_span(self, name: str, attributes: dict[str, Attr],
                          headers: Any) -> Span:
        """A client span under the current one, its `traceparent` written into `headers`."""
        span = self.tracer.start_span(name, kind=SpanKind.CLIENT, attributes=attributes)
        _PROPAGATOR.inject(headers, context=trace.set_span_in_context(span))
        return span

    def annotate(self, key: str, value: Attr) -> None:
        span = trace.get_current_span()
        if span.is_recording():
            span.set_attribute(key, value)

    def refused(self, reason: str, error: str) -> None:
        """The request was refused: the current (server) span says why, with the reason code."""
        span = trace.get_current_span()
        if span.is_recording():
            span.set_attribute("tokenbroker.error", error)
            mark_failed(span, reason)

    @staticmethod
    def server_error(span: Span) -> None:
        """A 5xx answer whose span says nothing yet (an unexpected error): status ERROR."""
        status = getattr(span, "status", None)   # the SDK's span has it; the API's does not
        if span.is_recording() and status is not None and status.status_code is StatusCode.UNSET:
            mark_failed(span, "server_error")

    def activate(self) -> contextlib.AbstractContextManager[None]:
        """Make `service.telemetry.spans` use this tracer (for this request's context)."""
        return _activated(self)

    async def shutdown(self, *, wait: float = FLUSH_SECONDS) -> bool:
        """Flush and stop the exporters, waiting at most `wait` seconds (an unreachable collector
        must not hold up a SIGTERM); True when they finished in time. The blocking flush runs in
        a daemon thread, so a process that stops waiting can still exit."""
        loop = asyncio.get_running_loop()
        done = asyncio.Event()

        def flush() -> None:
            try:
                self.provider.shutdown()
            finally:
                with contextlib.suppress(RuntimeError):   # the loop may be closed: nobody waits any more
                    loop.call_soon_threadsafe(done.set)

        threading.Thread(target=flush, name="otel-shutdown", daemon=True).start()
        try:
            await asyncio.wait_for(done.wait(), wait)
            return True
        except TimeoutError:
            return False


@contextlib.contextmanager
def _activated(tracing: Tracing) -> Iterator[None]:
    token = _TRACER.set(tracing)
    try:
        yield
    finally:
        _TRACER.reset(token)
