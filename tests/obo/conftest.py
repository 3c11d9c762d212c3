"""Fixtures for the On-Behalf-Of tests: a broker built from TOML over the real Entra emulator.

`obo_broker(credential=..., env=..., **entra_keys)` writes a config like an operator would
(`[entra]` pointing at the emulator with the demo broker app, `[tls] ca_bundle`, and
`[obo.workspace]`), loads it with `load_settings` and starts the app through
`aiohttp_client`. `portal_token(entra, ...)` mints the token a portal holds for the broker.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import Callable
from typing import Any

import jwt
import pytest

from emulators.entra import demo
from service.app import create_app
from service.downstream.entra_obo import OboCaller
from service.settings import load_settings
from service.typedefs import METRICS

JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
PORTAL = demo.CLIENT_ID              # the portal app: signs users in, calls the broker
OBO_PATH = "/api/token/obo/workspace"


def _toml_value(value: Any) -> str:
    return json.dumps(value)         # JSON strings, numbers, booleans and arrays are TOML too


def broker_toml(entra, tmp_path, *, credential: dict[str, str] | None = None, **entra_keys: Any) -> str:
    keys: dict[str, Any] = {
        "authority": entra.url, "tenant_id": entra.tenant_id, "client_id": demo.BROKER_CLIENT_ID,
        "allowed_tenants": [demo.TENANT_ID, demo.PARTNER_TENANT_ID], "timeout": 5,
        **(credential if credential is not None else {"client_secret": demo.BROKER_SECRET}),
        **entra_keys,
    }
    entra_lines = "\n".join(f"{k} = {_toml_value(v)}" for k, v in keys.items())
    return f"""
[server]
public_url = "http://127.0.0.1:8400"

[tls]
ca_bundle = {_toml_value(str(entra.ca_bundle))}

[entra]
{entra_lines}

[obo.workspace]
scopes = [{_toml_value(demo.WORKSPACE_SCOPE)}]

[issuer]
keys_dir = {_toml_value(str(tmp_path / "keys"))}
"""


@pytest.fixture(name="obo_broker")
def _obo_broker(aiohttp_client, entra, tmp_path):
    async def make(*, env: dict[str, str] | None = None, clock: Callable[[], float] = time.time,
                   credential: dict[str, str] | None = None, **entra_keys: Any):
        settings = load_settings(broker_toml(entra, tmp_path, credential=credential, **entra_keys),
                                 env or {}, base_dir=tmp_path)
        return await aiohttp_client(create_app(settings, clock=clock))
    return make


@pytest.fixture(name="broker")
async def _broker(obo_broker):
    return await obo_broker()


def portal_token(entra, user: str = demo.ALICE_UPN, **kw: Any) -> str:
    """The token a portal holds for the broker API: delegated, `user_impersonation`."""
    return entra.mint(resource=demo.BROKER_CLIENT_ID, client_id=PORTAL, user=user,
                      scopes=["user_impersonation"], **kw)


async def obo(client, token: str | None, name: str = "workspace", **headers: str):
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    resp = await client.post(f"/api/token/obo/{name}", headers=headers)
    return resp, await resp.json()


def obo_calls(entra) -> list[dict]:
    """The OBO requests Entra received."""
    return entra.requests(grant_type=JWT_BEARER)


async def obo_calls_async(entra) -> list[dict]:
    """Same, off the event loop (use while the broker is serving requests)."""
    return await asyncio.to_thread(obo_calls, entra)


def sample(client, name: str, **labels: str) -> float:
    return client.app[METRICS].registry.get_sample_value(f"tokenbroker_{name}", labels) or 0.0


def decode_verified(entra, token: str, tenant: str, audience: str) -> dict:
    """Verify a token Entra issued against the emulator's published JWKS."""
    http = entra.http()
    try:
        jwks = http.get(f"{entra.url}/{tenant}/discovery/v2.0/keys", timeout=10).json()
    finally:
        http.close()
    kid = jwt.get_unverified_header(token)["kid"]
    key = jwt.PyJWKSet.from_dict(jwks)[kid].key
    return jwt.decode(token, key, algorithms=["RS256"], audience=audience,
                      issuer=f"{entra.url}/{tenant}/v2.0")


def obo_caller(assertion: str, exp: int = 4_000_000_000):
    """The OboCaller the OBO route would build for Alice presenting `assertion`."""
    return OboCaller(tid=demo.TENANT_ID, oid=demo.ALICE_OID, app_id=demo.CLIENT_ID,
                     token_hash=hashlib.sha256(assertion.encode()).hexdigest(), assertion_exp=exp)
