"""`POST /{tenant}/oauth2/v2.0/token` (and the v1 `/{tenant}/oauth2/token`, whose `resource`
parameter is read as `<resource>/.default`): client authentication, then the grant. TEST ONLY."""

from __future__ import annotations

import logging

from aiohttp import web

from . import grants, obo
from .client_auth import authenticate
from .errors import EntraError
from .state import META_TENANTS, STATE_KEY, EmulatorState

log = logging.getLogger(__name__)

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def resolve_tenant(state: EmulatorState, segment: str) -> str | None:
    """The tenant id for a path segment; None for common/organizations; EntraError if unknown."""
    if segment.lower() in META_TENANTS:
        return None
    tenant = state.tenant(segment)
    if tenant is None:
        raise EntraError(90002, f"Tenant '{segment}' not found. Check to make sure you have the correct "
                                "tenant ID and are signing into the correct cloud.")
    return tenant.id


async def read_form(request: web.Request) -> dict[str, str]:
    if request.content_type != "application/x-www-form-urlencoded":
        raise EntraError(9002313, "Invalid request. The token request must be form-encoded.")
    try:
        raw = await request.post()
    except ValueError as e:
        raise EntraError(9002313) from e
    return {k: v for k, v in raw.items() if isinstance(v, str)}


async def token(request: web.Request) -> web.Response:
    state: EmulatorState = request.app[STATE_KEY]
    try:
        tenant = resolve_tenant(state, request.match_info["tenant"])
        form = await read_form(request)
        if request.path.endswith("/oauth2/token") and form.get("resource") and not form.get("scope"):
            form["scope"] = f"{form['resource'].rstrip('/')}/.default"   # the v1 endpoint's `resource`
        grant_type = form.get("grant_type", "")
        if not grant_type:
            raise EntraError(900144, "The request body must contain the following parameter: 'grant_type'.")
        if grant_type not in ("authorization_code", "refresh_token", "client_credentials", obo.GRANT_TYPE):
            raise EntraError(70003, f"The app requested an unsupported grant type '{grant_type}'.")
        client, acr = await authenticate(state, form, dict(request.headers))
        if grant_type == "authorization_code":
            body = await grants.authorization_code(state, form, client, acr)
        elif grant_type == "refresh_token":
            body = await grants.refresh_token(state, form, client, acr)
        elif grant_type == "client_credentials":
            body = await grants.client_credentials(state, form, client, acr, tenant or state.default_tenant().id)
        else:
            body = await obo.on_behalf_of(state, form, client, acr, tenant)
    except EntraError as err:
        log.info("entra emulator token error AADSTS%s", err.code)
        return err.render(request)
    return web.json_response(body, headers=NO_STORE)
