"""The token endpoint's success body for user (delegated) flows. TEST ONLY."""

from __future__ import annotations

from . import tokens
from .errors import EntraError
from .model import App, User
from .scopes import ScopeRequest, effective_scopes
from .state import EmulatorState


def check_consent(state: EmulatorState, req: ScopeRequest, tenant: str, user: User, client: App) -> None:
    """AADSTS65001 unless the user (or an admin, tenant-wide) consented to every scope asked for."""
    if req.resource is None:
        return
    granted = state.consented(tenant, user.oid, client.client_id, req.resource.client_id)
    missing = (not granted) if req.is_default else bool(set(req.names) - granted)
    if missing:
        raise EntraError(65001, f"The user or administrator has not consented to use the application with ID "
                                f"'{client.client_id}' named '{client.display_name}'. Send an interactive "
                                f"authorization request for this user and resource.", suberror="consent_required")


def user_token_response(state: EmulatorState, *, tenant: str, client: App, acr: str, user: User,
                        req: ScopeRequest, form: dict, nonce: str | None = None,
                        family: str | None = None, mfa: bool = False) -> dict:
    """Access token (+ refresh token with offline_access, id token with openid, client_info).
    `mfa`: the user did multi-factor auth, so the access token's `amr` says so."""
    lifetime = state.token_lifetime()
    extra = {"amr": ["pwd", "mfa"]} if mfa else None
    if req.resource is not None:
        names = effective_scopes(state, req, tenant, user.oid, client.client_id)
        access, _ = tokens.access_token(state, tenant=tenant, resource=req.resource, client=client, user=user,
                                        scopes=names, acr=acr, aud_uri=req.requested_via_uri, extra=extra,
                                        lifetime=lifetime)
        scope = req.full_names(names + ([".default"] if req.is_default else []))
    else:  # only OIDC scopes: a token for the client itself (real Entra gives a Graph token)
        access, _ = tokens.access_token(state, tenant=tenant, resource=client, client=client, user=user,
                                        scopes=sorted(req.oidc), acr=acr, version=2, extra=extra,
                                        lifetime=lifetime)
        scope = sorted(req.oidc)
    body: dict = {"token_type": "Bearer", "scope": " ".join(scope), "expires_in": lifetime,
                  "ext_expires_in": lifetime, "access_token": access}
    if "offline_access" in req.oidc:
        body["refresh_token"] = state.new_refresh_token(client.client_id, tenant, user.oid, family, mfa)
    if "openid" in req.oidc:
        body["id_token"] = tokens.id_token(state, tenant=tenant, client_id=client.client_id, user=user,
                                           nonce=nonce, email="email" in req.oidc)
    if form.get("client_info") == "1":
        body["client_info"] = tokens.client_info(user.oid, tenant)
    return body
