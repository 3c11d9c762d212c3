"""The local check of a user's Teams token (an Entra access token for ACS), before ACS sees it.

The one place of the Teams-token rules, for both doors into the ACS Teams exchange — the
`teams-user-aad-token` header of `/api/token/teams` (http/teams_token.py) and
`audience=acs:teams` at `/oauth2/token` (grants/downstream_calls.py):

    signature      through the shared JWKS cache, unless `acs.verify_teams_token_signature` is off
                   (the claim checks below always run)
    issuer, time   the tenant's issuer, exp/nbf/iat (the Entra validator's rules)
    aud            ACS: https://auth.msft.communication.azure.com or its first-party app id
    scopes         ALL of `acs.teams_scopes` (delegated tokens only)
    appid/azp      in `acs.allowed_teams_client_apps`
    user           when a bearer user is given, the same `oid` and `tid` (`user_mismatch`)

Raises the validator's `TokenValidationError`s; `refusal_status` says which status a refusal
gets (403 for a missing scope or a refused app/tenant, else 400), each caller names the error.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Protocol

from service.errors import TokenInvalid, TokenPolicyRefused, TokenScopeMissing, TokenValidationError
from service.settings import AcsSettings
from service.validation.entra import EntraPrincipal, TokenPeek

TEAMS_AUDIENCES = ("https://auth.msft.communication.azure.com", "1fd5118e-2576-4263-8130-9503064c837a")


class ValidatesFor(Protocol):
    """The EntraValidator's generic check (what the Teams rules need of it)."""

    async def validate_for(self, token: str, *, now: float, audiences: Collection[str],
                           required_scopes: Collection[str], allowed_apps: Collection[str] | None,
                           allow_app_only: bool = False,
                           verify_signature: bool = True, rules: str | None = None,
                           peek: TokenPeek | None = None) -> EntraPrincipal: ...

    def cached_principal(self, token: str, *, now: float, rules: str) -> tuple[EntraPrincipal | None, TokenPeek]: ...


async def validate_teams_token(validator: ValidatesFor, token: str, acs: AcsSettings, *, now: float,
                               user: EntraPrincipal | None = None) -> EntraPrincipal:
    """The validated Teams principal (`validator` is the app's `EntraValidator`); with `user`,
    the Teams token must be that user's."""
    teams, peek = validator.cached_principal(token, now=now, rules="teams") \
        if acs.verify_teams_token_signature else (None, None)
    if teams is None:
        teams = await validator.validate_for(
            token, now=now, audiences=TEAMS_AUDIENCES, required_scopes=acs.teams_scopes,
            allowed_apps=acs.allowed_teams_client_apps, allow_app_only=False,
            verify_signature=acs.verify_teams_token_signature, rules="teams", peek=peek)
    if user is not None and (teams.oid != user.oid or teams.tid.lower() != user.tid.lower()):
        raise TokenInvalid("user_mismatch", "the Teams token is another user's")
    return teams


def refusal_status(exc: TokenValidationError) -> int:
    """403 when the token is valid but not enough (a scope, an app or tenant), else 400."""
    return 403 if isinstance(exc, TokenScopeMissing | TokenPolicyRefused) else 400
