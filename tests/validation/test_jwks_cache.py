"""The JWKS/discovery cache against the real emulator: single-flight, kid cooldown, outages."""

from __future__ import annotations

import asyncio
import time
import uuid

import aiohttp
import pytest

from service.errors import DownstreamError, TokenInvalid
from service.metrics import Metrics
from service.typedefs import METRICS
from service.validation import EntraValidator, JwksCache
from tests.validation.conftest import BROKER, SPA, entra_settings
from tests.validation.forge import sign

KEYS = "/discovery/v2.0/keys"
DISCOVERY_V2 = "/v2.0/.well-known/openid-configuration"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def count(metrics: Metrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(f"tokenbroker_{name}", labels) or 0.0


@pytest.fixture(name="clock")
def _clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(name="metrics")
def _metrics() -> Metrics:
    return Metrics()


@pytest.fixture(name="make_validator")
def _make_validator(entra, session: aiohttp.ClientSession, clock, metrics):
    def make(**cache_kw) -> EntraValidator:
        cache_kw.setdefault("timeout", 5)
        jwks = JwksCache(session, clock=clock, metrics=metrics, **cache_kw)
        return EntraValidator(entra_settings(entra), jwks, metrics=metrics)
    return make


def unknown_kid_token(kit) -> str:
    return sign({**kit.header, "kid": "rotated-" + uuid.uuid4().hex}, kit.claims)


async def me(client, token: str):
    resp = await client.get("/api/me", headers={"Authorization": f"Bearer {token}"})
    return resp.status, await resp.json()


async def test_a_burst_of_100_first_requests_makes_one_discovery_and_one_jwks_fetch(broker, entra):
    tokens = [entra.mint(resource=BROKER, client_id=SPA, scopes=["user_impersonation"]) for _ in range(10)]
    entra.control("DELETE", "requests")
    results = await asyncio.gather(*(me(broker, tokens[i % 10]) for i in range(100)))
    assert [status for status, _ in results] == [200] * 100
    assert len(entra.requests(path=KEYS)) == 1
    assert len(entra.requests(path=DISCOVERY_V2)) == 1
    assert count(broker.app[METRICS], "jwks_fetches_total", outcome="ok") == 1


async def test_unknown_kids_refetch_at_most_once_per_cooldown(make_validator, kit, entra, clock):
    validator = make_validator(cooldown=30)
    now = time.time()
    await validator.validate(kit.token, now=now)
    assert len(entra.requests(path=KEYS)) == 1

    for _ in range(20):  # within the cooldown of the first fetch: no refetch at all
        with pytest.raises(TokenInvalid) as info:
            await validator.validate(unknown_kid_token(kit), now=now)
        assert info.value.reason == "unknown_kid"
    assert len(entra.requests(path=KEYS)) == 1

    clock.now += 31  # cooldown over: a storm of unknown kids makes exactly one refetch
    outcomes = await asyncio.gather(*(validator.validate(unknown_kid_token(kit), now=now) for _ in range(50)),
                                    return_exceptions=True)
    assert all(isinstance(o, TokenInvalid) and o.reason == "unknown_kid" for o in outcomes)
    assert len(entra.requests(path=KEYS)) == 2
    with pytest.raises(TokenInvalid):
        await validator.validate(unknown_kid_token(kit), now=now)
    assert len(entra.requests(path=KEYS)) == 2


async def test_a_rotated_signing_key_is_picked_up_after_the_cooldown(make_validator, kit, entra, clock):
    validator = make_validator(cooldown=30)
    await validator.validate(kit.token, now=time.time())
    entra.rotate_key(activate=True)
    new = kit.mint()
    with pytest.raises(TokenInvalid):
        await validator.validate(new, now=time.time())
    clock.now += 31
    principal = await validator.validate(new, now=time.time())
    assert principal.oid == kit.claims["oid"]
    await validator.validate(kit.token, now=time.time())  # the old key still verifies


async def test_warm_keys_keep_serving_through_an_outage(make_validator, kit, entra, clock, metrics):
    validator = make_validator(cooldown=30, max_age=3600)
    await validator.validate(kit.token, now=time.time())
    fresh = [kit.mint() for _ in range(3)]
    entra.inject_fault(route="/discovery/", status=503, count=1000)
    entra.inject_fault(route="/.well-known/", status=503, count=1000)
    clock.now += 100_000  # keys and documents are stale; every refresh attempt fails

    assert (await validator.validate(fresh[0], now=time.time())).oid == kit.claims["oid"]
    with pytest.raises(TokenInvalid) as info:  # forces a refetch, which fails: still a 401 reason
        await validator.validate(unknown_kid_token(kit), now=time.time())
    assert info.value.reason == "unknown_kid"
    for token in fresh[1:]:
        assert (await validator.validate(token, now=time.time())).tid == kit.claims["tid"]
    assert count(metrics, "jwks_fetches_total", outcome="error") >= 1
    assert len(entra.requests(path=KEYS)) >= 2  # it did try


async def test_a_slow_jwks_counts_as_an_outage_and_warm_keys_still_serve(make_validator, kit, entra, clock,
                                                                           metrics):
    validator = make_validator(timeout=0.3, cooldown=30)
    await validator.validate(kit.token, now=time.time())
    entra.inject_fault(route=KEYS, delay=2, count=1)
    clock.now += 31
    with pytest.raises(TokenInvalid):
        await validator.validate(unknown_kid_token(kit), now=time.time())
    assert count(metrics, "jwks_fetches_total", outcome="error") == 1
    assert (await validator.validate(kit.mint(), now=time.time())).oid == kit.claims["oid"]


async def test_without_warm_keys_an_outage_is_a_503_not_a_401(make_validator, kit, entra, clock):
    validator = make_validator()
    entra.inject_fault(route=KEYS, status=503, count=1)
    with pytest.raises(DownstreamError) as info:
        await validator.validate(kit.token, now=time.time())
    assert info.value.status == 503 and info.value.retry_after == 1
    clock.now += 1                          # the backoff (1 s at most after one failure) is over
    assert (await validator.validate(kit.token, now=time.time())).oid == kit.claims["oid"]  # no negative cache


async def test_oversized_documents_and_key_sets_are_refused(session, entra, clock, metrics):
    cache = JwksCache(session, timeout=5, clock=clock, metrics=metrics, max_bytes=500)
    with pytest.raises(DownstreamError):
        await cache.get_document(f"{entra.url}/{entra.tenant_id}{DISCOVERY_V2}")
    clock.now += 1                          # past the backoff the failure started
    with pytest.raises(DownstreamError):
        await cache.get_keys(f"{entra.url}/{entra.tenant_id}{KEYS}")
    assert count(metrics, "jwks_fetches_total", outcome="error") == 1
    assert not cache.ready()
    roomy = JwksCache(session, timeout=5, clock=clock, metrics=metrics)
    assert await roomy.get_keys(f"{entra.url}/{entra.tenant_id}{KEYS}")
    assert roomy.ready()


async def test_the_broker_answers_503_json_while_entra_keys_were_never_reachable(broker, kit, entra):
    entra.inject_fault(route=KEYS, status=500, count=1)
    status, body = await me(broker, kit.token)
    assert status == 503 and body["error"] == "temporarily_unavailable"
    deadline = time.monotonic() + 30        # backing off for at most a second, then recovered
    while (status := (await me(broker, kit.token))[0]) == 503 and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    assert status == 200


async def test_the_broker_keeps_serving_with_warm_keys_when_entra_is_down(broker_for, session, kit, entra, clock):
    jwks = JwksCache(session, timeout=2, clock=clock)
    broker = await broker_for(app_overrides={"jwks": jwks})
    assert (await me(broker, kit.token))[0] == 200
    fresh = kit.mint()
    entra.inject_fault(route="/discovery/", status=503, count=1000)
    entra.inject_fault(route="/.well-known/", status=503, count=1000)
    clock.now += 100_000
    assert (await me(broker, unknown_kid_token(kit)))[0] == 401
    assert (await me(broker, fresh))[0] == 200


async def test_readiness_warms_discovery_and_keys(broker, entra):
    resp = await broker.get("/readyz")
    body = await resp.json()
    assert body["checks"]["jwks"] == "ok"
    assert len(entra.requests(path=KEYS)) == 1
