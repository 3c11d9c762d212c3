"""One audit event per token-endpoint request (never a token), plus its metric."""

from __future__ import annotations

from typing import Any

from service.grants.base import AuditTrace
from service.logs import audit

EVENT = "token_exchange"


def record(*, client_id: str, grant: str, trace: AuditTrace | None, decision: str, reason: str,
           latency_ms: float, metrics: Any = None) -> None:
    """`decision` is "allow" or "deny"; `reason` a short code ("issued", "subject_expired", ...)."""
    t = trace or AuditTrace()
    audit(EVENT, client_id=client_id or None, grant=grant, issuer=t.issuer or None,
          subject=t.subject_hash or None, audience=list(t.audience), requested_token_type=t.requested_token_type
          or None, issued_token_type=t.issued_token_type or None, decision=decision, reason=reason,
          rule=t.rule or None, jti=t.jti or None, latency_ms=round(latency_ms, 2), **t.extra)
    if metrics is not None:
        metrics.child(metrics.token_exchange_total, grant, decision, reason).inc()
