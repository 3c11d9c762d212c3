"""ACS routes, drop-in for the ACS Authentication Server sample (CONTRACT §3, issue 5).

    GET|POST /api/token/teams   Bearer + teams-user-aad-token → 201 {"token","expiresOn"}
    GET      /api/token         Bearer → 201 {"token","expiresOn","user":{"communicationUserId","id","rawId"}}
                                (the Node sample's and the C# sample's shapes; the same ACS id)
    POST     /api/user          Bearer → 201 (created) | 200 (existing) {"acsUserIdentity"}
    GET      /api/user          Bearer → 200 {"acsUserIdentity"} | 404 not_found
    DELETE   /api/user          Bearer → 204 (also when there was none)

Mounted only when `[acs]` is configured. `expiresOn` is ISO 8601 UTC with seconds precision
and a `Z` (`2026-11-23T10:00:00Z`). Every call writes one audit event (`acs.teams_exchange`,
`acs.identity_token`, `acs.identity_create`, `acs.identity_read`, `acs.identity_delete`)
with route, tenant, user hash, client app, decision, reason, ACS correlation id and latency.
"""

from __future__ import annotations

from aiohttp import web

from ..downstream.acs import AcsClient, iso_utc, iso_utc_seconds
from ..downstream.acs_identities import AcsIdentities
from ..errors import NotFound
from ..settings import AcsSettings
from ..typedefs import ACS_CLIENT, ACS_IDENTITIES, SETTINGS
from ..validation.entra import EntraPrincipal
from .api_acs_openapi import OPENAPI
from .audit import AuditRecord, audited
from .json_body import json_response
from .teams_token import check_teams_token, teams_header

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
#: what the ACS client's trace adds to the audit event
ACS_TRACE = {"correlation_id": "acs_correlation_id", "request_id": "acs_request_id", "cached": "cached"}
__all__ = ["OPENAPI", "setup"]


def user_identifier(identity: str) -> dict[str, str]:
    """The ACS user as both ACS samples' clients read it: the Node server's
    `{communicationUserId}` and the C# server's `CommunicationUserIdentifier` (`id`, `rawId`)."""
    return {"communicationUserId": identity, "id": identity, "rawId": identity}


def _json(body: dict, status: int) -> web.Response:
    return json_response(body, status=status, headers=NO_STORE)


def _acs_settings(request: web.Request) -> AcsSettings:
    """[acs]: these routes are mounted only when it is configured."""
    acs = request.app[SETTINGS].acs
    if acs is None:
        raise NotFound()
    return acs


@audited("acs.teams_exchange", ACS_TRACE)
async def teams_token(request: web.Request, bearer: EntraPrincipal, record: AuditRecord) -> web.Response:
    raw = teams_header(request)
    acs = _acs_settings(request)
    teams = await check_teams_token(request, raw, bearer, acs)
    record.fields["teams_app"] = teams.app_id
    client: AcsClient = request.app[ACS_CLIENT]
    token, expires_on = await client.exchange_teams_token_cached(
        raw, teams.app_id, teams.oid, not_after=teams.exp, trace=record.trace, token_hash=teams.token_hash)
    # never later than the Teams token itself (ACS says "matching expiration time")
    return _json({"token": token, "expiresOn": iso_utc_seconds(min(expires_on.timestamp(), teams.exp))}, 201)


@audited("acs.identity_token", ACS_TRACE)
async def identity_token(request: web.Request, principal: EntraPrincipal, record: AuditRecord) -> web.Response:
    acs = _acs_settings(request)
    identity, token, expires_on = await request.app[ACS_IDENTITIES].token(
        principal.tid, principal.oid, scopes=acs.identity_scopes,
        minutes=acs.identity_token_ttl // 60, trace=record.trace)
    return _json({"token": token, "expiresOn": iso_utc(expires_on),
                  "user": user_identifier(identity)}, 201)


@audited("acs.identity_create", ACS_TRACE)
async def create_user(request: web.Request, principal: EntraPrincipal, record: AuditRecord) -> web.Response:
    identities: AcsIdentities = request.app[ACS_IDENTITIES]
    identity, created = await identities.ensure(principal.tid, principal.oid, trace=record.trace)
    record.fields["reason"] = "created" if created else "existing"
    return _json({"acsUserIdentity": identity}, 201 if created else 200)


@audited("acs.identity_read", ACS_TRACE)
async def read_user(request: web.Request, principal: EntraPrincipal, record: AuditRecord) -> web.Response:
    identity = await request.app[ACS_IDENTITIES].get(principal.tid, principal.oid)
    if identity is None:
        raise NotFound("The user has no ACS identity yet; POST /api/user creates one.",
                       reason="no_identity")
    return _json({"acsUserIdentity": identity}, 200)


@audited("acs.identity_delete", ACS_TRACE)
async def delete_user(request: web.Request, principal: EntraPrincipal, record: AuditRecord) -> web.Response:
    deleted = await request.app[ACS_IDENTITIES].delete(principal.tid, principal.oid,
                                                       trace=record.trace)
    record.fields["reason"] = "deleted" if deleted else "absent"
    return web.Response(status=204, headers=NO_STORE)


def setup(app: web.Application) -> None:
    """Mount the ACS routes only when `[acs]` is configured (else they are plain 404s)."""
    if app[SETTINGS].acs is None:
        return
    app.router.add_get("/api/token/teams", teams_token, name="acs_teams_token", allow_head=False)
    app.router.add_post("/api/token/teams", teams_token, name="acs_teams_token_post")
    app.router.add_get("/api/token", identity_token, name="acs_identity_token", allow_head=False)
    app.router.add_post("/api/user", create_user, name="acs_user_create")
    app.router.add_get("/api/user", read_user, name="acs_user_read", allow_head=False)
    app.router.add_delete("/api/user", delete_user, name="acs_user_delete")
