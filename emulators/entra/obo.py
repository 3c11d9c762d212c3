"""On-Behalf-Of: `urn:ietf:params:oauth:grant-type:jwt-bearer` + `requested_token_use=on_behalf_of`.
TEST ONLY.

The assertion must be one of this emulator's user access tokens, unexpired, whose `aud` is the
calling app (client id or App ID URI). The new token is issued in the tenant of the URL (the
assertion's own tenant on `common`/`organizations`) for the same user, who must belong to it.
Like Entra, the calling app needs a service principal in that tenant (else AADSTS700016) and so
does the resource (else 500011); then the consent check (65001). Conditional access: when the target resource or the user is flagged `mfa_required`,
the answer is AADSTS50079 with a claims challenge, unless the assertion's `amr` has `mfa` (which
an /authorize request carrying `claims` gives: the step-up is simulated as done).
"""

from __future__ import annotations

import json

from .errors import EntraError
from .model import App, User
from .responses import check_consent, user_token_response
from .scopes import parse_scopes
from .state import EmulatorState
from .tokens import OwnTokenError, decode_own

GRANT_TYPE = "urn:ietf:params:oauth:grant-type:jwt-bearer"
MFA_POLICY_ID = "c1a6e5f0-5d2b-4f7e-9a1c-3b8d2e4f6a70"


def mfa_claims_challenge() -> str:
    return json.dumps({"access_token": {"polids": {"essential": True, "values": [MFA_POLICY_ID]}}},
                      separators=(",", ":"))


def _assertion_user(state: EmulatorState, claims: dict) -> User:
    oid = str(claims.get("oid", ""))
    known = state.users.get(oid)
    if known is not None:
        return known
    upn = str(claims.get("preferred_username") or claims.get("upn") or oid)
    return User(oid=oid, tenant=str(claims.get("tid", "")), upn=upn, name=str(claims.get("name", upn)))


def require_service_principals(state: EmulatorState, tenant: str, client: App, resource: App | None) -> None:
    """AADSTS700016 / 500011 when the client / resource has no service principal in `tenant`."""
    if not state.has_service_principal(tenant, client.client_id):
        raise EntraError(700016, f"Application with identifier '{client.client_id}' was not found in the "
                                 f"directory '{tenant}'. This can happen if the application has not been "
                                 "installed by the administrator of the tenant or consented to by any user "
                                 "in the tenant.")
    if resource is not None and not state.has_service_principal(tenant, resource.client_id):
        raise EntraError(500011, f"The resource principal named {resource.app_id_uri or resource.client_id} "
                                 f"was not found in the tenant named {tenant}. This can happen if the "
                                 "application has not been installed by the administrator of the tenant "
                                 "or consented to by any user in the tenant.")


async def on_behalf_of(state: EmulatorState, form: dict, client: App, acr: str,
                       url_tenant: str | None = None) -> dict:
    if form.get("requested_token_use") != "on_behalf_of":
        raise EntraError(900144, "The request body must contain the following parameter: "
                                 "'requested_token_use' with the value 'on_behalf_of'.")
    if acr == "0":
        raise EntraError(7000218)
    assertion = form.get("assertion")
    if not assertion:
        raise EntraError(900144, "The request body must contain the following parameter: 'assertion'.")
    try:
        claims = decode_own(state, assertion)
    except OwnTokenError as e:
        raise EntraError(50013, f"Assertion failed signature validation. [Reason - {e}.]") from e
    exp = claims.get("exp")
    if not isinstance(exp, int | float) or exp < state.now():
        raise EntraError(500133, "Assertion is not within its valid time range. Ensure that the access "
                                 "token is not expired before using it for user assertion, or request a "
                                 "new token.")
    aud = str(claims.get("aud", "")).rstrip("/").lower()
    if aud not in client.identifiers():
        raise EntraError(50013, "Assertion audience does not match the Client app presenting the assertion. "
                                f"The audience in the assertion was '{claims.get('aud')}' and the expected "
                                f"audience is '{client.client_id}'.")
    if "scp" not in claims or claims.get("idtyp") == "app" or not claims.get("oid"):
        raise EntraError(50013, "Assertion is not a user token: an application token cannot be used for "
                                "the On-Behalf-Of flow.")
    tenant = url_tenant or str(claims["tid"])
    user = _assertion_user(state, claims)
    if tenant != claims["tid"] and not user.in_tenant(tenant):
        raise EntraError(50020, f"User account '{user.upn}' does not exist in tenant '{tenant}' and cannot "
                                "access the application in that tenant.")
    req = parse_scopes(state, form.get("scope"))
    if req.resource is None:
        raise EntraError(70011, "The On-Behalf-Of request must name a resource scope.")
    require_service_principals(state, tenant, client, req.resource)
    check_consent(state, req, tenant, user, client)
    amr = claims.get("amr") or []
    if (req.resource.mfa_required or user.mfa_required) and "mfa" not in amr:
        raise EntraError(50079, claims=mfa_claims_challenge())
    return user_token_response(state, tenant=tenant, client=client, acr=acr, user=user, req=req, form=form,
                               mfa="mfa" in amr)
