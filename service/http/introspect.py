"""`POST /oauth2/introspect` (RFC 7662): any authenticated client may ask; details only to the
token's client or a client in its `aud`, everyone else gets `{"active": false}`."""

from __future__ import annotations

from aiohttp import web

from ..errors import BrokerError, InvalidRequest
from ..logs import bind as bind_log_fields
from ..typedefs import CLOCK, GRANTS
from . import throttling
from .forms import BODY_ERRORS, form_schema, read_form, single
from .json_body import json_response

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


async def authenticated_token(request: web.Request) -> tuple[str, str]:
    """(client_id, token) of an introspection/revocation request."""
    form = await read_form(request)
    keys, creds = throttling.keys_and_credentials(request, form)
    await throttling.enforce(request, keys)          # before any crypto or store work
    try:
        client = await request.app[GRANTS].authenticate_client(request.headers.get("Authorization"), form,
                                                               now=request.app[CLOCK](), creds=creds)
    except BrokerError as exc:
        await throttling.note(request, keys, exc)
        raise
    bind_log_fields(client_id=client.client_id)
    token = single(form, "token")
    single(form, "token_type_hint")   # a hint only, but still single-valued
    if token is None:
        raise InvalidRequest("The parameter token is required.", reason="missing_token")
    return client.client_id, token


async def introspect(request: web.Request) -> web.Response:
    client_id, token = await authenticated_token(request)
    body = await request.app[GRANTS].introspector.introspect(token, client_id=client_id,
                                                             now=request.app[CLOCK]())
    return json_response(body, headers=NO_STORE)


def setup(app: web.Application) -> None:
    app.router.add_post("/oauth2/introspect", introspect, name="oauth2_introspect")


_FORM = form_schema({"token": {"type": "string"}, "token_type_hint": {"type": "string"}}, ["token"])
_ERROR = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}

OPENAPI = {
    "/oauth2/introspect": {"post": {
        "summary": "RFC 7662 token introspection", "tags": ["oauth2"], "security": [{"clientBasic": []}, {}],
        "requestBody": {"required": True, "content": _FORM},
        "responses": {"200": {"description": "{active: false} or the token's claims", "content": {
            "application/json": {"schema": {"type": "object", "required": ["active"],
                                            "properties": {"active": {"type": "boolean"}}}}}},
                      "400": {"description": "invalid_request", "content": _ERROR},
                      "401": {"description": "invalid_client", "content": _ERROR}, **BODY_ERRORS,
                      "429": {"description": "too_many_attempts (Retry-After)", "content": _ERROR}}}},
}
