"""Audit events: emitted here, by the HTTP layer, once per request — never a token.

    token_exchange          POST /oauth2/token                 record(...) from token_endpoint.py
    acs.teams_exchange      GET|POST /api/token/teams           @audited on the api_acs.py routes
    acs.identity_token, acs.identity_create, acs.identity_read, acs.identity_delete
    obo.exchange            POST /api/token/obo/{name}          @audited on api_obo.py

Every event has `decision` ("allow" / "deny") and `reason` (a short code; a refusal's
`BrokerError.reason`), so a request refused before any downstream call (a bad bearer token,
an unknown downstream, an app-only caller) is audited like one refused by Entra or ACS. The
layers below only fill a `trace` dict with what they learned (request and correlation ids,
cache use, AADSTS codes); they never write audit events themselves.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from aiohttp import web

from ..errors import BrokerError
from ..grants.base import AuditTrace
from ..logs import audit, audit_fields
from ..metrics import Metrics
from ..validation.entra import EntraPrincipal
from .bearer import authenticate

EVENT = "token_exchange"


def record(*, client_id: str, grant: str, trace: AuditTrace | None, decision: str, reason: str,
           latency_ms: float, metrics: Metrics | None = None) -> None:
    """`decision` is "allow" or "deny"; `reason` a short code ("issued", "subject_expired", ...)."""
    t = trace or AuditTrace()
    for event, fields in t.events:       # what account linking did for this request
        audit(event, client_id=client_id or None, **fields)
    line = {"client_id": client_id or None, "grant": grant, "issuer": t.issuer or None,
            "subject": t.subject_hash or None, "audience": list(t.audience),
            "requested_token_type": t.requested_token_type or None,
            "issued_token_type": t.issued_token_type or None, "decision": decision, "reason": reason,
            "rule": t.rule or None, "jti": t.jti or None, "latency_ms": round(latency_ms, 2)}
    if t.extra:
        clash = line.keys() & t.extra.keys()
        if clash:   # (what `audit(**fields, **t.extra)` refused: a field is never overwritten)
            raise TypeError(f"audit fields given twice: {sorted(clash)}")
        line.update(t.extra)
    audit_fields(EVENT, line)
    if metrics is not None:
        metrics.child(metrics.token_exchange_total, grant, decision, reason).inc()


class AuditRecord:
    """Collects one /api/* audit event's fields while a handler runs; emitted once (`emit`).
    Handlers add fields (`record.fields[...]`), a success reason (`record.fields["reason"]`)
    and hand `record.trace` to the downstream client, whose findings are copied in."""

    def __init__(self, event: str, request: web.Request, trace_fields: Mapping[str, str]) -> None:
        self.event, self.request, self.trace_fields = event, request, trace_fields
        self.fields: dict[str, object] = {"route": f"{request.method} {request.path}"}
        self.trace: dict[str, Any] = {}

    def subject(self, principal: EntraPrincipal) -> None:
        fields = self.fields
        fields["tid"], fields["user"], fields["client_app"] = principal.tid, principal.user_hash, principal.app_id

    def emit(self, decision: str, reason: str, started: float) -> None:
        """The one audit line: this record's fields, the decision and the trace's findings."""
        line = self.fields   # consumed: one dict becomes the audit line
        line["decision"], line["reason"] = decision, reason
        trace = self.trace
        for key, field in self.trace_fields.items():
            line[field] = trace.get(key)
        line["latency_ms"] = round((time.perf_counter() - started) * 1000, 2)
        audit_fields(self.event, line)


AuditedHandler = Callable[[web.Request, EntraPrincipal, AuditRecord], Awaitable[web.StreamResponse]]


def audited(event: str, trace_fields: Mapping[str, str]) -> Callable[
        [AuditedHandler], Callable[[web.Request], Awaitable[web.StreamResponse]]]:
    """A route handler: authenticate the bearer, record it as the audit subject, run `handler`;
    one `event` audit line whatever happens (a refused bearer included). `trace_fields` maps
    the downstream trace's keys to the event's field names (always present, None when unknown)."""

    def wrap(handler: AuditedHandler) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        @functools.wraps(handler)
        async def route(request: web.Request) -> web.StreamResponse:
            # one coroutine per request around the handler (a hot path: no closures per call)
            record = AuditRecord(event, request, trace_fields)
            started = time.perf_counter()
            decision, reason = "deny", "error"
            try:
                principal = await authenticate(request)
                record.subject(principal)
                response = await handler(request, principal, record)
                decision, reason = "allow", str(record.fields.pop("reason", "ok"))
                return response
            except BrokerError as exc:
                reason = exc.reason
                raise
            finally:
                record.emit(decision, reason, started)

        return route

    return wrap
