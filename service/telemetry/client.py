"""Client spans for every call on the app's shared aiohttp session, and `traceparent` on the wire.

Installed on the session only when telemetry is on (`client_trace_config`). Entra discovery and
JWKS fetches, Entra OBO (azure-identity) and ACS (azure-communication-identity) all go through
that session (azure-core's `AioHttpTransport(session=...)`), so each HTTP attempt is one CLIENT
span under the span that made it, and the receiving service gets the trace in `traceparent`.
Outside a traced request (start-up warm-up) nothing is recorded or sent.

Attributes: `http.request.method`, `url.full` (no query string), `server.address`,
`server.port`, `http.response.status_code`, and the downstream's own correlation id when it
sends one (`MS-CV` from ACS, `x-ms-request-id` from Entra) as `tokenbroker.correlation_id`.
"""

from __future__ import annotations

from types import SimpleNamespace

import aiohttp
from opentelemetry.trace import Status, StatusCode

from .spans import _TRACER
from .tracing import Tracing, mark_failed

_CORRELATION_HEADERS = ("MS-CV", "x-ms-request-id", "x-ms-client-request-id")


def client_trace_config(tracing: Tracing) -> aiohttp.TraceConfig:
    config = aiohttp.TraceConfig()

    async def on_start(_session: aiohttp.ClientSession, ctx: SimpleNamespace,
                       params: aiohttp.TraceRequestStartParams) -> None:
        ctx.span = None
        if _TRACER.get() is None:
            return
        url = params.url
        ctx.span = tracing.start_client_span(params.method, {
            "http.request.method": params.method,
            "url.full": str(url.with_query(None).with_fragment(None)),
            "server.address": url.host or "",
            "server.port": url.port or 0,
        }, params.headers)

    async def on_end(_session: aiohttp.ClientSession, ctx: SimpleNamespace,
                     params: aiohttp.TraceRequestEndParams) -> None:
        span = getattr(ctx, "span", None)
        if span is None:
            return
        status = params.response.status
        span.set_attribute("http.response.status_code", status)
        for header in _CORRELATION_HEADERS:
            value = params.response.headers.get(header)
            if value:
                span.set_attribute("tokenbroker.correlation_id", value[:128])
                break
        if status >= 400:
            span.set_attribute("error.type", str(status))
            span.set_status(Status(StatusCode.ERROR, str(status)))
        span.end()

    async def on_exception(_session: aiohttp.ClientSession, ctx: SimpleNamespace,
                           params: aiohttp.TraceRequestExceptionParams) -> None:
        span = getattr(ctx, "span", None)
        if span is None:
            return
        name = type(params.exception).__name__
        mark_failed(span, name, name)
        span.end()

    config.on_request_start.append(on_start)
    config.on_request_end.append(on_end)
    config.on_request_exception.append(on_exception)
    return config
