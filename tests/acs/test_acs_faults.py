"""ACS failures become 502/503/504 (never 500), within `acs.timeout`, with Retry-After when known."""

from __future__ import annotations

import base64

import pytest
from structlog.testing import capture_logs

from service.app import create_app

WRONG_KEY = base64.b64encode(b"not the emulator's key, but valid base64!").decode()


async def _teams(broker, tokens):
    resp = await broker.get("/api/token/teams", headers=tokens.headers(teams=tokens.teams()))
    return resp, await resp.json()


async def test_acs_unavailable_becomes_503_after_bounded_retries(broker, tokens, acs):
    acs.inject_fault("get_token_for_teams_user", status=503, code="ServiceUnavailable", count=10)
    resp, body = await _teams(broker, tokens)
    assert (resp.status, body["error"]) == (503, "temporarily_unavailable")
    assert 1 < len(acs.requests(operation="get_token_for_teams_user")) <= 3


async def test_a_transient_503_is_retried_and_the_exchange_succeeds(broker, tokens, acs):
    acs.inject_fault("get_token_for_teams_user", status=503, code="ServiceUnavailable", count=1)
    resp, body = await _teams(broker, tokens)
    assert resp.status == 201, body
    assert [c["status"] for c in acs.requests(operation="get_token_for_teams_user")] == [503, 200]


async def test_acs_throttling_becomes_503_with_its_retry_after(broker, tokens, acs):
    acs.inject_fault("get_token_for_teams_user", status=429, code="TooManyRequests", retry_after=30, count=5)
    resp, body = await _teams(broker, tokens)
    assert (resp.status, body["error"]) == (503, "temporarily_unavailable")
    assert resp.headers["Retry-After"] == "30"
    # the wait asked for is longer than the deadline: answered at once, not retried
    assert len(acs.requests(operation="get_token_for_teams_user")) == 1


async def test_an_acs_internal_error_becomes_502(broker, tokens, acs):
    acs.inject_fault("get_token_for_teams_user", status=500, code="InternalError", count=10)
    resp, body = await _teams(broker, tokens)
    assert (resp.status, body["error"]) == (502, "bad_gateway")
    assert "InternalError" not in body["error_description"]


async def test_a_slow_acs_beyond_the_deadline_becomes_504(broker_for, tokens, acs):
    broker = await broker_for(timeout=1)
    acs.inject_fault("get_token_for_teams_user", delay=3, count=5)
    resp, body = await _teams(broker, tokens)
    assert (resp.status, body["error"]) == (504, "gateway_timeout")
    metrics = await (await broker.get("/metrics")).text()
    assert 'operation="get_token_for_teams_user",outcome="timeout",service="acs"} 1.0' in metrics


async def test_a_slow_create_user_becomes_504_and_is_not_retried(broker_for, tokens, acs):
    broker = await broker_for(timeout=1)
    acs.inject_fault("create_user", delay=3, count=5)
    resp = await broker.post("/api/user", headers=tokens.headers())
    assert (resp.status, (await resp.json())["error"]) == (504, "gateway_timeout")
    assert len(acs.requests(operation="create_user")) == 1


@pytest.mark.parametrize("route,method,operation", [
    ("/api/token/teams", "GET", "get_token_for_teams_user"),
    ("/api/user", "POST", "create_user"),
])
async def test_a_wrong_access_key_is_502_and_logged_for_the_operator(broker_for, tokens, acs, route, method,
                                                                    operation):
    broker = await broker_for(access_key=WRONG_KEY)
    with capture_logs() as logs:
        resp = await broker.request(method, route, headers=tokens.headers(teams=tokens.teams()))
        body = await resp.json()
    assert (resp.status, body["error"]) == (502, "bad_gateway")
    assert "WWW-Authenticate" not in resp.headers
    [refused] = [e for e in logs if e["event"] == "acs.credentials_refused"]
    assert refused["operation"] == operation and refused["status"] == 401 and refused["code"] == "Denied"
    assert WRONG_KEY not in str(logs)
    [call] = acs.requests(operation=operation)
    assert (call["status"], call["auth"]) == (401, None)


async def test_an_unreachable_acs_becomes_503(aiohttp_client, acs_settings, tokens, acs):
    settings = acs_settings(endpoint="https://127.0.0.1:9", timeout=2)
    broker = await aiohttp_client(create_app(settings))
    resp, body = await _teams(broker, tokens)
    assert (resp.status, body["error"]) == (503, "temporarily_unavailable")


async def test_a_teams_token_refused_by_acs_is_invalid_teams_token_not_a_gateway_error(broker, tokens, acs):
    acs.inject_fault("get_token_for_teams_user", status=403, code="Forbidden")
    resp, body = await _teams(broker, tokens)
    assert (resp.status, body["error"]) == (403, "invalid_teams_token")
    acs.inject_fault("get_token_for_teams_user", status=401, code="InvalidAccessToken")
    resp, body = await _teams(broker, tokens)
    assert (resp.status, body["error"]) == (400, "invalid_teams_token")
    assert "WWW-Authenticate" not in resp.headers


async def test_failures_are_not_cached(broker, tokens, acs):
    headers = tokens.headers(teams=tokens.teams())
    acs.inject_fault("get_token_for_teams_user", status=500, code="InternalError", count=3)
    assert (await broker.get("/api/token/teams", headers=headers)).status == 502
    assert (await broker.get("/api/token/teams", headers=headers)).status == 201
