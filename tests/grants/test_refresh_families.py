"""Refresh-token families on a real memory store: hashed storage, rotation, reuse, expiry."""

from __future__ import annotations

import pytest

from service.digest import sha256_hex
from service.errors import InvalidGrant
from service.grants.refresh_families import RefreshTokens
from service.storage import open_store


@pytest.fixture(name="store")
async def _store():
    store = open_store("memory://", dev=True)
    yield store
    await store.close()


async def test_only_the_hash_of_a_refresh_token_is_stored(store):
    repo = RefreshTokens(store)
    token = await repo.create_family("portal", {"sub": "s", "aud": ["a"], "scope": []}, exp=2_000_000_000, now=1)
    dump = repr(await store.scan(""))
    assert token not in dump and sha256_hex(token) in dump


async def test_rotation_then_reuse_revokes_the_family(store):
    repo = RefreshTokens(store)
    t1 = await repo.create_family("portal", {"sub": "s", "aud": ["a"], "scope": []}, exp=2_000_000_000, now=1)
    _, t2 = await repo.rotate(t1, client_id="portal", now=2)
    with pytest.raises(InvalidGrant) as caught:
        await repo.rotate(t1, client_id="portal", now=3)
    assert caught.value.reason == "refresh_token_reused"
    with pytest.raises(InvalidGrant):
        await repo.rotate(t2, client_id="portal", now=4)


async def test_a_family_past_its_absolute_expiry_is_dead(store):
    repo = RefreshTokens(store)
    t1 = await repo.create_family("portal", {"sub": "s", "aud": ["a"], "scope": []}, exp=100, now=1)
    assert await repo.lookup(t1, now=50) is not None
    assert await repo.lookup(t1, now=100) is None
    with pytest.raises(InvalidGrant):
        await repo.rotate(t1, client_id="portal", now=100)


async def test_revocation_is_only_for_the_owning_client(store):
    repo = RefreshTokens(store)
    t1 = await repo.create_family("portal", {"sub": "s", "aud": ["a"], "scope": []}, exp=2_000_000_000, now=1)
    assert not await repo.revoke(t1, client_id="other", now=2)
    assert await repo.lookup(t1, now=2) is not None
    assert await repo.revoke(t1, client_id="portal", now=2)
    assert await repo.lookup(t1, now=2) is None
