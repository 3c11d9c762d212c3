"""Trusted issuers' JWKS edge cases over a real HTTPS server: keys of the wrong family, duplicate
kids, symmetric/encryption keys, keys in the token header, padded signatures."""

from __future__ import annotations

import secrets
import ssl
import time

import aiohttp
import jwt
import pytest
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from service.errors import TokenInvalid
from service.settings import TrustedIssuer
from service.validation.jwks import JwksCache
from service.validation.trusted_issuers import TrustedIssuerValidator
from tests.support.threaded import start_threaded
from tests.validation.forge import b64, rsa_jwk, sign

ISS = "https://idp.review.example"
AUD = "https://broker.example"


# --- refresh families on real Redis -------------------------------------------------------------


# --- client secrets -----------------------------------------------------------------------------


# --- configuration: one issuer URL, one trusted issuer -------------------------------------------


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
    tests/http/security/test_replay.py shows the twin is refused as a replay.)"""
    v = validator_for("malleable", [ec_jwk(EC_KEY, "ec-1")], ("ES256",))
    token = sign({"alg": "ES256", "kid": "ec-1"}, claims(), alg="ES256", key=EC_KEY)
    assert await refused(v, token + "==") == "malformed"
    assert jwt.decode(token + "==", EC_KEY.public_key(), algorithms=["ES256"], audience=AUD)["sub"] == "ext-user"
    await v.validate(token, now=time.time())
