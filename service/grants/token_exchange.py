"""RFC 8693 token exchange: a subject token in, exactly the token the policy allows out.

Steps: parameters → routing by the unverified issuer → policy on what is known without the
subject (issuer allowed, targets, client scopes) → subject validation → full policy with the
subject's scopes → delegation → federation / account linking → single-use commit
(replay_check; nothing refuses after it) → mint. The issued token's `aud` is exactly the
requested targets, its scope never exceeds subject ∩ client, and its lifetime is
min(client TTL, the subject's remaining lifetime, the actor token's remaining lifetime).

Delegation (`actor_token`, `may_act`, nested `act`): delegation.py. Opaque access tokens for
`token_format = "opaque"` clients: opaque.py (the JWT's claims stored under a handle).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from service.digest import short_hash
from service.errors import InvalidRequest
from service.grants import policy
from service.grants.base import (
    ACCESS_TOKEN_TYPE,
    JWT_TOKEN_TYPE,
    TOKEN_EXCHANGE,
    TokenRequest,
    TokenResponse,
    scope_for_response,
)
from service.grants.collaborators import OwnTokens
from service.grants.delegation import ACTOR_REFUSED, Delegations, actor_param
from service.grants.downstream_targets import DownstreamTargets, is_downstream
from service.grants.exchange_params import read_exchange_params
from service.grants.federation import Federation, federated_scopes
from service.grants.linking import AccountLinker, AuditEvents
from service.grants.opaque import OpaqueHandles, wants_opaque
from service.grants.policy import ENTRA, SELF
from service.grants.refresh_families import RefreshTokens
from service.grants.subject_tokens import Subject, SubjectTokens
from service.settings import ClientSettings, Settings

REQUESTED_TOKEN_TYPES = (ACCESS_TOKEN_TYPE, JWT_TOKEN_TYPE)


@dataclass(frozen=True)
class Issued:
    token: str
    jti: str
    expires_in: int
    claims: dict[str, Any] = field(default_factory=dict, repr=False)   # as signed (opaque.py stores them)


@dataclass(frozen=True)
class ResolvedSubject:
    """Who the issued token is about: a federated client, a linked account or the derived id."""

    sub: str
    claims: Mapping[str, Any] = field(default_factory=dict)   # a linked account's attributes
    federated: ClientSettings | None = None                    # sub = client_id = this client

    def scopes(self, granted: tuple[str, ...], requested: tuple[str, ...] | None) -> tuple[str, ...]:
        return granted if self.federated is None else federated_scopes(self.federated, granted, requested)


async def resolve_subject(subject: Subject, *, federation: Federation | None = None,
                          linker: AccountLinker | None = None, targets: tuple[str, ...] = (),
                          events: AuditEvents | None = None) -> ResolvedSubject:
    """The subject of our token: service-principal federation first, then account linking
    (grants/federation.py, grants/linking.py), else the stable derived local id."""
    if federation and subject.issuer_name not in (ENTRA, SELF):
        client = federation.match(subject.issuer_name, subject.external_id, subject.claims, targets)
        if client is not None:
            return ResolvedSubject(client.client_id, federated=client)
    account = await linker.resolve(subject, events=[] if events is None else events) if linker is not None else None
    if account is None:
        return ResolvedSubject(subject.local_id())
    return ResolvedSubject(account.id, claims=account.token_claims())


def mint_access_token(issuer: OwnTokens, *, sub: str, audiences: tuple[str, ...], client_id: str,
                      scopes: tuple[str, ...], extra: dict[str, Any], ttl: float, now: float) -> Issued:
    claims: dict[str, Any] = {"sub": sub, "aud": audiences[0] if len(audiences) == 1 else list(audiences),
                              "client_id": client_id}
    if scopes:
        claims["scope"] = " ".join(scopes)
    claims.update({k: v for k, v in extra.items() if v is not None})
    minted = issuer.mint(claims, now=now, ttl=ttl)
    signed = {"iss": issuer.issuer_url, **claims, "iat": math.floor(now), "exp": minted.exp, "jti": minted.jti}
    return Issued(minted.token, minted.jti, max(1, minted.exp - math.floor(now)), signed)


class TokenExchangeGrant:
    GRANT_TYPE = TOKEN_EXCHANGE

    def __init__(self, settings: Settings, *, subjects: SubjectTokens, issuer: OwnTokens,
                 refresh_tokens: RefreshTokens, federation: Federation | None = None,
                 linker: AccountLinker | None = None, opaque: OpaqueHandles | None = None,
                 downstream: DownstreamTargets | None = None) -> None:
        self._settings = settings
        self._subjects = subjects
        self._issuer = issuer
        self._refresh = refresh_tokens
        self._federation = federation
        self._linker = linker
        self._opaque = opaque
        self._delegations = Delegations(subjects, broker_issuer=settings.server.public_url)
        self._downstream = downstream or DownstreamTargets(settings, subjects=subjects)  # unconfigured

    async def handle(self, req: TokenRequest, *, now: float) -> TokenResponse:
        trace = req.trace
        req.require("subject_token")
        req.require("subject_token_type")
        if any(is_downstream(t) for t in req.targets):   # ACS / Entra OBO: downstream_targets.py
            return await self._downstream.handle(req, now=now, linker=self._linker)
        actor_param(req)

        def opaque_only(requested_type: str) -> None:
            if wants_opaque(req.client) and requested_type != ACCESS_TOKEN_TYPE:
                raise InvalidRequest("The requested_token_type is not supported.",
                                     reason="opaque_client_jwt_requested")

        params = read_exchange_params(req, self._subjects, token_types=REQUESTED_TOKEN_TYPES,
                                      check_type=opaque_only, now=now)
        subject_token, requested_type, targets = params.subject_token, params.requested_token_type, params.targets
        requested_scopes, issuer_name = params.requested_scopes, params.issuer
        inp = policy.PolicyInput(req.client, self.GRANT_TYPE, issuer_name, targets, requested_scopes)
        first = policy.evaluate(inp)
        trace.rule = first.rule                  # audited on a denial too: `tokenbroker explain` names it
        policy.enforce(first)

        subject = await self._subjects.validate(subject_token, issuer_name, client_id=req.client.client_id,
                                                now=now, peek=params.peek)
        trace.subject_hash = short_hash(f"{subject.iss}|{subject.external_id}")
        decision = policy.evaluate(
            policy.PolicyInput(req.client, self.GRANT_TYPE, issuer_name, targets, requested_scopes,
                               subject.scopes))
        trace.rule = decision.rule
        policy.enforce(decision)
        remaining = subject.exp - now
        if remaining < 1:
            raise InvalidRequest("The subject token is not acceptable.", reason="subject_expired")
        delegation = await self._delegations.resolve(req, subject, resolve_sub=partial(self._local_sub, events=trace.events),
                                                     now=now)
        if delegation.chain:
            trace.extra["actor_chain"] = list(delegation.chain)
        if delegation.actor is not None:     # the actor's authority ends with its token, too
            remaining = min(remaining, delegation.actor.exp - now)
            if remaining < 1:
                raise InvalidRequest(ACTOR_REFUSED, reason="actor_expired")
        who = await resolve_subject(subject, federation=self._federation, linker=self._linker, targets=targets,
                                    events=trace.events)
        sub, scopes = who.sub, who.scopes(decision.scopes, requested_scopes)
        # single-use tokens are used up only now that nothing can refuse the request any more
        # (federation and linking refuse too): a refused request must not burn them
        await self._subjects.commit(subject)
        try:
            await self._delegations.commit(delegation)
        except InvalidRequest:               # a replayed actor must not use up the subject token
            await self._subjects.release(subject)
            raise
        if who.federated:
            trace.extra["federated_client"] = who.federated.client_id
        extra = {"tid": subject.tid, "oid": subject.oid, **who.claims}
        ttl = min(req.client.access_token_ttl, remaining)
        issued = mint_access_token(self._issuer, sub=sub, audiences=targets,
                                   client_id=who.federated.client_id if who.federated else req.client.client_id,
                                   scopes=scopes, extra={**extra, "act": delegation.act}, ttl=ttl, now=now)
        if self._opaque is not None:
            issued = await self._opaque.finish(issued, req.client, now=now)
        trace.jti, trace.issued_token_type = issued.jti, requested_type
        refresh = None
        if req.client.refresh_tokens and "refresh_token" in req.client.grant_types and not who.federated \
                and not delegation.delegated:
            family_exp = min(math.floor(now) + self._settings.issuer.refresh_token_ttl, subject.exp)
            grant = {"sub": sub, "aud": list(targets), "scope": list(scopes), "issuer": issuer_name,
                     **{k: v for k, v in extra.items() if v is not None}}
            refresh = await self._refresh.create_family(req.client.client_id, grant, exp=family_exp, now=now)
        return TokenResponse(access_token=issued.token, issued_token_type=requested_type,
                             expires_in=issued.expires_in,
                             scope=scope_for_response(requested_scopes, scopes),
                             refresh_token=refresh)

    async def _local_sub(self, subject: Subject, *, events: AuditEvents) -> str:
        """The local `sub` of a subject or actor (account linking; delegation compares these)."""
        return (await resolve_subject(subject, linker=self._linker, events=events)).sub
