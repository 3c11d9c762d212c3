"""Brute-force throttling at /oauth2/token, /oauth2/introspect and /oauth2/revoke, over real sockets.

Requests from a second loopback address (127.0.0.2) give a second remote address, so the
per-client and per-address keys can be told apart.
"""

from __future__ import annotations

import aiohttp
import pytest
from structlog.testing import capture_logs

from service.app import create_app
from tests.http.token_support import basic, exchange_form, make_settings, partner_token, post_token

LIMIT = 20


THROTTLE_ON = "[throttle]\nmax_failures = 20\n"


@pytest.fixture(name="client")
async def _client(aiohttp_client, tmp_path, clock):
    return await aiohttp_client(create_app(make_settings(tmp_path, THROTTLE_ON), clock=clock))


@pytest.fixture(name="other_address")
async def _other_address(client):
    """POST from 127.0.0.2 to the same test server (a different `request.remote`)."""
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(local_addr=("127.0.0.2", 0))) as session:
        async def post(path: str, **kw) -> tuple[int, dict, dict]:
            async with session.post(client.make_url(path), **kw) as resp:
                return resp.status, dict(resp.headers), await resp.json()
        yield post


async def answer(resp) -> tuple[int, str]:
    body = await resp.json()
    return resp.status, body.get("error", "")


async def bad_secrets(client, n: int, *, client_id: str = "portal", path: str = "/oauth2/token") -> None:
    for _ in range(n):
        data = {"token": "x"} if path != "/oauth2/token" else exchange_form(partner_token())
        resp = await client.post(path, data=data, headers=basic(client_id, "wrong"))
        assert await answer(resp) == (401, "invalid_client")


async def assert_throttled(resp, retry_after: int) -> None:
    body = await resp.json()
    assert resp.status == 429, body
    assert body["error"] == "too_many_attempts" and body["error_description"]
    assert resp.headers["Retry-After"] == str(retry_after)
    assert resp.headers["Cache-Control"] == "no-store"


async def test_twenty_bad_secrets_lock_the_client_even_with_the_right_secret(client):
    await bad_secrets(client, LIMIT)
    await assert_throttled(await post_token(client, exchange_form(partner_token())), 60)


async def test_the_lock_expires_after_lockout(client, clock):
    await bad_secrets(client, LIMIT)
    clock.now += 59.5
    await assert_throttled(await post_token(client, exchange_form(partner_token())), 1)
    clock.now += 0.5
    resp = await post_token(client, exchange_form(partner_token()))
    assert resp.status == 200, await resp.json()


async def test_nineteen_failures_do_not_lock_and_old_ones_slide_out_of_the_window(client, clock):
    await bad_secrets(client, LIMIT - 1)
    clock.now += 61
    await bad_secrets(client, LIMIT - 1)
    resp = await post_token(client, exchange_form(partner_token()))
    assert resp.status == 200, await resp.json()


async def test_other_clients_are_unaffected_unless_their_address_is_locked_too(client, other_address):
    for _ in range(LIMIT):
        status, _, body = await other_address("/oauth2/token", data=exchange_form(partner_token()),
                                              headers=basic("portal", "wrong"))
        assert (status, body["error"]) == (401, "invalid_client")
    # portal is locked from every address; 127.0.0.2 is locked for every client
    await assert_throttled(await post_token(client, exchange_form(partner_token())), 60)
    status, headers, body = await other_address("/oauth2/introspect", data={"token": "x"},
                                                headers=basic("dashboard"))
    assert (status, body["error"], headers["Retry-After"]) == (429, "too_many_attempts", "60")
    # dashboard from 127.0.0.1 is neither
    resp = await client.post("/oauth2/introspect", data={"token": "x"}, headers=basic("dashboard"))
    assert resp.status == 200 and await resp.json() == {"active": False}


async def test_bad_secrets_at_introspect_and_revoke_count_and_lock_all_three_endpoints(client):
    await bad_secrets(client, LIMIT // 2, client_id="inspector", path="/oauth2/introspect")
    await bad_secrets(client, LIMIT // 2, client_id="inspector", path="/oauth2/revoke")
    for path in ("/oauth2/introspect", "/oauth2/revoke"):
        await assert_throttled(await client.post(path, data={"token": "x"}, headers=basic("inspector")), 60)
    await assert_throttled(await post_token(client, exchange_form(partner_token()), auth="inspector"), 60)


async def test_refused_subject_tokens_count(client):
    for _ in range(LIMIT):
        resp = await post_token(client, exchange_form(partner_token(secret="forged-" + "k" * 40)))
        assert await answer(resp) == (400, "invalid_request")
    await assert_throttled(await post_token(client, exchange_form(partner_token())), 60)


async def test_unknown_refresh_tokens_count(client):
    for _ in range(LIMIT):
        resp = await post_token(client, [("grant_type", "refresh_token"), ("refresh_token", "guess")])
        assert await answer(resp) == (400, "invalid_grant")
    await assert_throttled(await post_token(client, exchange_form(partner_token())), 60)


async def test_policy_answers_do_not_count(client):
    for _ in range(LIMIT):
        assert await answer(await post_token(client, exchange_form(partner_token(), scope="admin"))) \
            == (400, "invalid_scope")
        assert await answer(await post_token(client, exchange_form(partner_token(), audience="archive"))) \
            == (400, "invalid_target")
        assert await answer(await post_token(client, [("grant_type", "password")])) \
            == (400, "unsupported_grant_type")
    resp = await post_token(client, exchange_form(partner_token()))
    assert resp.status == 200, await resp.json()


async def test_throttling_is_off_by_default(aiohttp_client, tmp_path):
    client = await aiohttp_client(create_app(make_settings(tmp_path)))
    await bad_secrets(client, 25)
    assert await answer(await post_token(client, exchange_form(partner_token()))) != (429, "too_many_attempts")


async def test_max_failures_zero_disables(aiohttp_client, tmp_path):
    client = await aiohttp_client(create_app(make_settings(tmp_path, "[throttle]\nmax_failures = 0\n")))
    await bad_secrets(client, LIMIT * 2)
    resp = await post_token(client, exchange_form(partner_token()))
    assert resp.status == 200, await resp.json()


async def test_a_smaller_configured_limit_applies(aiohttp_client, tmp_path):
    settings = make_settings(tmp_path, "[throttle]\nmax_failures = 2\nlockout = 300\n")
    client = await aiohttp_client(create_app(settings))
    await bad_secrets(client, 2)
    await assert_throttled(await post_token(client, exchange_form(partner_token())), 300)


async def test_the_lock_is_logged_hashed_and_the_refusals_are_counted(client):
    with capture_logs() as logs:
        await bad_secrets(client, LIMIT)
        for _ in range(3):
            assert (await post_token(client, exchange_form(partner_token()))).status == 429
    locked = [e for e in logs if e["event"] == "throttle.locked"]
    assert {e["key_kind"] for e in locked} == {"client", "ip"} and len(locked) == 2
    assert all(e["endpoint"] == "token" and len(e["key_hash"]) == 12 for e in locked)
    assert "portal" not in repr(locked) and "127.0.0.1" not in repr(locked) and "wrong" not in repr(locked)
    denied = [e for e in logs if e.get("audit") and e.get("reason") == "throttled"]
    assert len(denied) == 3, "each 429 is audited as a denial"
    text = await (await client.get("/metrics")).text()
    assert 'tokenbroker_throttled_total{endpoint="token",key_kind="client"} 3.0' in text


async def test_the_openapi_document_lists_429(client):
    paths = (await (await client.get("/openapi.json")).json())["paths"]
    for path in ("/oauth2/token", "/oauth2/introspect", "/oauth2/revoke"):
        assert "429" in paths[path]["post"]["responses"], path
