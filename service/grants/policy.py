"""The per-client exchange policy: deny by default, one pure function, one rule id per decision.

`evaluate(PolicyInput) -> Decision` never raises and does no I/O, so `tokenbroker explain`
(issue 9) and the audit log can name the rule that decided. `enforce(decision)` turns a denial
into the RFC error of CONTRACT §3:

    rule                error                  when
    grant_type          unauthorized_client    the grant is not in the client's grant_types
    issuer              invalid_request        the subject's issuer is not in allowed_issuers
    audience            invalid_target         no target, or a target not in allowed_audiences
    scope.client        invalid_scope          a requested scope not in allowed_scopes
    scope.subject       invalid_scope          a requested scope the subject does not hold
    allow               -                      issued scope = requested, or the intersection

With `subject_scopes=None` (before the subject token is validated, or in `explain` without
a token) the subject rule is skipped and the issued scope is bounded by the client only.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from service.errors import InvalidRequest, InvalidScope, InvalidTarget, OAuthError, UnauthorizedClient
from service.settings import ClientSettings

ENTRA = "entra"
SELF = "self"


@dataclass(frozen=True)
class PolicyInput:
    client: ClientSettings
    grant_type: str
    issuer: str                                   # "entra", "self" or a trusted issuer's name
    audiences: tuple[str, ...]
    requested_scopes: tuple[str, ...] | None
    subject_scopes: frozenset[str] | None = None  # already translated through the scope_map


@dataclass(frozen=True)
class Decision:
    allowed: bool
    rule: str
    explanation: str
    scopes: tuple[str, ...] = ()

    @property
    def reason(self) -> str:
        return "allowed" if self.allowed else f"denied_{self.rule.replace('.', '_')}"


def translate_scopes(scopes: Iterable[str], scope_map: Mapping[str, tuple[str, ...]]) -> frozenset[str]:
    """Subject scopes as grantable scopes. With a scope_map, unmapped scopes grant nothing."""
    if not scope_map:
        return frozenset(scopes)
    out: set[str] = set()
    for s in scopes:
        out.update(scope_map.get(s, ()))
    return frozenset(out)


def evaluate(inp: PolicyInput) -> Decision:
    client = inp.client
    if inp.grant_type not in client.grant_types:
        return Decision(False, "grant_type", f"grant {inp.grant_type} is not in grant_types")
    if inp.issuer not in client.allowed_issuers:
        return Decision(False, "issuer", f"issuer {inp.issuer} is not in allowed_issuers")
    if not inp.audiences:
        return Decision(False, "audience", "no audience or resource requested")
    refused = [a for a in inp.audiences if a not in client.allowed_audiences]
    if refused:
        return Decision(False, "audience", f"{refused[0]} is not in allowed_audiences")
    allowed = set(client.allowed_scopes)
    if inp.requested_scopes is not None:
        extra = [s for s in inp.requested_scopes if s not in allowed]
        if extra:
            return Decision(False, "scope.client", f"scope {extra[0]} is not in allowed_scopes")
        if inp.subject_scopes is not None:
            missing = [s for s in inp.requested_scopes if s not in inp.subject_scopes]
            if missing:
                return Decision(False, "scope.subject", f"the subject does not hold scope {missing[0]}")
        return Decision(True, "allow", "requested scope within policy", tuple(inp.requested_scopes))
    grantable = allowed if inp.subject_scopes is None else allowed & inp.subject_scopes
    ordered = tuple(s for s in client.allowed_scopes if s in grantable)
    return Decision(True, "allow", "scope = subject scopes within allowed_scopes", ordered)


_ERRORS: dict[str, type[OAuthError]] = {
    "grant_type": UnauthorizedClient, "issuer": InvalidRequest, "audience": InvalidTarget,
    "scope.client": InvalidScope, "scope.subject": InvalidScope,
}


def enforce(decision: Decision) -> Decision:
    """The decision when allowed, else the RFC error of its rule (detail only in the log)."""
    if decision.allowed:
        return decision
    error = _ERRORS.get(decision.rule, InvalidRequest)
    description = ("The subject token is not acceptable." if decision.rule == "issuer" else None)
    raise error(description, detail=decision.explanation, reason=decision.reason)
