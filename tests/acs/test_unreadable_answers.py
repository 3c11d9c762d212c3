"""Review of the ACS half as the engineer on call: what an odd ACS, a leaving client or a stopping
app must never do (a 500, a poisoned cache, a leaked session)."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest
from aiohttp import web
from structlog.testing import capture_logs

from emulators.entra import demo
from service.app import create_app
from service.errors import BrokerError
from service.settings import load_settings
from service.typedefs import ACS_CLIENT
from tests.support.leaks import no_leaks

from .conftest import claims, settings_toml

# An "ACS" that answers 2xx with bodies the SDK cannot read: a proxy's HTML page, a JSON
# array, a JSON object without the fields. Real sockets, a real aiohttp server.
GARBAGE = [("[1]", "application/json"), ("<html>gateway</html>", "text/html"),
           ('"text"', "application/json")]


async def _odd_acs(aiohttp_server, body: str, content_type: str, *, identity_ok: bool = False):
    async def handler(request: web.Request) -> web.Response:
        await request.read()
        if request.method == "POST" and request.path == "/identities":
            if identity_ok:
                return web.json_response({"identity": {"id": "8:acs:odd_1"}}, status=201)
            return web.Response(status=201, text=body, content_type=content_type)
        return web.Response(status=200, text=body, content_type=content_type)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    server = await aiohttp_server(app)
    return f"http://127.0.0.1:{server.port}"


@pytest.mark.parametrize(("body", "content_type"), GARBAGE)
async def test_an_unreadable_acs_answer_is_a_502_never_a_500(aiohttp_server, broker_for, tokens, body,
                                                             content_type):
    # Failure mode: the SDK raises DeserializationError (a ValueError, not an AzureError) or
    # AttributeError for such bodies; they escaped AcsClient._call and became 500s.
    endpoint = await _odd_acs(aiohttp_server, body, content_type)
    broker = await broker_for(endpoint=endpoint, timeout=2)
    resp = await broker.get("/api/token/teams", headers=tokens.headers(teams=tokens.teams()))
    assert (resp.status, (await resp.json())["error"]) == (502, "bad_gateway")
    resp = await broker.post("/api/user", headers=tokens.headers())
    assert (resp.status, (await resp.json())["error"]) == (502, "bad_gateway")


@pytest.mark.parametrize(("body", "content_type"), GARBAGE + [("{}", "application/json"),
                                                               ('{"token": null, "expiresOn": "2030-01-01T00:00:00Z"}',
                                                                "application/json")])
async def test_an_unreadable_acs_token_answer_is_a_502(aiohttp_server, broker_for, tokens, body, content_type):
    # `{}` and a null token deserialize "fine" (token None): `{"token": null}` must not reach the caller.
    endpoint = await _odd_acs(aiohttp_server, body, content_type, identity_ok=True)
    broker = await broker_for(endpoint=endpoint, timeout=2)
    created = await broker.post("/api/user", headers=tokens.headers())
    assert created.status == 201, await created.text()
    resp = await broker.get("/api/token", headers=tokens.headers())
    assert (resp.status, (await resp.json())["error"]) == (502, "bad_gateway")
    resp = await broker.get("/api/token/teams", headers=tokens.headers(teams=tokens.teams()))
    assert (resp.status, (await resp.json())["error"]) == (502, "bad_gateway")


async def test_a_cancelled_cache_leader_does_not_fail_or_poison_the_shared_exchange(broker, tokens, acs):
    # The first caller of a Teams exchange runs the ACS call for everyone; when it goes away
    # (client disconnect, its own deadline), the 49 others still get the token and the
    # answer is cached for the next caller.
    client = broker.server.app[ACS_CLIENT]
    teams = tokens.teams()
    exp = claims(teams)["exp"]
    acs.inject_fault("get_token_for_teams_user", delay=0.5)
    call = lambda: client.exchange_teams_token_cached(teams, demo.CLIENT_ID, demo.ALICE_OID,  # noqa: E731
                                                      not_after=exp)
    leader = asyncio.create_task(call())
    await asyncio.sleep(0.05)
    followers = [asyncio.create_task(call()) for _ in range(49)]
    await asyncio.sleep(0.05)
    leader.cancel()
    results = await asyncio.gather(*followers)
    assert len({token for token, _ in results}) == 1
    with pytest.raises(asyncio.CancelledError):
        await leader
    token, _ = await call()
    assert token == results[0][0]
    assert len(acs.requests(operation="get_token_for_teams_user")) == 1


async def test_a_lone_cancelled_leader_still_completes_the_exchange_for_the_next_caller(broker, tokens, acs):
    client = broker.server.app[ACS_CLIENT]
    teams = tokens.teams()
    acs.inject_fault("get_token_for_teams_user", delay=0.3)
    leader = asyncio.create_task(client.exchange_teams_token_cached(teams, demo.CLIENT_ID, demo.ALICE_OID))
    await asyncio.sleep(0.05)
    leader.cancel()
    with pytest.raises(asyncio.CancelledError):
        await leader
    token, _ = await client.exchange_teams_token_cached(teams, demo.CLIENT_ID, demo.ALICE_OID)
    assert token.count(".") == 2
    assert len(acs.requests(operation="get_token_for_teams_user")) == 1


async def test_starting_and_stopping_the_app_leaks_no_session_or_connection(entra, acs, tokens, tmp_path):
    # ACS through the broker's Entra credential (azure-identity aio) and OBO: every client
    # rides on the app's one session and is closed at cleanup. ResourceWarning is ignored by
    # pyproject, so no_leaks() looks for it (and aiohttp's loop-level report) explicitly.
    toml = settings_toml(entra, acs, access_key=None,
                         entra_extra={"client_secret": demo.BROKER_SECRET})
    toml += f'\n[obo.workspace]\nscopes = ["{demo.WORKSPACE_SCOPE}"]\n'
    settings = load_settings(toml, {}, base_dir=tmp_path)
    async with no_leaks():
        runner = web.AppRunner(create_app(settings, overrides={"dev": True}))
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]
        async with aiohttp.ClientSession() as http:
            url = f"http://127.0.0.1:{port}"
            async with http.get(f"{url}/api/token/teams", headers=tokens.headers(teams=tokens.teams())) as r:
                assert r.status == 201, await r.text()
            async with http.post(f"{url}/api/token/obo/workspace", headers=tokens.headers()) as r:
                assert r.status == 200, await r.text()
        await runner.cleanup()


async def test_errors_of_the_client_are_the_brokers_own(aiohttp_server, acs_settings, tokens):
    # Calling AcsClient directly (as the token endpoint's acs:teams target does): only BrokerErrors.
    endpoint = await _odd_acs(aiohttp_server, "[1]", "application/json")
    app = create_app(acs_settings(endpoint=endpoint, timeout=2), overrides={"dev": True})
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        with pytest.raises(BrokerError):
            await app[ACS_CLIENT].create_user()
        with pytest.raises(BrokerError):
            await app[ACS_CLIENT].issue_token("8:acs:x", ["chat"], 60)
    finally:
        await runner.cleanup()


@pytest.mark.parametrize(("status", "answer"), [(503, 503), (429, 503), (500, 502)])
async def test_an_entra_outage_while_authenticating_to_acs_is_not_called_refused_credentials(
        broker_for, tokens, acs, entra, status, answer):
    # Failure mode: with an Entra credential for ACS, azure-identity raises ClientAuthenticationError
    # for ANY Entra error answer, and map_error called every such error "credentials refused"
    # (502 + an operator error log telling them to check their secret) — also when Entra was
    # merely unavailable or throttling, which is a 503 with Retry-After for the client.
    broker = await broker_for(access_key=None, timeout=2, entra_extra={"client_secret": demo.BROKER_SECRET})
    entra.inject_fault(grant_type="client_credentials", status=status, error="temporarily_unavailable",
                       retry_after=0, count=10)
    with capture_logs() as logs:
        resp = await broker.get("/api/token/teams", headers=tokens.headers(teams=tokens.teams()))
    assert resp.status == answer, await resp.text()
    assert not [e for e in logs if e["event"] == "acs.credentials_refused"]
    assert acs.requests() == []
