"""ACS routes, drop-in for the ACS Authentication Server sample (CONTRACT §3, issue 5).

    GET|POST /api/token/teams   Bearer + teams-user-aad-token → 201 {"token","expiresOn"}
    GET      /api/token         Bearer → 201 {"token","expiresOn","user":{"communicationUserId"}}
    POST     /api/user          Bearer → 201 (created) | 200 (existing) {"acsUserIdentity"}
    GET      /api/user          Bearer → 200 {"acsUserIdentity"} | 404 not_found
    DELETE   /api/user          Bearer → 204 (also when there was none)

Mounted only when `[acs]` is configured. `expiresOn` is ISO 8601 UTC with seconds precision
and a `Z` (`2026-11-23T10:00:00Z`). Every call writes one audit event (`acs.teams_exchange`,
`acs.identity_token`, `acs.identity_create`, `acs.identity_read`, `acs.identity_delete`)
with route, tenant, user hash, client app, decision, reason, ACS correlation id and latency.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from aiohttp import web

from ..digest import short_hash
from ..downstream.acs import AcsClient, iso_utc
from ..downstream.acs_identities import AcsIdentities
from ..errors import BrokerError, NotFound
from ..logs import audit
from ..typedefs import ACS_CLIENT, ACS_IDENTITIES, SETTINGS
from ..validation.entra import EntraPrincipal
from .api_acs_openapi import OPENAPI
from .bearer import authenticate
from .json_body import json_response
from .teams_token import check_teams_token, teams_header

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
__all__ = ["OPENAPI", "setup"]


class _Audit:
    """Collects one audit event's fields while a handler runs; emitted once in `run`."""

    def __init__(self, event: str, request: web.Request) -> None:
        self.event, self.request = event, request
        self.fields: dict = {"route": f"{request.method} {request.path}"}
        self.trace: dict = {}

    def subject(self, principal) -> None:
        self.fields.update(tid=principal.tid, user=short_hash(f"{principal.tid}:{principal.oid}"),
                           client_app=principal.app_id)

    async def run(self, body: Callable[[], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
        started = time.perf_counter()
        decision, reason = "deny", "error"
        try:
            response = await body()
            decision, reason = "allow", self.fields.pop("reason", "ok")
            return response
        except BrokerError as exc:
            reason = exc.reason
            raise
        finally:
            audit(self.event, decision=decision, reason=reason, **self.fields,
                  acs_correlation_id=self.trace.get("correlation_id"),
                  acs_request_id=self.trace.get("request_id"), cached=self.trace.get("cached"),
                  latency_ms=round((time.perf_counter() - started) * 1000, 2))


def _json(body: dict, status: int) -> web.Response:
    return json_response(body, status=status, headers=NO_STORE)


Handler = Callable[[web.Request, EntraPrincipal, _Audit], Awaitable[web.StreamResponse]]


def _audited(event: str) -> Callable[[Handler], Callable[[web.Request], Awaitable[web.StreamResponse]]]:
    """A route handler: authenticate the bearer, record it as the audit subject, run `handler`;
    one `event` audit line whatever happens (a refused bearer included)."""

    def wrap(handler: Handler) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        @functools.wraps(handler)
        async def route(request: web.Request) -> web.StreamResponse:
            record = _Audit(event, request)

            async def body() -> web.StreamResponse:
                principal = await authenticate(request)
                record.subject(principal)
                return await handler(request, principal, record)

            return await record.run(body)

        return route

    return wrap


@_audited("acs.teams_exchange")
async def teams_token(request: web.Request, bearer: EntraPrincipal, record: _Audit) -> web.Response:
    raw = teams_header(request)
    acs = request.app[SETTINGS].acs
    teams = await check_teams_token(request, raw, bearer, acs)
    record.fields["teams_app"] = teams.app_id
    client: AcsClient = request.app[ACS_CLIENT]
    token, expires_on = await client.exchange_teams_token_cached(
        raw, teams.app_id, teams.oid, not_after=teams.exp, trace=record.trace)
    # never later than the Teams token itself (ACS says "matching expiration time")
    expires_on = min(expires_on, datetime.fromtimestamp(teams.exp, UTC))
    return _json({"token": token, "expiresOn": iso_utc(expires_on)}, 201)


@_audited("acs.identity_token")
async def identity_token(request: web.Request, principal: EntraPrincipal, record: _Audit) -> web.Response:
    acs = request.app[SETTINGS].acs
    identity, token, expires_on = await request.app[ACS_IDENTITIES].token(
        principal.tid, principal.oid, scopes=acs.identity_scopes,
        minutes=acs.identity_token_ttl // 60, trace=record.trace)
    return _json({"token": token, "expiresOn": iso_utc(expires_on),
                  "user": {"communicationUserId": identity}}, 201)


@_audited("acs.identity_create")
async def create_user(request: web.Request, principal: EntraPrincipal, record: _Audit) -> web.Response:
    identities: AcsIdentities = request.app[ACS_IDENTITIES]
    identity, created = await identities.ensure(principal.tid, principal.oid, trace=record.trace)
    record.fields["reason"] = "created" if created else "existing"
    return _json({"acsUserIdentity": identity}, 201 if created else 200)


@_audited("acs.identity_read")
async def read_user(request: web.Request, principal: EntraPrincipal, record: _Audit) -> web.Response:
    identity = await request.app[ACS_IDENTITIES].get(principal.tid, principal.oid)
    if identity is None:
        raise NotFound("The user has no ACS identity yet; POST /api/user creates one.",
                       reason="no_identity")
    return _json({"acsUserIdentity": identity}, 200)


@_audited("acs.identity_delete")
async def delete_user(request: web.Request, principal: EntraPrincipal, record: _Audit) -> web.Response:
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
