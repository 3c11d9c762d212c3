"""JSON action endpoints called by app.js: `POST /action/teams`, `/action/obo/{name}`,
`/action/acs-identity`.

Each needs a signed-in session, a same-origin request and the session's CSRF token in
`X-CSRF-Token`. When the broker answered, the reply is HTTP 200 with the broker's status and
body inside (see broker.py); otherwise an HTTP 4xx/5xx whose body says what is missing:
`{"login_url"}` (sign in again), `{"consent_url"}` (Teams consent needed) or `{"error": {...}}`.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any

import requests
from aiohttp import web

from .auth import current_session
from .broker import new_request_id
from .security import json_error, same_origin
from .sessions import Session
from .typedefs import BROKER, CONFIG, IDENTITY

NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
CONSENT_ERRORS = {"invalid_grant", "interaction_required", "consent_required"}
_ERROR_FIELDS = ("error", "error_description", "error_codes", "suberror", "claims")

Handler = Callable[[web.Request, Session], Awaitable[web.Response]]


class _Stop(Exception):
    def __init__(self, response: web.Response) -> None:
        self.response = response


def guarded(fn: Handler) -> Callable[[web.Request], Awaitable[web.Response]]:
    """Session, same-origin and CSRF checks; `_Stop` short-circuits with its response."""

    async def handler(request: web.Request) -> web.Response:
        session = current_session(request)
        if session is None or not session.signed_in:
            return web.json_response({"error": "login_required", "login_url": "/login"}, status=401)
        if not same_origin(request, request.app[CONFIG].public_url) or not session.csrf_ok(
                request.headers.get("X-CSRF-Token")):
            return json_error(403, "csrf_failed", "missing or wrong X-CSRF-Token, or cross-origin request")
        try:
            return await fn(request, session)
        except _Stop as stop:
            return stop.response

    return handler


def _failure(status: int, error: dict[str, Any], **extra: Any) -> _Stop:
    return _Stop(web.json_response({"status": None, "broker_response": None, "decoded": None,
                                    "expires_at": None, "error": error, **extra}, status=status))


async def _token(request: web.Request, session: Session, scopes: tuple[str, ...],
                 *, consent: str | None = None) -> str:
    """An access token for `scopes` from the session's msal cache (refreshing as needed)."""
    assert session.home_account_id is not None
    try:
        async with session.lock:
            res = await request.app[IDENTITY].silent(session.cache, scopes, session.home_account_id)
    except (requests.RequestException, ValueError, RuntimeError) as e:
        raise _failure(502, {"error": "authority_unreachable", "error_description": type(e).__name__}) from e
    if res and "access_token" in res:
        return res["access_token"]
    detail = {k: res[k] for k in _ERROR_FIELDS if k in res} if res else {}
    if consent and (res is None or detail.get("error") in CONSENT_ERRORS):
        raise _Stop(web.json_response({"consent_url": f"/login?consent={consent}", "entra_error": detail},
                                      status=401))
    if res is None:
        raise _Stop(web.json_response({"error": "login_required", "login_url": "/login"}, status=401))
    raise _failure(401, detail or {"error": "token_unavailable"})


@guarded
async def teams(request: web.Request, session: Session) -> web.Response:
    cfg = request.app[CONFIG]
    teams_token = await _token(request, session, cfg.teams_scopes, consent="teams")
    broker_token = await _token(request, session, cfg.broker_scopes)
    result = await request.app[BROKER].call(
        "GET", "/api/token/teams", bearer=broker_token, request_id=new_request_id(),
        headers={"teams-user-aad-token": teams_token})
    return web.json_response(result)


@guarded
async def obo(request: web.Request, session: Session) -> web.Response:
    name = request.match_info["name"]
    if not NAME_RE.match(name):
        return json_error(404, "not_found", "unknown OBO name")
    broker_token = await _token(request, session, request.app[CONFIG].broker_scopes)
    result = await request.app[BROKER].call(
        "POST", f"/api/token/obo/{name}", bearer=broker_token, request_id=new_request_id())
    return web.json_response(result)


@guarded
async def acs_identity(request: web.Request, session: Session) -> web.Response:
    broker = request.app[BROKER]
    broker_token = await _token(request, session, request.app[CONFIG].broker_scopes)
    user = await broker.call("POST", "/api/user", bearer=broker_token, request_id=new_request_id())
    step = {"call": "POST /api/user", "status": user["status"],
            "broker_response": user["broker_response"], "request_id": user["request_id"]}
    if user["status"] is None or user["status"] >= 300:
        return web.json_response({**user, "decoded": None, "expires_at": None, "steps": [step]})
    result = await broker.call("GET", "/api/token", bearer=broker_token, request_id=new_request_id())
    return web.json_response({**result, "steps": [step]})


def setup(app: web.Application) -> None:
    app.router.add_post("/action/teams", teams, name="action_teams")
    app.router.add_post("/action/obo/{name}", obo, name="action_obo")
    app.router.add_post("/action/acs-identity", acs_identity, name="action_acs_identity")
