"""Mint and verify the broker's own access tokens: RFC 9068 JWTs (`typ: at+jwt`).

`mint` signs with the keyring's current key; `verify` accepts only our own tokens: explicit
`typ`, a published `kid`, the algorithm pinned to that key, exact `iss`, integer `exp`/`iat`.
Every failure is a `TokenInvalid(reason)`; PyJWT's and the standard library's exceptions never
escape. Time is passed in; no I/O happens per call.
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import jwt

from service.errors import TokenInvalid
from service.issuing.keyring import Keyring
from service.issuing.signer import JwsSigner

TOKEN_TYPE = "at+jwt"
_ACCEPTED_TYP = frozenset({"at+jwt", "application/at+jwt"})  # RFC 9068 §4, compared case-insensitively
_RESERVED = frozenset({"iss", "iat", "exp", "nbf", "jti"})
MAX_TOKEN_LENGTH = 16 * 1024
_DECODE_OPTIONS = {  # lifetime is checked here against the injected clock, not PyJWT's
    "verify_signature": True, "verify_exp": False, "verify_nbf": False, "verify_iat": False,
    "verify_aud": False, "verify_iss": True, "require": ["iss", "exp", "iat", "jti"],
}
_FOREIGN_ERRORS = (jwt.PyJWTError, TypeError, ValueError, KeyError, AttributeError, OverflowError,
                   RecursionError)


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
        jti = secrets.token_urlsafe(16)
        payload = {"iss": self.issuer_url, **claims, "iat": iat, "exp": exp, "jti": jti}
        token = self._signer.sign(payload, kid=key.kid, alg=key.alg, private_key=key.private_key)
        return MintedToken(token=token, jti=jti, exp=exp, kid=key.kid)

    def verify(self, token: str, *, now: float, leeway: float = 0) -> dict[str, Any]:
        """The claims of one of our own valid tokens, else `TokenInvalid(reason)`."""
        try:
            return self._verify(token, now, leeway)
        except TokenInvalid:
            raise
        except jwt.InvalidSignatureError as e:
            raise TokenInvalid("bad_signature", type(e).__name__) from e
        except jwt.InvalidIssuerError as e:
            raise TokenInvalid("wrong_issuer", type(e).__name__) from e
        except _FOREIGN_ERRORS as e:
            raise TokenInvalid("malformed", type(e).__name__) from e

    def _verify(self, token: str, now: float, leeway: float) -> dict[str, Any]:
        if not isinstance(token, str) or not token or len(token) > MAX_TOKEN_LENGTH:
            raise TokenInvalid("malformed", "not a string of acceptable length")
        header = jwt.get_unverified_header(token)
        typ = header.get("typ")
        if not isinstance(typ, str) or typ.lower() not in _ACCEPTED_TYP:
            raise TokenInvalid("wrong_typ")
        kid = header.get("kid")
        found = self.keyring.public_key(kid, now=now) if isinstance(kid, str) else None
        if found is None:
            raise TokenInvalid("unknown_kid", f"kid={kid!r}"[:80])
        public_key, alg = found
        if header.get("alg") != alg:
            raise TokenInvalid("alg_mismatch")
        claims = jwt.decode(token, key=public_key, algorithms=[alg], options=_DECODE_OPTIONS,
                            issuer=self.issuer_url)
        if claims.get("iss") != self.issuer_url:
            raise TokenInvalid("wrong_issuer")
        exp, iat, nbf = claims.get("exp"), claims.get("iat"), claims.get("nbf")
        if not _is_int(exp) or not _is_int(iat) or (nbf is not None and not _is_int(nbf)):
            raise TokenInvalid("malformed", "exp/iat/nbf must be integers")
        if now >= exp + leeway:
            raise TokenInvalid("expired", f"jti={claims.get('jti')}")
        if iat > now + leeway or (nbf is not None and nbf > now + leeway):
            raise TokenInvalid("not_yet_valid", f"jti={claims.get('jti')}")
        if not isinstance(claims.get("jti"), str):
            raise TokenInvalid("malformed", "jti must be a string")
        return claims


def _is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)
