"""`tokenbroker dev --trace`: each request's span tree on the console, no collector needed.

    GET /api/token/teams  201  41.8 ms  trace 4bf92f3577b34da6a3ce929d0e0e4736
    ├─ token.validate  1.9 ms  tid=… app_id=… cache.entra_tokens=miss
    │  └─ GET https://127.0.0.1:8401/…/discovery/v2.0/keys  200  6.1 ms
    └─ cache.lookup  36.5 ms  cache=acs_teams cache.acs_teams=miss
       └─ acs.get_token_for_teams_user  36.0 ms
          └─ POST https://127.0.0.1:8402/access/teamsUser/:exchangeAccessToken  200  35.2 ms

A span processor: spans are buffered per trace and the tree is printed when the request's own
(server) span ends. Children that end later (none in the broker) are dropped.
"""

from __future__ import annotations

import sys
from collections import defaultdict
from typing import TextIO

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.trace import SpanKind, StatusCode

_SHOWN_PREFIX = "tokenbroker."
_HIDDEN = {"tokenbroker.request_id", "tokenbroker.namespace"}
MAX_BUFFERED_TRACES = 1000


def _millis(span: ReadableSpan) -> str:
    if span.start_time is None or span.end_time is None:
        return "?"
    return f"{(span.end_time - span.start_time) / 1e6:.1f} ms"


def _label(span: ReadableSpan) -> str:
    attrs = dict(span.attributes or {})
    parts = [span.name]
    if span.kind is SpanKind.CLIENT:
        parts = [f"{span.name} {attrs.get('url.full', '')}".rstrip()]
    status = attrs.get("http.response.status_code")
    if status is not None:
        parts.append(str(status))
    parts.append(_millis(span))
    extras = [f"{k[len(_SHOWN_PREFIX):]}={v}" for k, v in sorted(attrs.items())
              if k.startswith(_SHOWN_PREFIX) and k not in _HIDDEN]
    if span.status.status_code is StatusCode.ERROR and "tokenbroker.reason" not in attrs:
        extras.append(f"error={span.status.description or 'error'}")
    return "  ".join(parts + ([" ".join(extras)] if extras else []))


def _ids(span: ReadableSpan) -> tuple[int, int]:
    ctx = span.context
    return (ctx.trace_id, ctx.span_id) if ctx is not None else (0, 0)


class ConsoleTreeProcessor(SpanProcessor):
    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream
        self._spans: dict[int, list[ReadableSpan]] = defaultdict(list)

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        return None

    def on_end(self, span: ReadableSpan) -> None:
        trace_id = _ids(span)[0]
        buffered = self._spans[trace_id]
        buffered.append(span)
        if span.parent is None or span.parent.is_remote:
            del self._spans[trace_id]
            self._print(span, buffered)
        elif len(self._spans) > MAX_BUFFERED_TRACES:   # a root that never ended: do not grow forever
            self._spans.pop(next(iter(self._spans)))

    def render(self, root: ReadableSpan, spans: list[ReadableSpan]) -> str:
        children: dict[int, list[ReadableSpan]] = defaultdict(list)
        for s in spans:
            if s.parent is not None and s is not root:
                children[s.parent.span_id].append(s)
        trace_id = format(_ids(root)[0], "032x")
        lines = [f"{_label(root)}  trace {trace_id}"]

        def walk(span_id: int, prefix: str) -> None:
            kids = sorted(children.get(span_id, []), key=lambda s: s.start_time or 0)
            for i, kid in enumerate(kids):
                last = i == len(kids) - 1
                lines.append(f"{prefix}{'└─' if last else '├─'} {_label(kid)}")
                walk(_ids(kid)[1], prefix + ("   " if last else "│  "))

        walk(_ids(root)[1], "")
        return "\n".join(lines)

    def _print(self, root: ReadableSpan, spans: list[ReadableSpan]) -> None:
        stream = self._stream or sys.stderr
        print(self.render(root, spans) + "\n", file=stream, flush=True)   # a blank line between requests

    def shutdown(self) -> None:
        self._spans.clear()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True
