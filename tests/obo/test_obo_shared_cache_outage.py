"""With a Redis store the OBO cache is shared; when Redis goes away the exchanges keep working
from the in-process cache and Entra (a throwaway redis-server, stopped mid-test)."""

from __future__ import annotations

from service.app import create_app
from service.settings import load_settings
from tests.obo.conftest import broker_toml, obo, obo_calls_async, portal_token, sample
from tests.support.serve_process import RedisServer
from tests.support.store_keys import STORE_KEY_LINE


async def test_with_redis_gone_obo_exchanges_keep_working_in_process(aiohttp_client, entra, tmp_path):
    server = RedisServer()
    try:
        toml = broker_toml(entra, tmp_path) + f'\n[store]\nurl = "{server.url}?prefix=outage:"\n{STORE_KEY_LINE}\n'
        client = await aiohttp_client(create_app(load_settings(toml, {}, base_dir=tmp_path)))
        token = portal_token(entra)
        resp, first = await obo(client, token)
        assert resp.status == 200, first
        assert sample(client, "cache_events_total", cache="obo_shared", event="miss") == 1

        server.stop()
        resp, again = await obo(client, token)                      # the in-process level answers
        assert resp.status == 200 and again["access_token"] == first["access_token"]
        resp, fresh = await obo(client, portal_token(entra))        # a new exchange, Redis down
        assert resp.status == 200 and fresh["access_token"] != first["access_token"]
        assert len(await obo_calls_async(entra)) == 2
        assert sample(client, "cache_events_total", cache="obo_shared", event="unavailable") == 1
        assert (await client.get("/readyz")).status == 503           # the store itself is down
    finally:
        server.stop()
