"""`create_app(config)`: the ACS Identity emulator as an aiohttp application. TEST ONLY.

Request pipeline for the ACS routes (the control plane under `/_emulator/` skips it):
route (404/405 JSON) → api-version of that route (400) → HMAC or Entra bearer auth (401 `Denied`) →
injected fault (delay, then maybe an error) → operation. Every ACS call is logged (never a token)
and every answer carries an `MS-CV` correlation vector, like the service's.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
from aiohttp import web

from . import control, hmac_auth
from .entra_check import BEARER_AUDIENCES, EntraKeys, EntraTokenError, verify
from .handlers import ROUTES, BadRequest, error
from .keys import ENTRA_KEYS, STATE, TEAMS
from .state import AcsConfig, AcsState, api_versions

log = logging.getLogger(__name__)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


async def _authenticate(request: web.Request, body: bytes) -> str:
    """Return the auth kind ("hmac" | "bearer") or raise BadRequest(401 Denied)."""
    state = request.app[STATE]
    authorization = request.headers.get("Authorization", "")
    now = state.config.clock()
    if authorization.startswith(hmac_auth.SCHEME + " "):
        try:
            hmac_auth.verify(method=request.method, raw_path=request.raw_path, headers=request.headers,
                             body=body, key_b64=state.config.access_key, now=now,
                             window=state.config.date_window)
        except hmac_auth.HmacError as e:
            raise BadRequest("Denied", f"Denied by HMAC verification: {e}", status=401) from e
        return "hmac"
    if authorization.startswith("Bearer "):
        try:
            await verify(request.app[ENTRA_KEYS], authorization[7:].strip(), audiences=BEARER_AUDIENCES, now=now)
        except EntraTokenError as e:
            raise BadRequest("Denied", f"Denied: the bearer token is refused: {e}", status=401) from e
        return "bearer"
    raise BadRequest("Denied", "Denied: no HMAC-SHA256 signature or Bearer token.", status=401)


def _operation(request: web.Request, body: bytes) -> str | None:
    name = request.match_info.route.name
    if name == "create_user":
        try:
            parsed: Any = json.loads(body) if body.strip() else {}
        except (ValueError, UnicodeDecodeError):
            parsed = {}
        if isinstance(parsed, dict) and parsed.get("createTokenWithScopes") is not None:
            return "create_user_and_token"
    return name


async def _process(request: web.Request, handler: Handler, entry: dict[str, Any]) -> web.StreamResponse:
    state = request.app[STATE]
    if request.match_info.http_exception is not None:
        exc = request.match_info.http_exception
        code = "NotFound" if exc.status == 404 else "MethodNotAllowed"
        return error(exc.status, code, f"No ACS route for {request.method} {request.path}.")
    body = await request.read()
    entry["operation"] = _operation(request, body)
    api_version = request.query.get("api-version")
    if not api_version:
        return error(400, "MissingApiVersionParameter", "The api-version query parameter is required.")
    if api_version not in api_versions(request.match_info.route.name):
        return error(400, "UnsupportedApiVersion", f"api-version '{api_version}' is not supported.")
    entry["auth"] = await _authenticate(request, body)
    fault = state.take_fault(entry["operation"], request.path)
    if fault is not None:
        entry["fault"], entry["delay"] = True, fault.delay
        if fault.delay > 0:
            await asyncio.sleep(fault.delay)
        if fault.status is not None:
            headers = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else None
            return error(fault.status, fault.code, fault.message, headers)
    return await handler(request)


@web.middleware
async def acs_pipeline(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.path.startswith("/_emulator/"):
        return await handler(request)
    state = request.app[STATE]
    client_request_id = request.headers.get("x-ms-client-request-id")
    entry: dict[str, Any] = {
        "time": state.config.clock(), "method": request.method, "path": request.path,
        "api_version": request.query.get("api-version"), "operation": None,
        "client_request_id": client_request_id, "auth": None, "fault": False, "delay": 0.0, "status": None,
        "traceparent": request.headers.get("traceparent"),   # W3C trace context, when the caller sent one
    }
    state.log.append(entry)  # appended first: an in-flight (e.g. delayed) call shows with status None
    try:
        resp = await _process(request, handler, entry)
    except BadRequest as e:
        resp = e.response()
    except Exception:  # an emulator bug must still answer JSON, never a bare traceback page
        log.exception("acs_emulator.unhandled", extra={"operation": entry["operation"]})
        resp = error(500, "InternalError", "The emulator failed unexpectedly.")
    if TEAMS in request:
        entry.update(request[TEAMS])
    entry["status"] = resp.status
    entry["ms_cv"] = resp.headers["MS-CV"] = f"{secrets.token_urlsafe(16)[:22]}.0"   # correlation vector
    if client_request_id:   # the service echoes it (recorded answers carry it on every status)
        resp.headers["x-ms-client-request-id"] = client_request_id[:200]
    return resp


def _entra_session(config: AcsConfig):
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        session = None
        if config.entra_url:
            ssl_ctx = ssl.create_default_context()
            if config.ca_bundle:
                ssl_ctx.load_verify_locations(cafile=config.ca_bundle)
            session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ssl_ctx), trust_env=False)
        app[ENTRA_KEYS] = EntraKeys(config.entra_url, session)
        yield
        if session is not None:
            await session.close()
    return ctx


def create_app(config: AcsConfig) -> web.Application:
    app = web.Application(middlewares=[acs_pipeline], client_max_size=1024 * 1024)
    app[STATE] = AcsState(config)
    app.cleanup_ctx.append(_entra_session(config))
    for method, path, handler, operation in ROUTES:
        app.router.add_route(method, path, handler, name=operation)
    control.setup(app)
    return app
