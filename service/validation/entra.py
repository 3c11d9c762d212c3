"""Validation of incoming Microsoft Entra ID access tokens (CONTRACT §2 [entra]).

One visible policy, checked in this order:

1. shape: compact JWS ≤ 16 KB, canonical base64url, JSON objects without duplicate keys;
   `alg` exactly RS256; no `crit`; no `nonce` header (Graph tokens); `jku`/`x5u`/`jwk`/`x5c`
   ignored; `kid`, `ver` ("1.0"/"2.0"), `tid`, `iss` strings.
2. issuer: `tid` a GUID; the v2 (or v1, for `ver` "1.0") discovery document gives an issuer
   template (the home tenant's documents when only the home tenant is allowed, else the
   tenant-independent `organizations`/`common` ones: entra_metadata.py); the token's `tid`
   substituted into it must equal `iss` exactly.
3. signature: the key `kid` from that document's `jwks_uri` (`?appid=` for the broker's own
   tokens with `app_signing_keys`), RSA, verified with RS256; then the tenant must be allowed
   (403, whatever its key document says); then a key's own `issuer`, where present, with `tid`
   substituted must be the token's issuer.
4. lifetime: integer `exp` (required), `nbf`, `iat`, with `clock_skew`.
5. kind and claim types: not an id token (`nonce` claim, or neither `scp` nor `roles`);
   `oid` and `azp` (v2) / `appid` (v1) non-empty strings, `scp` a string, `roles` an array
   of strings. Steps 1-5 are cached per token (sha256) until min(exp, cache_ttl).
6. per call: `aud` in the accepted audiences; tenant in `allowed_tenants` (403); app-only
   (`roles`, no `scp`) only when allowed (403); `azp`/`appid` in the allowed apps when set (403); every required scope
   in `scp` (403 insufficient_scope).

Raises TokenInvalid / TokenPolicyRefused / TokenScopeMissing (callers translate), and
DownstreamError(503) when Entra's keys were never reachable. Framework-free.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from types import MappingProxyType
from typing import Any

from service.digest import sha256_hex, short_hash
from service.errors import (
    TokenInvalid,
    TokenPolicyRefused,
    TokenScopeMissing,
    TokenValidationError,
)
from service.metrics import Metrics
from service.settings import EntraSettings
from service.telemetry import cache_event
from service.validation import jwt_checks
from service.validation.entra_metadata import (
    GUID,
    PLACEHOLDER,
    V1,
    V2,
    EntraMetadata,
    issuer_template,
    with_appid,
)
from service.validation.jwks import JwksCache
from service.validation.jwt_checks import (
    Jws,
    check_header,
    check_times,
    parse_compact,
    str_claim,
    str_list_claim,
)

__all__ = ["EntraPrincipal", "EntraValidator", "TokenPeek", "issuer_template", "log_context", "V1", "V2"]

ALGORITHMS = ("RS256",)
_SAFE = re.compile(r"[^0-9A-Za-z._:/@{}-]")


@dataclass(frozen=True)
class EntraPrincipal:
    claims: Mapping[str, Any]
    oid: str
    tid: str
    app_id: str                 # azp (v2) or appid (v1)
    scopes: frozenset[str]
    roles: tuple[str, ...]
    version: str                # "1.0" | "2.0"
    sub: str
    exp: int
    token_hash: str             # sha256 hex of the token

    @property
    def is_app_only(self) -> bool:
        return "scp" not in self.claims

    @cached_property
    def user_hash(self) -> str:
        """How audit lines name the user: short_hash("tid:oid"), computed once per principal
        (a cached verification keeps its principal, so a repeated token never hashes again)."""
        return short_hash(f"{self.tid}:{self.oid}")


@dataclass(frozen=True, slots=True)
class TokenPeek:
    """One look at a token, shared by the routing of a subject token and its validation: its
    sha256 and, when it was not in the verified cache, its parse (`route_issuer` made it)."""
    digest: str
    jws: Jws | None = None


@dataclass(frozen=True)
class _Verified:
    """What steps 1-5 proved about a token; safe to reuse until `until`."""
    claims: Mapping[str, Any]
    version: str
    tid: str
    app_id: str
    kid: str
    exp: int
    until: float
    # step 6's answer per fixed rule set ("bearer", "teams"): the same token, the same settings,
    # the same principal — refusals are never kept (they are raised again each time)
    principals: dict[str, EntraPrincipal] = field(default_factory=dict, compare=False, repr=False)


def _safe(value: Any) -> str | None:
    return _SAFE.sub("?", value)[:64] if isinstance(value, str) and value else None


def log_context(jws: Jws | None) -> dict[str, str]:
    """kid/tid/app id/oid of an (unverified) token, sanitised for logs. Never the token."""
    if jws is None:
        return {}
    p = jws.payload
    found = {"kid": _safe(jws.header.get("kid")), "tid": _safe(p.get("tid")),
             "app_id": _safe(p.get("azp", p.get("appid"))), "oid": _safe(p.get("oid"))}
    return {k: v for k, v in found.items() if v}


class EntraValidator:
    def __init__(self, entra: EntraSettings, jwks: JwksCache, *, metrics: Metrics | None = None,
                 cache_ttl: float = 600, cache_size: int = 10_000) -> None:
        self.entra = entra
        self._jwks = jwks
        self._metrics = metrics
        self._allowed_tenants = frozenset(t.lower() for t in entra.allowed_tenants)
        self.metadata = EntraMetadata(entra, jwks)
        self.discovery_urls = self.metadata.discovery_urls
        self._cache: OrderedDict[str, _Verified] = OrderedDict()
        self._cache_ttl = cache_ttl
        self._cache_size = cache_size
        self._events: dict[str, Any] = {}    # cache_events_total children, bound once

    # --- public -------------------------------------------------------------------------------

    async def validate(self, token: str, *, now: float, peek: TokenPeek | None = None) -> EntraPrincipal:
        """The broker's bearer rules (CONTRACT §2 [entra]). `peek`: `route_issuer`'s look at this
        same token (its digest and parse are not computed again)."""
        e = self.entra
        return await self.validate_for(token, now=now, audiences=e.audiences,
                                       required_scopes=e.required_scopes,
                                       allowed_apps=e.allowed_client_apps or None,
                                       allow_app_only=e.allow_app_only, rules="bearer", peek=peek)

    async def validate_for(self, token: str, *, now: float, audiences: Collection[str],
                           required_scopes: Collection[str], allowed_apps: Collection[str] | None,
                           allow_app_only: bool = False,
                           verify_signature: bool = True, rules: str | None = None,
                           peek: TokenPeek | None = None) -> EntraPrincipal:
        """Generic variant (e.g. Teams tokens for ACS). Empty/None `allowed_apps` = any app.
        `rules` names a rule set that is fixed for the validator's lifetime (the same audiences,
        scopes and apps on every call): its principal is kept with the cached verification."""
        if peek is not None:
            digest = peek.digest
        else:
            digest = sha256_hex(token) if isinstance(token, str) else ""
        verified = self._cache_get(digest, now) if verify_signature else None
        jws = None
        try:
            if verified is None:
                jws = peek.jws if peek is not None and peek.jws is not None else parse_compact(token)
                verified = await self._verify(jws, now=now, verify_signature=verify_signature)
                if verify_signature:
                    self._cache_put(digest, verified)
            elif rules is not None and (kept := verified.principals.get(rules)) is not None:
                return kept
            principal = self._policy(verified, digest, audiences=audiences, required_scopes=required_scopes,
                                     allowed_apps=allowed_apps, allow_app_only=allow_app_only)
            if rules is not None and verify_signature:
                verified.principals[rules] = principal
            return principal
        except TokenValidationError as exc:
            exc.context = log_context(jws) if verified is None else {
                "kid": verified.kid, "tid": verified.tid, "app_id": verified.app_id,
                "oid": str(verified.claims.get("oid", ""))}
            raise

    async def warm_up(self) -> bool:
        """Fetch the v2 discovery document and its JWKS; True when keys are usable."""
        _, jwks_uri = await self.metadata.issuer_and_keys(V2)
        await self._jwks.get_keys(jwks_uri)
        if self.entra.app_signing_keys:
            await self._jwks.get_keys(with_appid(jwks_uri, self.entra.client_id))
        return self._jwks.ready()

    # --- steps 1-5 ----------------------------------------------------------------------------

    async def _verify(self, jws: Jws, *, now: float, verify_signature: bool) -> _Verified:
        alg = check_header(jws.header, ALGORITHMS)
        if "nonce" in jws.header:
            raise TokenInvalid("token_type", "nonce header (a Graph token)")
        claims = jws.payload
        version = str_claim(claims, "ver", required=True)
        if version not in (V1, V2):
            raise TokenInvalid("version", f"ver {version[:10]!r}")
        tid = str_claim(claims, "tid", required=True)
        if not GUID.fullmatch(tid):
            raise TokenInvalid("claims", "tid is not a tenant id")
        iss = str_claim(claims, "iss", required=True)
        template, jwks_uri = await self.metadata.issuer_and_keys(version)
        if iss != template.replace(PLACEHOLDER, tid):
            raise TokenInvalid("issuer", "iss does not match the tenant's issuer")
        key_issuer = None
        if verify_signature:
            kid = jws.header.get("kid")
            if not kid:
                raise TokenInvalid("unknown_kid", "no kid")
            document = self.metadata.key_document(jwks_uri, claims.get("aud"))
            key = self._jwks.known_key(document, kid) or await self._jwks.get_key(document, kid)
            if key.alg not in (None, alg):
                raise TokenInvalid("alg", "key is not for RS256")
            if not jwt_checks.verify_signature(alg, key.key, jws.signing_input, jws.signature):
                raise TokenInvalid("signature", "bad signature")
            key_issuer = key.issuer
        if tid.lower() not in self._allowed_tenants:   # before the key issuer: 403, not 401
            raise TokenPolicyRefused("tenant", "tenant not allowed")
        if key_issuer is not None and key_issuer.replace(PLACEHOLDER, tid) != iss \
                and not await self.metadata.key_issuer_agrees(key_issuer, tid, iss):   # (the v1/v2 case)
            raise TokenInvalid("issuer", "the key's issuer is not the token's tenant")
        exp = check_times(claims, now=now, skew=self.entra.clock_skew)
        if "nonce" in claims:
            raise TokenInvalid("token_type", "an id token (nonce claim)")
        if "scp" not in claims and not str_list_claim(claims, "roles"):
            raise TokenInvalid("token_type", "neither scp nor roles (an id token?)")
        str_claim(claims, "oid", required=True)
        str_claim(claims, "sub")
        str_claim(claims, "scp")
        str_list_claim(claims, "roles")
        app_id = str_claim(claims, "azp" if version == V2 else "appid", required=True)
        kid = str(jws.header.get("kid", ""))
        return _Verified(MappingProxyType(dict(claims)), version, tid, app_id, kid, int(exp or 0),
                         until=min(float(exp), now + self._cache_ttl))

    # --- step 6 -------------------------------------------------------------------------------

    def _policy(self, v: _Verified, digest: str, *, audiences: Collection[str],
                required_scopes: Collection[str], allowed_apps: Collection[str] | None,
                allow_app_only: bool) -> EntraPrincipal:
        claims = v.claims
        aud = claims.get("aud")
        if not isinstance(aud, str) or aud not in audiences:
            raise TokenInvalid("audience", "aud not accepted")
        roles = str_list_claim(claims, "roles")
        delegated = "scp" in claims
        if v.tid.lower() not in self._allowed_tenants:
            raise TokenPolicyRefused("tenant", "tenant not allowed")
        if not delegated and not allow_app_only:
            raise TokenPolicyRefused("app_only", "app-only tokens are not accepted")
        if allowed_apps and v.app_id not in allowed_apps:
            raise TokenPolicyRefused("client_app", "calling app not allowed")
        scopes = frozenset(s for s in claims["scp"].split(" ") if s) if delegated else frozenset()
        if delegated:
            missing = [s for s in required_scopes if s not in scopes]
            if missing:
                raise TokenScopeMissing(missing=missing, detail=f"missing {' '.join(missing)[:100]}")
        return EntraPrincipal(claims=claims, oid=claims["oid"], tid=v.tid, app_id=v.app_id,
                              scopes=scopes, roles=roles, version=v.version,
                              sub=claims.get("sub", ""), exp=v.exp, token_hash=digest)

    # --- verified-token cache -----------------------------------------------------------------

    def _cache_get(self, digest: str, now: float) -> _Verified | None:
        entry = self._cache.get(digest)
        if entry is not None and now < entry.until:
            self._count("hit")
            return entry
        if entry is not None:
            del self._cache[digest]
        self._count("miss")
        return None

    def _cache_put(self, digest: str, verified: _Verified) -> None:
        self._cache[digest] = verified
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
            self._count("evicted")

    def cached_principal(self, token: str, *, now: float, rules: str) -> tuple[EntraPrincipal | None, TokenPeek]:
        """The principal a fixed rule set ("bearer", "teams") gave this exact token, while its
        verification is cached (a hit, counted) — no coroutine, no parse; else None and the
        look taken (its sha256), for `validate(..., peek=)` / `validate_for(..., peek=)`, which
        count the miss or the hit. The same answer `validate_for(rules=...)` gives."""
        digest = sha256_hex(token)
        entry = self._cache.get(digest)
        if entry is not None and now < entry.until:
            kept = entry.principals.get(rules)
            if kept is not None:
                self._count("hit")
                return kept, TokenPeek(digest)
        return None, TokenPeek(digest)

    def route_issuer(self, token: str, *, now: float) -> tuple[Any, TokenPeek]:
        """The claimed `iss` of a subject token for routing (unverified unless cached) and the
        look it took, for `validate(..., peek=)` of the same token: the cached verification's
        `iss`, else the parse's (TokenValidationError when it does not parse). One sha256 and
        at most one parse per exchanged token."""
        digest = sha256_hex(token)
        entry = self._cache.get(digest)
        if entry is not None and now < entry.until:
            return entry.claims.get("iss"), TokenPeek(digest)
        jws = parse_compact(token)
        return jws.payload.get("iss"), TokenPeek(digest, jws)

    def _count(self, event: str) -> None:
        cache_event("entra_tokens", event)   # telemetry: on the validation span (no-op when off)
        if self._metrics is not None:
            child = self._events.get(event)
            if child is None:
                child = self._events[event] = self._metrics.cache_events_total.labels(
                    cache="entra_tokens", event=event)
            child.inc()

