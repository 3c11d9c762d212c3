"""Trusted issuers: each key source (JWKS over HTTPS, PEM certificate, HMAC secret), max_token_age
and replay_check, end to end through POST /oauth2/token."""

from __future__ import annotations

import datetime as dt
import json
import secrets
import time

import jwt
import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from service.app import create_app
from tests.http.token_support import (
    BROKER_AUD,
    PARTNER_ISS,
    exchange_form,
    exchange_ok,
    make_settings,
    partner_token,
    post_token,
)
from tests.support.threaded import start_threaded

JWKS_ISS = "https://idp.jwks.example"
PEM_ISS = "https://idp.pem.example"


def signed(key, alg: str, iss: str, *, kid: str | None = None, lifetime: int = 600, **claims) -> str:
    now = int(time.time())
    body = {"iss": iss, "sub": "ext-user", "aud": [BROKER_AUD, "other"], "scope": "read",
            "iat": now, "exp": now + lifetime, "jti": secrets.token_hex(8), **claims}
    return jwt.encode({k: v for k, v in body.items() if v is not None}, key, algorithm=alg,
                      headers={"kid": kid} if kid else None)


@pytest.fixture(name="rsa_key", scope="module")
def _rsa_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(name="partner_idp", scope="module")
def _partner_idp(pki, rsa_key):
    """A tiny real HTTPS server (session CA) publishing the partner's JWKS."""
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(rsa_key.public_key()))
    jwk.update(kid="partner-1", alg="RS256", use="sig")
    hits: list[str] = []

    def make_app(base_url: str) -> web.Application:
        async def jwks(request: web.Request) -> web.Response:
            hits.append(request.path)
            return web.json_response({"keys": [jwk]})
        app = web.Application()
        app.router.add_get("/jwks", jwks)
        return app

    server = start_threaded(make_app, pki)
    server.hits = hits
    yield server
    server.stop()


@pytest.fixture(name="pem_key", scope="module")
def _pem_key():
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture(name="client")
async def _client(aiohttp_client, tmp_path, pki, partner_idp, pem_key):
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "partner signing")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(pem_key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=30)).sign(pem_key, hashes.SHA256()))
    (tmp_path / "partner.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    extra = f"""
[tls]
ca_bundle = "{pki.ca_pem}"

[[trusted_issuers]]
name = "jwks-partner"
issuer = "{JWKS_ISS}"
jwks_uri = "{partner_idp.url}/jwks"
audiences = ["{BROKER_AUD}"]
algorithms = ["RS256"]
replay_check = true

[[trusted_issuers]]
name = "pem-partner"
issuer = "{PEM_ISS}"
certificate = "partner.pem"
audiences = ["{BROKER_AUD}"]
algorithms = ["ES256"]
max_token_age = 300

[[clients]]
client_id = "federated"
client_secret = "federated-secret-0123456789abcde"
allowed_issuers = ["jwks-partner", "pem-partner", "partner"]
allowed_audiences = ["dashboard"]
allowed_scopes = ["read"]
"""
    return await aiohttp_client(create_app(make_settings(tmp_path, extra)))


async def test_a_jwks_issuer_token_verifies_through_the_https_jwks(client, rsa_key, partner_idp):
    body = await exchange_ok(client, exchange_form(signed(rsa_key, "RS256", JWKS_ISS, kid="partner-1")),
                             auth="federated")
    assert body["scope"] == "read"
    assert "/jwks" in partner_idp.hits


async def test_a_jwks_issuer_token_with_an_unknown_kid_is_invalid_request(client, rsa_key):
    resp = await post_token(client, exchange_form(signed(rsa_key, "RS256", JWKS_ISS, kid="other")),
                            auth="federated")
    assert resp.status == 400
    assert (await resp.json())["error"] == "invalid_request"


async def test_a_jwks_issuer_token_signed_by_another_key_is_invalid_request(client):
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    resp = await post_token(client, exchange_form(signed(stranger, "RS256", JWKS_ISS, kid="partner-1")),
                            auth="federated")
    assert (await resp.json())["error"] == "invalid_request"


async def test_replay_check_accepts_a_jti_once(client, rsa_key):
    token = signed(rsa_key, "RS256", JWKS_ISS, kid="partner-1")
    await exchange_ok(client, exchange_form(token), auth="federated")
    again = await post_token(client, exchange_form(token), auth="federated")
    assert again.status == 400
    assert (await again.json())["error"] == "invalid_request"


async def test_replay_check_refuses_a_token_without_jti(client, rsa_key):
    token = signed(rsa_key, "RS256", JWKS_ISS, kid="partner-1", jti=None)
    resp = await post_token(client, exchange_form(token), auth="federated")
    assert (await resp.json())["error"] == "invalid_request"


async def test_a_refused_request_does_not_burn_a_single_use_token(client, rsa_key):
    token = signed(rsa_key, "RS256", JWKS_ISS, kid="partner-1")
    wrong = await post_token(client, exchange_form(token, audience="reports"), auth="federated")
    assert (await wrong.json())["error"] == "invalid_target"
    await exchange_ok(client, exchange_form(token), auth="federated")


async def test_a_pem_certificate_issuer_token_is_accepted(client, pem_key):
    await exchange_ok(client, exchange_form(signed(pem_key, "ES256", PEM_ISS)), auth="federated")


async def test_a_pem_issuer_refuses_an_hmac_token_signed_with_its_public_key(client, pem_key):
    public_pem = pem_key.public_key().public_bytes(serialization.Encoding.PEM,
                                                   serialization.PublicFormat.SubjectPublicKeyInfo)
    import base64
    import hashlib
    import hmac
    enc = lambda raw: base64.urlsafe_b64encode(raw).rstrip(b"=").decode()  # noqa: E731
    now = int(time.time())
    header = enc(json.dumps({"alg": "HS256"}).encode())
    payload = enc(json.dumps({"iss": PEM_ISS, "sub": "x", "aud": BROKER_AUD, "iat": now, "exp": now + 60}).encode())
    mac = hmac.new(public_pem, f"{header}.{payload}".encode(), hashlib.sha256).digest()
    resp = await post_token(client, exchange_form(f"{header}.{payload}.{enc(mac)}"), auth="federated")
    assert (await resp.json())["error"] == "invalid_request"


async def test_max_token_age_refuses_old_tokens(client, pem_key):
    old = signed(pem_key, "ES256", PEM_ISS, iat=int(time.time()) - 3600)
    resp = await post_token(client, exchange_form(old), auth="federated")
    assert resp.status == 400
    assert (await resp.json())["error"] == "invalid_request"
    no_iat = signed(pem_key, "ES256", PEM_ISS, iat=None)
    assert (await (await post_token(client, exchange_form(no_iat), auth="federated")).json())["error"] == \
        "invalid_request"


async def test_an_hmac_secret_issuer_token_is_accepted_and_subjects_do_not_collide(client, pem_key):
    a = await exchange_ok(client, exchange_form(partner_token(sub="ext-user", scope="partner.read")),
                          auth="federated")
    b = await exchange_ok(client, exchange_form(signed(pem_key, "ES256", PEM_ISS)), auth="federated")
    sub = lambda body: jwt.decode(body["access_token"], options={"verify_signature": False})["sub"]  # noqa: E731
    assert sub(a) != sub(b)     # same external `sub`, different issuers
    assert PARTNER_ISS != PEM_ISS
