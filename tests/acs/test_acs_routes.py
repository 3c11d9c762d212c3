"""The ACS routes are mounted only with `[acs]`, and every mounted route is documented."""

from __future__ import annotations

from emulators.entra import demo
from service.app import create_app
from service.settings import load_settings
from tests.support.oauth import entra_block

ACS_ROUTES = [("GET", "/api/token/teams"), ("POST", "/api/token/teams"), ("GET", "/api/token"),
              ("POST", "/api/user"), ("GET", "/api/user"), ("DELETE", "/api/user")]


async def test_every_acs_route_is_mounted_and_documented(broker):
    doc = await (await broker.get("/openapi.json")).json()
    mounted = {(r.method, r.resource.canonical) for r in broker.app.router.routes()}
    for method, path in ACS_ROUTES:
        assert (method, path) in mounted
        assert method.lower() in doc["paths"][path], (method, path)


async def test_without_acs_the_routes_are_not_mounted(aiohttp_client, entra, tmp_path, tokens):
    toml = entra_block(entra, tenant_id=demo.TENANT_ID) + '\n[store]\nurl = "memory://"\n\n[issuer]\nkeys_dir = "keys"\n'
    broker = await aiohttp_client(create_app(load_settings(toml, {}, base_dir=tmp_path)))
    for method, path in ACS_ROUTES:
        resp = await broker.request(method, path, headers=tokens.headers(teams=tokens.teams()))
        assert resp.status == 404 and (await resp.json())["error"] == "not_found"
