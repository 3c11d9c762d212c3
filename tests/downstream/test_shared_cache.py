"""The shared downstream cache: several "replicas" (SharedTier + SingleFlightCache each, as in
one app) on one real Redis (127.0.0.1:6379, db 12, a key prefix of the test's own).

Each replica has its own RedisStore client, so everything between them goes through Redis.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import time
import uuid

import pytest
import redis.asyncio as aioredis

from service.digest import sha256_hex
from service.downstream.cache import SingleFlightCache
from service.downstream.sealing import SealingKeys, key_id
from service.downstream.shared_cache import Codec, SharedTier, TwoLevelCache, two_level
from service.metrics import Metrics
from service.storage.redis import RedisStore
from tests.support.serve_process import free_port

REDIS_URL = "redis://127.0.0.1:6379/12"
KEY_1, KEY_2 = os.urandom(32), os.urandom(32)
CODEC: Codec[dict] = Codec(dump=lambda v: v, load=lambda d: d)


def ttl_of(value: dict) -> float:
    return value["exp"] - time.time()


@pytest.fixture(name="prefix")
async def _prefix():
    prefix = f"tokenbroker-shared-cache:{uuid.uuid4().hex}:"
    yield prefix
    client = aioredis.Redis.from_url(REDIS_URL)
    names = [n async for n in client.scan_iter(match=prefix + "*", count=500)]
    if names:
        await client.delete(*names)
    await client.aclose()


class Replica:
    def __init__(self, url: str, prefix: str, keys: SealingKeys, wait: float = 5.0) -> None:
        self.store = RedisStore(url, prefix=prefix)
        self.metrics = Metrics()
        self.tier = SharedTier(self.store, keys, metrics=self.metrics)
        self.cache: TwoLevelCache[dict] = two_level(
            SingleFlightCache("obo", metrics=self.metrics), self.tier, CODEC, namespace="obo", wait=wait)

    def events(self, event: str) -> float:
        return self.metrics.registry.get_sample_value(
            "tokenbroker_cache_events_total", {"cache": "obo_shared", "event": event}) or 0.0


@pytest.fixture(name="replicas")
async def _replicas(prefix):
    made: list[Replica] = []

    def make(keys: SealingKeys | None = None, url: str = REDIS_URL, wait: float = 5.0) -> Replica:
        made.append(Replica(url, prefix, keys or SealingKeys(KEY_1), wait))
        return made[-1]
    yield make
    for replica in made:
        await replica.store.close()


class Downstream:
    """Counts calls; each answers a fresh 'token' valid for an hour."""

    def __init__(self, delay: float = 0.0, fail: bool = False) -> None:
        self.calls = 0
        self.delay = delay
        self.fail = fail

    async def __call__(self) -> dict:
        self.calls += 1
        await asyncio.sleep(self.delay)
        if self.fail:
            raise RuntimeError("downstream refused")
        return {"token": f"secret-token-{uuid.uuid4().hex}", "exp": time.time() + 3600}


# --- sealing ---------------------------------------------------------------------------------

def test_a_sealed_entry_opens_only_with_its_key_and_its_own_redis_key():
    box = SealingKeys(KEY_1)
    sealed = box.seal(b"the token", aad=b"xc:obo:1")
    assert sealed["kid"] == key_id(KEY_1) and b"the token" not in json.dumps(sealed).encode()
    assert box.open(sealed, aad=b"xc:obo:1") == b"the token"
    assert box.open(sealed, aad=b"xc:obo:2") is None                       # copied to another key
    assert SealingKeys(KEY_2).open(sealed, aad=b"xc:obo:1") is None       # unknown key id
    assert SealingKeys(KEY_2, [KEY_1]).open(sealed, aad=b"xc:obo:1") == b"the token"   # rotation
    tampered = {**sealed, "c": base64.b64encode(b"x" * 40).decode()}
    assert box.open(tampered, aad=b"xc:obo:1") is None
    assert box.open({"v": 1, "kid": sealed["kid"]}, aad=b"xc:obo:1") is None
    assert box.seal(b"same", aad=b"a")["n"] != box.seal(b"same", aad=b"a")["n"]   # fresh nonces


# --- sharing -----------------------------------------------------------------------------------

async def test_a_value_made_by_one_replica_is_served_by_the_others_without_a_call(replicas):
    a, b, c = replicas(), replicas(), replicas()
    downstream = Downstream()
    first = await a.cache.get_or_create("user-1|tid|scope", downstream, ttl_of)
    note: dict = {}
    assert await b.cache.get_or_create("user-1|tid|scope", downstream, ttl_of, note=note) == first
    assert note == {"shared": True}
    assert await c.cache.get_or_create("user-1|tid|scope", downstream, ttl_of) == first
    assert downstream.calls == 1 and b.events("hit") == 1 and c.events("hit") == 1
    other = await b.cache.get_or_create("user-2|tid|scope", downstream, ttl_of)
    assert other != first and downstream.calls == 2


async def test_concurrent_first_calls_on_three_replicas_make_one_downstream_call(replicas):
    group = [replicas() for _ in range(3)]
    downstream = Downstream(delay=0.3)
    results = await asyncio.gather(*(group[i % 3].cache.get_or_create("k", downstream, ttl_of)
                                     for i in range(20)))
    assert downstream.calls == 1 and len({r["token"] for r in results}) == 1
    assert sum(r.events("coalesced") + r.events("hit") for r in group) == 2   # the others: shared


async def test_nothing_in_redis_shows_the_token_or_the_cache_key(replicas, prefix):
    a = replicas()
    value = await a.cache.get_or_create("user-secret-oid|tid|scope", Downstream(), ttl_of)
    client = aioredis.Redis.from_url(REDIS_URL)
    names = [n async for n in client.scan_iter(match=prefix + "*")]
    raw = [await client.get(n) for n in names]
    await client.aclose()
    assert len(names) == 1 and names[0].decode().startswith(prefix + "xc:obo:")
    assert b"user-secret-oid" not in names[0]
    assert value["token"].encode() not in raw[0] and b"secret-token" not in raw[0]
    assert 3500 < await a.store._redis.pttl(names[0]) / 1000 <= 3600     # expires with the value


async def test_a_failed_winner_lets_the_waiting_replica_make_its_own_call(replicas):
    a, b = replicas(), replicas()
    failing, working = Downstream(delay=0.5, fail=True), Downstream()
    first = asyncio.ensure_future(a.cache.get_or_create("k", failing, ttl_of))
    while not failing.calls:                                             # A holds the lock, calling
        await asyncio.sleep(0.01)
    value = await b.cache.get_or_create("k", working, ttl_of)
    with pytest.raises(RuntimeError):
        await first
    assert value["token"].startswith("secret-token")
    assert failing.calls == 1 and working.calls == 1 and b.events("fallback") == 1


async def test_a_dead_winner_s_lock_expires_and_the_waiter_calls_itself(replicas):
    a = replicas()
    await a.store.put(f"xc-lock:obo:{sha256_hex('k')}", {"owner": "a-replica-killed-mid-call"}, ttl=0.5)
    downstream = Downstream()
    value = await a.cache.get_or_create("k", downstream, ttl_of)
    assert downstream.calls == 1 and value["token"].startswith("secret-token")
    assert a.events("fallback") == 1


async def test_previous_keys_still_read_entries_and_unknown_keys_are_a_miss(replicas):
    old = replicas(SealingKeys(KEY_1))
    made = await old.cache.get_or_create("k", Downstream(), ttl_of)
    rotated = replicas(SealingKeys(KEY_2, [KEY_1]))
    downstream = Downstream()
    assert await rotated.cache.get_or_create("k", downstream, ttl_of) == made and downstream.calls == 0
    stranger = replicas(SealingKeys(KEY_2))
    fresh = await stranger.cache.get_or_create("k", downstream, ttl_of)
    assert downstream.calls == 1 and fresh != made and stranger.events("undecryptable") == 1


async def test_with_redis_down_the_cache_is_in_process_and_exchanges_keep_working(replicas):
    down = replicas(url=f"redis://127.0.0.1:{free_port()}/0")
    downstream = Downstream()
    first = await down.cache.get_or_create("k", downstream, ttl_of)
    assert await down.cache.get_or_create("k", downstream, ttl_of) == first      # in-process hit
    await down.cache.get_or_create("k2", downstream, ttl_of)
    assert downstream.calls == 2
    assert down.events("unavailable") == 1 and not down.tier.available          # breaker: 1 try
