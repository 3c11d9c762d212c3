"""`GET /api/me`: who the presented Entra token says the caller is (CONTRACT §3)."""

from __future__ import annotations

from aiohttp import web

from .bearer import authenticate
from .json_body import json_response


async def me(request: web.Request) -> web.Response:
    principal = await authenticate(request)
    body = {
        "oid": principal.oid,
        "tid": principal.tid,
        "app_id": principal.app_id,
        "scopes": sorted(principal.scopes),
        "token_version": principal.version,
    }
    return json_response(body, headers={"Cache-Control": "no-store"})


def setup(app: web.Application) -> None:
    app.router.add_get("/api/me", me, name="api_me")


_ERROR = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
OPENAPI = {
    "/api/me": {"get": {
        "summary": "The caller's identity from an Entra ID access token for the broker",
        "tags": ["api"],
        "security": [{"entraBearer": []}],
        "responses": {
            "200": {"description": "The validated token's subject", "content": {"application/json": {
                "schema": {"type": "object",
                           "required": ["oid", "tid", "app_id", "scopes", "token_version"],
                           "properties": {
                               "oid": {"type": "string"}, "tid": {"type": "string"},
                               "app_id": {"type": "string", "description": "azp (v2) or appid (v1)"},
                               "scopes": {"type": "array", "items": {"type": "string"}},
                               "token_version": {"type": "string", "enum": ["1.0", "2.0"]}}}}}},
            "401": {"description": "No credentials, or invalid_token (WWW-Authenticate: Bearer)", **_ERROR},
            "403": {"description": "insufficient_scope, or access_denied (app or tenant refused)",
                    **_ERROR},
            "503": {"description": "Entra's signing keys are unavailable", **_ERROR},
        },
    }},
}
