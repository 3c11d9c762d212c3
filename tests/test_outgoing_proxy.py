"""`tls.proxy`: every outgoing call goes through the configured proxy; proxy variables and
~/.netrc are not read (the session's `trust_env` is off)."""

from __future__ import annotations

from pathlib import Path

import pytest

from service.app import create_app
from service.errors import ConfigurationError
from service.settings import load_settings
from service.typedefs import HTTP
from tests.support.connect_proxy import ConnectProxy


def _settings(tmp_path: Path, entra, proxy: str = ""):
    toml = f'[tls]\nca_bundle = "{entra.ca_bundle}"\nproxy = "{proxy}"\n[store]\nurl = "memory://"\n'
    return load_settings(toml, {}, base_dir=tmp_path)


async def _discovery_status(client, entra) -> int:
    url = f"{entra.url}/{entra.tenant_id}/v2.0/.well-known/openid-configuration"
    async with client.app[HTTP].get(url) as resp:
        return resp.status


async def test_outgoing_https_calls_tunnel_through_tls_proxy(aiohttp_client, entra, tmp_path):
    with ConnectProxy() as proxy:
        client = await aiohttp_client(create_app(_settings(tmp_path, entra, proxy.url)))
        assert await _discovery_status(client, entra) == 200
        assert proxy.connects == [entra.url.removeprefix("https://")]


async def test_proxy_variables_are_not_read(aiohttp_client, entra, tmp_path, monkeypatch):
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")     # nothing listens there
    monkeypatch.setenv("NO_PROXY", "")
    client = await aiohttp_client(create_app(_settings(tmp_path, entra)))
    assert await _discovery_status(client, entra) == 200


@pytest.mark.parametrize("bad", ["ftp://proxy:21", "http://user:pw@proxy:3128", "http://proxy:3128/path",
                                 "proxy:3128"])
def test_a_bad_proxy_url_is_a_configuration_error_naming_the_key(tmp_path, bad):
    with pytest.raises(ConfigurationError) as err:
        load_settings(f'[tls]\nproxy = "{bad}"\n', {}, base_dir=tmp_path)
    assert any("tls.proxy" in problem for problem in err.value.problems)


def test_the_proxy_can_come_from_the_environment_override(tmp_path):
    settings = load_settings("", {"TOKENBROKER_TLS__PROXY": "http://proxy.internal:3128"}, base_dir=tmp_path)
    assert settings.tls.proxy == "http://proxy.internal:3128"
