"""The adversarial token-endpoint tests' broker: clients portal/dashboard/reports/mallory/inspector/vault,
an HMAC partner and an ES256 partner, both with replay checks (tests/http/security/).
"""

from __future__ import annotations

import hashlib

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tests.http.token_support import (
    ACCESS_TOKEN,
    BROKER_AUD,
    PARTNER_ISS,
    PARTNER_SECRET,
    PUBLIC_URL,
    exchange_form,
    make_settings,
)
from tests.support.oauth import basic_auth, ok, refused  # noqa: F401  (re-exported)
from tests.support.store_keys import STORE_KEY_LINE

SECRETS = {"portal": "portal:secret with % and + padded", "dashboard": "dashboard-secret", "reports": "reports-secret-0123456789abcdefg",
           "mallory": "mallory-secret-0123456789abcdefg", "inspector": "inspector-secret-0123456789abcde", "vault": "vault-secret-0123456789abcdefghi"}

EC_PARTNER_ISS = "https://ec.partner.example"
EC_PARTNER_KEY = ec.generate_private_key(ec.SECP256R1())
P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551

SECURITY_TOML = f"""
[server]
public_url = "{PUBLIC_URL}"

[issuer]
keys_dir = "keys"
access_token_ttl = 900
refresh_token_ttl = 86400

[store]
url = "{{store}}"
{STORE_KEY_LINE}

[[trusted_issuers]]
name = "partner"
issuer = "{PARTNER_ISS}"
secret = "{PARTNER_SECRET}"
audiences = ["{BROKER_AUD}"]
algorithms = ["HS256"]
replay_check = true
scope_map = {{{{ "partner.read" = ["read"], "partner.all" = ["read", "write"] }}}}

[[trusted_issuers]]
name = "ec-partner"
issuer = "{EC_PARTNER_ISS}"
certificate = "ec-partner.pem"
audiences = ["{BROKER_AUD}"]
algorithms = ["ES256"]
replay_check = true

[[clients]]
client_id = "portal"
client_secret = "{SECRETS['portal']}"
allowed_issuers = ["partner", "ec-partner", "self"]
allowed_audiences = ["dashboard", "reports"]
allowed_scopes = {{portal_scopes}}
refresh_tokens = true

[[clients]]
client_id = "dashboard"
client_secret = "sha256:{hashlib.sha256(SECRETS['dashboard'].encode()).hexdigest()}"
allowed_issuers = ["self"]
allowed_audiences = ["reports"]
allowed_scopes = ["read", "write"]
refresh_tokens = true

[[clients]]
client_id = "reports"
client_secret = "{SECRETS['reports']}"
allowed_issuers = ["self"]
allowed_audiences = ["archive"]
allowed_scopes = ["read", "write"]

[[clients]]
client_id = "mallory"
client_secret = "{SECRETS['mallory']}"
allowed_issuers = ["partner", "self"]
allowed_audiences = ["dashboard", "reports", "archive"]
allowed_scopes = ["read", "write", "admin"]
refresh_tokens = true

[[clients]]
client_id = "inspector"
client_secret = "{SECRETS['inspector']}"
grant_types = []

[[clients]]
client_id = "vault"
client_secret = "{SECRETS['vault']}"
allowed_issuers = ["partner", "self"]
allowed_audiences = ["dashboard"]
allowed_scopes = ["read"]
token_format = "opaque"
"""


def security_settings(tmp_path, extra: str = "", *, store: str = "memory://",
                      portal_scopes: str = '["read", "write"]', public_url: str = PUBLIC_URL):
    (tmp_path / "ec-partner.pem").write_bytes(EC_PARTNER_KEY.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    base = SECURITY_TOML.format(store=store, portal_scopes=portal_scopes)
    return make_settings(tmp_path, extra, base=base.replace(f'public_url = "{PUBLIC_URL}"',
                                                            f'public_url = "{public_url}"'))


def basic(client_id: str, secret: str | None = None) -> dict[str, str]:
    return basic_auth(client_id, SECRETS[client_id] if secret is None else secret)


def claims_of(token: str) -> dict:
    return jwt.decode(token, options={"verify_signature": False})


async def post(client, path: str, form, *, auth: str = "portal"):
    return await client.post(path, data=form, headers=basic(auth))


def refresh_form(token: str, **extra: str) -> list[tuple[str, str]]:
    return [("grant_type", "refresh_token"), ("refresh_token", token), *extra.items()]


def delegated(subject: str, actor: str) -> list[tuple[str, str]]:
    return exchange_form(subject) + [("actor_token", actor), ("actor_token_type", ACCESS_TOKEN)]
