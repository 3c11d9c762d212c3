"""Tracing wired into the app — only when telemetry is on (see service/telemetry).

`install_tracing(app)` (called by create_app) does nothing unless `[telemetry]`/`OTEL_*`
configure an exporter or the app's overrides bring `span_processors` (`dev --trace`). Then it
puts `trace_request` OUTERMOST, in front of the request-context middleware, so every log line
of the request (the canonical `http.request` line included) is written inside the server span
and carries its `trace_id`/`span_id`; and it adds the cleanup context that builds the app's
TracerProvider before the HTTP session (whose client spans it feeds) and flushes it on shutdown.

The server span: named `{method} {route template}` (`POST /api/token/obo/{name}`), a child of the
caller's W3C `traceparent`/`tracestate`, with `http.request.method`, `http.route`, `url.path`,
`http.response.status_code`, `tokenbroker.request_id` (the `X-Request-Id`), and — for a refusal
— status ERROR with the reason code the metrics and logs use (`tokenbroker.reason`).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
from aiohttp import web

from ..typedefs import OVERRIDES, SETTINGS, TELEMETRY
from .middlewares import route_name


def tracing_wanted(app: web.Application) -> bool:
    return app[SETTINGS].telemetry.enabled or bool(app[OVERRIDES].get("span_processors"))


def install_tracing(app: web.Application) -> None:
    """Outermost middleware + the TracerProvider's lifetime, when telemetry is on."""
    if not tracing_wanted(app):
        return
    app.middlewares.insert(0, trace_request)
    app.cleanup_ctx.append(_tracer_provider)


async def _tracer_provider(app: web.Application) -> AsyncIterator[None]:
    from ..telemetry.tracing import Tracing  # the optional extra: imported only when on

    tracing = Tracing(app[SETTINGS].telemetry, processors=app[OVERRIDES].get("span_processors", ()))
    app[TELEMETRY] = tracing
    yield
    await tracing.shutdown()   # flushes the last spans, for a few seconds at most


def client_trace_configs(app: web.Application) -> list[aiohttp.TraceConfig]:
    """The client-span hooks for the app's ClientSession ([] when telemetry is off)."""
    tracing = app.get(TELEMETRY)
    if tracing is None:
        return []
    from ..telemetry.client import client_trace_config

    return [client_trace_config(tracing)]


def traced_store(app: web.Application, store: Any) -> Any:
    """The store, wrapped in a span per operation when telemetry is on."""
    if app.get(TELEMETRY) is None:
        return store
    from ..telemetry.store import TracedStore

    return TracedStore(store, app[SETTINGS].store.url.split(":", 1)[0].lower())


@web.middleware
async def trace_request(request: web.Request, handler: Any) -> web.StreamResponse:
    tracing = request.app[TELEMETRY]
    route = route_name(request)
    attributes = {"http.request.method": request.method, "http.route": route, "url.path": request.path,
                  "url.scheme": request.scheme, "network.protocol.version":
                  f"{request.version.major}.{request.version.minor}"}
    with tracing.activate(), tracing.server_span(f"{request.method} {route}", request.headers,
                                                 attributes) as span:
        try:
            response = await handler(request)
        except web.HTTPException as exc:   # a redirect or an unmapped HTTP error escaping the app
            span.set_attribute("http.response.status_code", exc.status)
            raise
        except asyncio.CancelledError:     # the client went away (logged as 499)
            span.set_attribute("http.response.status_code", 499)
            raise
        span.set_attribute("http.response.status_code", response.status)
        request_id = response.headers.get("X-Request-Id")
        if request_id:
            span.set_attribute("tokenbroker.request_id", request_id)
        if response.status >= 500:
            tracing.server_error(span)
        return response
