"""What the broker remembers about token ids (jti) on a `Store`; each class owns one key namespace.

    replay:<namespace>:<jti>       ReplayCache      {"exp": <exp>}                     until exp + leeway
    revoked_jti:<jti>              RevokedJtis      {"exp": <exp>}                     until exp + leeway

The other records on a Store: refresh-token families (grants/refresh_families.py) and the
Entra user -> ACS identity map (storage/acs_identity_map.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from service.storage.base import Store, make_key

_MIN_TTL = 1.0


def _ttl_until(exp: float, now: float, leeway: float) -> float:
    """Seconds to keep a record about a token expiring at `exp` (at least one second)."""
    return max(_MIN_TTL, float(exp) + leeway - now)


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
