"""Mint and verify the broker's own access tokens: RFC 9068 JWTs (`typ: at+jwt`).

`mint` signs with the keyring's current key; `verify` accepts only our own tokens: explicit
`typ`, a published `kid`, the algorithm pinned to that key, exact `iss`, integer `exp`/`iat`.
Verification is the one JWT verifier of validation/jwt_checks.py (its reasons, its 16 KB cap,
its expiry boundary); every failure is a `TokenInvalid(reason)`. Time is passed in; no I/O
happens per call.
"""

from __future__ import annotations

import base64
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from service.errors import TokenInvalid
from service.issuing.keyring import Keyring
from service.issuing.signer import JwsSigner
from service.validation.jwt_checks import (
    check_header,
    check_times,
    int_claim,
    parse_compact,
    str_claim,
    verify_signature,
)

TOKEN_TYPE = "at+jwt"
_ACCEPTED_TYP = frozenset({"at+jwt", "application/at+jwt"})  # RFC 9068 §4, compared case-insensitively
_RESERVED = frozenset({"iss", "iat", "exp", "nbf", "jti"})


_JTI_POOL = bytearray()
os.register_at_fork(after_in_child=_JTI_POOL.clear)   # a forked child never reuses the parent's bytes


def _jti() -> str:
    """`secrets.token_urlsafe(16)`, from a pool refilled by one `os.urandom(4096)` per 256
    tokens instead of a getrandom system call per token (the same CSPRNG, 128 bits each)."""
    if len(_JTI_POOL) < 16:
        _JTI_POOL[:] = os.urandom(4096)
    raw = bytes(_JTI_POOL[-16:])
    del _JTI_POOL[-16:]
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


@dataclass(frozen=True)
class MintedToken:
    token: str
    jti: str
    exp: int
    kid: str


class TokenIssuer:
    """Issues and verifies tokens for one issuer identifier (`server.public_url`, exactly)."""

    def __init__(self, issuer_url: str, keyring: Keyring) -> None:
        if not isinstance(issuer_url, str) or not issuer_url:
            raise ValueError("issuer_url must be a non-empty string")
        self.issuer_url = issuer_url
        self.keyring = keyring
        self._signer = JwsSigner(TOKEN_TYPE)

    def mint(self, claims: Mapping[str, Any], *, now: float, ttl: float) -> MintedToken:
        """Sign `claims` (sub, aud, client_id, scope, tid, oid, act, …) with the current key.
        The caller has already capped `ttl`; `exp = floor(now + ttl)` never extends it."""
        if isinstance(ttl, bool) or not isinstance(ttl, int | float) or not math.isfinite(ttl) or ttl <= 0:
            raise ValueError("ttl must be a positive number of seconds")
        clash = _RESERVED.intersection(claims)
        if clash:
            raise ValueError(f"claims set by the issuer may not be passed in: {sorted(clash)}")
        iat = math.floor(now)
        exp = math.floor(now + ttl)
        if exp <= iat:
            raise ValueError("ttl too short: the token would expire before it is issued")
        key = self.keyring.signing_key(now)
        jti = _jti()
        payload = {"iss": self.issuer_url, **claims, "iat": iat, "exp": exp, "jti": jti}
        token = self._signer.sign(payload, kid=key.kid, alg=key.alg, private_key=key.private_key)
        return MintedToken(token=token, jti=jti, exp=exp, kid=key.kid)

    def verify(self, token: str, *, now: float, leeway: float = 0) -> dict[str, Any]:
        """The claims of one of our own valid tokens, else `TokenInvalid(reason)`.

        The checks are validation/jwt_checks.py's, shared with every foreign token: the same
        parser (16 KB cap, strict JSON, canonical base64url), the same reasons and the same
        expiry boundary (`now >= exp + leeway` is expired)."""
        jws = parse_compact(token)
        typ = jws.header.get("typ")
        if not isinstance(typ, str) or typ.lower() not in _ACCEPTED_TYP:
            raise TokenInvalid("token_type", "not an at+jwt")
        kid = jws.header.get("kid")
        found = self.keyring.public_key(kid, now=now) if isinstance(kid, str) else None
        if found is None:
            raise TokenInvalid("unknown_kid", f"kid={kid!r}"[:80])
        public_key, alg = found
        check_header(jws.header, (alg,))            # the algorithm is pinned to the key
        if not verify_signature(alg, public_key, jws.signing_input, jws.signature):
            raise TokenInvalid("signature", f"kid={kid}")
        claims = dict(jws.payload)
        if claims.get("iss") != self.issuer_url:
            raise TokenInvalid("issuer", "not our issuer")
        jti = str_claim(claims, "jti", required=True)
        int_claim(claims, "iat", required=True)
        try:
            check_times(claims, now=now, skew=leeway)
        except TokenInvalid as e:
            raise TokenInvalid(e.reason, f"jti={jti}") from e
        return claims
