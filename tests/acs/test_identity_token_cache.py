"""`GET /api/token` answers a cached ACS identity token: one ACS call per identity and lifetime,
never served past its half-life or within 15 minutes of `expiresOn`, dropped by `DELETE /api/user`."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

import redis
from structlog.testing import capture_logs

from emulators.entra import demo
from service.app import create_app
from service.downstream.acs_identity_tokens import MIN_MARGIN, cache_key
from service.typedefs import ACS_IDENTITIES, METRICS
from tests.acs.conftest import claims
from tests.support.replicas import REDIS, redis_prefix


def sample(broker, event: str, cache: str = "acs_identity") -> float:
    return broker.server.app[METRICS].registry.get_sample_value(
        "tokenbroker_cache_events_total", {"cache": cache, "event": event}) or 0.0


def get_token_calls(acs) -> int:
    return len(acs.requests(operation="get_token"))


def expires(body: dict) -> float:
    return datetime.fromisoformat(body["expiresOn"].replace("Z", "+00:00")).timestamp()


async def token_at(broker, headers: dict) -> dict:
    resp = await broker.get("/api/token", headers=headers)
    body = await resp.json()
    assert resp.status == 201, body
    return body


async def test_repeated_requests_answer_the_same_token_with_its_true_expiry_and_one_acs_call(
        broker, tokens, acs):
    headers = tokens.headers()
    identity = (await (await broker.post("/api/user", headers=headers)).json())["acsUserIdentity"]
    first = await token_at(broker, headers)
    second = await token_at(broker, headers)
    assert second == first and first["user"]["communicationUserId"] == identity
    assert get_token_calls(acs) == 1
    assert abs(expires(first) - claims(first["token"])["exp"]) <= 1       # ACS's own expiry
    assert acs.check_token(second["token"])["valid"]
    assert (sample(broker, "miss"), sample(broker, "hit")) == (1, 1)


async def test_the_audit_says_which_answers_came_from_the_cache(broker, tokens, acs):
    headers = tokens.headers()
    await broker.post("/api/user", headers=headers)
    with capture_logs() as logs:
        await token_at(broker, {**headers, "X-Request-Id": "first"})
        await token_at(broker, headers)
    first, second = [e for e in logs if e["event"] == "acs.identity_token"]
    [call] = acs.requests(operation="get_token")
    assert (first["cached"], first["acs_correlation_id"]) == (False, call["ms_cv"])
    assert call["client_request_id"] == "first"
    assert (second["cached"], second["acs_correlation_id"], second["decision"]) == (True, None, "allow")


async def test_twenty_concurrent_first_requests_make_one_acs_call(broker, tokens, acs):
    headers = tokens.headers()
    await broker.post("/api/user", headers=headers)
    acs.inject_fault("get_token", delay=0.3)                              # all 20 arrive meanwhile
    bodies = await asyncio.gather(*(token_at(broker, headers) for _ in range(20)))
    assert len({body["token"] for body in bodies}) == 1
    assert get_token_calls(acs) == 1
    assert sample(broker, "miss") == 1 and sample(broker, "coalesced") + sample(broker, "hit") == 19


async def test_users_scopes_and_lifetimes_are_cached_apart(broker_for, tokens, acs):
    broker = await broker_for(identity_scopes=["voip"], identity_token_ttl=7200)
    alice, bob = tokens.headers(), tokens.headers(bearer=tokens.bearer(user=demo.BOB_UPN))
    for headers in (alice, bob):
        await broker.post("/api/user", headers=headers)
    a, b = await token_at(broker, alice), await token_at(broker, bob)
    assert a["token"] != b["token"] and a["user"] != b["user"] and get_token_calls(acs) == 2
    assert claims(a["token"])["acsScope"] == "voip"
    identity = a["user"]["communicationUserId"]
    cache = broker.server.app[ACS_IDENTITIES].tokens.cache
    assert cache.get(cache_key(identity, ["voip"], 120)) is not None
    assert cache.get(cache_key(identity, ["chat", "voip"], 120)) is None
    assert cache.get(cache_key(identity, ["voip"], 60)) is None


async def test_delete_user_drops_the_cached_token_and_it_is_never_served_again(broker, tokens, acs):
    headers = tokens.headers()
    old = (await (await broker.post("/api/user", headers=headers)).json())["acsUserIdentity"]
    revoked = await token_at(broker, headers)
    assert (await broker.delete("/api/user", headers=headers)).status == 204
    cache = broker.server.app[ACS_IDENTITIES].tokens.cache
    assert cache.get(cache_key(old, ["chat", "voip"], 60)) is None and len(cache) == 0
    assert sample(broker, "invalidated") == 1
    gone = await broker.get("/api/token", headers=headers)
    assert gone.status == 404 and (await gone.json())["error"] == "not_found"
    new = (await (await broker.post("/api/user", headers=headers)).json())["acsUserIdentity"]
    fresh = await token_at(broker, headers)
    assert new != old and fresh["token"] != revoked["token"]
    assert fresh["user"]["communicationUserId"] == new and get_token_calls(acs) == 2
    assert acs.check_token(fresh["token"])["skypeid"] == new.removeprefix("8:")


async def test_a_token_is_served_until_its_half_life_then_a_new_one_is_issued(
        aiohttp_client, acs_settings, tokens, acs):
    now = [time.time()]
    broker = await aiohttp_client(create_app(acs_settings(), overrides={"dev": True}, clock=lambda: now[0]))
    headers = tokens.headers(bearer=tokens.bearer(lifetime=3 * 3600))
    await broker.post("/api/user", headers=headers)
    fetched = now[0]
    first = await token_at(broker, headers)
    half_life = fetched + (expires(first) - fetched) / 2                 # 60-minute tokens: +30 min
    assert half_life < expires(first) - MIN_MARGIN
    now[0] = half_life - 2
    assert await token_at(broker, headers) == first and get_token_calls(acs) == 1
    now[0] = half_life + 2
    second = await token_at(broker, headers)
    assert second["token"] != first["token"] and get_token_calls(acs) == 2
    assert await token_at(broker, headers) == second and get_token_calls(acs) == 2


async def test_a_token_within_the_margin_of_its_expiry_is_never_cached(aiohttp_client, acs_settings,
                                                                      tokens, acs):
    # The broker's clock is 50 minutes ahead of ACS's: every 60-minute token it receives has 10
    # minutes left, less than MIN_MARGIN, so it is handed out once and never served again.
    now = [time.time() + 50 * 60]
    broker = await aiohttp_client(create_app(acs_settings(), overrides={"dev": True}, clock=lambda: now[0]))
    headers = tokens.headers(bearer=tokens.bearer(lifetime=3 * 3600))
    await broker.post("/api/user", headers=headers)
    first, second = await token_at(broker, headers), await token_at(broker, headers)
    assert first["token"] != second["token"] and get_token_calls(acs) == 2
    assert len(broker.server.app[ACS_IDENTITIES].tokens.cache) == 0


async def test_with_redis_a_token_is_shared_sealed_and_deleted_with_the_identity(aiohttp_client, acs_settings,
                                                                                tokens, acs):
    with redis_prefix("tokenbroker-identity-cache") as prefix:
        settings = acs_settings(store_url=f"{REDIS}?prefix={prefix}")
        one = await aiohttp_client(create_app(settings))
        two = await aiohttp_client(create_app(settings))
        headers = tokens.headers()
        await one.post("/api/user", headers=headers)
        first = await token_at(one, headers)
        assert await token_at(two, headers) == first and get_token_calls(acs) == 1
        assert sample(two, "hit", cache="acs_identity_shared") == 1
        client = redis.Redis.from_url(REDIS)
        try:
            [entry] = client.keys(prefix + "xc:acs_identity:*")
            assert first["token"].encode() not in client.get(entry)
            assert (await two.delete("/api/user", headers=headers)).status == 204
            assert client.keys(prefix + "xc:acs_identity:*") == []          # gone from Redis
        finally:
            client.close()
        for replica in (one, two):                   # one's in-process copy is never served again
            resp = await replica.get("/api/token", headers=headers)
            assert resp.status == 404 and (await resp.json())["error"] == "not_found"
        await two.post("/api/user", headers=headers)
        fresh = await token_at(one, headers)
        assert fresh["token"] != first["token"] and get_token_calls(acs) == 2
        assert datetime.fromtimestamp(expires(fresh), UTC) > datetime.now(UTC)
