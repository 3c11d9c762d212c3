"""Single-use partner tokens and refresh tokens: replays, malleable twins and concurrent races issue at most one token.

Part of the adversarial review of the token endpoint (tests/support/security_broker.py holds the broker).
"""

from __future__ import annotations

import asyncio
import base64
import secrets
import time

import pytest
import redis

from service.app import create_app
from service.storage.memory import MemoryStore
from tests.http.token_support import (
    BROKER_AUD,
    exchange_form,
    partner_token,
)
from tests.support.security_broker import (
    EC_PARTNER_ISS,
    EC_PARTNER_KEY,
    P256_ORDER,
    claims_of,
    delegated,
    ok,
    post,
    refresh_form,
    refused,
    security_settings,
)
from tests.validation.forge import b64, sign

# --- replay of single-use partner tokens --------------------------------------------------------

@pytest.fixture(name="store_url", params=["memory", "sqlite", "redis"])
async def _store_url(request, tmp_path):
    if request.param == "memory":
        yield "memory://"
    elif request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/state.db"
    else:
        prefix = f"secreview-{secrets.token_hex(4)}:"
        yield f"redis://127.0.0.1:6379/13?prefix={prefix}"
        r = redis.Redis(host="127.0.0.1", port=6379, db=13)
        keys = list(r.scan_iter(f"{prefix}*"))
        if keys:
            r.delete(*keys)
        r.close()


async def test_fifty_concurrent_exchanges_of_one_single_use_token_issue_exactly_one(aiohttp_client, tmp_path,
                                                                                    store_url):
    # 49 replays are 49 failures: the brute-force throttle (tests/http/test_throttle.py) is off here
    settings = security_settings(tmp_path, "[throttle]\nmax_failures = 0\n", store=store_url)
    client = await aiohttp_client(create_app(settings))
    token = partner_token()
    responses = await asyncio.gather(*(post(client, "/oauth2/token", exchange_form(token)) for _ in range(50)))
    bodies = [(r.status, await r.json()) for r in responses]
    assert sorted(s for s, _ in bodies) == [200] + [400] * 49
    assert {b["error"] for s, b in bodies if s == 400} == {"invalid_request"}


async def test_a_replayed_single_use_token_stays_refused_for_another_client(client):
    token = partner_token()
    await ok(await post(client, "/oauth2/token", exchange_form(token)))
    await refused(await post(client, "/oauth2/token", exchange_form(token), auth="mallory"), 400, "invalid_request")


def high_s_twin(token: str) -> str:
    """The same ES256 token with its signature (r, s) rewritten as (r, n - s): also valid."""
    h, p, sig = token.split(".")
    raw = base64.urlsafe_b64decode(sig + "=" * (-len(sig) % 4))
    r, s = raw[:32], int.from_bytes(raw[32:], "big")
    return f"{h}.{p}.{b64(r + (P256_ORDER - s).to_bytes(32, 'big'))}"


@pytest.mark.parametrize("twin_first", [False, True])
async def test_the_malleable_twin_of_a_single_use_es256_token_is_a_replay(client, twin_first):
    """ECDSA signatures are malleable, so a second valid encoding of one token exists: replay
    protection keys on the `jti`, never on the token string or its hash."""
    now = int(time.time())
    token = sign({"alg": "ES256", "typ": "JWT"}, {"iss": EC_PARTNER_ISS, "sub": "ec-user", "aud": BROKER_AUD,
                                                 "iat": now, "exp": now + 300, "jti": f"ec-{twin_first}"},
                 alg="ES256", key=EC_PARTNER_KEY)
    twin = high_s_twin(token)
    assert twin != token
    first, second = (twin, token) if twin_first else (token, twin)
    await ok(await post(client, "/oauth2/token", exchange_form(first)))
    await refused(await post(client, "/oauth2/token", exchange_form(second)), 400, "invalid_request")


async def test_a_replayed_actor_token_does_not_use_up_the_single_use_subject_token(client):
    actor = partner_token(sub="agent-1")
    await ok(await post(client, "/oauth2/token", exchange_form(actor)))                 # the actor's jti is used
    subject = partner_token(sub="user-1")
    await refused(await post(client, "/oauth2/token", delegated(subject, actor)), 400, "invalid_request")
    body = await ok(await post(client, "/oauth2/token", delegated(subject, partner_token(sub="agent-1"))))
    assert claims_of(body["access_token"])["act"]["sub"]
    await refused(await post(client, "/oauth2/token", delegated(subject, partner_token(sub="agent-1"))),
                  400, "invalid_request")                                              # now it is used up


# --- refresh-token reuse race -------------------------------------------------------------------

class LockstepRefreshStore(MemoryStore):
    """The real memory store, scheduled the way two replicas on Redis interleave when one refresh
    token arrives twice at once: both requests have read the live token before either consumes
    it, and the one that consumes it records it as used only after the other tried as well."""

    def __init__(self) -> None:
        super().__init__()
        self._arrived = self._took = 0
        self._all_arrived, self._all_took = asyncio.Event(), asyncio.Event()

    async def take(self, key: str):
        if not key.startswith("refresh:"):
            return await super().take(key)
        self._arrived += 1
        if self._arrived == 2:
            self._all_arrived.set()
        await asyncio.wait_for(self._all_arrived.wait(), 10)
        found = await super().take(key)
        self._took += 1
        if self._took == 2:
            self._all_took.set()
        return found

    async def put(self, key: str, value: dict, *, ttl: float | None = None) -> None:
        if key.startswith("refresh_used:"):
            await asyncio.wait_for(self._all_took.wait(), 10)
        await super().put(key, value, ttl=ttl)


async def test_two_concurrent_refreshes_with_one_token_issue_at_most_one_and_revoke_the_family(
        aiohttp_client, tmp_path):
    client = await aiohttp_client(create_app(security_settings(tmp_path), overrides={"store": LockstepRefreshStore()}))
    body = await ok(await post(client, "/oauth2/token", exchange_form(partner_token())))
    first, second = await asyncio.gather(*(post(client, "/oauth2/token", refresh_form(body["refresh_token"]))
                                           for _ in range(2)))
    answers = sorted([(first.status, await first.json()), (second.status, await second.json())],
                     key=lambda a: a[0])
    assert [s for s, _ in answers] == [200, 400] and answers[1][1]["error"] == "invalid_grant"
    # the race is a reuse: the winner's successor is dead too (RFC 9700 §4.14.2)
    successor = answers[0][1]["refresh_token"]
    await refused(await post(client, "/oauth2/token", refresh_form(successor)), 400, "invalid_grant")
