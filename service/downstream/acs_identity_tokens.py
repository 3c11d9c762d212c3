"""ACS identity tokens (`GET /api/token`), cached: one ACS call per identity and token lifetime.

    tokens = IdentityTokens(client, shared=tier, metrics=metrics, clock=time.time)
    token, expires_on = await tokens.get(identity, scopes, minutes, trace=trace)
    await tokens.forget(identity)                      # DELETE /api/user, identity vanished

- Key: sha256 of (ACS identity, sorted scopes, configured lifetime) — never a token. Repeated
  requests within the token's life answer the same token with its true `expiresOn`;
  concurrent first requests share one `get_token` call (single flight).
- Served until `serve_until` (entry fetched_at + half its lifetime, and never later than
  MIN_MARGIN before `expiresOn`): a client therefore always receives at least half the
  configured lifetime (>= 30 min), well outside the 10-minute "expiring soon" window in which
  the ACS client SDKs refresh (a cached token near its end would make them refresh in a loop).
  The in-process level counts on the same wall clock (`clock`) as `expiresOn`, so a cached
  token is never served past that instant.
- With a Redis store the cache is two-level (shared_cache.py): sealed entries
  `xc:acs_identity:<digest>`, single flight across replicas.
- `forget(identity)` drops the identity's entries here and in Redis. Another replica's
  in-process copy lives on until its time, but is unreachable: `AcsIdentities.token` reads the
  identity map first, and ACS identity ids are never reused.
- `cache_events_total{cache="acs_identity"|"acs_identity_shared", event}`; `forget` counts
  `event="invalidated"`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from service.digest import sha256_hex
from service.logs import current_request_id

from .acs import AcsClient
from .cache import SingleFlightCache
from .shared_cache import Codec, SharedTier, two_level

NAME = "acs_identity"
MIN_MARGIN = 900.0    # seconds: never serve a cached token closer than this to its expiry

IdentityEntry = tuple[str, datetime, float, str | None]   # (token, expiresOn, fetched at, correlation id)
IDENTITY_CODEC: Codec[IdentityEntry] = Codec(
    dump=lambda v: {"t": v[0], "e": v[1].timestamp(), "f": v[2], "c": v[3]},
    load=lambda d: (str(d["t"]), datetime.fromtimestamp(float(d["e"]), UTC), float(d["f"]),
                    None if d.get("c") is None else str(d["c"])))


def serve_until(fetched_at: float, expires_on: datetime) -> float:
    """The instant (epoch seconds) a cached identity token stops being served."""
    expiry = expires_on.timestamp()
    return min(fetched_at + (expiry - fetched_at) / 2, expiry - MIN_MARGIN)


def cache_key(identity: str, scopes: Iterable[str], minutes: int) -> str:
    return sha256_hex("\n".join((identity, ",".join(sorted(scopes)), str(minutes))))


class IdentityTokens:
    def __init__(self, client: AcsClient, *, shared: SharedTier | None = None, metrics: Any = None,
                 clock: Callable[[], float] = time.time, max_entries: int = 10_000) -> None:
        self._client = client
        self._clock = clock
        self._metrics = metrics
        # the variants (scopes, minutes) forget() drops: the configured one (which other replicas
        # use too) and any other this process has issued
        acs = client.settings
        self._variants = {(tuple(sorted(acs.identity_scopes)), acs.identity_token_ttl // 60)}
        local: SingleFlightCache[IdentityEntry] = SingleFlightCache(
            NAME, max_entries=max_entries, metrics=metrics, clock=clock)
        self.cache = two_level(local, shared, IDENTITY_CODEC, namespace=NAME,
                               wait=client.settings.timeout + 3)

    async def get(self, identity: str, scopes: Iterable[str], minutes: int, *,
                  trace: dict | None = None) -> tuple[str, datetime]:
        """(token, expiresOn) for `identity`; `trace["cached"]` says whether this caller reused
        another request's token (then `correlation_id` is None: no ACS call was made)."""
        scopes = tuple(sorted(scopes))
        self._variants.add((scopes, minutes))
        own: dict = {}

        async def factory() -> IdentityEntry:
            fetched_at = self._clock()
            token, expires_on = await self._client.issue_token(identity, scopes, minutes, trace=own)
            return token, expires_on, fetched_at, own.get("correlation_id")

        def ttl(value: IdentityEntry) -> float:
            return serve_until(value[2], value[1]) - self._clock()

        token, expires_on, _, correlation = await self.cache.get_or_create(
            cache_key(identity, scopes, minutes), factory, ttl)
        if trace is not None:
            trace["request_id"] = own.get("request_id") or current_request_id()
            trace["cached"] = not own
            trace["correlation_id"] = correlation if own else None
        return token, expires_on

    async def forget(self, identity: str) -> None:
        """Drop every cached token of `identity`, in this process and in Redis."""
        for scopes, minutes in list(self._variants):
            await self.cache.discard(cache_key(identity, scopes, minutes))
        if self._metrics is not None:
            self._metrics.cache_events_total.labels(cache=NAME, event="invalidated").inc()
