"""No fetch storm when Entra is down (issue 14, finding 5).

The whole broker, with its JWKS cache on a movable clock, against the Entra emulator whose
discovery and key routes fail (fault injection); fetch attempts are counted in the emulator's
request log. Bursts of concurrent requests over ten (clock) seconds make at most a handful of
fetches; every refusal is a 503 `temporarily_unavailable` with `Retry-After`; the first fetch
after the backoff that succeeds ends it.
"""

from __future__ import annotations

import asyncio

from service.validation import JwksCache
from tests.validation.test_jwks_cache import FakeClock

FETCH_ROUTES = ("/.well-known/openid-configuration", "/discovery/")


def fetches(entra) -> int:
    return sum(len(entra.requests(path=route)) for route in FETCH_ROUTES)


async def burst(broker, token: str, n: int) -> list[tuple[int, str | None, dict]]:
    async def one():
        resp = await broker.get("/api/me", headers={"Authorization": f"Bearer {token}"})
        return resp.status, resp.headers.get("Retry-After"), await resp.json()
    return await asyncio.gather(*(one() for _ in range(n)))


async def test_entra_down_at_start_costs_a_few_fetches_not_one_per_burst(broker_for, session, kit, entra):
    clock = FakeClock()
    broker = await broker_for(app_overrides={"jwks": JwksCache(session, timeout=2, clock=clock)})
    for route in FETCH_ROUTES:
        entra.inject_fault(route=route, status=500, count=100_000)
    answers = []
    for _step in range(100):                       # ten seconds of load, 0.1 s apart, 20 at a time
        answers += await burst(broker, kit.token, 20)
        clock.now += 0.1
    assert len(answers) == 2000
    assert all(status == 503 and body["error"] == "temporarily_unavailable" for status, _, body in answers)
    assert all(retry_after is not None and int(retry_after) >= 1 for _, retry_after, _ in answers)
    attempts = fetches(entra)
    assert 1 <= attempts <= 6, attempts            # on main: one per burst (100)


async def test_the_first_successful_fetch_after_the_backoff_ends_it(broker_for, session, kit, entra):
    clock = FakeClock()
    broker = await broker_for(app_overrides={"jwks": JwksCache(session, timeout=2, clock=clock)})
    entra.inject_fault(route="/.well-known/openid-configuration", status=500, count=3)
    for _ in range(3):                             # three failures: 1, 2, 4 s (times a jitter <= 1)
        [(status, retry_after, _)] = await burst(broker, kit.token, 1)
        assert status == 503
        during = await burst(broker, kit.token, 5)
        assert {s for s, _, _ in during} == {503}  # refused at once, without a fetch
        clock.now += int(retry_after)
    assert fetches(entra) == 3
    [(status, _, body)] = await burst(broker, kit.token, 1)
    assert status == 200, body
    assert {s for s, _, _ in await burst(broker, kit.token, 10)} == {200}
