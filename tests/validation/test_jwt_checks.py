"""The strict JWS parser and claim helpers refuse what PyJWT would let through."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from service.errors import TokenInvalid
from service.validation.jwt_checks import (
    MAX_TOKEN_BYTES,
    check_header,
    check_times,
    int_claim,
    parse_compact,
    str_claim,
    str_list_claim,
    verify_signature,
)
from tests.validation.forge import ATTACKER_EC, ATTACKER_RSA, b64, public_pem, segment, sign

HEADER = {"alg": "RS256", "kid": "k1", "typ": "JWT"}
CLAIMS = {"sub": "s", "exp": 2_000_000_000}


def reason(token) -> str:
    with pytest.raises(TokenInvalid) as info:
        jws = parse_compact(token)
        check_header(jws.header, ("RS256",))
    return info.value.reason


def test_a_well_formed_token_parses_and_its_signature_verifies():
    token = sign(HEADER, CLAIMS)
    jws = parse_compact(token)
    assert jws.payload == CLAIMS and check_header(jws.header, ("RS256",)) == "RS256"
    assert verify_signature("RS256", ATTACKER_RSA.public_key(), jws.signing_input, jws.signature)


SIG = b64(b"sig")


def raw(header, payload, sig: str = SIG) -> str:
    h = header if isinstance(header, str) and "{" not in header else segment(header)
    p = payload if isinstance(payload, str) and "{" not in payload and "[" not in payload \
        else segment(payload)
    return f"{h}.{p}.{sig}"


@pytest.mark.parametrize("token", [
    "", "abc", "a.b", "..", "a.b.c.d.e", "é.é.é",
    raw(HEADER, CLAIMS, SIG + "=="),                                 # padded signature (malleable)
    raw(segment(HEADER) + "=", CLAIMS),
    raw(HEADER, segment(CLAIMS) + "+/"),                             # standard base64 alphabet
    raw(HEADER, "[1, 2]"),                                           # payload not an object
    raw(HEADER, b64(b"not json")),
    raw('{"alg":"RS256","alg":"none"}', CLAIMS),                     # duplicate header key
    raw(HEADER, '{"exp":1,"exp":9999999999}'),                       # duplicate claim
    raw(HEADER, '{"exp":NaN}'),
    raw(HEADER, b64(b"\xff\xfe{}")),                                 # not UTF-8
    raw(HEADER, "[" * 5000 + "]" * 5000),                            # deep nesting
])
def test_malformed_tokens_are_refused_as_malformed(token):
    assert reason(token) == "malformed"


def test_non_canonical_base64_is_refused():
    canonical = b64(b"sigs")                 # 'c2lncw': the last char carries 4 unused bits
    assert reason(raw(HEADER, CLAIMS, canonical[:-1] + "x")) == "malformed"


def test_oversized_tokens_are_refused_before_parsing():
    assert reason("a" * (MAX_TOKEN_BYTES + 1)) == "too_large"


@pytest.mark.parametrize("alg", ["none", "None", "NONE", "nOnE", "rs256", "HS256", "ES256", "", None, 1])
def test_only_the_allowed_algorithm_in_exact_case_passes(alg):
    header = {**HEADER, "alg": alg}
    assert reason(f"{segment(header)}.{segment(CLAIMS)}.") == "alg"


def test_any_crit_header_is_refused():
    assert reason(sign({**HEADER, "crit": ["exp"], "exp": 1}, CLAIMS)) == "crit"
    assert reason(sign({**HEADER, "crit": []}, CLAIMS)) == "crit"


def test_a_non_string_kid_is_malformed():
    assert reason(sign({**HEADER, "kid": 7}, CLAIMS)) == "malformed"


@pytest.mark.parametrize("value", ["2000000000", 2_000_000_000.5, 2e9, True, None, [1]])
def test_times_must_be_integers(value):
    with pytest.raises(TokenInvalid):
        int_claim({"exp": value}, "exp")


def test_time_checks_apply_the_skew_and_require_exp():
    assert check_times({"exp": 1000}, now=1100, skew=120) == 1000
    with pytest.raises(TokenInvalid) as info:
        check_times({"exp": 1000}, now=1121, skew=120)
    assert info.value.reason == "expired"
    with pytest.raises(TokenInvalid) as info:
        check_times({"exp": 5000, "nbf": 1200}, now=1000, skew=120)
    assert info.value.reason == "not_yet_valid"
    with pytest.raises(TokenInvalid) as info:
        check_times({"exp": 5000, "iat": 1200}, now=1000, skew=120)
    assert info.value.reason == "not_yet_valid"
    with pytest.raises(TokenInvalid) as info:
        check_times({"nbf": 1}, now=1000, skew=120)
    assert info.value.reason == "claims"


def test_string_claims_and_arrays_are_type_checked():
    assert str_claim({"tid": "t"}, "tid", required=True) == "t"
    for bad in ({"tid": 1}, {"tid": ""}, {}, {"tid": ["t"]}):
        with pytest.raises(TokenInvalid):
            str_claim(bad, "tid", required=True)
    assert str_list_claim({"roles": ["a"]}, "roles") == ("a",)
    with pytest.raises(TokenInvalid):
        str_list_claim({"roles": "a"}, "roles")


def test_a_key_of_the_wrong_family_is_a_failed_check_not_a_type_error():
    jws = parse_compact(sign({**HEADER, "alg": "HS256"}, CLAIMS, alg="HS256",
                             key=public_pem(ATTACKER_RSA.public_key())))
    assert not verify_signature("HS256", ATTACKER_RSA.public_key(), jws.signing_input, jws.signature)
    assert not verify_signature("RS256", ATTACKER_EC.public_key(), jws.signing_input, jws.signature)
    assert not verify_signature("RS256", "a string", jws.signing_input, jws.signature)
    assert not verify_signature("RS256", ATTACKER_RSA.public_key(), jws.signing_input, b"")


def test_ecdsa_zero_signatures_and_short_rsa_keys_fail():
    jws = parse_compact(sign({**HEADER, "alg": "ES256"}, CLAIMS, alg="ES256"))
    assert verify_signature("ES256", ATTACKER_EC.public_key(), jws.signing_input, jws.signature)
    assert not verify_signature("ES256", ATTACKER_EC.public_key(), jws.signing_input, b"\0" * 64)
    small = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    jws = parse_compact(sign(HEADER, CLAIMS, key=small))
    assert not verify_signature("RS256", small.public_key(), jws.signing_input, jws.signature)
