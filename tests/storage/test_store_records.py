"""Domain repositories over every Store backend."""

from __future__ import annotations

import asyncio

from service.storage.acs_identity_map import AcsIdentityMap
from service.storage.jti_records import ReplayCache, RevokedJtis

TID = "72f988bf-86f1-41af-91ab-2d7cd011db47"
OID = "00000000-0000-0000-0000-0000000000a1"


async def test_acs_identity_map_claims_once_and_keeps_the_first_identity(backend):
    ids = AcsIdentityMap(backend.store)
    assert await ids.get(TID, OID) is None
    assert await ids.claim(TID, OID, "8:acs:first") == ("8:acs:first", True)
    assert await ids.claim(TID, OID, "8:acs:second") == ("8:acs:first", False)
    assert await ids.get(TID, OID) == "8:acs:first"
    assert await ids.delete(TID, OID) is True
    assert await ids.get(TID, OID) is None
    assert await ids.claim(TID, OID, "8:acs:third") == ("8:acs:third", True)


async def test_concurrent_first_claims_converge_on_one_identity(backend):
    maps = [AcsIdentityMap(backend.store), AcsIdentityMap(backend.another())]
    results = await asyncio.gather(*(maps[i % 2].claim(TID, OID, f"8:acs:{i}") for i in range(20)))
    assert sum(created for _, created in results) == 1
    winner = next(identity for identity, created in results if created)
    assert {identity for identity, _ in results} == {winner}
    assert await maps[0].get(TID, OID) == winner


async def test_identity_keys_of_different_users_never_collide(backend):
    ids = AcsIdentityMap(backend.store)
    await ids.claim("a:b", "c", "8:acs:one")
    await ids.claim("a", "b:c", "8:acs:two")
    assert await ids.get("a:b", "c") == "8:acs:one"
    assert await ids.get("a", "b:c") == "8:acs:two"


async def test_replay_cache_accepts_a_jti_once_per_namespace_until_it_expires(backend):
    cache = ReplayCache(backend.store, clock=backend.clock, leeway=0)
    exp = backend.clock() + 1.0
    assert await cache.first_use("issuer-a", "jti-1", exp) is True
    assert await cache.first_use("issuer-a", "jti-1", exp) is False
    assert await cache.first_use("issuer-b", "jti-1", exp) is True
    await backend.advance(1.3)
    assert await cache.first_use("issuer-a", "jti-1", backend.clock() + 60) is True


async def test_replay_cache_has_one_first_use_under_concurrency(backend):
    cache = ReplayCache(backend.store, clock=backend.clock)
    exp = backend.clock() + 300
    results = await asyncio.gather(*(cache.first_use("ns", "jti-race", exp) for _ in range(30)))
    assert results.count(True) == 1


async def test_revoked_jtis_are_remembered_until_the_token_expires(backend):
    revoked = RevokedJtis(backend.store, clock=backend.clock, leeway=0)
    assert await revoked.is_revoked("jti-9") is False
    await revoked.revoke("jti-9", backend.clock() + 1.0)
    await revoked.revoke("jti-9", backend.clock() + 1.0)
    assert await revoked.is_revoked("jti-9") is True
    assert await revoked.is_revoked("jti-10") is False
    await backend.advance(1.3)
    assert await revoked.is_revoked("jti-9") is False


async def test_an_already_expired_token_is_still_remembered_briefly(backend):
    revoked = RevokedJtis(backend.store, clock=backend.clock, leeway=0)
    await revoked.revoke("jti-old", backend.clock() - 100)
    assert await revoked.is_revoked("jti-old") is True
