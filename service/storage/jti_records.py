"""Small domain repositories on top of a `Store`; each owns one key namespace.

    acs_identity:<tid>:<oid>       AcsIdentityMap   {"identity": "8:acs:..."}          no TTL
    replay:<namespace>:<jti>       ReplayCache      {"exp": <exp>}                     until exp + leeway
    revoked_jti:<jti>              RevokedJtis      {"exp": <exp>}                     until exp + leeway

Feature owners add their repositories here (refresh-token families, opaque handles, ...).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from service.storage.base import Store, StoreUnavailable, make_key

_MIN_TTL = 1.0


def _ttl_until(exp: float, now: float, leeway: float) -> float:
    """Seconds to keep a record about a token expiring at `exp` (at least one second)."""
    return max(_MIN_TTL, float(exp) + leeway - now)


class AcsIdentityMap:
    """Entra user (tid, oid) -> ACS communication identity, created once per user."""

    NAMESPACE = "acs_identity"

    def __init__(self, store: Store) -> None:
        self._store = store

    def _key(self, tid: str, oid: str) -> str:
        return make_key(self.NAMESPACE, tid, oid)

    async def get(self, tid: str, oid: str) -> str | None:
        value = await self._store.get(self._key(tid, oid))
        return None if value is None else value["identity"]

    async def claim(self, tid: str, oid: str, identity: str) -> tuple[str, bool]:
        """Record `identity` unless the user already has one: (the user's identity, created).

        Concurrent first calls converge: exactly one caller gets `created=True`, and all of
        them get the winner's identity (the losers should delete the identity they made).
        """
        key = self._key(tid, oid)
        for _ in range(3):
            if await self._store.put_if_absent(key, {"identity": identity}):
                return identity, True
            existing = await self._store.get(key)
            if existing is not None:
                return existing["identity"], False
            # deleted between the two calls: try again
        raise StoreUnavailable(f"acs identity mapping for tid={tid} oid={oid} keeps changing")

    async def delete(self, tid: str, oid: str) -> bool:
        return await self._store.delete(self._key(tid, oid))


class ReplayCache:
    """Remembers token ids (jti) until they expire, so each is accepted once per namespace.

    `leeway` should cover the validator's clock skew: a token is still accepted up to
    `exp + skew`, so its jti must be remembered at least that long.
    """

    NAMESPACE = "replay"

    def __init__(self, store: Store, *, clock: Callable[[], float] = time.time,
                 leeway: float = 300.0) -> None:
        self._store, self._clock, self._leeway = store, clock, leeway

    async def first_use(self, namespace: str, jti: str, exp: float) -> bool:
        """True the first time (namespace, jti) is seen; False on every replay. Atomic."""
        ttl = _ttl_until(exp, self._clock(), self._leeway)
        return await self._store.put_if_absent(
            make_key(self.NAMESPACE, namespace, jti), {"exp": exp}, ttl=ttl)

    async def release(self, namespace: str, jti: str) -> None:
        """Forget a use recorded by this caller's own `first_use` (its request failed later)."""
        await self._store.delete(make_key(self.NAMESPACE, namespace, jti))


class RevokedJtis:
    """Token ids revoked before their expiry (RFC 7009); forgotten once the token expires."""

    NAMESPACE = "revoked_jti"

    def __init__(self, store: Store, *, clock: Callable[[], float] = time.time,
                 leeway: float = 300.0) -> None:
        self._store, self._clock, self._leeway = store, clock, leeway

    async def revoke(self, jti: str, exp: float) -> None:
        """Idempotent: revoking twice keeps the token revoked."""
        ttl = _ttl_until(exp, self._clock(), self._leeway)
        await self._store.put(make_key(self.NAMESPACE, jti), {"exp": exp}, ttl=ttl)

    async def is_revoked(self, jti: str) -> bool:
        return await self._store.get(make_key(self.NAMESPACE, jti)) is not None
