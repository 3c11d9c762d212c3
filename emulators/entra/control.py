"""The control plane under `/_emulator/` (not Entra; CONTRACT §4). TEST ONLY.

GET  state | requests?path=&grant_type=&client_id= | keys | faults | clock
POST reset | token | faults | keys | keys/{kid}/activate | consents | mfa | clock | config
     apps/{client_id}/certificates {"pem"} | apps/{client_id}/federated-credentials | apps/{client_id}/secrets
     apps/{client_id}/claims-mapping {"enabled"} | service-principals {"tenant", "client_id"}
DELETE requests | faults | keys/{kid} | consents | service-principals
"""

from __future__ import annotations

import json

from aiohttp import web

from . import tokens
from .model import App
from .recorder import filter_log
from .state import STATE_KEY, EmulatorState


def _state(request: web.Request) -> EmulatorState:
    return request.app[STATE_KEY]


def _bad(description: str, status: int = 400) -> web.HTTPException:
    cls = web.HTTPNotFound if status == 404 else web.HTTPBadRequest
    return cls(text=json.dumps({"error": "invalid_request", "error_description": description}),
               content_type="application/json")


async def _json(request: web.Request) -> dict:
    if not request.can_read_body:
        return {}
    try:
        body = await request.json()
    except ValueError as e:
        raise _bad("body must be JSON") from e
    if not isinstance(body, dict):
        raise _bad("body must be a JSON object")
    return body


def _app(state: EmulatorState, ref: str | None) -> App:
    app = state.app(ref)
    if app is None:
        raise _bad(f"unknown app {ref!s:.80}", 404)
    return app


async def get_state(request: web.Request) -> web.Response:
    return web.json_response(_state(request).summary())


async def reset(request: web.Request) -> web.Response:
    _state(request).reset()
    return web.json_response({"reset": True})


async def mint(request: web.Request) -> web.Response:
    state, body = _state(request), await _json(request)
    if not body.get("resource"):
        raise _bad("resource is required")
    resource = _app(state, str(body["resource"]))
    user = None
    if not body.get("app_only"):
        user = state.user(body.get("user")) if body.get("user") else None
        if body.get("user") and user is None:
            raise _bad("unknown user", 404)
    tenant_ref = body.get("tenant")
    tenant = state.tenant(tenant_ref) if tenant_ref else None
    if tenant_ref and tenant is None:
        raise _bad("unknown tenant", 404)
    tid = tenant.id if tenant else (user.tenant if user else state.default_tenant().id)
    if user is None and not body.get("app_only"):
        user = next(iter(state.users_in(tid)), None)
        if user is None:
            raise _bad("the tenant has no users; pass app_only", 404)
    client_ref = body.get("client_id") or next(
        (c.client_id for c in state.consents if c.resource.lower() == resource.client_id.lower()),
        resource.client_id)
    client = state.app(client_ref) or App(client_id=str(client_ref))
    scopes = body.get("scopes")
    if isinstance(scopes, str):
        scopes = scopes.split()
    if scopes is None or scopes == [".default"]:
        scopes = list(resource.scopes)
    roles = body.get("roles")
    if roles is None and user is None:
        roles = client.role_assignments.get(resource.client_id, [])
    version = int(body["version"]) if body.get("version") else None
    aud_uri = str(body["resource"]).rstrip("/").lower() == resource.app_id_uri.rstrip("/").lower() != ""
    lifetime = body.get("lifetime")
    token, claims = tokens.access_token(
        state, tenant=tid, resource=resource, client=client, user=user, scopes=scopes, roles=roles,
        acr=str(body.get("acr", "1")), aud_uri=aud_uri, version=version,
        lifetime=int(lifetime) if lifetime is not None else None, extra=body.get("claims") or {})
    return web.json_response({"access_token": token, "token_type": "Bearer",
                              "expires_in": int(claims.get("exp", 0)) - int(claims.get("iat", 0))})


async def get_requests(request: web.Request) -> web.Response:
    return web.json_response(filter_log(_state(request), dict(request.query)))


async def clear_requests(request: web.Request) -> web.Response:
    _state(request).log.clear()
    return web.json_response({"cleared": True})


async def add_faults(request: web.Request) -> web.Response:
    state = _state(request)
    try:
        body = await request.json()
    except ValueError as e:
        raise _bad("body must be JSON") from e
    faults = body if isinstance(body, list) else [body]
    if not all(isinstance(f, dict) for f in faults):
        raise _bad("a fault is a JSON object")
    for f in faults:
        f.setdefault("count", 1)
        for name in ("status", "aadsts", "count", "retry_after"):
            if f.get(name) is not None:
                f[name] = int(f[name])        # ValueError -> 400
        if f.get("delay") is not None:
            f["delay"] = min(float(f["delay"]), 60.0)
    state.faults.extend(faults)
    return web.json_response({"faults": state.faults})


async def get_faults(request: web.Request) -> web.Response:
    return web.json_response({"faults": _state(request).faults})


async def clear_faults(request: web.Request) -> web.Response:
    _state(request).faults.clear()
    return web.json_response({"faults": []})


async def get_keys(request: web.Request) -> web.Response:
    keys = _state(request).keys
    return web.json_response({"signing_kid": keys.signer.kid, "kids": [k.kid for k in keys.all()]})


async def add_key(request: web.Request) -> web.Response:
    """{"activate": true, "retire_previous": false}: add a key (and sign with it)."""
    keys, body = _state(request).keys, await _json(request)
    previous = keys.signer.kid
    key = keys.add(activate=bool(body.get("activate", True)))
    retired = bool(body.get("retire_previous")) and keys.retire(previous)
    return web.json_response({"kid": key.kid, "previous_kid": previous, "signing_kid": keys.signer.kid,
                              "retired": [previous] if retired else []})


async def activate_key(request: web.Request) -> web.Response:
    keys = _state(request).keys
    if not keys.activate(request.match_info["kid"]):
        raise _bad("unknown kid", 404)
    return web.json_response({"signing_kid": keys.signer.kid})


async def retire_key(request: web.Request) -> web.Response:
    keys = _state(request).keys
    if not keys.retire(request.match_info["kid"]):
        raise _bad("unknown kid, or it is the signing key")
    return web.json_response({"kids": [k.kid for k in keys.all()]})
