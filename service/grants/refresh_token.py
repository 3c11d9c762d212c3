"""The `refresh_token` grant: rotate the family's token and issue a fresh access token.

The policy is evaluated again (the client's configuration may have narrowed since: the issued
scope is the family's scope within today's `allowed_scopes`), a requested `scope` must lie
within the family's scope, and the access token never outlives the
family (whose absolute expiry is min(refresh_token_ttl, the original subject token's exp)).
Every failure of the refresh token itself is `invalid_grant`.
"""

from __future__ import annotations

from service.errors import InvalidGrant, InvalidScope
from service.grants import policy
from service.grants.base import (
    ACCESS_TOKEN_TYPE,
    REFRESH_TOKEN,
    TokenRequest,
    TokenResponse,
    scope_for_response,
)
from service.grants.collaborators import OwnTokens
from service.grants.linking import TOKEN_CLAIMS
from service.grants.opaque import OpaqueHandles
from service.grants.refresh_families import RefreshTokens
from service.grants.token_exchange import mint_access_token


class RefreshTokenGrant:
    GRANT_TYPE = REFRESH_TOKEN

    def __init__(self, *, issuer: OwnTokens, refresh_tokens: RefreshTokens, opaque: OpaqueHandles | None = None) -> None:
        self._issuer = issuer
        self._refresh = refresh_tokens
        self._opaque = opaque

    async def handle(self, req: TokenRequest, *, now: float) -> TokenResponse:
        trace = req.trace
        token = req.require("refresh_token")
        requested_scopes = req.requested_scopes()
        trace.requested_token_type = ACCESS_TOKEN_TYPE
        if not req.client.refresh_tokens:
            raise InvalidGrant(reason="refresh_tokens_disabled")
        current = await self._refresh.lookup(token, now=now)
        if current is not None and current.client_id == req.client.client_id:
            # check the policy before consuming the token
            grant = current.grant
            trace.issuer, trace.audience = grant.get("issuer", ""), tuple(grant["aud"])
            family_scopes = frozenset(grant["scope"])
            if requested_scopes is not None and not set(requested_scopes) <= family_scopes:
                raise InvalidScope(reason="scope_beyond_grant")
            decision = policy.enforce(policy.evaluate(policy.PolicyInput(
                req.client, self.GRANT_TYPE, grant.get("issuer", ""), tuple(grant["aud"]),
                requested_scopes, family_scopes)))
            trace.rule = decision.rule
        rg, successor = await self._refresh.rotate(token, client_id=req.client.client_id, now=now)
        grant = rg.grant
        # the scope is the policy's answer today, not the family's: a scope the client has lost
        # since the family was created is not issued again
        scopes = policy.enforce(policy.evaluate(policy.PolicyInput(
            req.client, self.GRANT_TYPE, grant.get("issuer", ""), tuple(grant["aud"]), requested_scopes,
            frozenset(grant["scope"])))).scopes
        remaining = rg.exp - now
        if remaining < 1:
            raise InvalidGrant(reason="refresh_family_expired")
        ttl = min(req.client.access_token_ttl, remaining)
        extra = {"tid": grant.get("tid"), "oid": grant.get("oid"),
                 **{k: grant[k] for k in TOKEN_CLAIMS if k in grant}}     # a linked account's attributes
        issued = mint_access_token(self._issuer, sub=grant["sub"], audiences=tuple(grant["aud"]),
                                   client_id=req.client.client_id, scopes=scopes, extra=extra, ttl=ttl,
                                   now=now)
        if self._opaque is not None:
            issued = await self._opaque.finish(issued, req.client, now=now)
        trace.jti, trace.issued_token_type = issued.jti, ACCESS_TOKEN_TYPE
        return TokenResponse(access_token=issued.token, issued_token_type=ACCESS_TOKEN_TYPE,
                             expires_in=issued.expires_in, scope=scope_for_response(requested_scopes, scopes),
                             refresh_token=successor)

