"""ACS identities of Entra users (the sample's /api/user and /api/token), keyed by (tid, oid).

The mapping lives in the broker's store (`storage.acs_identity_map.AcsIdentityMap`), not in Graph open
extensions as in the sample. Concurrent first calls for one user are single-flight within a
process (one `create_user` at ACS); across replicas the store's atomic claim decides, and a
loser deletes the ACS identity it made, so exactly one identity survives either way.

Identity tokens are cached (acs_identity_tokens.py; shared by the replicas with a Redis store).
The identity map is read first on every `token()`, so a deleted identity's cached token is
never served again; `delete()` also drops it from the caches.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime

from service.errors import BrokerError, NotFound
from service.logs import get_logger
from service.metrics import Metrics
from service.storage.acs_identity_map import AcsIdentityMap

from .acs import AcsClient
from .acs_identity_tokens import IdentityTokens
from .cache import SingleFlightCache
from .shared_cache import SharedTier

log = get_logger("tokenbroker.downstream.acs")


class AcsIdentities:
    def __init__(self, client: AcsClient, mapping: AcsIdentityMap, *, metrics: Metrics | None = None,
                 shared: SharedTier | None = None, clock: Callable[[], float] = time.time) -> None:
        self._client = client
        self._map = mapping
        self.tokens = IdentityTokens(client, shared=shared, metrics=metrics, clock=clock)
        self._creating: SingleFlightCache[tuple[str, bool]] = SingleFlightCache(
            "acs_identity_create", max_entries=1, metrics=metrics)

    async def get(self, tid: str, oid: str) -> str | None:
        return await self._map.get(tid, oid)

    async def ensure(self, tid: str, oid: str, *, trace: dict | None = None) -> tuple[str, bool]:
        """The user's identity, created at ACS and recorded when missing: (identity, created)."""
        existing = await self._map.get(tid, oid)
        if existing is not None:
            return existing, False
        ran: list[bool] = []

        async def create() -> tuple[str, bool]:
            ran.append(True)
            return await self._create(tid, oid, trace)

        identity, created = await self._creating.get_or_create(f"{tid}:{oid}", create, lambda _: 0)
        # concurrent callers of this process share one creation; only its caller says "created"
        return identity, created and bool(ran)

    async def _create(self, tid: str, oid: str, trace: dict | None) -> tuple[str, bool]:
        existing = await self._map.get(tid, oid)
        if existing is not None:
            return existing, False
        made = await self._client.create_user(trace=trace)
        identity, created = await self._map.claim(tid, oid, made)
        if not created:  # another replica won the race: do not leave an orphan at ACS
            try:
                await self._client.delete_user(made)
            except BrokerError as exc:
                log.warning("acs.orphan_identity", reason=exc.reason, identity=made)
        return identity, created

    async def token(self, tid: str, oid: str, *, scopes: tuple[str, ...], minutes: int,
                    trace: dict | None = None) -> tuple[str, str, datetime]:
        """(identity, ACS token, expiry); NotFound when the user has no identity (or ACS lost it).
        The token is the cached one while it has at least half its lifetime left."""
        identity = await self._map.get(tid, oid)
        if identity is None:
            raise NotFound("The user has no ACS identity yet; POST /api/user creates one.",
                           reason="no_identity")
        try:
            token, expires_on = await self.tokens.get(identity, scopes, minutes, trace=trace)
        except NotFound:
            await self._map.delete(tid, oid)  # ACS no longer knows it: forget the stale mapping
            await self.tokens.forget(identity)
            log.warning("acs.identity_vanished", tid=tid, oid=oid)
            raise
        return identity, token, expires_on

    async def delete(self, tid: str, oid: str, *, trace: dict | None = None) -> bool:
        """Delete at ACS (already gone is fine; ACS revokes its tokens), then the mapping, then
        its cached tokens (here and in Redis). False when there was none."""
        identity = await self._map.get(tid, oid)
        if identity is None:
            return False
        await self._client.delete_user(identity, trace=trace)
        await self._map.delete(tid, oid)
        await self.tokens.forget(identity)
        return True
