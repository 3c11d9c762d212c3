"""`POST /oauth2/token`: client authentication, grant dispatch, audit, no-store responses."""

from __future__ import annotations

import time

from aiohttp import web

from ..errors import BrokerError, InvalidRequest, UnauthorizedClient
from ..grants import GRANT_TYPES, TokenRequest
from ..grants.base import AuditTrace
from ..logs import bind as bind_log_fields
from ..typedefs import CLOCK, GRANTS, METRICS
from . import audit as token_audit
from . import throttling
from .forms import BODY_ERRORS, form_schema, read_form, single
from .json_body import json_response

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


async def token(request: web.Request) -> web.Response:
    started = time.perf_counter()
    client_id, grant, trace = "", "unknown", AuditTrace()
    keys: tuple[str, ...] = ()
    try:
        form = await read_form(request)
        keys, creds = throttling.keys_and_credentials(request, form)
        await throttling.enforce(request, keys)      # before any crypto or store work
        client = await request.app[GRANTS].authenticate_client(request.headers.get("Authorization"), form,
                                                               now=request.app[CLOCK](), creds=creds)
        client_id = client.client_id
        bind_log_fields(client_id=client_id)
        grant_type = single(form, "grant_type")
        if grant_type is None:
            raise InvalidRequest("The parameter grant_type is required.", reason="missing_grant_type")
        handler = request.app[GRANTS].handler(grant_type)
        grant = grant_type
        if grant_type not in client.grant_types:
            trace.rule = "grant_type"          # policy.evaluate's rule id (tokenbroker explain)
            raise UnauthorizedClient(reason="grant_type_not_allowed")
        req = TokenRequest.from_form(form, client)
        trace = req.trace
        response = await handler.handle(req, now=request.app[CLOCK]())
    except BrokerError as exc:
        await throttling.note(request, keys, exc)
        token_audit.record(client_id=client_id, grant=grant, trace=trace, decision="deny", reason=exc.reason,
                           latency_ms=(time.perf_counter() - started) * 1000, metrics=request.app[METRICS])
        exc.extra_headers.setdefault("Pragma", "no-cache")
        raise
    token_audit.record(client_id=client_id, grant=grant, trace=trace, decision="allow", reason="issued",
                       latency_ms=(time.perf_counter() - started) * 1000, metrics=request.app[METRICS])
    return json_response(response.body(), headers=NO_STORE)


def setup(app: web.Application) -> None:
    app.router.add_post("/oauth2/token", token, name="oauth2_token")


_FORM = form_schema({
    "grant_type": {"type": "string", "enum": list(GRANT_TYPES)},
    "subject_token": {"type": "string"}, "subject_token_type": {"type": "string"},
    "actor_token": {"type": "string"}, "actor_token_type": {"type": "string"},
    "requested_token_type": {"type": "string"}, "scope": {"type": "string"},
    "audience": {"type": "array", "items": {"type": "string"}},
    "resource": {"type": "array", "items": {"type": "string"}},
    "refresh_token": {"type": "string"}, "client_id": {"type": "string"}, "client_secret": {"type": "string"},
    "client_assertion_type": {"type": "string"}, "client_assertion": {"type": "string"},
}, ["grant_type"])
_ERROR = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}

OPENAPI = {
    "/oauth2/token": {"post": {
        "summary": "RFC 8693 token exchange and refresh_token grant",
        "tags": ["oauth2"], "security": [{"clientBasic": []}, {}],
        "requestBody": {"required": True, "content": _FORM},
        "responses": {
            "200": {"description": "Issued token (Cache-Control: no-store)", "content": {"application/json": {
                "schema": {"type": "object", "required": ["access_token", "issued_token_type", "token_type",
                                                          "expires_in"],
                           "properties": {"access_token": {"type": "string"},
                                          "issued_token_type": {"type": "string"},
                                          "token_type": {"type": "string"}, "expires_in": {"type": "integer"},
                                          "scope": {"type": "string"}, "refresh_token": {"type": "string"}}}}}},
            "400": {"description": "invalid_request, invalid_grant, unauthorized_client, unsupported_grant_type, "
                                   "invalid_scope, invalid_target", "content": _ERROR},
            "401": {"description": "invalid_client", "content": _ERROR},
            **BODY_ERRORS,
            "429": {"description": "too_many_attempts: too many failed attempts from this client id or "
                                   "address (Retry-After)", "content": _ERROR},
            "502": {"description": "audience=acs:teams / obo:<name>: ACS or Entra answered badly or refused "
                                   "the broker's credential", "content": _ERROR},
            "503": {"description": "ACS or Entra unavailable or throttling (Retry-After)", "content": _ERROR},
            "504": {"description": "ACS or Entra did not answer in time (Retry-After)", "content": _ERROR},
        }}},
}
