"""TokenIssuer: RFC 9068 tokens that PyJWT verifies from our JWKS, and hostile tokens refused."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from service.errors import TokenInvalid
from service.issuing import Keyring, MintedToken, TokenIssuer

ISS = "https://broker.example/tb"
T0 = 1_800_000_000.0
CLAIMS = {"sub": "u-1", "aud": "dashboard", "client_id": "portal", "scope": "read",
          "tid": "t-1", "oid": "o-1", "act": {"sub": "svc"}}


@pytest.fixture(name="issuer")
def _issuer(tmp_path):
    return TokenIssuer(ISS, Keyring.load_or_create(tmp_path / "keys", "ES256", now=T0))


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unsigned(header: dict, payload: dict) -> str:
    return f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(payload).encode())}"


def _our_claims(**over):
    return {"iss": ISS, "sub": "u-1", "iat": int(T0), "exp": int(T0) + 60, "jti": "j-1", **over}


def _signed_with_our_key(issuer: TokenIssuer, payload: dict, **header) -> str:
    key = issuer.keyring.signing_key(T0)
    headers = {"typ": "at+jwt", "kid": key.kid, **header}
    return jwt.encode(payload, key.private_key, algorithm=key.alg, headers=headers)


def _sign_raw(issuer: TokenIssuer, payload: object) -> str:
    """Sign any JSON payload (PyJWT's encode refuses some hostile claims) with our current key."""
    key = issuer.keyring.signing_key(T0)
    return jwt.api_jws.encode(json.dumps(payload).encode(), key.private_key, algorithm=key.alg,
                              headers={"typ": "at+jwt", "kid": key.kid})


def _refused(issuer: TokenIssuer, token, now: float = T0, **kw) -> str:
    with pytest.raises(TokenInvalid) as err:
        issuer.verify(token, now=now, **kw)
    return err.value.reason


@pytest.mark.parametrize("alg", ["ES256", "RS256", "EdDSA"])
def test_minted_tokens_verify_with_pyjwt_against_the_published_jwks(tmp_path, alg):
    now = time.time()  # PyJWT checks iat/exp against the real clock
    ring = Keyring.load_or_create(tmp_path / "keys", alg, now=now)
    minted = TokenIssuer(ISS, ring).mint(CLAIMS, now=now, ttl=300)

    header = jwt.get_unverified_header(minted.token)
    assert header == {"typ": "at+jwt", "alg": alg, "kid": minted.kid}
    [published] = [k for k in ring.jwks(now)["keys"] if k["kid"] == header["kid"]]
    claims = jwt.decode(minted.token, jwt.PyJWK(published), algorithms=[alg], audience="dashboard",
                        issuer=ISS, options={"require": ["exp", "iat", "jti"]})
    assert {k: claims[k] for k in CLAIMS} == CLAIMS
    assert claims["exp"] == minted.exp == claims["iat"] + 300
    assert claims["jti"] == minted.jti


def test_mint_sets_integer_times_a_random_128_bit_jti_and_the_exact_issuer(issuer):
    minted = issuer.mint(CLAIMS, now=T0 + 0.7, ttl=10.2)
    other = issuer.mint(CLAIMS, now=T0 + 0.7, ttl=10.2)

    assert isinstance(minted, MintedToken)
    claims = issuer.verify(minted.token, now=T0 + 1)
    assert claims["iss"] == ISS
    assert claims["iat"] == int(T0) and claims["exp"] == int(T0) + 10 == minted.exp
    assert len(base64.urlsafe_b64decode(minted.jti + "==")) == 16
    assert minted.jti != other.jti


@pytest.mark.parametrize("ttl", [0, -5, 0.5, float("nan"), float("inf"), True])
def test_mint_refuses_a_lifetime_that_is_not_positive(issuer, ttl):
    with pytest.raises(ValueError):
        issuer.mint(CLAIMS, now=T0, ttl=ttl)


@pytest.mark.parametrize("claim", ["iss", "exp", "iat", "jti", "nbf"])
def test_mint_refuses_caller_claims_that_only_the_issuer_sets(issuer, claim):
    with pytest.raises(ValueError):
        issuer.mint({**CLAIMS, claim: 1}, now=T0, ttl=60)


def test_a_token_is_valid_until_exp_and_leeway_stretches_it(issuer):
    minted = issuer.mint(CLAIMS, now=T0, ttl=60)

    assert issuer.verify(minted.token, now=T0 + 59)["sub"] == "u-1"
    assert _refused(issuer, minted.token, now=T0 + 60) == "expired"
    assert issuer.verify(minted.token, now=T0 + 60, leeway=30)["jti"] == minted.jti


def test_a_token_issued_in_the_future_is_refused(issuer):
    minted = issuer.mint(CLAIMS, now=T0 + 120, ttl=60)
    assert _refused(issuer, minted.token, now=T0) == "not_yet_valid"


def test_rotation_old_tokens_verify_until_their_key_retires_new_tokens_use_the_new_kid(issuer):
    ring = issuer.keyring
    before = issuer.mint(CLAIMS, now=T0, ttl=900)
    new_kid = ring.rotate(T0, 600, max_token_ttl=900)

    during = issuer.mint(CLAIMS, now=T0 + 599, ttl=900)
    after = issuer.mint(CLAIMS, now=T0 + 600, ttl=900)

    assert during.kid == before.kid != new_kid == after.kid
    assert issuer.verify(during.token, now=T0 + 1498)["jti"] == during.jti
    assert issuer.verify(after.token, now=T0 + 1498)["jti"] == after.jti
    assert _refused(issuer, during.token, now=T0 + 1500, leeway=60) == "unknown_kid"


def test_a_server_verifies_tokens_signed_after_a_rotation_by_another_process(tmp_path):
    server = TokenIssuer(ISS, Keyring.load_or_create(tmp_path / "k", "ES256", now=T0))
    other = TokenIssuer(ISS, Keyring.load_or_create(tmp_path / "k", "ES256", now=T0))
    other.keyring.rotate(T0, 0, max_token_ttl=900)
    token = other.mint(CLAIMS, now=T0 + 1, ttl=60).token

    assert _refused(server, token, now=T0 + 1) == "unknown_kid"
    assert server.keyring.reload() is True
    assert server.verify(token, now=T0 + 1)["sub"] == "u-1"


def test_a_tampered_payload_is_refused(issuer):
    header, _, signature = issuer.mint(CLAIMS, now=T0, ttl=60).token.split(".")
    forged = _b64(json.dumps(_our_claims(scope="read write admin")).encode())
    assert _refused(issuer, f"{header}.{forged}.{signature}") == "signature"


def test_alg_none_in_any_spelling_is_refused(issuer):
    kid = issuer.keyring.signing_key(T0).kid
    for alg in ("none", "None", "NONE"):
        token = _unsigned({"typ": "at+jwt", "alg": alg, "kid": kid}, _our_claims()) + "."
        assert _refused(issuer, token) == "alg"


def test_hs256_with_our_public_key_as_the_secret_is_refused(issuer):
    key = issuer.keyring.signing_key(T0)
    secret = key.private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    signing_input = _unsigned({"typ": "at+jwt", "alg": "HS256", "kid": key.kid}, _our_claims())
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    assert _refused(issuer, f"{signing_input}.{_b64(mac)}") == "alg"


def test_a_token_signed_with_another_key_family_under_our_kid_is_refused_not_a_typeerror(issuer):
    kid = issuer.keyring.signing_key(T0).kid
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    token = jwt.encode(_our_claims(), rsa_key, algorithm="RS256", headers={"typ": "at+jwt", "kid": kid})
    assert _refused(issuer, token) == "alg"


def test_keys_embedded_in_the_header_are_ignored(issuer):
    kid = issuer.keyring.signing_key(T0).kid
    foreign = ec.generate_private_key(ec.SECP256R1())
    embedded = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(foreign.public_key()))
    token = jwt.encode(_our_claims(), foreign, algorithm="ES256",
                       headers={"typ": "at+jwt", "kid": kid, "jwk": embedded, "jku": "https://evil.example/"})
    assert _refused(issuer, token) == "signature"


def test_an_unknown_or_malformed_kid_is_refused(issuer):
    foreign = ec.generate_private_key(ec.SECP256R1())
    for kid in ("someone-elses", "", None):
        headers = {"typ": "at+jwt"} if kid is None else {"typ": "at+jwt", "kid": kid}
        token = jwt.encode(_our_claims(), foreign, algorithm="ES256", headers=headers)
        assert _refused(issuer, token) == "unknown_kid"
    kid_list = _unsigned({"typ": "at+jwt", "alg": "ES256", "kid": ["x"]}, _our_claims()) + ".c2ln"
    assert _refused(issuer, kid_list) in {"unknown_kid", "malformed"}


def test_a_wrong_or_prefixed_issuer_is_refused(issuer):
    for iss in ("https://evil.example", "https://broker.example/tb/", "https://broker.example/t", ["x"]):
        assert _refused(issuer, _sign_raw(issuer, _our_claims(iss=iss))) == "issuer"


@pytest.mark.parametrize("typ", ["JWT", "jwt", "at+JWTX", None])
def test_a_token_without_the_at_jwt_type_is_refused(issuer, typ):
    token = _signed_with_our_key(issuer, _our_claims(), typ=typ)
    assert _refused(issuer, token) == "token_type"


@pytest.mark.parametrize("claims", [
    _our_claims(exp=str(int(T0) + 60)), _our_claims(exp=T0 + 60.5), _our_claims(exp=True),
    _our_claims(iat=str(int(T0))), _our_claims(nbf="0"), _our_claims(jti=7),
    {k: v for k, v in _our_claims().items() if k != "exp"},
    {k: v for k, v in _our_claims().items() if k != "jti"},
    {k: v for k, v in _our_claims().items() if k != "iat"},
])
def test_tokens_with_missing_or_non_integer_registered_claims_are_refused(issuer, claims):
    _refused(issuer, _sign_raw(issuer, claims))


@pytest.mark.parametrize("token", [
    "", "abc", "a.b.c", "a.b", "....", "x" * 20_000, None, b"bytes", 42,
    _unsigned({"typ": "at+jwt", "alg": "ES256"}, {}).replace(".", "") + ".x.y",
    _b64(b"[" * 5000) + ".e30.c2ln", _b64(b"[]") + ".e30.c2ln", _b64(b"\xff\xfe") + ".e30.c2ln",
])
def test_garbage_is_refused_with_token_invalid(issuer, token):
    _refused(issuer, token)


def test_a_valid_signature_over_a_non_object_payload_is_refused(issuer):
    for payload in ([1, 2], "text", None):
        assert _refused(issuer, _sign_raw(issuer, payload)) == "malformed"
