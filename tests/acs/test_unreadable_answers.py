"""An ACS (or Entra, while authenticating to ACS) answer the SDK cannot read is a 502/503 broker
error, never a 500, and the ACS client raises only the broker's own errors."""

from __future__ import annotations

import pytest
from aiohttp import web
from structlog.testing import capture_logs

from emulators.entra import demo
from service.app import create_app
from service.errors import BrokerError
from service.typedefs import ACS_CLIENT

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
