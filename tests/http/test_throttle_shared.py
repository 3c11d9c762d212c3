"""With a Redis store the failure throttle is shared by every replica (issue 14, finding 3).

Two replicas are two `create_app(settings)` instances on one Redis (127.0.0.1:6379, a key
prefix of this test's own, deleted afterwards). Failures counted by either replica add up; a
lock set by one is honoured by the other, so N replicas do not multiply the guessing rate.
"""

from __future__ import annotations

import uuid

import pytest
import redis

from service.app import create_app
from tests.http.token_support import BASE_TOML, basic, exchange_form, make_settings, partner_token

pytestmark = pytest.mark.redis
LIMIT = 4


@pytest.fixture(name="prefix")
def _prefix():
    prefix = f"tokenbroker-throttle:{uuid.uuid4().hex}:"
    yield prefix
    client = redis.Redis.from_url("redis://127.0.0.1:6379/12")
    names = list(client.scan_iter(match=prefix + "*", count=500))
    if names:
        client.delete(*names)
    client.close()


@pytest.fixture(name="replicas")
async def _replicas(aiohttp_client, tmp_path, prefix):
    toml = BASE_TOML.replace('url = "memory://"', f'url = "redis://127.0.0.1:6379/12?prefix={prefix}"')
    settings = make_settings(tmp_path, f"[throttle]\nmax_failures = {LIMIT}\nlockout = 120\n", base=toml)
    return [await aiohttp_client(create_app(settings)) for _ in range(2)]


async def status_of(replica, secret: str) -> int:
    resp = await replica.post("/oauth2/token", data=exchange_form(partner_token()), headers=basic("portal", secret))
    await resp.read()
    return resp.status


async def test_failures_on_two_replicas_add_up_to_one_lock_honoured_by_both(replicas, prefix):
    a, b = replicas
    for n in range(LIMIT):                             # 2 + 2 failures, alternating replicas
        assert await status_of(replicas[n % 2], "wrong") == 401
    for replica in (a, b):                             # both now refuse, even the right secret
        resp = await replica.post("/oauth2/token", data=exchange_form(partner_token()), headers=basic("portal"))
        assert resp.status == 429 and (await resp.json())["error"] == "too_many_attempts"
        assert 1 <= int(resp.headers["Retry-After"]) <= 120
    keys = redis.Redis.from_url("redis://127.0.0.1:6379/12")
    try:
        locks = [k for k in keys.scan_iter(match=prefix + "throttle:l:*") if 0 < keys.pttl(k) <= 120_000]
    finally:
        keys.close()
    assert len(locks) == 2                             # the client id and the address, with expiry


async def test_below_the_limit_across_replicas_nothing_is_locked(replicas):
    for n in range(LIMIT - 1):
        assert await status_of(replicas[n % 2], "wrong") == 401
    assert await status_of(replicas[1], "wrong") == 401   # the 4th failure is answered, then locks
    assert await status_of(replicas[0], "wrong") == 429
