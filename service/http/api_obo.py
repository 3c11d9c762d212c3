"""`POST /api/token/obo/{name}`: a token for downstream `[obo.<name>]` on the caller's behalf.

The caller is authenticated first (`bearer.authenticate`: audience, required scopes, tenant
and app allow-lists), so an unknown `{name}` answers `404 not_found` only to authenticated
callers and downstream names do not leak. Entra's refusals arrive as BrokerErrors from
`downstream.entra_obo` (claims challenge, consent, invalid assertion, 502/503/504). Every
request, refused or not, is one `obo.exchange` audit event (http/audit.py).
"""

from __future__ import annotations

import math

from aiohttp import web

from ..downstream.entra_obo import EntraOboClient, OboCaller
from ..errors import AccessDenied, NotFound
from ..typedefs import CLOCK, OBO_CLIENT
from ..validation.entra import EntraPrincipal
from .audit import AuditRecord, audited
from .bearer import bearer_token
from .json_body import json_response

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


#: what the OBO client's trace adds to the audit event
OBO_TRACE = {"status": "status", "aadsts": "aadsts", "correlation_id": "correlation_id", "cache": "cache"}


@audited("obo.exchange", OBO_TRACE)
async def obo_token(request: web.Request, principal: EntraPrincipal, record: AuditRecord) -> web.StreamResponse:
    client: EntraOboClient | None = request.app.get(OBO_CLIENT)
    name = request.match_info["name"]
    record.fields["downstream"] = name[:64]
    downstream = client.downstream(name) if client is not None else None
    if client is None or downstream is None:
        raise NotFound("No such downstream API.", reason="unknown_downstream")
    if principal.is_app_only:  # accepted when entra.allow_app_only, but there is no user to act for
        raise AccessDenied("On-behalf-of needs a user token.", reason="app_only")
    assertion = bearer_token(request) or ""
    caller = OboCaller(tid=principal.tid, oid=principal.oid, app_id=principal.app_id,
                       token_hash=principal.token_hash, assertion_exp=principal.exp)
    token = await client.exchange(downstream, assertion, caller, trace=record.trace)
    expires_in = max(0, math.floor(token.expires_on - request.app[CLOCK]()))
    body = {"access_token": token.access_token, "token_type": "Bearer", "expires_in": expires_in,
            "scope": token.scope}
    return json_response(body, headers=NO_STORE)


def setup(app: web.Application) -> None:
    app.router.add_post("/api/token/obo/{name}", obo_token, name="api_token_obo")


_ERROR = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
OPENAPI = {
    "/api/token/obo/{name}": {"post": {
        "summary": "An access token for a downstream API, on behalf of the signed-in user (Entra OBO)",
        "description": "Exchanges the caller's Entra token for the broker (Bearer) for a token to the "
                       "downstream configured as [obo.<name>]. Answers are cached until shortly before "
                       "they expire.",
        "tags": ["api"],
        "security": [{"entraBearer": []}],
        "parameters": [{"name": "name", "in": "path", "required": True, "schema": {"type": "string"},
                        "description": "The downstream's name, as in [obo.<name>]"}],
        "responses": {
            "200": {"description": "A token for the downstream API (Cache-Control: no-store)",
                    "content": {"application/json": {"schema": {
                        "type": "object",
                        "required": ["access_token", "token_type", "expires_in", "scope"],
                        "properties": {
                            "access_token": {"type": "string"},
                            "token_type": {"type": "string", "enum": ["Bearer"]},
                            "expires_in": {"type": "integer", "description": "seconds; never more than "
                                                                             "Entra granted"},
                            "scope": {"type": "string", "description": "the downstream's configured "
                                                                       "scopes, space-separated"}}}}}},
            "401": {"description": "No credentials; invalid_token (also: Entra refused the assertion); "
                                   "or insufficient_claims with Microsoft's claims challenge in "
                                   "WWW-Authenticate (MFA / conditional access)", **_ERROR},
            "403": {"description": "insufficient_scope, access_denied (also: an app-only token), or consent_required (the user "
                                   "or an admin has not consented to the downstream API, or the broker app is not "
                                   "provisioned in the user's tenant; the body adds consent_url, that tenant's "
                                   "admin-consent link)", **_ERROR},
            "404": {"description": "not_found: no such downstream (after authentication)", **_ERROR},
            "502": {"description": "Entra refused the broker's own credential, or answered oddly",
                    **_ERROR},
            "503": {"description": "Entra unavailable or throttling (Retry-After)", **_ERROR},
            "504": {"description": "Entra did not answer within entra.timeout (Retry-After)", **_ERROR},
        },
    }},
}
