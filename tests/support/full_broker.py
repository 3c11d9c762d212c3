"""The whole broker in one config, against the real Entra and ACS emulators.

`full_toml(entra, acs, keys_dir, signer_jwks)` is written like an operator would: `[entra]` with
the demo broker app and its secret, `[acs]` with a connection string (or an access key),
`[obo.workspace]`, a trusted HMAC issuer, a `[[clients]]` entry with a secret and one with
private_key_jwt. `start(...)` runs it through `aiohttp_client`.
"""

from __future__ import annotations

import json
import secrets
import time
from pathlib import Path
from typing import Any

import jwt

from emulators.entra import demo
from service.app import create_app
from service.settings import load_settings
from tests.support.client_keys import ClientKeys

PUBLIC_URL = "http://broker.test"
PARTNER_ISS = "https://auth.partner.example"
PARTNER_SECRET = "partner-hmac-" + secrets.token_hex(16)
PARTNER_AUD = "https://broker.example"
PORTAL_SECRET = "portal-" + secrets.token_hex(16)
SIGNER = "signer"
SPA = demo.CLIENT_ID                   # signs users in; acquires broker and Teams tokens
TEAMS_SCOPES = ["Teams.ManageCalls", "Teams.ManageChats"]
TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
ACCESS_TOKEN = "urn:ietf:params:oauth:token-type:access_token"
REFRESH_TOKEN = "urn:ietf:params:oauth:token-type:refresh_token"


def _v(value: Any) -> str:
    return json.dumps(value)           # JSON strings, numbers, booleans and arrays are TOML too


def full_toml(entra, acs, keys_dir: Path, signer_jwks: Path, *, acs_credential: str = "connection_string"
              ) -> str:
    acs_secret = acs.connection_string if acs_credential == "connection_string" else acs.access_key
    return f"""
[server]
public_url = {_v(PUBLIC_URL)}

[tls]
ca_bundle = {_v(str(entra.ca_bundle))}

[entra]
authority = {_v(entra.url)}
tenant_id = {_v(demo.TENANT_ID)}
client_id = {_v(demo.BROKER_CLIENT_ID)}
client_secret = {_v(demo.BROKER_SECRET)}
allowed_tenants = {_v([demo.TENANT_ID, demo.PARTNER_TENANT_ID])}
scope_map = {{ user_impersonation = ["read", "write"] }}
timeout = 5

[acs]
endpoint = {_v(acs.url)}
{acs_credential} = {_v(acs_secret)}
allowed_teams_client_apps = {_v([SPA])}
timeout = 5

[obo.workspace]
scopes = [{_v(demo.WORKSPACE_SCOPE)}]

[issuer]
keys_dir = {_v(str(keys_dir))}

[[trusted_issuers]]
name = "partner"
issuer = {_v(PARTNER_ISS)}
secret = {_v(PARTNER_SECRET)}
audiences = [{_v(PARTNER_AUD)}]
algorithms = ["HS256"]
scope_map = {{ "partner.read" = ["read"] }}

[[clients]]
client_id = "portal"
client_secret = {_v(PORTAL_SECRET)}
allowed_issuers = ["entra", "partner", "self"]
allowed_audiences = ["dashboard", "acs:teams", "obo:workspace"]
allowed_scopes = ["read", "write"]
refresh_tokens = true

[[clients]]
client_id = {_v(SIGNER)}
jwks = {_v(str(signer_jwks))}
allowed_issuers = ["partner"]
allowed_audiences = ["dashboard"]
allowed_scopes = ["read"]
"""


async def start(aiohttp_client, entra, acs, tmp_path: Path):
    """The whole broker through `aiohttp_client`, and the signer client's keys."""
    keys = ClientKeys.create(tmp_path, SIGNER, PUBLIC_URL)
    settings = load_settings(full_toml(entra, acs, tmp_path / "keys", keys.path), {}, base_dir=tmp_path)
    return await aiohttp_client(create_app(settings)), keys


def bearer(entra, user: str = demo.ALICE_UPN, **kw: Any) -> str:
    """The SPA's delegated token for the broker API."""
    return entra.mint(resource=demo.BROKER_CLIENT_ID, client_id=SPA, user=user,
                      scopes=["user_impersonation"], **kw)


def teams(entra, user: str = demo.ALICE_UPN, **kw: Any) -> str:
    """The user's Entra token for ACS with the Teams scopes."""
    kw.setdefault("scopes", TEAMS_SCOPES)
    return entra.mint(resource=demo.ACS_APP_ID_URI, client_id=SPA, user=user, **kw)


def partner_token(*, sub: str = "partner-user-1", scope: str = "partner.read") -> str:
    now = int(time.time())
    return jwt.encode({"iss": PARTNER_ISS, "sub": sub, "aud": PARTNER_AUD, "scope": scope, "iat": now,
                       "exp": now + 600, "jti": secrets.token_hex(8)}, PARTNER_SECRET, algorithm="HS256")


def exchange_form(subject_token: str, subject_token_type: str = ACCESS_TOKEN, **extra: str
                  ) -> dict[str, str]:
    return {"grant_type": TOKEN_EXCHANGE, "subject_token": subject_token,
            "subject_token_type": subject_token_type, "audience": "dashboard", **extra}
