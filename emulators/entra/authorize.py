"""`/{tenant}/oauth2/v2.0/authorize`: pick a user (or take `login_hint`), record consent,
answer with a code by query, fragment or form_post. TEST ONLY."""

from __future__ import annotations

import uuid
from urllib.parse import urlencode, urlsplit, urlunsplit

from aiohttp import web

from .errors import EntraError
from .model import App, User
from .scopes import parse_scopes
from .signin_page import error_page, form_post_page, signin_page
from .state import META_TENANTS, STATE_KEY, CodeGrant, EmulatorState
from .tokens import client_info

LOOPBACK = ("localhost", "127.0.0.1", "[::1]", "::1")
RESPONSE_MODES = ("query", "fragment", "form_post")


def redirect_uri_allowed(app: App, uri: str) -> bool:
    """Exact match, or for http loopback URIs any port when the registered one has none or `*`."""
    if uri in app.redirect_uris:
        return True
    try:
        got = urlsplit(uri)
        got_port = got.port
    except ValueError:
        return False
    for reg in app.redirect_uris:
        wildcard_port = ":*" in reg
        r = urlsplit(reg.replace(":*", "", 1))
        if r.scheme != "http" or r.hostname not in LOOPBACK or not (wildcard_port or r.port is None):
            continue
        if (got.scheme == "http" and got.hostname == r.hostname and got_port is not None
                and (got.path or "/") == (r.path or "/")):
            return True
    return False


def _html(text: str, status: int = 200) -> web.Response:
    return web.Response(text=text, status=status, content_type="text/html",
                        headers={"Cache-Control": "no-store"})


def _respond(redirect_uri: str, params: dict[str, str], mode: str) -> web.Response:
    if mode == "form_post":
        return _html(form_post_page(redirect_uri, params))
    parts = urlsplit(redirect_uri)
    if mode == "fragment":
        target = urlunsplit(parts._replace(fragment=urlencode(params)))
    else:
        query = "&".join(p for p in (parts.query, urlencode(params)) if p)
        target = urlunsplit(parts._replace(query=query))
    raise web.HTTPFound(target, headers={"Cache-Control": "no-store"})


def _error_params(err: EntraError, state_param: str | None) -> dict[str, str]:
    params = {"error": err.error, "error_description": f"AADSTS{err.code}: {err.message}",
              "error_uri": f"https://login.microsoftonline.com/error?code={err.code}"}
    if state_param:
        params["state"] = state_param
    return params


async def authorize(request: web.Request) -> web.Response:
    state: EmulatorState = request.app[STATE_KEY]
    params: dict[str, str] = dict(request.query)
    if request.method == "POST":
        params.update({k: v for k, v in (await request.post()).items() if isinstance(v, str)})
    segment = request.match_info["tenant"]
    tenant = None if segment.lower() in META_TENANTS else state.tenant(segment)
    if tenant is None and segment.lower() not in META_TENANTS:
        return _html(error_page(90002, f"Tenant '{segment}' not found."), 400)
    app = state.app(params.get("client_id"))
    if app is None or app.client_id.lower() != params.get("client_id", "").lower():
        return _html(error_page(700016, f"Application with identifier '{params.get('client_id', '')}' "
                                        "was not found in the directory."), 400)
    redirect_uri = params.get("redirect_uri") or (app.redirect_uris[0] if app.redirect_uris else "")
    if not redirect_uri_allowed(app, redirect_uri):
        return _html(error_page(50011, f"The redirect URI '{redirect_uri}' specified in the request does not "
                                       f"match the redirect URIs configured for the application "
                                       f"'{app.client_id}'."), 400)
    mode = params.get("response_mode") or "query"
    if mode not in RESPONSE_MODES:
        mode = "query"
    state_param = params.get("state")
    try:
        return _authorize(request, state, params, tenant.id if tenant else None, app, redirect_uri, mode)
    except EntraError as err:
        return _respond(redirect_uri, _error_params(err, state_param), mode)


def _authorize(request: web.Request, state: EmulatorState, params: dict[str, str], tenant_id: str | None,
               app: App, redirect_uri: str, mode: str) -> web.Response:
    if params.get("response_type", "") != "code":
        raise EntraError(9002313, "The response_type must be 'code'.", error="unsupported_response_type")
    scopes = parse_scopes(state, params.get("scope"))
    method = params.get("code_challenge_method") or "plain"
    if params.get("code_challenge") and method not in ("S256", "plain"):
        raise EntraError(9002313, "Invalid code_challenge_method.", error="invalid_request")
    user = _chosen_user(state, params, tenant_id)
    if user is None:
        if params.get("prompt") == "none":
            raise EntraError(50058, error="login_required")
        notice = "The account in login_hint was not found." if params.get("login_hint") else ""
        hidden = {k: v for k, v in params.items() if k != "signin_user"}
        return _html(signin_page(request.path, hidden, state.users_in(tenant_id),
                                 app.display_name or app.client_id, notice))
    tid = tenant_id or user.tenant
    _consent_on_signin(state, scopes, tid, user, app)
    code = state.new_code(CodeGrant(
        client_id=app.client_id, redirect_uri=redirect_uri, scope=params.get("scope", ""), tenant=tid,
        user_oid=user.oid, nonce=params.get("nonce"), code_challenge=params.get("code_challenge"),
        code_challenge_method=method, expires_at=state.now() + state.config.code_lifetime,
        mfa=bool(params.get("claims"))))
    out = {"code": code}
    if params.get("client_info") == "1":
        out["client_info"] = client_info(user.oid, tid)
    if params.get("state"):
        out["state"] = params["state"]
    out["session_state"] = str(uuid.uuid5(uuid.NAMESPACE_URL, f"session:{user.oid}"))
    return _respond(redirect_uri, out, mode)


def _chosen_user(state: EmulatorState, params: dict[str, str], tenant_id: str | None) -> User | None:
    if params.get("signin_user"):
        return state.user(params["signin_user"], tenant_id)
    return state.user(params.get("login_hint"), tenant_id)


def _consent_on_signin(state: EmulatorState, scopes, tid: str, user: User, app: App) -> None:
    """Simulate the user accepting the consent prompt, unless only an admin may consent."""
    resource = scopes.resource
    if resource is None:
        return
    granted = state.consented(tid, user.oid, app.client_id, resource.client_id)
    wanted = set(resource.scopes) if scopes.is_default else set(scopes.names)
    if scopes.is_default and granted:
        return
    missing = wanted - granted
    if not missing:
        return
    if resource.admin_consent_only:
        raise EntraError(65001, f"The user or administrator has not consented to use the application "
                                f"with ID '{app.client_id}'. An administrator must grant consent for "
                                f"'{resource.display_name or resource.client_id}'.", error="consent_required")
    state.grant_consent(tid, user.oid, app.client_id, resource.client_id, missing)
