"""Our tokens are signed with `cryptography` over a cached header; any JOSE library verifies them."""

from __future__ import annotations

import base64
import json

import jwt
import pytest

from service.issuing import Keyring, TokenIssuer
from service.issuing.keyring import ALGORITHMS

NOW = 1_800_000_000


def _segment(token: str, i: int) -> dict:
    part = token.split(".")[i]
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


@pytest.mark.parametrize("alg", ALGORITHMS)
def test_minted_tokens_verify_with_pyjwt_and_our_own_verifier(tmp_path, alg):
    ring = Keyring.load_or_create(tmp_path / "keys", alg, now=NOW)
    issuer = TokenIssuer("https://broker.test", ring)
    minted = issuer.mint({"sub": "s-1", "aud": "dashboard", "scope": "read", "name": "Zoë"}, now=NOW, ttl=300)
    header = _segment(minted.token, 0)
    assert header == {"alg": alg, "kid": minted.kid, "typ": "at+jwt"}
    public_key, _ = ring.public_key(minted.kid, now=NOW)
    claims = jwt.decode(minted.token, public_key, algorithms=[alg], audience="dashboard",
                        options={"verify_exp": False, "verify_iat": False})
    assert (claims["sub"], claims["name"], claims["exp"], claims["jti"]) == ("s-1", "Zoë", NOW + 300, minted.jti)
    assert issuer.verify(minted.token, now=NOW + 1)["jti"] == minted.jti


def test_es256_signatures_are_raw_r_and_s_of_64_bytes(tmp_path):
    ring = Keyring.load_or_create(tmp_path / "keys", "ES256", now=NOW)
    issuer = TokenIssuer("https://broker.test", ring)
    tokens = [issuer.mint({"sub": f"s-{i}"}, now=NOW, ttl=60).token for i in range(20)]
    sigs = [t.split(".")[2] for t in tokens]
    assert all(len(base64.urlsafe_b64decode(s + "==")) == 64 for s in sigs)
    assert len({t.split(".")[0] for t in tokens}) == 1          # one header, encoded once
    assert len(set(sigs)) == 20


def test_nested_mappings_in_claims_are_signed_as_objects(tmp_path):
    from types import MappingProxyType
    ring = Keyring.load_or_create(tmp_path / "keys", "ES256", now=NOW)
    issuer = TokenIssuer("https://broker.test", ring)
    token = issuer.mint({"sub": "s", "act": MappingProxyType({"sub": "actor"})}, now=NOW, ttl=60).token
    assert issuer.verify(token, now=NOW)["act"] == {"sub": "actor"}
