"""The `teams-user-aad-token` header of `/api/token/teams`, checked before ACS ever sees it.

The rules are validation/teams.py's (the same as for `audience=acs:teams`), with the bearer
token's user as the one the Teams token must belong to. Any refusal is `invalid_teams_token`
(400, or 403 for a missing scope or a refused app/tenant) — never a Bearer challenge, which
would make the client refresh the wrong token.
"""

from __future__ import annotations

from aiohttp import web

from ..errors import InvalidRequest, InvalidTeamsToken, TokenValidationError
from ..logs import get_logger
from ..settings import AcsSettings
from ..telemetry import span
from ..typedefs import CLOCK, ENTRA_VALIDATOR, METRICS
from ..validation.entra import EntraPrincipal
from ..validation.jwt_checks import MAX_TOKEN_BYTES
from ..validation.teams import TEAMS_AUDIENCES, refusal_status, validate_teams_token
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
    if not token.isascii():   # (non-UTF-8 bytes arrive as lone surrogates; no JWT holds either)
        raise _refused(request, "malformed", 400, "not ASCII")
    return token


async def check_teams_token(request: web.Request, token: str, bearer: EntraPrincipal,
                            acs: AcsSettings) -> EntraPrincipal:
    """The validated Teams principal, or InvalidTeamsToken (DownstreamError if Entra's keys are
    unreachable)."""
    validator = request.app[ENTRA_VALIDATOR]
    try:
        with span("token.validate", token_kind="teams") as s:   # telemetry (no-op when off)
            teams = await validate_teams_token(validator, token, acs, now=request.app[CLOCK](), user=bearer)
            describe_token(s, token, teams)
        return teams
    except TokenValidationError as exc:
        raise _refused(request, exc.reason, refusal_status(exc), exc.detail) from exc
