"""Token endpoint grants: authorization_code, refresh_token, client_credentials. TEST ONLY.
(On-Behalf-Of is in `obo.py`.) Each takes (state, form, client, acr) and returns the body."""

from __future__ import annotations

import base64
import hashlib
import hmac

from . import obo, tokens
from .errors import EntraError
from .model import App, User
from .responses import check_consent, user_token_response
from .scopes import parse_scopes
from .state import EmulatorState


def _required(form: dict, name: str) -> str:
    value = form.get(name)
    if not value:
        raise EntraError(900144, f"The request body must contain the following parameter: '{name}'.")
    return value


def _user(state: EmulatorState, oid: str) -> User:
    user = state.users.get(oid)
    if user is None:
        raise EntraError(50173, "The provided grant has been revoked: the user no longer exists.")
    return user


def _pkce_ok(challenge: str, method: str, verifier: str) -> bool:
    if method == "S256":
        computed = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        return hmac.compare_digest(computed, challenge)
    return hmac.compare_digest(verifier, challenge)


async def authorization_code(state: EmulatorState, form: dict, client: App, acr: str) -> dict:
    code = _required(form, "code")
    grant = state.codes.get(code)
    if grant is None or grant.client_id.lower() != client.client_id.lower():
        raise EntraError(70000, "The provided value for the 'code' parameter is not valid.", error="invalid_grant")
    if grant.redeemed:
        raise EntraError(54005)
    if grant.expires_at < state.now():
        raise EntraError(70008, "The provided authorization code or refresh token has expired due to "
                                "inactivity.")
    if form.get("redirect_uri", grant.redirect_uri) != grant.redirect_uri:
        raise EntraError(50011, f"The redirect URI '{form.get('redirect_uri')}' does not match the one used "
                                "to obtain the authorization code.", error="invalid_grant")
    if grant.code_challenge:
        verifier = form.get("code_verifier")
        if not verifier or not _pkce_ok(grant.code_challenge, grant.code_challenge_method, verifier):
            raise EntraError(501481)
    grant.redeemed = True
    req = parse_scopes(state, grant.scope)
    return user_token_response(state, tenant=grant.tenant, client=client, acr=acr,
                               user=_user(state, grant.user_oid), req=req, form=form, nonce=grant.nonce,
                               mfa=grant.mfa)


async def refresh_token(state: EmulatorState, form: dict, client: App, acr: str) -> dict:
    token = _required(form, "refresh_token")
    grant = state.refresh_tokens.get(token)
    if grant is None:
        raise EntraError(9002313, "Invalid request. The refresh token is malformed or was revoked.",
                         error="invalid_grant")
    if grant.expires_at < state.now():
        raise EntraError(70008)
    if grant.client_id.lower() != client.client_id.lower():
        raise EntraError(70000, "The refresh token was issued to a different client.", error="invalid_grant")
    user = _user(state, grant.user_oid)
    req = parse_scopes(state, _required(form, "scope"))
    check_consent(state, req, grant.tenant, user, client)
    del state.refresh_tokens[token]   # rotation: the old refresh token is spent
    return user_token_response(state, tenant=grant.tenant, client=client, acr=acr, user=user, req=req,
                               form=form, family=grant.family, mfa=grant.mfa)


async def client_credentials(state: EmulatorState, form: dict, client: App, acr: str, tenant: str) -> dict:
    if acr == "0":
        raise EntraError(7000218)
    items = _required(form, "scope").split()
    if len(items) != 1 or not items[0].endswith("/.default"):
        raise EntraError(1002012, f"The provided value for scope {' '.join(items)} is not valid. Client "
                                  "credential flows must have a scope value with /.default suffixed to the "
                                  "resource identifier (application ID URI).")
    req = parse_scopes(state, items[0])
    resource = req.resource
    assert resource is not None
    obo.require_service_principals(state, tenant, client, resource)
    roles = [r for r in client.role_assignments.get(resource.client_id, []) if r in resource.app_roles]
    lifetime = state.token_lifetime()
    access, _ = tokens.access_token(state, tenant=tenant, resource=resource, client=client, user=None,
                                    roles=roles, acr=acr, aud_uri=req.requested_via_uri, lifetime=lifetime)
    return {"token_type": "Bearer", "expires_in": lifetime, "ext_expires_in": lifetime, "access_token": access}
