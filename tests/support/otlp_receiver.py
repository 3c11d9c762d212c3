"""A tiny OTLP/HTTP trace receiver (a collector's `/v1/traces`), run in a background thread.

It decodes each `ExportTraceServiceRequest` (protobuf, gzip or not) with opentelemetry-proto and
keeps the spans as plain dicts: trace_id/span_id/parent_span_id in hex, name, kind
("SERVER", "CLIENT", "INTERNAL"), attributes, status ("OK"/"ERROR"/"UNSET") and its message,
and the resource's service.name. A real server on a real socket: the broker exports to it
exactly as it would to an OpenTelemetry Collector.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from aiohttp import web
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from tests.support.threaded import ThreadedServer, start_threaded

_KINDS = {1: "INTERNAL", 2: "SERVER", 3: "CLIENT", 4: "PRODUCER", 5: "CONSUMER"}
_STATUS = {0: "UNSET", 1: "OK", 2: "ERROR"}


def _value(v: AnyValue) -> Any:
    kind = v.WhichOneof("value")
    if kind == "array_value":
        return [_value(x) for x in v.array_value.values]
    return getattr(v, kind) if kind else None


def decode(body: bytes) -> list[dict[str, Any]]:
    request = ExportTraceServiceRequest()
    request.ParseFromString(body)
    spans = []
    for resource_spans in request.resource_spans:
        resource = {a.key: _value(a.value) for a in resource_spans.resource.attributes}
        for scope_spans in resource_spans.scope_spans:
            for s in scope_spans.spans:
                spans.append({
                    "trace_id": s.trace_id.hex(), "span_id": s.span_id.hex(),
                    "parent_span_id": s.parent_span_id.hex() or None, "name": s.name,
                    "trace_state": s.trace_state,
                    "kind": _KINDS.get(s.kind, str(s.kind)),
                    "attributes": {a.key: _value(a.value) for a in s.attributes},
                    "status": _STATUS.get(s.status.code, str(s.status.code)),
                    "status_message": s.status.message,
                    "duration_ms": (s.end_time_unix_nano - s.start_time_unix_nano) / 1e6,
                    "service": resource.get("service.name"), "resource": resource,
                    "scope": scope_spans.scope.name,
                })
    return spans


class OtlpReceiver:
    def __init__(self) -> None:
        self.spans: list[dict[str, Any]] = []
        self.requests: list[dict[str, str]] = []
        self._lock = threading.Lock()
        self.server: ThreadedServer = start_threaded(self._app, None)
        self.url = self.server.url

    def _app(self, _url: str) -> web.Application:
        async def traces(request: web.Request) -> web.Response:
            body = await request.read()   # aiohttp undoes Content-Encoding: gzip
            try:
                spans = decode(body)
            except Exception:  # noqa: BLE001 - a collector answers 400 to an undecodable body
                return web.Response(status=400, text="bad protobuf")
            with self._lock:
                self.requests.append({"content_type": request.content_type,
                                      **{k.lower(): v for k, v in request.headers.items()}})
                self.spans.extend(spans)
            return web.Response(body=ExportTraceServiceResponse().SerializeToString(),
                                content_type="application/x-protobuf")

        app = web.Application()
        app.router.add_post("/v1/traces", traces)
        return app

    def trace(self, trace_id: str) -> list[dict[str, Any]]:
        with self._lock:
            return [s for s in self.spans if s["trace_id"] == trace_id]

    def wait_for(self, predicate: Callable[[list[dict[str, Any]]], bool], *, timeout: float = 30.0
                 ) -> list[dict[str, Any]]:
        """Poll until `predicate(all spans so far)` holds; the spans, or AssertionError."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                spans = list(self.spans)
            if predicate(spans):
                return spans
            if time.monotonic() > deadline:
                raise AssertionError(f"spans never arrived; got {[s['name'] for s in spans]}")
            time.sleep(0.05)

    def stop(self) -> None:
        self.server.stop()
