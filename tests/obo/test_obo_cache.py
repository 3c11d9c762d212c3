"""The OBO client's cache is bounded: the least recently used answer makes room for new ones."""

from __future__ import annotations

import aiohttp
import jwt

from service.app import outgoing_ssl_context
from service.digest import sha256_hex
from service.downstream.entra_credentials import load_broker_credential
from service.downstream.entra_obo import EntraOboClient, OboCaller
from service.metrics import Metrics
from service.settings import load_settings
from tests.obo.conftest import broker_toml, obo_calls, portal_token


def caller_of(token: str) -> OboCaller:
    claims = jwt.decode(token, options={"verify_signature": False})
    return OboCaller(tid=claims["tid"], oid=claims["oid"], app_id=claims["azp"],
                     token_hash=sha256_hex(token), assertion_exp=claims["exp"])


async def test_the_cache_holds_at_most_max_entries(entra, tmp_path):
    settings = load_settings(broker_toml(entra, tmp_path), {}, base_dir=tmp_path)
    metrics = Metrics()
    connector = aiohttp.TCPConnector(ssl=outgoing_ssl_context(str(entra.ca_bundle)))
    async with aiohttp.ClientSession(connector=connector) as session:
        client = EntraOboClient(settings.entra, settings.obo, session, load_broker_credential(settings.entra),
                                metrics=metrics, max_entries=2)
        workspace = client.downstream("workspace")
        tokens = [portal_token(entra) for _ in range(3)]
        for token in tokens:
            await client.exchange(workspace, token, caller_of(token))
        await client.exchange(workspace, tokens[2], caller_of(tokens[2]))   # still cached
        assert len(obo_calls(entra)) == 3
        await client.exchange(workspace, tokens[0], caller_of(tokens[0]))   # evicted: asked again
        assert len(obo_calls(entra)) == 4
    evicted = metrics.registry.get_sample_value("tokenbroker_cache_events_total",
                                                {"cache": "obo", "event": "evicted"})
    assert evicted and evicted >= 1
