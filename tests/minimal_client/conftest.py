"""Fixtures for the minimal client: the real client app (aiohttp_client) signed in through the
real Entra emulator, and a small real aiohttp server standing in for the broker (its routes
are built by others at the same time; end-to-end tests against the real broker come later)."""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from emulators.entra import demo
from minimal_client import ClientConfig, create_app


@dataclass
class StandInBroker:
    """Answers every request from `answers[(method, path)]` (default 404) and records it."""
    server: Any
    answers: dict[tuple[str, str], tuple[int, Any]] = field(default_factory=dict)
    seen: list[web.Request] = field(default_factory=list)

    @property
    def url(self) -> str:
        return str(self.server.make_url("")).rstrip("/")


@pytest.fixture(name="broker")
async def _broker(aiohttp_server) -> StandInBroker:
    holder: dict[str, StandInBroker] = {}

    async def handler(request: web.Request) -> web.Response:
        stand_in = holder["b"]
        stand_in.seen.append(request)
        status, body = stand_in.answers.get((request.method, request.path),
                                            (404, {"error": "not_found", "error_description": "no route"}))
        if isinstance(body, str):
            return web.Response(text=body, status=status)
        return web.json_response(body, status=status)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    holder["b"] = StandInBroker(await aiohttp_server(app))
    return holder["b"]


@pytest.fixture(name="client_config")
def _client_config(entra, broker) -> ClientConfig:
    return ClientConfig(authority=entra.url, tenant=entra.tenant_id, client_id=demo.CLIENT_ID,
                        client_secret=demo.CLIENT_SECRET, broker_url=broker.url,
                        broker_app_id=demo.BROKER_CLIENT_ID, ca_bundle=entra.ca_bundle)


@pytest.fixture(name="client")
async def _client(aiohttp_client, client_config):
    return await aiohttp_client(create_app(client_config))


@pytest.fixture(name="idp")
async def _idp(entra):
    """The test's own HTTP session to the emulator (plays the browser's part there)."""
    ctx = ssl.create_default_context(cafile=entra.ca_bundle)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ctx)) as s:
        yield s
