"""RFC 7662 token introspection, framework-free.

Our JWT access tokens, our opaque access-token handles (opaque.py) and our refresh tokens can
be introspected. Details go only to the
token's client or (for access tokens) a client named in its `aud`; to anyone else, and for
anything unknown, expired or revoked, the answer is just `{"active": false}`.
"""

from __future__ import annotations

from typing import Any

from service.errors import TokenValidationError
from service.grants.collaborators import OwnTokens
from service.grants.opaque import OpaqueHandles, is_handle
from service.grants.refresh_families import RefreshTokens
from service.storage.jti_records import RevokedJtis
from service.validation.jwt_checks import audiences

INACTIVE: dict[str, Any] = {"active": False}
_CLAIMS = ("iss", "sub", "aud", "client_id", "scope", "exp", "iat", "nbf", "jti", "tid", "oid", "act")


class Introspector:
    def __init__(self, *, issuer: OwnTokens, revoked: RevokedJtis, refresh_tokens: RefreshTokens,
                 opaque: OpaqueHandles | None = None) -> None:
        self._issuer = issuer
        self._revoked = revoked
        self._refresh = refresh_tokens
        self.opaque = opaque

    async def access_token_claims(self, token: str, *, now: float) -> dict[str, Any] | None:
        """The claims of one of our live, unrevoked access tokens (JWT or opaque handle), else None."""
        if self.opaque is not None and is_handle(token):
            claims = await self.opaque.claims(token, now=now)
            if claims is None:
                return None
        elif token.count(".") != 2:
            return None
        else:
            try:
                claims = self._issuer.verify(token, now=now)
            except TokenValidationError:
                return None
        if await self._revoked.is_revoked(claims["jti"]):
            return None
        return claims

    async def introspect(self, token: str, *, client_id: str, now: float) -> dict[str, Any]:
        claims = await self.access_token_claims(token, now=now)
        if claims is not None:
            if claims.get("client_id") != client_id and client_id not in audiences(claims):
                return dict(INACTIVE)
            return {"active": True, "token_type": "Bearer", **{k: claims[k] for k in _CLAIMS if k in claims}}
        grant = await self._refresh.lookup(token, now=now)
        if grant is None or grant.client_id != client_id:
            return dict(INACTIVE)
        out: dict[str, Any] = {"active": True, "token_type": "refresh_token", "client_id": grant.client_id,
                               "sub": grant.grant["sub"], "exp": grant.exp}
        if grant.grant.get("scope"):
            out["scope"] = " ".join(grant.grant["scope"])
        return out
