"""Starting and stopping the minimal client leaks no session."""

from __future__ import annotations

from aiohttp import web

from minimal_client.app import create_app
from tests.support.leaks import no_leaks


async def test_starting_and_stopping_the_client_leaks_no_session(client_config):
    async with no_leaks():
        runner = web.AppRunner(create_app(client_config))
        await runner.setup()
        await runner.cleanup()
