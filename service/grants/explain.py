"""`tokenbroker explain`: which policy rule allows or denies a token request, and why.

The decision comes from the very function the token endpoint uses —
`downstream_targets.evaluate`, which is `policy.evaluate` plus the rules of the `acs:teams` /
`obo:<name>` targets — so the rule printed here is the `rule` of the endpoint's
`token_exchange` audit event for the same request. Without `subject_scopes` the subject rule
is skipped and the issued scope is bounded by the client only (as the endpoint's first pass,
before the subject token is validated); with them, they are translated through the issuer's
`scope_map` exactly as the endpoint translates a token's `scp`/`scope`.

Pure (no I/O): bad input raises `ExplainInputError`, the CLI turns it into exit code 2.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from service.errors import OAuthError
from service.grants.base import REFRESH_TOKEN, TOKEN_EXCHANGE, TokenRequest
from service.grants.downstream_targets import enforce, evaluate
from service.grants.policy import ENTRA, SELF, Decision, PolicyInput, translate_scopes
from service.settings import Settings

GRANT_ALIASES = {"token-exchange": TOKEN_EXCHANGE, TOKEN_EXCHANGE: TOKEN_EXCHANGE, REFRESH_TOKEN: REFRESH_TOKEN}


class ExplainInputError(ValueError):
    """The question cannot be asked of this configuration (unknown client, issuer, ...)."""


@dataclass(frozen=True)
class Explanation:
    inp: PolicyInput
    decision: Decision
    error: str | None              # the RFC 6749 error the endpoint answers, when denied
    status: int | None

    def as_dict(self) -> dict[str, Any]:
        inp = self.inp
        return {
            "decision": "allow" if self.decision.allowed else "deny",
            "allowed": self.decision.allowed, "rule": self.decision.rule,
            "explanation": self.decision.explanation, "error": self.error, "status": self.status,
            "scopes": list(self.decision.scopes) if self.decision.allowed else [],
            "input": {"client": inp.client.client_id, "grant_type": inp.grant_type, "issuer": inp.issuer,
                      "audience": list(inp.audiences),
                      "scope": list(inp.requested_scopes) if inp.requested_scopes is not None else None,
                      "subject_scopes": sorted(inp.subject_scopes) if inp.subject_scopes is not None else None},
        }

    def as_text(self) -> str:
        d, inp = self.decision, self.inp
        lines = [f"decision     {'allow' if d.allowed else 'deny'}", f"rule         {d.rule}",
                 f"explanation  {d.explanation}"]
        if d.allowed:
            bound = "" if inp.subject_scopes is not None else "  (bounded by allowed_scopes only: no --subject-scopes)"
            lines.append(f"scope        {' '.join(d.scopes) or '-'}{bound}")
        else:
            lines.append(f"answer       {self.status} {self.error}")
        scope = " ".join(inp.requested_scopes) if inp.requested_scopes is not None else "-"
        lines.append(f"request      client={inp.client.client_id} grant_type={inp.grant_type} issuer={inp.issuer} "
                     f"audience={','.join(inp.audiences)} scope={scope}")
        return "\n".join(lines)


def issuer_names(settings: Settings) -> list[str]:
    """The issuer names a subject token can be routed to with this configuration."""
    return ([ENTRA] if settings.entra is not None else []) + [SELF] + [t.name for t in settings.trusted_issuers]


def explain(settings: Settings, *, client_id: str, issuer: str, audiences: Sequence[str],
            scope: str | None = None, subject_scopes: str | None = None,
            grant_type: str = TOKEN_EXCHANGE) -> Explanation:
    client = settings.client(client_id)
    if client is None:
        raise ExplainInputError(f"client {client_id!r} is not in [[clients]]")
    if issuer not in issuer_names(settings):
        raise ExplainInputError(f"issuer {issuer!r} is not one of: {', '.join(issuer_names(settings))}")
    grant = GRANT_ALIASES.get(grant_type)
    if grant is None:
        raise ExplainInputError(f"grant type {grant_type!r} is not one of: {', '.join(sorted(GRANT_ALIASES))}")
    targets = tuple(dict.fromkeys(a for a in audiences if a))
    if not targets:
        raise ExplainInputError("at least one non-empty --audience is required")
    inp = PolicyInput(client, grant, issuer, targets, _scopes(scope),
                      None if subject_scopes is None else _subject_scopes(settings, issuer, subject_scopes))
    decision = evaluate(inp, settings)
    if grant == REFRESH_TOKEN and decision.rule != "grant_type":
        decision = Decision(True, "allow", "refresh_token is in grant_types; the refresh token's family "
                            "fixes issuer, audience and scope (a refresh can only narrow them)")
    try:
        enforce(decision)
    except OAuthError as e:
        return Explanation(inp, decision, e.error, e.status)
    return Explanation(inp, decision, None, None)


def _scopes(raw: str | None) -> tuple[str, ...] | None:
    """The `scope` parameter as the endpoint parses it (empty = not sent)."""
    if not raw:
        return None
    try:
        return TokenRequest("", None, {"scope": raw}).requested_scopes()  # type: ignore[arg-type]
    except OAuthError as e:
        raise ExplainInputError(f"scope {raw!r} is malformed (space-separated RFC 6749 scope tokens)") from e


def _subject_scopes(settings: Settings, issuer: str, raw: str) -> frozenset[str]:
    scopes = [s for s in raw.split(" ") if s]
    if issuer == ENTRA and settings.entra is not None:
        return translate_scopes(scopes, settings.entra.scope_map)
    trusted = settings.trusted_issuer(issuer)
    return translate_scopes(scopes, trusted.scope_map) if trusted is not None else frozenset(scopes)
