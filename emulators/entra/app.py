"""`create_app(config)`: the Entra ID emulator as an aiohttp application. TEST ONLY."""

from __future__ import annotations

import logging
import uuid

from aiohttp import web

from . import authorize, control, control_directory, discovery, managed_identity, token_endpoint
from .recorder import recorder
from .state import STATE_KEY, EmulatorState, EntraConfig

log = logging.getLogger(__name__)


@web.middleware
async def errors(request: web.Request, handler) -> web.StreamResponse:
    """Bad control-plane input → 400 JSON; anything unexpected → a logged, generic 500 JSON."""
    try:
        return await handler(request)
    except web.HTTPException:
        raise
    except (ValueError, TypeError, KeyError) as exc:
        if request.path.startswith("/_emulator"):
            return web.json_response({"error": "invalid_request", "error_description": type(exc).__name__},
                                     status=400)
        log.exception("entra emulator failed on %s", request.path)
        return web.json_response({"error": "server_error"}, status=500)
    except Exception:
        log.exception("entra emulator failed on %s", request.path)
        return web.json_response({"error": "server_error"}, status=500)


@web.middleware
async def request_ids(request: web.Request, handler) -> web.StreamResponse:
    """Like Entra: `x-ms-request-id` on every answer, `client-request-id` echoed when sent."""
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        response = exc
    response.headers["x-ms-request-id"] = str(uuid.uuid4())
    client_request_id = request.headers.get("client-request-id")
    if client_request_id:
        response.headers["client-request-id"] = client_request_id[:200]
    if isinstance(response, web.HTTPException):
        raise response
    return response


def create_app(config: EntraConfig | str) -> web.Application:
    if isinstance(config, str):
        config = EntraConfig(base_url=config)
    app = web.Application(middlewares=[request_ids, errors, recorder])
    app[STATE_KEY] = EmulatorState(config)
    r = app.router
    r.add_get("/{tenant}/v2.0/.well-known/openid-configuration", discovery.openid_v2)
    r.add_get("/{tenant}/.well-known/openid-configuration", discovery.openid_v1)
    r.add_get("/{tenant}/discovery/v2.0/keys", discovery.keys_v2)
    r.add_get("/{tenant}/discovery/keys", discovery.keys_v1)
    r.add_route("GET", "/{tenant}/oauth2/v2.0/authorize", authorize.authorize)
    r.add_route("POST", "/{tenant}/oauth2/v2.0/authorize", authorize.authorize)
    r.add_post("/{tenant}/oauth2/v2.0/token", token_endpoint.token)
    r.add_post("/{tenant}/oauth2/token", token_endpoint.token)
    r.add_get("/msi/token", managed_identity.token)             # App Service-style managed identity
    c = "/_emulator"
    r.add_get(f"{c}/state", control.get_state)
    r.add_post(f"{c}/reset", control.reset)
    r.add_post(f"{c}/token", control.mint)
    r.add_get(f"{c}/requests", control.get_requests)
    r.add_delete(f"{c}/requests", control.clear_requests)
    r.add_get(f"{c}/faults", control.get_faults)
    r.add_post(f"{c}/faults", control.add_faults)
    r.add_delete(f"{c}/faults", control.clear_faults)
    r.add_get(f"{c}/keys", control.get_keys)
    r.add_post(f"{c}/keys", control.add_key)
    r.add_post(f"{c}/keys/{{kid}}/activate", control.activate_key)
    r.add_delete(f"{c}/keys/{{kid}}", control.retire_key)
    r.add_post(f"{c}/consents", control_directory.add_consent)
    r.add_delete(f"{c}/consents", control_directory.remove_consent)
    r.add_post(f"{c}/mfa", control_directory.set_mfa)
    r.add_post(f"{c}/apps/{{client_id}}/certificates", control_directory.add_certificate)
    r.add_post(f"{c}/apps/{{client_id}}/federated-credentials", control_directory.add_federated)
    r.add_post(f"{c}/apps/{{client_id}}/secrets", control_directory.add_secret)
    r.add_route("GET", f"{c}/clock", control_directory.clock)
    r.add_route("POST", f"{c}/clock", control_directory.clock)
    r.add_post(f"{c}/config", control_directory.config)
    r.add_post(f"{c}/apps/{{client_id}}/claims-mapping", control_directory.claims_mapping)
    r.add_post(f"{c}/service-principals", control_directory.service_principal)
    r.add_delete(f"{c}/service-principals", control_directory.service_principal)
    return app



def tenant_id_of(app: web.Application) -> str:
    """The first (home) tenant of the seed: what `server.started` announces."""
    return app[STATE_KEY].default_tenant().id
