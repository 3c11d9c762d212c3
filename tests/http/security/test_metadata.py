"""RFC 8414 metadata: the issuer is exactly public_url and every endpoint lives under it.

Part of the adversarial review of the token endpoint (tests/support/security_broker.py holds the broker).
"""

from __future__ import annotations

from service.app import create_app
from tests.http.token_support import (
    PUBLIC_URL,
    TOKEN_EXCHANGE,
)
from tests.support.security_broker import ok, security_settings

# --- metadata -----------------------------------------------------------------------------------

async def test_the_metadata_issuer_is_exactly_public_url_and_every_endpoint_lives_under_it(client):
    for path in ("/.well-known/oauth-authorization-server", "/.well-known/openid-configuration"):
        doc = await ok(await client.get(path))
        assert doc["issuer"] == PUBLIC_URL
        for key, value in doc.items():
            if key.endswith(("_endpoint", "_uri")):
                assert value.startswith(PUBLIC_URL + "/"), (key, value)
        assert "none" not in doc["token_endpoint_auth_methods_supported"]
        assert doc["grant_types_supported"] == [TOKEN_EXCHANGE, "refresh_token"]
    jwks = await ok(await client.get("/oauth2/jwks"))
    assert jwks["keys"] and all("d" not in k and "p" not in k for k in jwks["keys"])


async def test_metadata_is_path_inserted_and_not_served_at_the_bare_rfc8414_path(aiohttp_client, tmp_path):
    settings = security_settings(tmp_path, public_url=f"{PUBLIC_URL}/tenant-a")
    client = await aiohttp_client(create_app(settings))
    doc = await ok(await client.get("/.well-known/oauth-authorization-server/tenant-a"))
    assert doc["issuer"] == f"{PUBLIC_URL}/tenant-a"
    assert doc["token_endpoint"] == f"{PUBLIC_URL}/tenant-a/oauth2/token"
    assert (await client.get("/.well-known/oauth-authorization-server")).status == 404
    assert (await ok(await client.get("/tenant-a/.well-known/openid-configuration")))["issuer"] == doc["issuer"]
