"""The local check of the `teams-user-aad-token` header, before ACS ever sees it.

The Teams token is the user's Entra access token for ACS. It must be valid (signature through
the shared JWKS cache unless `acs.verify_teams_token_signature` is off; issuer per tenant,
expiry — the claim checks always run), for ACS (`aud` = `https://auth.msft.communication.azure.com`
or the ACS first-party app id), carry ALL `acs.teams_scopes`, come from an app in
`acs.allowed_teams_client_apps`, and belong to the same user as the bearer token (`oid` and
`tid` equal). Any refusal is `invalid_teams_token` — 400 for an invalid/expired/malformed token
or another user, 403 for a missing scope or a refused app/tenant — never a Bearer challenge,
which would make the client refresh the wrong token.
"""

from __future__ import annotations

from aiohttp import web

from ..errors import (
    InvalidRequest,
    InvalidTeamsToken,
    TokenPolicyRefused,
    TokenScopeMissing,
    TokenValidationError,
)
from ..logs import get_logger
from ..settings import AcsSettings
from ..telemetry import span
from ..typedefs import CLOCK, ENTRA_VALIDATOR, METRICS
from ..validation.entra import EntraPrincipal
from ..validation.jwt_checks import MAX_TOKEN_BYTES
from ..validation.teams import TEAMS_AUDIENCES, validate_teams_token
from .bearer import describe_token

HEADER = "teams-user-aad-token"
__all__ = ["HEADER", "TEAMS_AUDIENCES", "check_teams_token", "teams_header"]
log = get_logger("tokenbroker.acs")


def _refused(request: web.Request, reason: str, status: int, detail: str = "") -> InvalidTeamsToken:
    request.app[METRICS].token_validation_failures_total.labels(reason=f"teams_{reason}").inc()
    return InvalidTeamsToken(status=status, reason=reason, detail=detail)


def teams_header(request: web.Request) -> str:
    """The raw header value; 400 invalid_request when absent, invalid_teams_token when unusable."""
    values = request.headers.getall(HEADER, [])
    if not values:
        raise InvalidRequest(f"The {HEADER} header is required.", reason="missing_teams_token")
    if len(values) > 1:
        raise _refused(request, "malformed", 400, "several teams-user-aad-token headers")
    token = values[0].strip()
    if not token:
        raise InvalidRequest(f"The {HEADER} header is required.", reason="missing_teams_token")
    if len(token) > MAX_TOKEN_BYTES:
        raise _refused(request, "too_large", 400)
    return token


async def check_teams_token(request: web.Request, token: str, bearer: EntraPrincipal,
                            acs: AcsSettings) -> EntraPrincipal:
    """The validated Teams principal, or InvalidTeamsToken (DownstreamError if Entra's keys are
    unreachable)."""
    validator = request.app[ENTRA_VALIDATOR]
    try:
        with span("token.validate", token_kind="teams") as s:   # telemetry (no-op when off)
            teams = await validate_teams_token(validator, token, acs, now=request.app[CLOCK]())
            describe_token(s, token, teams)
    except TokenScopeMissing as exc:
        raise _refused(request, exc.reason, 403, exc.detail) from exc
    except TokenPolicyRefused as exc:
        raise _refused(request, exc.reason, 403, exc.detail) from exc
    except TokenValidationError as exc:
        raise _refused(request, exc.reason, 400, exc.detail) from exc
    if teams.oid != bearer.oid or teams.tid.lower() != bearer.tid.lower():
        raise _refused(request, "user_mismatch", 400, "the Teams token is another user's")
    return teams
