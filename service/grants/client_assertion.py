"""`private_key_jwt` client authentication (RFC 7523 §2.2 / §3, RFC 7521 §4.2).

A client configured with `[[clients]].jwks` (a JWKS file, read once at startup) proves itself
with a short-lived JWT it signs:

    client_assertion_type  urn:ietf:params:oauth:client-assertion-type:jwt-bearer
    client_assertion       compact JWS: header {alg, kid}; claims {iss, sub, aud, exp, iat, jti}

Rules (every failure is `401 invalid_client`, the reason only in the log):
- `alg` in RS256 / PS256 / ES256 / EdDSA, pinned to the key's `kty` (and to the key's own
  `alg` when the JWK declares one); `none` and HMAC are never accepted; `kid` names a key of
  that client's JWKS.
- `iss` = `sub` = the client id.
- `aud` is EXACTLY our issuer identifier (`server.public_url`) as a single string: an array or
  the token endpoint URL is refused (the audience-injection fix of draft-ietf-oauth-rfc7523bis).
- `exp` and `iat` are required integers; the assertion lives at most five minutes
  (`exp - iat` and `exp - now`); `jti` is required and accepted once (ReplayCache until `exp`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

from service.errors import ConfigurationError, InvalidClient, TokenValidationError
from service.grants import client_auth
from service.logs import get_logger
from service.settings import ClientSettings, Settings
from service.storage.jti_records import ReplayCache
from service.validation.jwks import CachedKey, FetchError, parse_jwks
from service.validation.jwt_checks import (
    check_header,
    check_times,
    int_claim,
    parse_compact,
    str_claim,
    verify_signature,
)

log = get_logger(__name__)

CLIENT_ASSERTION_TYPE = client_auth.ASSERTION_TYPE
METHOD = "private_key_jwt"
ALGORITHMS = ("RS256", "PS256", "ES256", "EdDSA")
_ALGS_BY_KTY = {"RSA": ("RS256", "PS256"), "EC": ("ES256",), "OKP": ("EdDSA",)}
MAX_LIFETIME = 300          # seconds: exp - iat and exp - now
CLOCK_SKEW = 30             # seconds of leeway on exp / iat / nbf
MAX_ASSERTION_BYTES = 8 * 1024
MAX_JTI_LENGTH = 256

ClientKeys = Mapping[str, Mapping[str, CachedKey]]   # client_id -> kid -> key


def load_client_keys(settings: Settings) -> dict[str, dict[str, CachedKey]]:
    """The public keys of every `jwks` client (startup only; a bad file names its client)."""
    out: dict[str, dict[str, CachedKey]] = {}
    problems: list[str] = []
    for i, client in enumerate(settings.clients):
        if not client.jwks:
            continue
        where = f"clients[{i}].jwks"
        try:
            keys = parse_jwks(json.loads(Path(client.jwks).read_text(encoding="utf-8")))
        except (OSError, ValueError, FetchError) as e:
            problems.append(f"{where}: not a readable JWKS file ({type(e).__name__})")
            continue
        usable = {kid: k for kid, k in keys.items() if k.kty in _ALGS_BY_KTY}
        if not usable:
            problems.append(f"{where}: no usable signing key with a kid (RSA, EC P-256 or Ed25519)")
            continue
        out[client.client_id] = usable
    if problems:
        raise ConfigurationError(problems)
    return out


def _refuse(reason: str, client_id: str, **fields: object) -> InvalidClient:
    detail = " ".join([f"client_id={client_id[:64]}", *(f"{k}={str(v)[:64]}" for k, v in fields.items())])
    return InvalidClient(reason=f"assertion_{reason}", detail=detail)


class ClientAssertions:
    """Verifies `client_assertion`s against the clients' configured keys."""

    def __init__(self, keys: ClientKeys, *, issuer_url: str, replay: ReplayCache) -> None:
        self._keys = keys
        self._issuer_url = issuer_url
        self._replay = replay

    async def verify(self, client_id: str, assertion: str, *, now: float) -> None:
        keys = self._keys.get(client_id)
        if not keys:
            raise _refuse("no_keys", client_id)
        try:
            jws = parse_compact(assertion, max_bytes=MAX_ASSERTION_BYTES)
            alg = check_header(jws.header, ALGORITHMS)
        except TokenValidationError as e:
            raise _refuse(e.reason, client_id) from e
        kid = jws.header.get("kid")
        key = keys.get(kid) if isinstance(kid, str) else None
        if key is None:
            raise _refuse("unknown_kid", client_id, kid=kid)
        if alg not in _ALGS_BY_KTY.get(key.kty, ()) or (key.alg is not None and key.alg != alg):
            raise _refuse("alg", client_id, kid=kid, alg=alg)
        if not verify_signature(alg, key.key, jws.signing_input, jws.signature):
            raise _refuse("signature", client_id, kid=kid)
        claims = jws.payload
        try:
            iss, sub = str_claim(claims, "iss", required=True), str_claim(claims, "sub", required=True)
            jti = str_claim(claims, "jti", required=True) or ""
            iat = int_claim(claims, "iat", required=True) or 0
            exp = check_times(claims, now=now, skew=CLOCK_SKEW) or 0
        except TokenValidationError as e:
            raise _refuse(e.reason, client_id, kid=kid) from e
        if iss != client_id or sub != client_id:
            raise _refuse("wrong_iss_or_sub", client_id, kid=kid)
        aud = claims.get("aud")
        if not isinstance(aud, str) or aud != self._issuer_url:
            raise _refuse("audience", client_id, kid=kid, aud_type=type(aud).__name__)
        if exp - iat > MAX_LIFETIME or exp - now > MAX_LIFETIME:
            raise _refuse("too_long_lived", client_id, kid=kid, lifetime=exp - iat)
        if len(jti) > MAX_JTI_LENGTH:
            raise _refuse("bad_jti", client_id, kid=kid)
        if not await self._replay.first_use(f"client_assertion|{client_id}", jti, exp):
            raise _refuse("replayed", client_id, kid=kid, jti=jti)


class ClientAuthenticator:
    """One entry point for every client-authentication method (token, introspection, revocation)."""

    def __init__(self, settings: Settings, assertions: ClientAssertions) -> None:
        self._settings = settings
        self._assertions = assertions

    async def authenticate(self, authorization: str | None, form: Mapping[str, Sequence[str]], *,
                           now: float, creds: client_auth.Credentials | None = None) -> ClientSettings:
        """`creds`: `client_auth.extract(authorization, form)` when the caller has it already."""
        if creds is None:
            creds = client_auth.extract(authorization, form)
        if creds.method != METHOD:
            return client_auth.authenticate(self._settings, creds)
        client = self._settings.client(creds.client_id)
        if client is None or not client.jwks:
            raise _refuse("unknown_client" if client is None else "client_has_no_jwks", creds.client_id)
        await self._assertions.verify(client.client_id, creds.assertion, now=now)
        log.info("client.authenticated", client_id=client.client_id, method=METHOD)
        return client
