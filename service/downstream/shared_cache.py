"""Downstream token caches shared by every replica: the in-process cache in front, Redis behind.

    tier = SharedTier(store, SealingKeys.from_settings(settings.store), metrics=metrics)
    cache = two_level(SingleFlightCache("obo", ...), tier, OBO_CODEC, namespace="obo", wait=13.0)
    token = await cache.get_or_create(key, factory, ttl_fn)     # SingleFlightCache's interface

Built on `SingleFlightCache`'s public interface only (get_or_create / get / invalidate): a hit
in the process never touches Redis; a miss runs `_through` once per process and key, which

1. reads the shared entry `xc:<namespace>:<sha256(key)>` (AES-256-GCM sealed, sealing.py) and
   returns it when it is still worth keeping (`ttl_fn(value) > 0`);
2. else takes the short lock `xc-lock:<namespace>:<digest>` (`SET NX PX`, LOCK_TTL, renewed
   while the call runs) and calls `factory()` — the ONE downstream call of all replicas — and
   writes the entry with Redis TTL `ttl_fn(value)` (which ends before the token does);
3. a replica that lost the lock polls for the winner's entry until `wait` seconds pass; when
   the lock vanishes without an entry (the winner failed or died: its lock expires within
   LOCK_TTL) or the deadline passes, it makes its own call.

`discard(key)` forgets a key in this process and in Redis (a deleted ACS identity's tokens).

Redis failures never reach the user: the tier logs `shared_cache.unavailable`, stays out of the
way for BREAKER seconds (in-process caching only, exchanges keep working), then tries again.
Nothing in Redis is readable without the key: the Redis key is a digest, the value ciphertext.
`cache_events_total{cache="<name>_shared", event=hit|miss|coalesced|fallback|unavailable|undecryptable}`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from service.digest import sha256_hex
from service.logs import get_logger
from service.storage import Store, StoreUnavailable

from .cache import SingleFlightCache
from .sealing import SealingKeys

V = TypeVar("V")
log = get_logger("tokenbroker.downstream.shared_cache")

LOCK_TTL = 3.0        # seconds; renewed every LOCK_TTL/3 while the winner's call runs
POLL = 0.05           # how often a waiting replica looks for the winner's entry
OP_TIMEOUT = 2.0      # one Redis operation of the cache; slower counts as unavailable
BREAKER = 5.0         # seconds the tier stays out of the way after a failure


@dataclass(frozen=True)
class Codec(Generic[V]):
    """How a cached value becomes JSON-able (before sealing) and back."""
    dump: Callable[[V], dict[str, Any]]
    load: Callable[[dict[str, Any]], V]


class SharedTier:
    """The Redis level of the downstream caches, one per app (over the app's Store)."""

    def __init__(self, store: Store, keys: SealingKeys, *, metrics: Any = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.store = store
        self.keys = keys
        self._metrics = metrics
        self._clock = clock
        self._down_until = 0.0

    def count(self, cache: str, event: str) -> None:
        if self._metrics is not None:
            self._metrics.cache_events_total.labels(cache=f"{cache}_shared", event=event).inc()

    @property
    def available(self) -> bool:
        return self._clock() >= self._down_until

    async def call(self, cache: str, op: Awaitable[Any]) -> Any:
        """One store operation under OP_TIMEOUT; StoreUnavailable trips the breaker."""
        try:
            async with asyncio.timeout(OP_TIMEOUT):
                result = await op
        except (StoreUnavailable, TimeoutError, OSError) as exc:
            if self.available:
                log.warning("shared_cache.unavailable", cache=cache, error=type(exc).__name__,
                            retry_in=BREAKER)
            self._down_until = self._clock() + BREAKER
            self.count(cache, "unavailable")
            raise StoreUnavailable("shared cache unavailable") from exc
        return result


class TwoLevelCache(Generic[V]):
    """`tier=None`: in-process only (no Redis store), same interface."""

    def __init__(self, local: SingleFlightCache[V], tier: SharedTier | None, codec: Codec[V], *,
                 namespace: str, wait: float) -> None:
        self.local = local
        self.name = namespace                  # metrics: cache="<namespace>_shared"
        self._tier = tier
        self._codec = codec
        self._ns = namespace
        self._wait = wait

    def __len__(self) -> int:
        return len(self.local)

    def get(self, key: str) -> V | None:
        return self.local.get(key)

    def hit(self, key: str) -> V | None:
        """An in-process hit (counted), else None: see SingleFlightCache.hit."""
        return self.local.hit(key)

    def invalidate(self, key: str) -> None:
        self.local.invalidate(key)

    async def discard(self, key: str) -> None:
        """Forget `key` in this process and in Redis (tried even while the breaker is open).
        Other replicas' in-process copies stay until their ttl: callers that must never serve
        them again gate on durable state first (e.g. the ACS identity map)."""
        self.local.invalidate(key)
        tier = self._tier
        if tier is None:
            return
        try:
            await tier.call(self.name, tier.store.delete(f"xc:{self._ns}:{sha256_hex(key)}"))
        except StoreUnavailable:
            log.warning("shared_cache.discard_failed", cache=self.name)

    async def get_or_create(self, key: str, factory: Callable[[], Awaitable[V]],
                            ttl_fn: Callable[[V], float], *, note: dict[str, Any] | None = None) -> V:
        """`note["shared"] = True` when this caller's value came from another replica."""
        async def through() -> V:
            return await self._through(key, factory, ttl_fn, note if note is not None else {})
        return await self.local.get_or_create(key, through, ttl_fn)

    # --- the Redis level ------------------------------------------------------------------------

    @property
    def _shared(self) -> SharedTier:
        assert self._tier is not None
        return self._tier

    async def _through(self, key: str, factory: Callable[[], Awaitable[V]],
                       ttl_fn: Callable[[V], float], note: dict[str, Any]) -> V:
        tier = self._tier
        if tier is None or not tier.available:
            return await factory()
        digest = sha256_hex(key)
        entry, lock = f"xc:{self._ns}:{digest}", f"xc-lock:{self._ns}:{digest}"
        owner = uuid.uuid4().hex
        try:
            found = await self._read(entry, ttl_fn)
            if found is not None:
                tier.count(self.name, "hit")
                note["shared"] = True
                return found
            won = await tier.call(self.name, tier.store.put_if_absent(lock, {"owner": owner}, ttl=LOCK_TTL))
        except StoreUnavailable:
            return await factory()
        if not won:
            found = await self._await_winner(entry, lock, ttl_fn)
            if found is not None:
                tier.count(self.name, "coalesced")
                note["shared"] = True
                return found
            tier.count(self.name, "fallback")
            return await self._call_and_share(entry, factory, ttl_fn)
        tier.count(self.name, "miss")
        renewal = asyncio.create_task(self._renew(lock, owner))
        try:
            return await self._call_and_share(entry, factory, ttl_fn)
        finally:
            renewal.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewal
            await self._release(lock, owner)

    async def _call_and_share(self, entry: str, factory: Callable[[], Awaitable[V]],
                              ttl_fn: Callable[[V], float]) -> V:
        value = await factory()
        ttl = ttl_fn(value)
        tier = self._tier
        if ttl > 0 and tier is not None and tier.available:
            plain = json.dumps(self._codec.dump(value), separators=(",", ":")).encode()
            sealed = tier.keys.seal(plain, aad=entry.encode())
            with contextlib.suppress(StoreUnavailable):
                await tier.call(self.name, tier.store.put(entry, sealed, ttl=ttl))
        return value

    async def _read(self, entry: str, ttl_fn: Callable[[V], float]) -> V | None:
        sealed = await self._shared.call(self.name, self._shared.store.get(entry))
        if sealed is None:
            return None
        plain = self._shared.keys.open(sealed, aad=entry.encode())
        if plain is None:
            self._shared.count(self.name, "undecryptable")
            log.warning("shared_cache.undecryptable", cache=self.name, kid=sealed.get("kid"))
            return None
        try:
            value = self._codec.load(json.loads(plain))
        except (ValueError, KeyError, TypeError):
            return None
        return value if ttl_fn(value) > 0 else None

    async def _await_winner(self, entry: str, lock: str, ttl_fn: Callable[[V], float]) -> V | None:
        """The winner's entry, or None when its lock is gone without one or `wait` has passed."""
        deadline = time.monotonic() + self._wait
        try:
            while time.monotonic() < deadline:
                await asyncio.sleep(POLL)
                found = await self._read(entry, ttl_fn)
                if found is not None:
                    return found
                if await self._shared.call(self.name, self._shared.store.get(lock)) is None:
                    return await self._read(entry, ttl_fn)
        except StoreUnavailable:
            return None
        log.warning("shared_cache.wait_expired", cache=self.name, waited=self._wait)
        return None

    async def _renew(self, lock: str, owner: str) -> None:
        with contextlib.suppress(StoreUnavailable):
            while True:
                await asyncio.sleep(LOCK_TTL / 3)
                held = await self._shared.call(self.name, self._shared.store.get(lock))
                if not held or held.get("owner") != owner:
                    return
                await self._shared.call(self.name, self._shared.store.put(lock, {"owner": owner}, ttl=LOCK_TTL))

    async def _release(self, lock: str, owner: str) -> None:
        with contextlib.suppress(StoreUnavailable):
            held = await self._shared.call(self.name, self._shared.store.get(lock))
            if held and held.get("owner") == owner:
                await self._shared.call(self.name, self._shared.store.delete(lock))


def two_level(local: SingleFlightCache[V], tier: SharedTier | None, codec: Codec[V], *, namespace: str,
              wait: float) -> TwoLevelCache[V]:
    """The cache a downstream client uses: shared through `tier` when there is one."""
    return TwoLevelCache(local, tier, codec, namespace=namespace, wait=wait)
