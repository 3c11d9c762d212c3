"""The six ACS Identity operations of api-version 2023-10-01 (notes/acs.md §1, §6). TEST ONLY.

The Teams exchange answers with the codes the service was recorded answering (the
azure-sdk-for-js communication-identity test recordings): a missing, invalid or expired Teams
token is 401 `InvalidAccessToken` ("Provided access token is not valid."); a missing
`appId`/`userId` is 400 `ValidationError` with `target` `AppId`/`UserId` ("... field is
required."), one that does not match the token 400 `ValidationError` with `target`
`appId`/`userId` ("Provided AppId has invalid format."). A token without both Teams scopes is
also `InvalidAccessToken` (inferred: no recording shows that case).
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from . import tokens
from .entra_check import TEAMS_AUDIENCES, EntraTokenError, verify
from .keys import ENTRA_KEYS, STATE, TEAMS

TEAMS_SCOPES = ("Teams.ManageCalls", "Teams.ManageChats")
INVALID_TOKEN = "Provided access token is not valid."


def error(status: int, code: str, message: str, headers: dict[str, str] | None = None,
          target: str | None = None) -> web.Response:
    """The service's `CommunicationErrorResponse`; `target` names the offending field."""
    body: dict[str, Any] = {"code": code, "message": message}
    if target:
        body["target"] = target
    return web.json_response({"error": body}, status=status, headers=headers)


class BadRequest(Exception):
    def __init__(self, code: str, message: str, status: int = 400, target: str | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.target = status, code, message, target

    def response(self) -> web.Response:
        return error(self.status, self.code, self.message, target=self.target)


async def _json(request: web.Request, *, optional: bool) -> dict[str, Any]:
    raw = await request.read()
    if not raw.strip():
        if optional:
            return {}
        raise BadRequest("InvalidRequestBody", "A JSON request body is required.")
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as e:
        raise BadRequest("InvalidRequestBody", "The request body is not valid JSON.") from e
    if not isinstance(body, dict):
        raise BadRequest("InvalidRequestBody", "The request body must be a JSON object.")
    return body


def _scopes(value: Any, name: str) -> list[str]:
    if not isinstance(value, list) or not value or not all(isinstance(s, str) for s in value):
        raise BadRequest("ValidationError", f"'{name}' must be a non-empty list of scopes.", target=name)
    unknown = sorted(set(value) - tokens.KNOWN_SCOPES)
    if unknown:
        raise BadRequest("ValidationError", f"Unknown scope(s): {', '.join(unknown)}.", target=name)
    return list(value)


def _minutes(body: dict[str, Any]) -> int:
    value = body.get("expiresInMinutes", tokens.DEFAULT_MINUTES)
    if value is None:
        return tokens.DEFAULT_MINUTES
    if isinstance(value, bool) or not isinstance(value, int) or not (
            tokens.MIN_MINUTES <= value <= tokens.MAX_MINUTES):
        raise BadRequest("ValidationError",
                         f"expiresInMinutes must be an integer from {tokens.MIN_MINUTES} to {tokens.MAX_MINUTES}.",
                         target="expiresInMinutes")
    return value


def _identity(request: web.Request):
    ident = request.app[STATE].identities.get(request.match_info["id"])
    if ident is None:
        raise BadRequest("IdentityNotFound", "Identity not found.", status=404)
    return ident


async def create_identity(request: web.Request) -> web.Response:
    body = await _json(request, optional=True)
    state = request.app[STATE]
    scopes = body.get("createTokenWithScopes")
    minutes = _minutes(body)
    if scopes is not None:
        scopes = _scopes(scopes, "createTokenWithScopes")
    ident = state.new_identity()
    result: dict[str, Any] = {"identity": {"id": ident.id}}
    if scopes is not None:
        result["accessToken"] = tokens.issue_for_identity(state, ident.id, scopes, minutes)
    return web.json_response(result, status=201)


async def issue_access_token(request: web.Request) -> web.Response:
    body = await _json(request, optional=False)
    ident = _identity(request)
    scopes, minutes = _scopes(body.get("scopes"), "scopes"), _minutes(body)
    return web.json_response(tokens.issue_for_identity(request.app[STATE], ident.id, scopes, minutes))


async def revoke_access_tokens(request: web.Request) -> web.Response:
    ident = _identity(request)
    ident.revoked_before = request.app[STATE].config.clock()
    return web.Response(status=204)


async def delete_identity(request: web.Request) -> web.Response:
    ident = _identity(request)
    del request.app[STATE].identities[ident.id]
    return web.Response(status=204)


async def exchange_teams_token(request: web.Request) -> web.Response:
    body = await _json(request, optional=False)
    fields = {k: body.get(k) for k in ("token", "appId", "userId")}
    if not isinstance(fields["token"], str) or not fields["token"]:   # the service: 401, not 400
        raise BadRequest("InvalidAccessToken", INVALID_TOKEN, status=401)
    for name, field in (("AppId", "appId"), ("UserId", "userId")):   # the service's own spelling
        if not isinstance(fields[field], str) or not fields[field]:
            raise BadRequest("ValidationError", f"{name}: The {name} field is required.", target=name)
    state = request.app[STATE]
    try:
        claims = await verify(request.app[ENTRA_KEYS], fields["token"], audiences=TEAMS_AUDIENCES,
                              now=state.config.clock())
    except EntraTokenError as e:
        raise BadRequest("InvalidAccessToken", f"{INVALID_TOKEN} {e}", status=401) from e
    scp = str(claims.get("scp", "")).split()
    if not all(s in scp for s in TEAMS_SCOPES):   # both are required to exchange (inferred code)
        raise BadRequest("InvalidAccessToken", f"{INVALID_TOKEN} Teams.ManageCalls and Teams.ManageChats "
                         "are both required.", status=401)
    if fields["appId"] != (claims.get("azp") or claims.get("appid")):
        raise BadRequest("ValidationError", "Provided AppId has invalid format.", target="appId")
    if fields["userId"] != claims.get("oid"):
        raise BadRequest("ValidationError", "Provided UserId has invalid format.", target="userId")
    request[TEAMS] = {"app_id": fields["appId"], "oid": claims.get("oid"), "tid": claims.get("tid")}
    return web.json_response(tokens.issue_for_teams_user(state, str(claims["oid"]), int(claims["exp"])))


ROUTES: list[tuple[str, str, Any, str | None]] = [
    # (method, path, handler, operation; create is refined by its body)
    ("POST", "/identities", create_identity, "create_user"),
    ("POST", "/identities/{id}/:issueAccessToken", issue_access_token, "get_token"),
    ("POST", "/identities/{id}/:revokeAccessTokens", revoke_access_tokens, "revoke_tokens"),
    ("DELETE", "/identities/{id}", delete_identity, "delete_user"),
    ("POST", "/teamsUser/:exchangeAccessToken", exchange_teams_token, "get_token_for_teams_user"),
]
