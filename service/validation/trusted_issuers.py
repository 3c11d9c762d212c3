"""Validate tokens of `[[trusted_issuers]]`: partners whose JWTs may be exchanged.

One key source per issuer, fixed at load: a JWKS URI (through the shared async `JwksCache`),
a pinned PEM certificate or public key (loaded once), or an HMAC secret (UTF-8 bytes). The
checks: per-issuer algorithm allow-list (HS* only with a secret, never with a public key),
exact `iss`, `aud` containing one of the issuer's `audiences`, integer `exp` (required),
`nbf`/`iat` with `CLOCK_SKEW`, `max_token_age` on `iat`, and for `replay_check` a `jti`.
The replay cache itself is consulted by the caller (`first_use`) once the whole request is
acceptable, so a refused request does not burn a single-use token.

Every refusal is `TokenInvalid(reason)`; nothing foreign escapes. No aiohttp.web here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from service.errors import ConfigurationError, TokenInvalid
from service.settings import TrustedIssuer
from service.validation.jwks import JwksCache
from service.validation.jwt_checks import (
    PublicKey,
    VerifyingKey,
    check_header,
    check_times,
    int_claim,
    parse_compact,
    verify_signature,
)

CLOCK_SKEW = 60
HMAC_ALGS = frozenset({"HS256", "HS384", "HS512"})
MIN_SECRET_BYTES = 32


@dataclass(frozen=True)
class _Source:
    issuer: TrustedIssuer
    static_key: VerifyingKey | None = None   # a public key (PEM) or bytes (HMAC); None for JWKS


def load_certificate(path: str) -> PublicKey:
    """A public key from a PEM certificate or a PEM public key file."""
    data = Path(path).read_bytes()
    try:
        key = (x509.load_pem_x509_certificate(data).public_key() if b"BEGIN CERTIFICATE" in data
               else load_pem_public_key(data))
    except ValueError as e:
        raise ConfigurationError([f"trusted_issuers: {path}: not a PEM certificate or public key"]) from e
    if not isinstance(key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey):
        raise ConfigurationError([f"trusted_issuers: {path}: not an RSA, EC or Ed25519 key"])
    return key


class TrustedIssuerValidator:
    """Built once at startup (reads PEM files: call it in a thread); cheap per call."""

    def __init__(self, issuers: tuple[TrustedIssuer, ...], jwks: JwksCache) -> None:
        self._jwks = jwks
        self._by_iss: dict[str, _Source] = {}
        for ti in issuers:
            if ti.certificate:
                source = _Source(ti, load_certificate(ti.certificate))
            elif ti.secret:
                secret = ti.secret.reveal().encode("utf-8")
                if len(secret) < MIN_SECRET_BYTES:
                    raise ConfigurationError([f"trusted_issuers.{ti.name}.secret: at least 32 bytes"])
                source = _Source(ti, secret)
            else:
                source = _Source(ti)
            self._by_iss[ti.issuer] = source

    def find(self, iss: object) -> TrustedIssuer | None:
        """The trusted issuer whose `issuer` is exactly `iss` (routing only; nothing verified)."""
        source = self._by_iss.get(iss) if isinstance(iss, str) else None
        return source.issuer if source else None

    async def validate(self, token: str, *, now: float) -> tuple[TrustedIssuer, Mapping[str, Any]]:
        """(issuer, verified claims) or `TokenInvalid`."""
        jws = parse_compact(token)
        source = self._by_iss.get(jws.payload.get("iss"))  # type: ignore[arg-type]
        if source is None:
            raise TokenInvalid("untrusted_issuer")
        ti = source.issuer
        alg = check_header(jws.header, ti.algorithms)
        key = await self._key(source, alg, jws.header.get("kid"))
        if not verify_signature(alg, key, jws.signing_input, jws.signature):
            raise TokenInvalid("signature", f"issuer={ti.name}")
        claims = jws.payload
        if claims.get("iss") != ti.issuer:
            raise TokenInvalid("issuer")
        check_audience(claims, ti.audiences)
        check_times(claims, now=now, skew=CLOCK_SKEW)
        iat = int_claim(claims, "iat", required=ti.max_token_age > 0)
        if ti.max_token_age and iat is not None and now - iat > ti.max_token_age + CLOCK_SKEW:
            raise TokenInvalid("too_old", f"issuer={ti.name}")
        if ti.replay_check and (not isinstance(claims.get("jti"), str) or not claims["jti"]):
            raise TokenInvalid("no_jti", f"issuer={ti.name}")
        sub = claims.get("sub")
        if not isinstance(sub, str) or not sub:
            raise TokenInvalid("claims", "missing sub")
        return ti, claims

    async def _key(self, source: _Source, alg: str, kid: object) -> VerifyingKey:
        ti = source.issuer
        hmac_alg = alg in HMAC_ALGS
        if isinstance(source.static_key, bytes):
            if not hmac_alg:
                raise TokenInvalid("alg", "asymmetric alg for a secret-keyed issuer")
            return source.static_key
        if hmac_alg:
            raise TokenInvalid("alg", "HMAC alg for a public-key issuer")
        if source.static_key is not None:
            return source.static_key
        if not isinstance(kid, str) or not kid or self._jwks is None:
            raise TokenInvalid("unknown_kid", f"issuer={ti.name}")
        cached = await self._jwks.get_key(ti.jwks_uri, kid)   # TokenInvalid / DownstreamError
        if cached.alg is not None and cached.alg != alg:
            raise TokenInvalid("alg", "alg does not match the key's alg")
        return cached.key


def check_audience(claims: Mapping[str, Any], accepted: tuple[str, ...]) -> None:
    aud = claims.get("aud")
    values = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else None
    if not values or not all(isinstance(v, str) for v in values):
        raise TokenInvalid("audience", "aud missing or malformed")
    if not any(v in accepted for v in values):
        raise TokenInvalid("audience", "aud names none of the accepted audiences")
