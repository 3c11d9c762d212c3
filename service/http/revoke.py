"""`POST /oauth2/revoke` (RFC 7009): always 200 for an authenticated client; only the client's
own tokens are revoked (a refresh token with its whole family, an access token by `jti`)."""

from __future__ import annotations

from aiohttp import web

from ..typedefs import CLOCK, GRANTS
from .forms import BODY_ERRORS, form_schema
from .introspect import NO_STORE, authenticated_token


async def revoke(request: web.Request) -> web.Response:
    client_id, token = await authenticated_token(request)
    await request.app[GRANTS].revoker.revoke(token, client_id=client_id, now=request.app[CLOCK]())
    return web.Response(status=200, headers=NO_STORE)


def setup(app: web.Application) -> None:
    app.router.add_post("/oauth2/revoke", revoke, name="oauth2_revoke")


_ERROR = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
OPENAPI = {
    "/oauth2/revoke": {"post": {
        "summary": "RFC 7009 token revocation", "tags": ["oauth2"], "security": [{"clientBasic": []}, {}],
        "requestBody": {"required": True, "content": form_schema(
            {"token": {"type": "string"}, "token_type_hint": {"type": "string"}}, ["token"])},
        "responses": {"200": {"description": "Revoked, or nothing to revoke"},
                      "400": {"description": "invalid_request", "content": _ERROR},
                      "401": {"description": "invalid_client", "content": _ERROR}, **BODY_ERRORS,
                      "429": {"description": "too_many_attempts (Retry-After)", "content": _ERROR}}}},
}
