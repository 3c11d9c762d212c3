"""Refresh-token families on real Redis: concurrent double refreshes and another client's token."""

from __future__ import annotations

import asyncio
import secrets
import time

import pytest

from service.errors import InvalidGrant
from service.grants.refresh_families import RefreshTokens
from service.storage import open_store


@pytest.fixture(name="redis_store")
async def _redis_store():
    prefix = f"secreview-{secrets.token_hex(4)}:"
    store = open_store(f"redis://127.0.0.1:6379/13?prefix={prefix}")
    yield store
    for key, _ in await store.scan(""):
        await store.delete(key)
    await store.close()


async def test_on_redis_every_concurrent_double_refresh_ends_with_one_winner_and_a_dead_family(redis_store):
    repo = RefreshTokens(redis_store)
    for _ in range(25):
        token = await repo.create_family("portal", {"sub": "s", "aud": ["a"], "scope": []},
                                         exp=int(time.time()) + 600, now=time.time())
        results = await asyncio.gather(*(repo.rotate(token, client_id="portal", now=time.time())
                                         for _ in range(2)), return_exceptions=True)
        winners = [r for r in results if not isinstance(r, BaseException)]
        losers = [r for r in results if isinstance(r, BaseException)]
        assert len(winners) == 1 and len(losers) == 1
        assert isinstance(losers[0], InvalidGrant) and losers[0].reason == "refresh_token_reused"
        assert await repo.lookup(winners[0][1], now=time.time()) is None      # the successor is dead


async def test_a_refresh_token_of_another_client_neither_rotates_nor_revokes_the_family(redis_store):
    repo = RefreshTokens(redis_store)
    token = await repo.create_family("portal", {"sub": "s", "aud": ["a"], "scope": []},
                                     exp=int(time.time()) + 600, now=time.time())
    for _ in range(3):
        with pytest.raises(InvalidGrant):
            await repo.rotate(token, client_id="mallory", now=time.time())
        assert not await repo.revoke(token, client_id="mallory", now=time.time())
    assert await repo.lookup(token, now=time.time()) is not None
    await repo.rotate(token, client_id="portal", now=time.time())
