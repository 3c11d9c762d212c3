"""Adversarial review, below HTTP: refresh-token families on real Redis, trusted issuers' JWKS
edge cases (over a real HTTPS server), client-secret comparison, and configuration rules that
keep the issuer routing unambiguous."""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import ssl
import time

import aiohttp
import jwt
import pytest
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from service.errors import ConfigurationError, InvalidGrant, TokenInvalid
from service.grants.client_auth import secret_matches
from service.grants.refresh_families import RefreshTokens
from service.settings import TrustedIssuer, load_settings
from service.storage import open_store
from service.validation.jwks import JwksCache
from service.validation.trusted_issuers import TrustedIssuerValidator
from tests.support.threaded import start_threaded
from tests.validation.forge import b64, rsa_jwk, sign

ISS = "https://idp.review.example"
AUD = "https://broker.example"


# --- refresh families on real Redis -------------------------------------------------------------

@pytest.fixture(name="redis_store")
async def _redis_store():
    prefix = f"secreview-{secrets.token_hex(4)}:"
    store = open_store(f"redis://127.0.0.1:6379/13?prefix={prefix}")
    yield store
    for key, _ in await store.scan(""):
        await store.delete(key)
    await store.close()


async def test_on_redis_every_concurrent_double_refresh_ends_with_one_winner_and_a_dead_family(redis_store):
    repo = RefreshTokens(redis_store)
    for _ in range(25):
        token = await repo.create_family("portal", {"sub": "s", "aud": ["a"], "scope": []},
                                         exp=int(time.time()) + 600, now=time.time())
        results = await asyncio.gather(*(repo.rotate(token, client_id="portal", now=time.time())
                                         for _ in range(2)), return_exceptions=True)
        winners = [r for r in results if not isinstance(r, BaseException)]
        losers = [r for r in results if isinstance(r, BaseException)]
        assert len(winners) == 1 and len(losers) == 1
        assert isinstance(losers[0], InvalidGrant) and losers[0].reason == "refresh_token_reused"
        assert await repo.lookup(winners[0][1], now=time.time()) is None      # the successor is dead


async def test_a_refresh_token_of_another_client_neither_rotates_nor_revokes_the_family(redis_store):
    repo = RefreshTokens(redis_store)
    token = await repo.create_family("portal", {"sub": "s", "aud": ["a"], "scope": []},
                                     exp=int(time.time()) + 600, now=time.time())
    for _ in range(3):
        with pytest.raises(InvalidGrant):
            await repo.rotate(token, client_id="mallory", now=time.time())
        assert not await repo.revoke(token, client_id="mallory", now=time.time())
    assert await repo.lookup(token, now=time.time()) is not None
    await repo.rotate(token, client_id="portal", now=time.time())


# --- client secrets -----------------------------------------------------------------------------

@pytest.mark.parametrize(("presented", "configured", "expected"), [
    ("s3cret", "s3cret", True),
    ("s3cret", "s3cret-and-more", False),            # a prefix of the secret
    ("s3cret-and-more", "s3cret", False),            # the secret as a prefix
    ("", "s3cret", False),
    ("s3cret", "", False),
    ("ümlaut:with:colons", "ümlaut:with:colons", True),
    ("s3cret", "sha256:" + hashlib.sha256(b"s3cret").hexdigest(), True),
    ("s3cret", "sha256:" + hashlib.sha256(b"s3cret").hexdigest().upper(), True),
    ("sha256:" + hashlib.sha256(b"s3cret").hexdigest(), "sha256:" + hashlib.sha256(b"s3cret").hexdigest(), False),
    (hashlib.sha256(b"s3cret").hexdigest(), "sha256:" + hashlib.sha256(b"s3cret").hexdigest(), False),
    ("S3cret", "s3cret", False),
])
def test_secret_matching_is_exact_for_plain_and_hashed_secrets(presented, configured, expected):
    assert secret_matches(presented, configured) is expected


# --- configuration: one issuer URL, one trusted issuer -------------------------------------------

def _issuers_toml(*entries: tuple[str, str]) -> str:
    out = '[server]\npublic_url = "https://broker.example"\n'
    for name, iss in entries:
        out += (f'\n[[trusted_issuers]]\nname = "{name}"\nissuer = "{iss}"\n'
                f'secret = "{"s" * 40}"\naudiences = ["{AUD}"]\nalgorithms = ["HS256"]\n')
    return out


def test_two_trusted_issuers_with_the_same_issuer_url_are_a_configuration_error(tmp_path):
    """The unverified `iss` routes a token to exactly one validator: a second entry with the
    same `issuer` would silently shadow the first (its keys, audiences, replay_check, scope_map)."""
    with pytest.raises(ConfigurationError) as caught:
        load_settings(_issuers_toml(("partner-a", ISS), ("partner-b", ISS)), {}, base_dir=tmp_path)
    assert any(p.startswith("trusted_issuers[partner-b].issuer:") for p in caught.value.problems), \
        caught.value.problems


def test_a_trusted_issuer_may_not_claim_the_brokers_own_issuer(tmp_path):
    with pytest.raises(ConfigurationError) as caught:
        load_settings(_issuers_toml(("partner", "https://broker.example")), {}, base_dir=tmp_path)
    assert any(p.startswith("trusted_issuers[partner].issuer:") for p in caught.value.problems), \
        caught.value.problems


# --- trusted issuers' JWKS edge cases (real HTTPS) ------------------------------------------------

RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC_KEY = ec.generate_private_key(ec.SECP256R1())
JWKS: dict[str, list[dict]] = {}


def ec_jwk(key: ec.EllipticCurvePrivateKey, kid: str) -> dict:
    nums = key.public_key().public_numbers()
    return {"kty": "EC", "crv": "P-256", "kid": kid, "use": "sig",
            "x": b64(nums.x.to_bytes(32, "big")), "y": b64(nums.y.to_bytes(32, "big"))}


@pytest.fixture(name="idp", scope="module")
def _idp(pki):
    def make_app(base_url: str) -> web.Application:
        async def jwks(request: web.Request) -> web.Response:
            return web.json_response({"keys": JWKS.get(request.match_info["name"], [])})
        app = web.Application()
        app.router.add_get("/{name}/jwks", jwks)
        return app
    server = start_threaded(make_app, pki)
    yield server
    server.stop()


@pytest.fixture(name="validator_for")
async def _validator_for(idp, pki):
    ctx = ssl.create_default_context(cafile=str(pki.ca_pem))
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ctx))
    cache = JwksCache(session, timeout=5)

    def make(name: str, keys: list[dict], algorithms: tuple[str, ...] = ("RS256",)) -> TrustedIssuerValidator:
        JWKS[name] = keys
        ti = TrustedIssuer(name=name, issuer=ISS, jwks_uri=f"{idp.url}/{name}/jwks", audiences=(AUD,),
                           algorithms=algorithms)
        return TrustedIssuerValidator((ti,), cache)
    yield make
    await cache.close()
    await session.close()


def claims(**over) -> dict:
    now = int(time.time())
    return {"iss": ISS, "sub": "ext-user", "aud": AUD, "iat": now, "exp": now + 300, "jti": secrets.token_hex(8),
            **over}


async def refused(validator: TrustedIssuerValidator, token: str) -> str:
    with pytest.raises(TokenInvalid) as caught:
        await validator.validate(token, now=time.time())
    return caught.value.reason


async def test_an_rsa_key_published_with_alg_hs256_cannot_verify_anything(validator_for):
    v = validator_for("hs-labelled", [{**rsa_jwk(RSA_KEY, "k1"), "alg": "HS256"}])
    assert await refused(v, sign({"alg": "RS256", "kid": "k1"}, claims(), key=RSA_KEY)) == "alg"
    pem = RSA_KEY.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    assert await refused(v, sign({"alg": "HS256", "kid": "k1"}, claims(), alg="HS256", key=pem)) == "alg"


async def test_a_token_of_one_key_family_under_a_kid_of_another_is_refused_not_a_typeerror(validator_for):
    v = validator_for("mixed", [rsa_jwk(RSA_KEY, "rsa-1"), ec_jwk(EC_KEY, "ec-1")], ("RS256", "ES256"))
    assert await refused(v, sign({"alg": "ES256", "kid": "rsa-1"}, claims(), alg="ES256", key=EC_KEY)) \
        == "signature"
    assert await refused(v, sign({"alg": "RS256", "kid": "ec-1"}, claims(), key=RSA_KEY)) == "signature"
    ok_ti, _ = await v.validate(sign({"alg": "ES256", "kid": "ec-1"}, claims(), alg="ES256", key=EC_KEY),
                                now=time.time())
    assert ok_ti.name == "mixed"


async def test_duplicate_kids_keep_the_first_key_only(validator_for):
    v = validator_for("dupes", [ec_jwk(EC_KEY, "dup"), rsa_jwk(RSA_KEY, "dup")], ("RS256", "ES256"))
    assert await refused(v, sign({"alg": "RS256", "kid": "dup"}, claims(), key=RSA_KEY)) == "signature"
    await v.validate(sign({"alg": "ES256", "kid": "dup"}, claims(), alg="ES256", key=EC_KEY), now=time.time())


async def test_symmetric_and_encryption_keys_in_a_jwks_are_never_used(validator_for):
    secret = b"a-shared-secret-of-more-than-32-bytes!!"
    v = validator_for("oct", [{"kty": "oct", "kid": "sym", "k": b64(secret)},
                              {**rsa_jwk(RSA_KEY, "enc"), "use": "enc"}], ("RS256", "HS256"))
    assert await refused(v, sign({"alg": "HS256", "kid": "sym"}, claims(), alg="HS256", key=secret)) == "alg"
    assert await refused(v, sign({"alg": "RS256", "kid": "enc"}, claims(), key=RSA_KEY)) == "unknown_kid"


async def test_keys_carried_in_the_token_header_are_ignored(validator_for):
    attacker = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    v = validator_for("embedded", [rsa_jwk(RSA_KEY, "k1")])
    header = {"alg": "RS256", "kid": "k1", "jwk": rsa_jwk(attacker, "k1"), "jku": "https://evil.example/jwks"}
    assert await refused(v, sign(header, claims(), key=attacker)) == "signature"


async def test_a_pyjwt_padded_signature_is_refused(validator_for):
    """PyJWT accepts a signature segment with `==` appended; our parser takes canonical base64url
    only. (ES256's (r, n - s) twin does verify: replay_check keys on `jti`, never on the token —
    tests/http/test_security_review.py shows the twin is refused as a replay.)"""
    v = validator_for("malleable", [ec_jwk(EC_KEY, "ec-1")], ("ES256",))
    token = sign({"alg": "ES256", "kid": "ec-1"}, claims(), alg="ES256", key=EC_KEY)
    assert await refused(v, token + "==") == "malformed"
    assert jwt.decode(token + "==", EC_KEY.public_key(), algorithms=["ES256"], audience=AUD)["sub"] == "ext-user"
    await v.validate(token, now=time.time())
