"""The two downstream calls behind `acs:teams` and `obo:<name>`, and their token-endpoint answers.

Each validates the subject token locally first (a refused token never reaches ACS or Entra),
calls the app's shared client (its cache and single-flight), and fills the audit trace with
the downstream correlation: `downstream`, `downstream_request_id` (our X-Request-Id, sent as
`x-ms-client-request-id` / `client-request-id`), `downstream_correlation_id` (ACS `MS-CV`,
Entra's `correlation_id` when it refused), `downstream_cached`, and the issued token's
`jti`/`uti` as the trace's `jti`.

Refusals, mapped for an RFC 6749 §5.2 token endpoint (RFC 8693 §2.2.2):

    subject token refused locally, by ACS, or by Entra (AADSTS50013/500133)   400 invalid_request
    Entra consent_required (AADSTS65001)             400 invalid_grant, "suberror": "consent_required"
    Entra interaction_required (MFA, CA)             400 interaction_required, "claims": Entra's claims
    ACS/Entra down, throttling, timeout, refused broker credentials   502/503/504 (+ Retry-After)

The last two keep Entra's own token-endpoint shape, which MSAL-based clients already handle
(`claims` goes to `acquire_token_interactive(claims_challenge=...)`).
"""

from __future__ import annotations

import base64
import binascii
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import jwt

from service.downstream.entra_errors import parse_failure
from service.downstream.entra_obo import OboCaller
from service.errors import (
    BrokerError,
    ConsentRequired,
    InteractionRequired,
    InvalidRequest,
    InvalidTarget,
    InvalidTeamsToken,
    InvalidToken,
    OAuthError,
)
from service.grants.base import AuditTrace
from service.grants.collaborators import EntraTokens, OboExchange, TeamsExchange
from service.logs import current_request_id
from service.settings import Settings
from service.validation.entra import EntraPrincipal
from service.validation.teams import validate_teams_token

NOT_ACCEPTABLE = "The subject token is not acceptable."
#: run on the validated user before the downstream call (account linking may refuse)
Check = Callable[[EntraPrincipal], Awaitable[None]]


async def _no_check(_principal: EntraPrincipal) -> None:
    return None


class DownstreamRefused(OAuthError):
    """Entra wants the user back (consent, MFA): 400 with Entra's `suberror` / `claims`."""

    def __init__(self, error: str, description: str, *, suberror: str | None = None,
                 claims: str | None = None, **kw: Any) -> None:
        super().__init__(description, **kw)
        self.error, self.suberror, self.claims = error, suberror, claims

    def body(self) -> dict:
        body = super().body()
        if self.suberror:
            body["suberror"] = self.suberror
        if self.claims:
            body["claims"] = self.claims
        return body


@dataclass(frozen=True)
class DownstreamResult:
    token: str = field(repr=False)
    token_type: str
    expires_in: int
    scope: str | None
    iss: str                    # the subject token's issuer, tid and oid (for the subject hash)
    tid: str
    oid: str
    token_id: str               # the downstream token's jti/uti ("" when it has none)


def token_id(token: str) -> str:
    """`uti` (Entra) or `jti` (ACS) of a downstream JWT, for correlation; never verified."""
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except (jwt.PyJWTError, ValueError, TypeError):
        return ""
    value = claims.get("uti") or claims.get("jti")
    return value[:64] if isinstance(value, str) else ""


def _unavailable(target: str) -> InvalidTarget:
    return InvalidTarget(detail=f"{target} is not configured", reason="downstream_unavailable")


async def call_acs_teams(validator: EntraTokens, client: TeamsExchange | None, settings: Settings, teams_token: str, *,
                         trace: AuditTrace, now: float, check: Check = _no_check) -> DownstreamResult:
    """An ACS "Teams user" token for the Teams token's user (`oid`), asked for by its app."""
    if client is None or settings.acs is None:
        raise _unavailable("acs:teams")
    teams = await validate_teams_token(validator, teams_token, settings.acs, now=now)
    if teams.exp - now < 1:           # within the validator's clock skew, but nothing left to give
        raise InvalidRequest(NOT_ACCEPTABLE, reason="subject_expired")
    await check(teams)
    calls: dict = {}
    trace.extra["downstream"] = "acs"
    try:
        token, expires_on = await client.exchange_teams_token_cached(
            teams_token, teams.app_id, teams.oid, not_after=teams.exp, trace=calls, token_hash=teams.token_hash)
    except InvalidTeamsToken as e:    # ACS refused the Teams token after our checks passed
        raise InvalidRequest(NOT_ACCEPTABLE, reason="subject_refused_by_acs", detail=e.detail) from e
    finally:
        trace.extra.update(downstream_request_id=calls.get("request_id"),
                           downstream_correlation_id=calls.get("correlation_id"),
                           downstream_cached=calls.get("cached"))
    expires_at = min(expires_on.timestamp(), teams.exp)
    expires_in = math.floor(expires_at - now)
    if expires_in < 1:
        raise InvalidRequest(NOT_ACCEPTABLE, reason="subject_expired")
    return DownstreamResult(token, "N_A", expires_in, None, str(teams.claims.get("iss", "")), teams.tid,
                            teams.oid, token_id(token))


async def call_obo(validator: EntraTokens, client: OboExchange | None, name: str, assertion: str, *, trace: AuditTrace,
                   now: float, check: Check = _no_check) -> DownstreamResult:
    """An Entra token for `[obo.<name>]` on behalf of the assertion's user."""
    downstream = client.downstream(name) if client is not None else None
    if client is None or downstream is None:
        raise _unavailable(f"obo:{name}")
    p = await validator.validate(assertion, now=now)
    if p.is_app_only or not p.oid or not p.tid:   # there is no user to act for
        raise InvalidRequest(NOT_ACCEPTABLE, reason="subject_app_only")
    await check(p)
    trace.extra.update(downstream="entra_obo", downstream_request_id=current_request_id() or None)
    caller = OboCaller(tid=p.tid, oid=p.oid, app_id=p.app_id, token_hash=p.token_hash, assertion_exp=p.exp)
    calls: dict[str, Any] = {}
    try:
        token = await client.exchange(downstream, assertion, caller, trace=calls)
    except BrokerError as e:
        cause = e.__cause__
        if cause is not None:
            failure = parse_failure(cause)
            trace.extra.update(downstream_correlation_id=failure.correlation_id or None,
                               aadsts=failure.aadsts)
        mapped = _for_token_endpoint(e)
        if mapped is e:
            raise
        raise mapped from e
    finally:
        trace.extra["downstream_cached"] = calls.get("cache") in ("hit", "coalesced", "shared")
    return DownstreamResult(token.access_token, "Bearer", max(1, math.floor(token.expires_on - now)),
                            token.scope, str(p.claims.get("iss", "")), p.tid, p.oid,
                            token_id(token.access_token))


def _for_token_endpoint(e: BrokerError) -> BrokerError:
    """The /api/* answers of Entra's refusals, restated for the token endpoint."""
    if isinstance(e, InteractionRequired):
        return DownstreamRefused("interaction_required", "The user must sign in again to satisfy a claims "
                                 "challenge.", claims=_claims(e.claims_b64), reason="interaction_required",
                                 detail=e.detail)
    if isinstance(e, ConsentRequired):
        return DownstreamRefused("invalid_grant", e.description, suberror="consent_required",
                                 reason="consent_required", detail=e.detail)
    if isinstance(e, InvalidToken):
        return InvalidRequest(NOT_ACCEPTABLE, reason="subject_refused_by_entra", detail=e.detail)
    return e                            # DownstreamError 502/503/504 and friends, unchanged


def _claims(claims_b64: str) -> str | None:
    try:
        return base64.b64decode(claims_b64).decode("utf-8") or None
    except (binascii.Error, UnicodeDecodeError):
        return None
