"""Pages and sign-in: `GET /`, `GET /login`, `GET|POST /auth/callback`, `POST /logout`.

Sign-in is msal's auth code flow (PKCE S256, `state`, `nonce`) with `response_mode=form_post`
(RFC 9700 §4.3.1: the code stays out of URLs and history). That POST is cross-site and arrives
without the `SameSite=Lax` session cookie, so its parameters are parked (`Handoffs`) and the
browser is sent on to `GET callback?handoff=<id>`, which carries the cookie; the flow is then
taken from that session only, so a code cannot be planted in someone else's browser (login
CSRF). A plain `GET callback?code=...&state=...` (response_mode=query) works too. Incremental consent (`/login?consent=teams`) is a second flow for the Teams
scopes, for the signed-in user.
"""

from __future__ import annotations

from typing import Any

import requests
from aiohttp import web

from . import pages
from .security import json_error, origin_of, same_origin
from .sessions import COOKIE_NAME, Session
from .typedefs import CONFIG, HANDOFFS, IDENTITY, SESSIONS

MAX_PENDING_FLOWS = 5
_ERROR_FIELDS = ("error", "error_description", "error_codes", "suberror", "error_uri",
                 "correlation_id", "trace_id")


def current_session(request: web.Request) -> Session | None:
    return request.app[SESSIONS].get(request.cookies.get(COOKIE_NAME))


def set_session_cookie(request: web.Request, response: web.StreamResponse, session: Session) -> None:
    cfg = request.app[CONFIG]
    response.set_cookie(COOKIE_NAME, session.sid, path="/", httponly=True, samesite="Lax",
                        secure=cfg.secure_cookie(origin_of(request)))


def _redirect(location: str, status: int = 302) -> web.Response:
    return web.Response(status=status, headers={"Location": location})


def _page(html: str, status: int = 200) -> web.Response:
    return web.Response(text=html, status=status, content_type="text/html", charset="utf-8")


def _error_page(request: web.Request, status: int, title: str, detail: Any,
                session: Session | None = None) -> web.Response:
    cfg = request.app[CONFIG]
    flash = {"title": title, "detail": detail}
    if session is not None and session.signed_in and session.user:
        return _page(pages.signed_in(cfg, session.user, session.csrf_token, flash=flash), status)
    return _page(pages.signed_out(cfg, flash=flash), status)


async def index(request: web.Request) -> web.Response:
    cfg = request.app[CONFIG]
    session = current_session(request)
    if session is None or not session.signed_in or not session.user:
        return _page(pages.signed_out(cfg))
    flash, session.flash = session.flash, None
    return _page(pages.signed_in(cfg, session.user, session.csrf_token, flash=flash))


async def login(request: web.Request) -> web.Response:
    cfg, store = request.app[CONFIG], request.app[SESSIONS]
    consent = request.query.get("consent")
    session = current_session(request)
    extra: dict[str, Any] = {}
    if consent is None:
        if session is not None:          # a new sign-in starts from a clean session
            store.delete(session.sid)
        session, scopes = store.create(), cfg.broker_scopes
    elif consent == "teams":
        if session is None or not session.signed_in:
            return _redirect("/login")
        scopes = cfg.teams_scopes
        if session.user and session.user.get("username"):
            extra["login_hint"] = session.user["username"]
    else:
        return json_error(400, "invalid_request", "consent must be 'teams' or absent")
    try:
        flow = await request.app[IDENTITY].start_flow(
            session.cache, scopes, cfg.redirect_uri(origin_of(request)), **extra)
    except (requests.RequestException, ValueError, RuntimeError) as e:
        return _error_page(request, 502, "Could not reach the identity provider",
                           {"error": "authority_unreachable", "error_description": type(e).__name__},
                           session)
    flow["purpose"] = consent or "sign_in"
    session.flows[flow["state"]] = flow
    while len(session.flows) > MAX_PENDING_FLOWS:
        session.flows.pop(next(iter(session.flows)))
    response = _redirect(flow["auth_uri"])
    set_session_cookie(request, response, session)
    return response


async def callback(request: web.Request) -> web.Response:
    cfg, store, identity = request.app[CONFIG], request.app[SESSIONS], request.app[IDENTITY]
    if request.method == "POST":
        posted = {k: v for k, v in (await request.post()).items() if isinstance(v, str)}
        hid = request.app[HANDOFFS].park(posted)
        return _redirect(f"{cfg.redirect_path}?handoff={hid}", 303)
    params = dict(request.query)
    if "handoff" in params:
        parked = request.app[HANDOFFS].take(params["handoff"])
        params = parked if parked is not None else {
            "error": "sign_in_expired", "error_description": "The sign-in response expired or was used."}
    session = current_session(request)
    state = params.get("state", "")
    flow = session.flows.pop(state, None) if session is not None else None
    if session is None or flow is None:
        detail = {k: params[k] for k in _ERROR_FIELDS if k in params} or {
            "error": "no_pending_sign_in",
            "error_description": "No sign-in in progress for this state (session cookie missing or expired)."}
        return _error_page(request, 400, "Sign-in failed", detail, session)
    purpose = flow.pop("purpose", "sign_in")
    async with session.lock:
        try:
            result = await identity.finish_flow(session.cache, flow, params)
        except requests.RequestException as e:
            result = {"error": "authority_unreachable", "error_description": type(e).__name__}
        if "error" in result:
            detail = {k: result[k] for k in _ERROR_FIELDS if k in result}
            return _error_page(request, 400, "Sign-in failed", detail, session)
        accounts = await identity.accounts(session.cache)
    claims: dict[str, Any] = result.get("id_token_claims") or {}
    accounts = [a for a in accounts if a.get("local_account_id") == claims.get("oid")] or accounts
    if not accounts:
        return _error_page(request, 400, "Sign-in failed",
                           {"error": "no_account", "error_description": "msal kept no account "
                            "(the id token or client_info was missing)"}, session)
    home_account_id = accounts[0]["home_account_id"]
    if purpose != "sign_in" and home_account_id != session.home_account_id:
        return _error_page(request, 400, "Consent failed",
                           {"error": "account_mismatch",
                            "error_description": "consent was given as a different user"}, session)
    if purpose == "sign_in":
        session.home_account_id = home_account_id
        session.user = {"name": claims.get("name"),
                        "username": claims.get("preferred_username") or claims.get("upn")
                        or accounts[0].get("username"),
                        "oid": claims.get("oid"), "tid": claims.get("tid")}
    store.rotate(session)
    response = _redirect("/", 303)
    set_session_cookie(request, response, session)
    return response


async def logout(request: web.Request) -> web.Response:
    store = request.app[SESSIONS]
    session = current_session(request)
    form = await request.post()
    if session is not None:
        token = form.get("csrf_token")
        if not same_origin(request, request.app[CONFIG].public_url) or not session.csrf_ok(
                token if isinstance(token, str) else None):
            return json_error(403, "csrf_failed", "missing or wrong CSRF token")
        store.delete(session.sid)
    response = _redirect("/", 303)
    response.del_cookie(COOKIE_NAME, path="/")
    return response
