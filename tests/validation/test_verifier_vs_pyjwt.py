"""Differential test: the one JWT verifier (validation/jwt_checks.py) against PyJWT.

Tokens signed by PyJWT with every algorithm the broker accepts (trusted issuers, client
assertions, Entra, our own tokens) verify identically: the same claims when valid, a refusal by
both when tampered with or signed by another key, and the same expiry/nbf/iat boundaries.
Where the two deliberately differ, `DIFFERENCES` lists the case with both outcomes; the test
fails if either side changes, so a difference is always a documented decision
(docs/validation.md, "One verifier").
"""

from __future__ import annotations

import base64
import json
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from service.errors import TokenInvalid
from service.settings.issuers_and_clients import HMAC_ALGS, KEY_ALGS
from service.validation.jwt_checks import check_header, check_times, parse_compact, verify_signature

T0 = 1_800_000_000
CLAIMS = {"iss": "https://idp.example", "sub": "user-1", "aud": "https://broker.example",
          "iat": T0, "exp": T0 + 600, "jti": "j-1", "scope": "read"}
_CURVES = {"ES256": ec.SECP256R1, "ES384": ec.SECP384R1, "ES512": ec.SECP521R1}


def private_key(alg: str) -> Any:
    if alg in HMAC_ALGS:
        return b"k" * 64
    if alg in _CURVES:
        return ec.generate_private_key(_CURVES[alg]())
    if alg == "EdDSA":
        return ed25519.Ed25519PrivateKey.generate()
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def public_key(key: Any) -> Any:
    return key if isinstance(key, bytes) else key.public_key()


def ours(token: str, alg: str, key: Any, *, now: float = T0, leeway: float = 0) -> dict[str, Any]:
    """The broker's verification of a signed token: parse, header, signature, times."""
    jws = parse_compact(token)
    check_header(jws.header, (alg,))
    if not verify_signature(alg, key, jws.signing_input, jws.signature):
        raise TokenInvalid("signature")
    check_times(jws.payload, now=now, skew=leeway)
    return dict(jws.payload)


def pyjwt(token: str, alg: str, key: Any) -> dict[str, Any]:
    """PyJWT's verification of the signature (times are compared separately, with `now` given)."""
    return jwt.decode(token, key, algorithms=[alg], options={"verify_exp": False, "verify_iat": False,
                                                            "verify_nbf": False, "verify_aud": False})


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


# --- every algorithm we accept ---------------------------------------------------------------

ACCEPTED = sorted(set(KEY_ALGS) | set(HMAC_ALGS))


@pytest.mark.parametrize("alg", ACCEPTED)
def test_a_token_pyjwt_signed_verifies_identically(alg):
    key = private_key(alg)
    token = jwt.encode(CLAIMS, key, algorithm=alg, headers={"kid": "k1"})
    assert ours(token, alg, public_key(key)) == pyjwt(token, alg, public_key(key)) == CLAIMS


@pytest.mark.parametrize("alg", ACCEPTED)
def test_a_tampered_payload_is_refused_by_both(alg):
    key = private_key(alg)
    header, _, signature = jwt.encode(CLAIMS, key, algorithm=alg).split(".")
    forged = f"{header}.{_b64(json.dumps({**CLAIMS, 'scope': 'admin'}).encode())}.{signature}"
    with pytest.raises(jwt.InvalidSignatureError):
        pyjwt(forged, alg, public_key(key))
    with pytest.raises(TokenInvalid) as caught:
        ours(forged, alg, public_key(key))
    assert caught.value.reason == "signature"


@pytest.mark.parametrize("alg", ACCEPTED)
def test_a_token_signed_by_another_key_of_the_same_family_is_refused_by_both(alg):
    token = jwt.encode(CLAIMS, private_key(alg) if alg not in HMAC_ALGS else b"x" * 64, algorithm=alg)
    other = public_key(private_key(alg))
    with pytest.raises(jwt.InvalidSignatureError):
        pyjwt(token, alg, other)
    with pytest.raises(TokenInvalid) as caught:
        ours(token, alg, other)
    assert caught.value.reason == "signature"


@pytest.mark.parametrize("alg", ACCEPTED)
def test_an_algorithm_outside_the_allow_list_is_refused_by_both(alg):
    key = private_key(alg)
    token = jwt.encode(CLAIMS, key, algorithm=alg)
    other = "HS256" if alg != "HS256" else "HS512"
    with pytest.raises(jwt.InvalidAlgorithmError):
        jwt.decode(token, public_key(key), algorithms=[other], options={"verify_exp": False})
    with pytest.raises(TokenInvalid) as caught:
        ours(token, other, public_key(key))
    assert caught.value.reason == "alg"


# --- one time boundary -----------------------------------------------------------------------

def _pyjwt_time_refusal(claims: dict[str, Any], now: float, leeway: float) -> str | None:
    """PyJWT's own exp/nbf/iat rules at a given `now` (its public decode reads the wall clock)."""
    checker = jwt.api_jwt.PyJWT()
    try:
        checker._validate_exp(claims, now, leeway)
        if "nbf" in claims:
            checker._validate_nbf(claims, now, leeway)
        checker._validate_iat(claims, now, leeway)
    except jwt.ExpiredSignatureError:
        return "expired"
    except (jwt.ImmatureSignatureError, jwt.InvalidIssuedAtError):
        return "not_yet_valid"
    return None


def _our_time_refusal(claims: dict[str, Any], now: float, leeway: float) -> str | None:
    try:
        check_times(claims, now=now, skew=leeway)
    except TokenInvalid as e:
        return e.reason
    return None


@pytest.mark.parametrize("leeway", [0, 30])
@pytest.mark.parametrize("offset", [-31, -30, -29, -1, 0, 1, 29, 30, 31])
def test_exp_nbf_and_iat_have_the_same_boundaries(leeway, offset):
    """Expired when now >= exp + leeway; not yet valid when nbf or iat > now + leeway."""
    now = T0 + 0.5 * (offset % 2)   # whole and half seconds
    for claims in ({**CLAIMS, "exp": T0 + offset}, {**CLAIMS, "nbf": T0 + offset},
                   {**CLAIMS, "iat": T0 + offset}):
        assert _our_time_refusal(claims, now, leeway) == _pyjwt_time_refusal(claims, now, leeway), claims


# --- the deliberate differences --------------------------------------------------------------

@dataclass(frozen=True)
class Difference:
    """A token PyJWT accepts (or fails on with a foreign exception) that we refuse, and why."""
    why: str
    token: Callable[[Any], str]          # given the ES256 private key
    pyjwt: str                           # "accepts" or the exception class PyJWT raises
    ours: str                            # our refusal reason
    key: Callable[[Any], Any] = public_key


def _signed_raw(key: Any, payload: bytes, header: dict[str, Any] | None = None) -> str:
    return jwt.api_jws.encode(payload, key, algorithm="ES256", headers=header)


DIFFERENCES = {
    "duplicate claim names": Difference(
        "a second `sub` would silently win in PyJWT; two parsers could read two different subjects",
        lambda k: _signed_raw(k, b'{"sub": "alice", "sub": "admin", "exp": 1800000600}'),
        pyjwt="accepts", ours="malformed"),
    "exp as a numeric string": Difference(
        "RFC 7519 NumericDate is a JSON number; PyJWT casts with int()",
        lambda k: jwt.encode({**CLAIMS, "exp": str(T0 + 600)}, k, algorithm="ES256"),
        pyjwt="accepts", ours="claims"),
    "exp as a float": Difference(
        "we accept integer NumericDates only, so the boundary is exact",
        lambda k: jwt.encode({**CLAIMS, "exp": T0 + 600.5}, k, algorithm="ES256"),
        pyjwt="accepts", ours="claims"),
    "padded signature": Difference(
        "base64url in JWS is unpadded; accepting padding makes tokens malleable (a replay-cache bypass)",
        lambda k: jwt.encode(CLAIMS, k, algorithm="ES256") + "==",
        pyjwt="accepts", ours="malformed"),
    "NaN in the payload": Difference(
        "not JSON (RFC 8259); Python's json accepts it",
        lambda k: _signed_raw(k, b'{"sub": "alice", "exp": 1800000600, "x": NaN}'),
        pyjwt="accepts", ours="malformed"),
    "a key of the wrong type": Difference(
        "an RSA public key handed to an ES256 check: PyJWT raises TypeError, we answer 'signature'",
        lambda k: jwt.encode(CLAIMS, k, algorithm="ES256"),
        pyjwt="TypeError", ours="signature",
        key=lambda k: rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()),
}


@pytest.mark.parametrize("name", sorted(DIFFERENCES))
def test_each_deliberate_difference_from_pyjwt_is_as_documented(name):
    case = DIFFERENCES[name]
    signer = private_key("ES256")
    token, key = case.token(signer), case.key(signer)
    try:
        pyjwt(token, "ES256", key)
        theirs = "accepts"
    except Exception as e:  # noqa: BLE001 - recording what PyJWT does is the point
        theirs = type(e).__name__
    with pytest.raises(TokenInvalid) as caught:
        ours(token, "ES256", key)
    assert (theirs, caught.value.reason) == (case.pyjwt, case.ours), case.why


def test_an_rsa_key_under_2048_bits_never_verifies_here_though_pyjwt_accepts_it():
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    with warnings.catch_warnings():      # recent PyJWT warns (InsecureKeyLengthWarning) but accepts
        warnings.simplefilter("ignore")
        token = jwt.encode(CLAIMS, weak, algorithm="RS256")
        assert pyjwt(token, "RS256", weak.public_key()) == CLAIMS
    with pytest.raises(TokenInvalid) as caught:
        ours(token, "RS256", weak.public_key())
    assert caught.value.reason == "signature"
