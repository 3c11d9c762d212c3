"""Control routes that change the directory: consents, MFA flags, credentials, clock, config.
TEST ONLY."""

from __future__ import annotations

from aiohttp import web

from .control import _app, _bad, _json, _state
from .model import Certificate, FederatedCredential


def _consent_args(request: web.Request, body: dict) -> tuple[str, str | None, str, str]:
    state = _state(request)
    tenant = state.tenant(body.get("tenant") or state.default_tenant().id)
    if tenant is None:
        raise _bad("unknown tenant", 404)
    user = None
    if body.get("user"):
        found = state.user(body["user"])
        if found is None:
            raise _bad("unknown user", 404)
        user = found.oid
    client = _app(state, body.get("client_id"))
    resource = _app(state, body.get("resource"))
    return tenant.id, user, client.client_id, resource.client_id


async def add_consent(request: web.Request) -> web.Response:
    """{"tenant", "user" (omit: admin consent), "client_id", "resource", "scopes"}"""
    body = await _json(request)
    tenant, user, client, resource = _consent_args(request, body)
    scopes = body.get("scopes") or _app(_state(request), resource).scopes
    _state(request).grant_consent(tenant, user, client, resource, set(scopes))
    return web.json_response({"tenant": tenant, "user": user, "client_id": client, "resource": resource,
                              "scopes": sorted(scopes)})


async def remove_consent(request: web.Request) -> web.Response:
    body = await _json(request)
    removed = _state(request).revoke_consent(*_consent_args(request, body))
    return web.json_response({"removed": removed})


async def set_mfa(request: web.Request) -> web.Response:
    """{"resource": id or App ID URI, "required": true} or {"user": ..., "required": true}"""
    state, body = _state(request), await _json(request)
    required = bool(body.get("required", True))
    if body.get("resource"):
        _app(state, body["resource"]).mfa_required = required
    elif body.get("user"):
        user = state.user(body["user"])
        if user is None:
            raise _bad("unknown user", 404)
        user.mfa_required = required
    else:
        raise _bad("resource or user is required")
    return web.json_response({"mfa_required": required})


async def add_certificate(request: web.Request) -> web.Response:
    app, body = _app(_state(request), request.match_info["client_id"]), await _json(request)
    try:
        cert = Certificate.from_pem(str(body.get("pem", "")))
    except ValueError as e:
        raise _bad("pem must be a PEM certificate") from e
    app.certificates.append(cert)
    return web.json_response({"x5t": cert.x5t, "x5t#S256": cert.x5t_s256})


async def add_federated(request: web.Request) -> web.Response:
    app, body = _app(_state(request), request.match_info["client_id"]), await _json(request)
    if not body.get("issuer") or not body.get("subject"):
        raise _bad("issuer and subject are required")
    cred = FederatedCredential(issuer=str(body["issuer"]), subject=str(body["subject"]),
                               audience=str(body.get("audience") or "api://AzureADTokenExchange"),
                               jwks_uri=str(body.get("jwks_uri") or ""))
    app.federated_credentials.append(cred)
    return web.json_response(cred.__dict__)


async def add_secret(request: web.Request) -> web.Response:
    app, body = _app(_state(request), request.match_info["client_id"]), await _json(request)
    if not body.get("secret"):
        raise _bad("secret is required")
    app.secrets.append(str(body["secret"]))
    return web.json_response({"secrets": len(app.secrets)})


async def clock(request: web.Request) -> web.Response:
    """GET: now; POST {"shift": seconds} moves the clock (cumulative), {"offset": s} sets it."""
    state = _state(request)
    if request.method == "POST":
        body = await _json(request)
        if "offset" in body:
            state.clock_offset = float(body["offset"])
        state.clock_offset += float(body.get("shift", 0))
    return web.json_response({"now": state.now(), "offset": state.clock_offset})


async def config(request: web.Request) -> web.Response:
    """{"access_token_lifetime": seconds | null (60-90 minutes, varying), "lifetime_seed": int}"""
    state, body = _state(request), await _json(request)
    if "access_token_lifetime" in body:
        value = body["access_token_lifetime"]
        state.access_token_lifetime = int(value) if value else None
    if body.get("lifetime_seed") is not None:
        state.seed_lifetimes(int(body["lifetime_seed"]))
    return web.json_response({"access_token_lifetime": state.access_token_lifetime})


async def claims_mapping(request: web.Request) -> web.Response:
    """{"enabled": true}: tokens for the app are signed with its own key (published at ?appid=)."""
    app, body = _app(_state(request), request.match_info["client_id"]), await _json(request)
    app.claims_mapping = bool(body.get("enabled", True))
    kid = _state(request).app_key(app.client_id).kid if app.claims_mapping else None
    return web.json_response({"claims_mapping": app.claims_mapping, "kid": kid})


async def service_principal(request: web.Request) -> web.Response:
    """POST/DELETE {"tenant", "client_id"}: provision or remove an app's service principal."""
    state, body = _state(request), await _json(request)
    tenant = state.tenant(str(body.get("tenant") or ""))
    if tenant is None:
        raise _bad("unknown tenant", 404)
    client = _app(state, body.get("client_id"))
    entry = (tenant.id.lower(), client.client_id.lower())
    if request.method == "POST":
        state.service_principals.add(entry)
    else:
        state.service_principals.discard(entry)
    return web.json_response({"tenant": tenant.id, "client_id": client.client_id,
                              "exists": entry in state.service_principals})
