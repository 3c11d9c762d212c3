"""Fixtures for validation tests: the broker built by `create_app` over the real Entra emulator.

`entra` (tests/fixtures) is the session emulator, reset before each test. `broker_for(**entra_overrides)` builds
and starts a fresh broker app (its own JWKS cache) through `aiohttp_client`. `Kit` mints
genuine tokens and forges hostile ones from them.
"""

from __future__ import annotations

import base64
import json
import ssl
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from emulators.entra import demo
from service.app import create_app
from service.settings import EntraSettings, IssuerSettings, Settings, TlsSettings
from tests.validation.forge import parts, public_pem

BROKER = demo.BROKER_CLIENT_ID
SPA = demo.PUBLIC_CLIENT_ID          # the app the demo user signs in with
ALLOWED_APPS = (demo.PUBLIC_CLIENT_ID, demo.CLIENT_ID)


def entra_settings(emu, **overrides: Any) -> EntraSettings:
    values: dict[str, Any] = dict(
        authority=emu.url, tenant_id=emu.tenant_id, client_id=BROKER,
        allowed_tenants=(demo.TENANT_ID, demo.PARTNER_TENANT_ID),
        required_scopes=("user_impersonation",), clock_skew=120, timeout=5)
    values.update(overrides)
    return EntraSettings(**values)


def broker_settings(emu, tmp_path, **overrides: Any) -> Settings:
    return Settings(entra=entra_settings(emu, **overrides), tls=TlsSettings(ca_bundle=str(emu.ca_bundle)),
                    issuer=IssuerSettings(keys_dir=tmp_path / "keys"))


@pytest.fixture(name="broker_for")
def _broker_for(aiohttp_client, entra, tmp_path):
    async def make(*, clock: Callable[[], float] = time.time, app_overrides: dict | None = None,
                   **overrides: Any):
        settings = broker_settings(entra, tmp_path, **overrides)
        return await aiohttp_client(create_app(settings, clock=clock, overrides=app_overrides))
    return make


@pytest.fixture(name="broker")
async def _broker(broker_for):
    return await broker_for()


@pytest.fixture(name="session")
async def _session(entra):
    ctx = ssl.create_default_context(cafile=str(entra.ca_bundle))
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ctx)) as s:
        yield s


@dataclass
class Kit:
    """A genuine token of the demo user for the broker, and what is needed to forge others."""
    emu: Any
    token: str
    header: dict
    claims: dict
    signing_pem: bytes
    signing_jwk: dict

    def mint(self, **kw: Any) -> str:
        kw.setdefault("resource", BROKER)
        kw.setdefault("client_id", SPA)
        kw.setdefault("scopes", ["user_impersonation"])
        return self.emu.mint(**kw)

    @property
    def now(self) -> int:
        return int(time.time())


def _jwks(emu) -> dict:
    ctx = ssl.create_default_context(cafile=str(emu.ca_bundle))
    url = f"{emu.url}/{emu.tenant_id}/discovery/v2.0/keys"
    with urllib.request.urlopen(url, context=ctx, timeout=10) as resp:
        return json.loads(resp.read())


@pytest.fixture(name="kit")
def _kit(entra) -> Kit:
    token = entra.mint(resource=BROKER, client_id=SPA, scopes=["user_impersonation"])
    header, claims = parts(token)
    jwk = next(k for k in _jwks(entra)["keys"] if k["kid"] == header["kid"])
    n = int.from_bytes(_b64d(jwk["n"]), "big")
    e = int.from_bytes(_b64d(jwk["e"]), "big")
    pem = public_pem(rsa.RSAPublicNumbers(e, n).public_key())
    entra.reset()  # the kit's own requests do not count in the tests' request logs
    return Kit(entra, token, header, claims, pem, jwk)


def _b64d(s: str) -> bytes:
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))
