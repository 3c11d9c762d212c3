"""`GET /msi/token`: a managed-identity token endpoint in App Service's shape. TEST ONLY.

azure-identity's `ManagedIdentityCredential` uses it unchanged when the environment has
`IDENTITY_ENDPOINT={url}/msi/token` and `IDENTITY_HEADER=<the seed's managed_identity_header>`
(App Service and Container Apps set both; the credential picks its "App Service" flavour):

    GET {IDENTITY_ENDPOINT}?api-version=2019-08-01&resource=<resource>[&client_id=<id>|&principal_id=<oid>]
    X-IDENTITY-HEADER: <IDENTITY_HEADER>
    -> 200 {"access_token", "expires_on": "<epoch seconds>", "resource", "token_type": "Bearer",
            "client_id"}

The identities are seed apps with `"managed_identity": "system"` (used without a client id) or
`"user"` (user-assigned: named by `client_id`, or by `principal_id` = its service principal's
object id). The token is an app-only v1 Entra token of the home tenant, signed by the emulator's
keys: `aud` = the resource exactly as asked, `appid`/`oid`/`sub` of the identity, `idtyp` app,
`roles` assigned to it, `appidacr` 2, and an invented `xms_mirid`.
Errors are App Service's `{"statusCode", "message"}` JSON: 400 (no header, bad query, unknown
identity or resource), 401 (wrong header). The request log and fault injection (`route: "msi"`)
apply as on every non-control route; the header's value is never logged.
"""

from __future__ import annotations

import hmac

from aiohttp import web

from . import tokens
from .model import App
from .state import STATE_KEY, EmulatorState

API_VERSION = "2019-08-01"
DEFAULT_HEADER = "emu-identity-header-8Q3FDZk2uM0h990KdtCZqbT0p2"   # TEST ONLY, public
SELECTORS = ("client_id", "principal_id", "object_id", "mi_res_id")


def identity_header(state: EmulatorState) -> str:
    """The secret the platform hands the app as IDENTITY_HEADER (the seed's, else the default)."""
    return str(state.seed.get("managed_identity_header") or DEFAULT_HEADER)


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"statusCode": status, "message": message}, status=status)


def _identity(state: EmulatorState, query: dict[str, str]) -> App | None:
    identities = [a for a in state.apps.values() if a.managed_identity in ("system", "user")]
    client_id, principal_id = query.get("client_id"), query.get("principal_id") or query.get("object_id")
    if client_id:
        return next((a for a in identities if a.client_id.lower() == client_id.lower()), None)
    if principal_id:
        return next((a for a in identities if a.service_principal_oid.lower() == principal_id.lower()), None)
    return next((a for a in identities if a.managed_identity == "system"), None)


def mirid(app: App, tenant: str) -> str:
    """An invented Azure resource id for the identity (real tokens carry the real one)."""
    if app.managed_identity == "user":
        return (f"/subscriptions/{tenant}/resourcegroups/emulator/providers/"
                f"Microsoft.ManagedIdentity/userAssignedIdentities/{app.display_name or app.client_id}")
    return f"/subscriptions/{tenant}/resourcegroups/emulator/providers/Microsoft.Web/sites/tokenbroker"


async def token(request: web.Request) -> web.Response:
    state: EmulatorState = request.app[STATE_KEY]
    presented = request.headers.get("X-IDENTITY-HEADER")
    if not presented:
        return _error(400, "The X-IDENTITY-HEADER header is required.")
    if not hmac.compare_digest(presented.encode(), identity_header(state).encode()):
        return _error(401, "The X-IDENTITY-HEADER header is not valid.")
    query = dict(request.query)
    if query.get("api-version") != API_VERSION:
        return _error(400, f"api-version must be {API_VERSION}.")
    resource = query.get("resource", "")
    if not resource:
        return _error(400, "The resource parameter is required.")
    if sum(1 for s in SELECTORS if query.get(s)) > 1:
        return _error(400, "Only one of client_id, principal_id, object_id and mi_res_id may be given.")
    if query.get("mi_res_id"):
        return _error(400, "mi_res_id is not supported by the emulator; use client_id or principal_id.")
    identity = _identity(state, query)
    if identity is None:
        return _error(400, "Unable to load the proper Managed Identity.")
    target = state.app(resource)
    if target is None:
        return _error(400, f"AADSTS500011: The resource principal named {resource} was not found in "
                           "the tenant.")
    tenant = state.default_tenant().id
    roles = [r for r in identity.role_assignments.get(target.client_id, []) if r in target.app_roles]
    access, claims = tokens.access_token(
        state, tenant=tenant, resource=target, client=identity, user=None, roles=roles, acr="2",
        version=1, extra={"aud": resource, "xms_mirid": mirid(identity, tenant)})
    return web.json_response({"access_token": access, "expires_on": str(claims["exp"]),
                              "resource": resource, "token_type": "Bearer",
                              "client_id": identity.client_id},
                             headers={"Cache-Control": "no-store", "Pragma": "no-cache"})
