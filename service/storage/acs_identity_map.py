"""Entra user (tid, oid) -> ACS communication identity on a `Store`, created once per user.

    acs_identity:<tid>:<oid>       AcsIdentityMap   {"identity": "8:acs:..."}          no TTL
"""

from __future__ import annotations

from service.storage.base import Store, StoreUnavailable, make_key


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
