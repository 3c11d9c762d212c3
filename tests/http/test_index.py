"""`GET /`: the broker's JSON index (name, version, links), every link served by the app itself."""

from __future__ import annotations

from pathlib import Path

import pytest

from service import __version__
from service.app import create_app
from service.settings import load_settings


@pytest.mark.parametrize("public_url", ["http://127.0.0.1:8080", "https://login.example/broker"])
async def test_the_index_links_to_documents_the_app_serves(aiohttp_client, tmp_path: Path, public_url):
    settings = load_settings(f'[server]\npublic_url = "{public_url}"\n[issuer]\nkeys_dir = "{tmp_path}/keys"\n',
                             {}, base_dir=tmp_path)
    client = await aiohttp_client(create_app(settings))
    resp = await client.get("/")
    index = await resp.json()
    assert resp.status == 200
    assert (index["name"], index["version"], index["issuer"]) == ("tokenbroker", __version__, public_url)
    assert {"openapi", "readyz", "metrics", "metadata", "jwks"} <= set(index["links"])
    for name, path in index["links"].items():
        answer = await client.get(path)
        assert answer.status in (200, 503), (name, path)   # readyz may be 503 without [entra] keys
    metadata = await (await client.get(index["links"]["metadata"])).json()
    assert metadata["issuer"] == public_url
    assert "/" in (await (await client.get("/openapi.json")).json())["paths"]
    assert (await client.head("/")).status == 200
