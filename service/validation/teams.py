"""The local check of a user's Teams token (an Entra access token for ACS), before ACS sees it.

One rule set for both doors into the ACS Teams exchange — the `teams-user-aad-token` header
of `/api/token/teams` and `audience=acs:teams` at `/oauth2/token`: signature through the shared
JWKS cache (unless `acs.verify_teams_token_signature` is off; the claim checks always run),
issuer per tenant and expiry, `aud` = ACS (its URL or first-party app id), ALL
`acs.teams_scopes`, and `appid`/`azp` in `acs.allowed_teams_client_apps`. Delegated tokens only.
Raises the validator's `TokenValidationError`s; each caller translates them for its route.
"""

from __future__ import annotations

from typing import Any

from service.settings import AcsSettings
from service.validation.entra import EntraPrincipal

TEAMS_AUDIENCES = ("https://auth.msft.communication.azure.com", "1fd5118e-2576-4263-8130-9503064c837a")


async def validate_teams_token(validator: Any, token: str, acs: AcsSettings, *, now: float) -> EntraPrincipal:
    """The validated Teams principal (`validator` is the app's `EntraValidator`)."""
    return await validator.validate_for(
        token, now=now, audiences=TEAMS_AUDIENCES, required_scopes=acs.teams_scopes,
        allowed_apps=acs.allowed_teams_client_apps, allow_app_only=False,
        verify_signature=acs.verify_teams_token_signature, rules="teams")
