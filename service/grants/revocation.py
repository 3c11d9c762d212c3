"""RFC 7009 token revocation, framework-free. Always succeeds from the caller's view.

A refresh token of the requesting client revokes its whole family; an access token the client
was issued has its `jti` denied until it expires. Unknown tokens and other clients' tokens are
left untouched (and the answer is the same 200).
"""

from __future__ import annotations

from service.grants.introspection import Introspector
from service.grants.refresh_families import RefreshTokens
from service.logs import get_logger
from service.storage.jti_records import RevokedJtis

log = get_logger(__name__)


class Revoker:
    def __init__(self, *, introspector: Introspector, revoked: RevokedJtis,
                 refresh_tokens: RefreshTokens) -> None:
        self._introspector = introspector
        self._revoked = revoked
        self._refresh = refresh_tokens

    async def revoke(self, token: str, *, client_id: str, now: float) -> str:
        """What happened, for the log: refresh_family | access_token | ignored."""
        if await self._refresh.revoke(token, client_id=client_id, now=now):
            log.info("token.revoked", kind="refresh_family", client_id=client_id)
            return "refresh_family"
        claims = await self._introspector.access_token_claims(token, now=now)
        if claims is not None and claims.get("client_id") == client_id:
            await self._revoked.revoke(claims["jti"], claims["exp"])
            if self._introspector.opaque is not None:
                await self._introspector.opaque.delete(token)   # a handle is gone for good
            log.info("token.revoked", kind="access_token", client_id=client_id, jti=claims["jti"])
            return "access_token"
        return "ignored"
