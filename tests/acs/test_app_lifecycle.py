"""Starting and stopping the app with ACS and OBO configured leaks no session or connection."""

from __future__ import annotations

import aiohttp
from aiohttp import web

from emulators.entra import demo
from service.app import create_app
from service.settings import load_settings
from tests.support.leaks import no_leaks

from .conftest import settings_toml

# An "ACS" that answers 2xx with bodies the SDK cannot read: a proxy's HTML page, a JSON
# array, a JSON object without the fields. Real sockets, a real aiohttp server.


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
