"""`/api/token/teams`: the happy path against both emulators, caching and single-flight."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
from structlog.testing import capture_logs

from service.downstream.acs import iso_utc, parse_expires_on, teams_cache_ttl
from tests.acs.conftest import SPA, claims


def _expires(body: dict) -> datetime:
    assert body["expiresOn"].endswith("Z")
    return datetime.fromisoformat(body["expiresOn"].replace("Z", "+00:00"))


@pytest.mark.parametrize("method", ["GET", "POST"])
async def test_a_teams_token_is_exchanged_for_an_acs_token(broker, tokens, acs, method):
    teams = tokens.teams()
    resp = await broker.request(method, "/api/token/teams", headers=tokens.headers(teams=teams))
    body = await resp.json()
    assert resp.status == 201, body
    assert resp.headers["Cache-Control"] == "no-store" and resp.headers["Pragma"] == "no-cache"
    exp = claims(teams)["exp"]
    assert _expires(body) <= datetime.fromtimestamp(exp, UTC)
    check = acs.check_token(body["token"])
    assert check["valid"] and check["skypeid"] == f"orgid:{claims(teams)['oid']}"
    [call] = acs.requests(operation="get_token_for_teams_user")
    assert (call["status"], call["app_id"], call["oid"]) == (200, SPA, claims(teams)["oid"])


async def test_the_request_id_reaches_acs_as_the_client_request_id(broker, tokens, acs):
    resp = await broker.get("/api/token/teams",
                            headers=tokens.headers(teams=tokens.teams(), **{"X-Request-Id": "req-acs-42"}))
    assert resp.status == 201
    assert resp.headers["X-Request-Id"] == "req-acs-42"
    [call] = acs.requests(operation="get_token_for_teams_user")
    assert call["client_request_id"] == "req-acs-42"


async def test_fifty_identical_concurrent_exchanges_make_one_acs_call(broker, tokens, acs):
    headers = tokens.headers(teams=tokens.teams())
    acs.inject_fault("get_token_for_teams_user", delay=0.3)  # keep the first call in flight
    responses = await asyncio.gather(*(broker.get("/api/token/teams", headers=headers) for _ in range(50)))
    bodies = [await r.json() for r in responses]
    assert [r.status for r in responses] == [201] * 50
    assert len({b["token"] for b in bodies}) == 1
    assert len(acs.requests(operation="get_token_for_teams_user")) == 1


async def test_a_repeated_exchange_is_answered_from_the_cache(broker, tokens, acs):
    headers = tokens.headers(teams=tokens.teams())
    first = await (await broker.get("/api/token/teams", headers=headers)).json()
    second = await (await broker.get("/api/token/teams", headers=headers)).json()
    assert first == second
    assert len(acs.requests(operation="get_token_for_teams_user")) == 1
    other = await broker.get("/api/token/teams", headers=tokens.headers(teams=tokens.teams()))
    assert other.status == 201
    assert len(acs.requests(operation="get_token_for_teams_user")) == 2


async def test_expires_on_is_never_later_than_a_short_lived_teams_token(broker, tokens, acs):
    teams = tokens.teams(lifetime=120)
    resp = await broker.get("/api/token/teams", headers=tokens.headers(teams=teams))
    body = await resp.json()
    assert resp.status == 201, body
    assert _expires(body) <= datetime.fromtimestamp(claims(teams)["exp"], UTC)


async def test_the_exchange_is_audited_and_counted_without_the_token(broker, tokens, acs):
    teams = tokens.teams()
    with capture_logs() as logs:
        resp = await broker.get("/api/token/teams", headers=tokens.headers(teams=teams,
                                                                           **{"X-Request-Id": "audit-1"}))
        body = await resp.json()
    assert resp.status == 201
    [event] = [e for e in logs if e["event"] == "acs.teams_exchange"]
    assert (event["decision"], event["reason"], event["client_app"]) == ("allow", "ok", SPA)
    assert event["tid"] == claims(teams)["tid"] and len(event["user"]) == 12
    [call] = acs.requests(operation="get_token_for_teams_user")
    assert call["client_request_id"] == "audit-1" and event["latency_ms"] >= 0
    assert event["acs_correlation_id"] == call["ms_cv"]             # ACS's MS-CV correlation vector
    assert teams not in str(logs) and body["token"] not in str(logs)
    metrics = await (await broker.get("/metrics")).text()
    assert ('tokenbroker_downstream_requests_total{operation="get_token_for_teams_user",outcome="ok",'
            'service="acs"} 1.0') in metrics


def test_acs_expiry_strings_parse_to_utc_and_render_with_seconds_and_z():
    parsed = parse_expires_on("2026-11-23T21:39:39.3244584+00:00")
    assert parsed == datetime(2026, 11, 23, 21, 39, 39, 324458, tzinfo=UTC)
    assert iso_utc(parsed) == "2026-11-23T21:39:39Z"
    assert parse_expires_on(1_700_000_000) == datetime.fromtimestamp(1_700_000_000, UTC)


def test_exchanged_tokens_are_cached_until_shortly_before_they_expire():
    now = 1_000_000.0
    assert teams_cache_ttl(datetime.fromtimestamp(now + 3600, UTC), now) == 3300   # 5 min margin
    assert teams_cache_ttl(datetime.fromtimestamp(now + 120, UTC), now) == 60      # half a short life
    assert teams_cache_ttl(datetime.fromtimestamp(now - 1, UTC), now) <= 0         # never cached


def test_an_unreadable_acs_expiry_is_a_502_not_a_crash():
    from service.downstream.acs import _expiry
    from service.errors import DownstreamError
    with pytest.raises(DownstreamError) as err:
        _expiry("next tuesday", "get_token")
    assert err.value.status == 502 and err.value.reason == "bad_answer"
