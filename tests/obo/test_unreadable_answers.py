"""An Entra answer the OBO client cannot read is a broker error (502, or retried 503), never a 500,
and only broker errors leave the client."""

from __future__ import annotations

import pytest
from aiohttp import web

from service.app import create_app
from service.errors import BrokerError, DownstreamError
from service.settings import load_settings
from service.typedefs import OBO_CLIENT

from .conftest import broker_toml, obo_caller


class _OddEntra:
    """An HTTPS "Entra" (the session CA) whose token endpoint answers what it is told."""

    def __init__(self) -> None:
        self.status, self.body, self.content_type = 200, "{}", "application/json"
        self.calls = 0

    async def token(self, request: web.Request) -> web.Response:
        await request.read()
        self.calls += 1
        return web.Response(status=self.status, text=self.body, content_type=self.content_type)


@pytest.fixture(name="odd_entra")
async def _odd_entra(pki):
    odd = _OddEntra()
    app = web.Application()
    app.router.add_post("/{tenant}/oauth2/v2.0/token", odd.token)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=pki.server_ssl_context())
    await site.start()
    odd.url = f"https://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"
    yield odd
    await runner.cleanup()


async def _client_against(entra, url: str, tmp_path):
    """The broker app's own EntraOboClient, configured (TOML) against `url`."""
    settings = load_settings(broker_toml(entra, tmp_path, authority=url, timeout=2), {}, base_dir=tmp_path)
    app = create_app(settings)
    runner = web.AppRunner(app)
    await runner.setup()
    return runner, app[OBO_CLIENT], settings.obo["workspace"]


@pytest.mark.parametrize(("status", "body", "content_type"), [
    (200, "[1]", "application/json"),                      # azure-identity: AttributeError
    (200, '"text"', "application/json"),
    (200, "7", "application/json"),
    (400, "[1]", "application/json"),
    (200, "<html>proxy</html>", "text/html"),
    (200, '{"access_token": "x", "expires_in": "soon"}', "application/json"),
    (200, '{"expires_in": 3600}', "application/json"),
    (200, '{"access_token": "x", "expires_in": 3600, "id_token": 5}', "application/json"),  # AttributeError
    (200, '{"access_token": "x", "expires_in": 1e400}', "application/json"),              # OverflowError
    (200, '{"access_token": 5, "expires_in": 3600}', "application/json"),                 # not a token
])
async def test_an_unreadable_entra_answer_is_a_broker_error_never_a_500(entra, odd_entra, tmp_path, status,
                                                                        body, content_type):
    # Failure modes: azure-identity raises AttributeError / OverflowError on some unreadable
    # bodies, which EntraOboClient did not translate (500 at the route); others (no response
    # attached) were taken for "Entra unavailable" (503 + Retry-After: retrying cannot help).
    odd_entra.status, odd_entra.body, odd_entra.content_type = status, body, content_type
    runner, client, workspace = await _client_against(entra, odd_entra.url, tmp_path)
    try:
        with pytest.raises(DownstreamError) as caught:
            await client.exchange(workspace, "an-assertion", obo_caller("an-assertion"))
        assert caught.value.status == 502
        assert odd_entra.calls >= 1
    finally:
        await runner.cleanup()


@pytest.mark.parametrize("status", [503, 504, 429])
async def test_an_unreadable_error_page_keeps_its_status_and_is_retried(entra, odd_entra, tmp_path, status):
    # A gateway's HTML error page (no "error" in it) makes azure-identity raise "Unexpected
    # response" WITHOUT the response; its status must still say "transient".
    odd_entra.status, odd_entra.body, odd_entra.content_type = status, "<html>Unavailable</html>", "text/html"
    runner, client, workspace = await _client_against(entra, odd_entra.url, tmp_path)
    try:
        with pytest.raises(DownstreamError) as caught:
            await client.exchange(workspace, "an-assertion", obo_caller("an-assertion"))
        assert caught.value.status == 503 and caught.value.retry_after
        assert odd_entra.calls == 3                        # the bounded retries
    finally:
        await runner.cleanup()


async def test_only_broker_errors_leave_the_client(entra, tmp_path):
    # Nothing listens here: a connection failure is a 503 after the bounded retries, not a crash.
    runner, client, workspace = await _client_against(entra, "https://127.0.0.1:9", tmp_path)
    try:
        with pytest.raises(BrokerError) as caught:
            await client.exchange(workspace, "an-assertion", obo_caller("an-assertion"))
        assert caught.value.status in (503, 504)
    finally:
        await runner.cleanup()
