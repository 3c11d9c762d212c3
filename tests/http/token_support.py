"""Shared helpers for the token-endpoint tests: a config, partner tokens, form posts.

Settings are built from TOML through `load_settings` (as an operator writes them). Partner
tokens are signed here with the partner's real keys; our own tokens come from the broker.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from pathlib import Path
from typing import Any

import jwt

from service.settings import Settings, load_settings
from tests.support.oauth import basic_auth
from tests.support.store_keys import STORE_KEY_LINE

TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
ACCESS_TOKEN = "urn:ietf:params:oauth:token-type:access_token"
JWT_TYPE = "urn:ietf:params:oauth:token-type:jwt"
PUBLIC_URL = "http://broker.test"
PARTNER_ISS = "https://auth.partner.example"
PARTNER_SECRET = "partner-hmac-secret-of-at-least-32-bytes!"
BROKER_AUD = "https://broker.example"
PORTAL_SECRET = "portal secret:with+special&chars%"
DASHBOARD_SECRET = "dashboard-secret"

BASE_TOML = f"""
[server]
public_url = "{PUBLIC_URL}"

[issuer]
keys_dir = "keys"
access_token_ttl = 900
refresh_token_ttl = 86400

[store]
url = "memory://"
{STORE_KEY_LINE}

[[trusted_issuers]]
name = "partner"
issuer = "{PARTNER_ISS}"
secret = "{PARTNER_SECRET}"
audiences = ["{BROKER_AUD}"]
algorithms = ["HS256"]
scope_map = {{ "partner.read" = ["read"], "partner.all" = ["read", "write"] }}

[[clients]]
client_id = "portal"
client_secret = "{PORTAL_SECRET}"
allowed_issuers = ["partner", "self"]
allowed_audiences = ["dashboard", "reports"]
allowed_scopes = ["read", "write"]
refresh_tokens = true

[[clients]]
client_id = "dashboard"
client_secret = "sha256:{hashlib.sha256(DASHBOARD_SECRET.encode()).hexdigest()}"
allowed_issuers = ["self"]
allowed_audiences = ["reports"]
allowed_scopes = ["read"]

[[clients]]
client_id = "reports"
client_secret = "reports-secret-0123456789abcdefg"
allowed_issuers = ["self"]
allowed_audiences = ["archive"]
allowed_scopes = ["read"]

[[clients]]
client_id = "inspector"
client_secret = "inspector-secret-0123456789abcde"
grant_types = []
"""

SECRETS = {"portal": PORTAL_SECRET, "dashboard": DASHBOARD_SECRET, "reports": "reports-secret-0123456789abcdefg",
           "inspector": "inspector-secret-0123456789abcde", "federated": "federated-secret-0123456789abcde"}


def make_settings(tmp_path: Path, extra_toml: str = "", base: str = BASE_TOML) -> Settings:
    return load_settings(base + extra_toml, {}, base_dir=tmp_path)


def basic(client_id: str, secret: str | None = None) -> dict[str, str]:
    """RFC 6749 §2.3.1: form-encode id and secret, then Basic-encode."""
    return basic_auth(client_id, SECRETS[client_id] if secret is None else secret)


def partner_token(*, sub: str = "partner-user-1", scope: str = "partner.all", lifetime: int = 600,
                  secret: str = PARTNER_SECRET, **claims: Any) -> str:
    now = int(time.time())
    body: dict[str, Any] = {"iss": PARTNER_ISS, "sub": sub, "aud": BROKER_AUD, "scope": scope,
                            "iat": now, "exp": now + lifetime, "jti": secrets.token_hex(8)}
    body.update(claims)
    body = {k: v for k, v in body.items() if v is not None}
    return jwt.encode(body, secret, algorithm="HS256")


def exchange_form(subject_token: str, *, audience: str | list[str] | None = "dashboard",
                  subject_token_type: str = ACCESS_TOKEN, **extra: Any) -> list[tuple[str, str]]:
    form = [("grant_type", TOKEN_EXCHANGE), ("subject_token", subject_token),
            ("subject_token_type", subject_token_type)]
    for aud in ([audience] if isinstance(audience, str) else audience or []):
        form.append(("audience", aud))
    form += [(k, v) for k, v in extra.items()]
    return form


async def post_token(client, form, *, auth: str = "portal", headers: dict | None = None):
    hdrs = {**(basic(auth) if auth else {}), **(headers or {})}
    return await client.post("/oauth2/token", data=form, headers=hdrs)


async def exchange_ok(client, form, *, auth: str = "portal") -> dict:
    resp = await post_token(client, form, auth=auth)
    body = await resp.json()
    assert resp.status == 200, body
    return body
