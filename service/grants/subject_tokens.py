"""Validate a `subject_token` and describe its subject, whoever issued it.

The unverified `iss` only routes the token to a validator; the validator decides:

    entra      v1 `https://sts.windows.net/<tid>/` or v2 `<authority>/<tid>/v2.0`
               → `EntraValidator.validate` (the broker's bearer rules)
    <name>     exact `issuer` of a `[[trusted_issuers]]` entry → `TrustedIssuerValidator`
    self       `server.public_url` → `TokenIssuer.verify`; revoked jtis refused; accepted only
               when the requesting client is the token's `client_id` or is in its `aud`;
               an opaque handle (type access_token) is ours too, resolved through opaque.py

Every refusal is `InvalidRequest` (RFC 8693 §2.2.2) with the reason in `reason`/`detail` only.
"""

from __future__ import annotations

import functools
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from service.errors import InvalidRequest, TokenInvalid, TokenValidationError
from service.grants.base import ACCESS_TOKEN_TYPE, JWT_TOKEN_TYPE
from service.grants.collaborators import EntraTokens, OwnTokens
from service.grants.opaque import OpaqueHandles, is_handle
from service.grants.policy import ENTRA, SELF, translate_scopes
from service.settings import Settings
from service.storage.jti_records import ReplayCache, RevokedJtis
from service.telemetry import span
from service.validation.entra import TokenPeek
from service.validation.jwt_checks import audiences, parse_compact
from service.validation.trusted_issuers import CLOCK_SKEW, TrustedIssuerValidator

SUBJECT_TOKEN_TYPES = (ACCESS_TOKEN_TYPE, JWT_TOKEN_TYPE)
_GUID = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
_V1 = re.compile(rf"https://sts\.windows\.net/{_GUID}/")
#: UUIDv5 namespace of local subject ids (fixed forever: changing it renames every subject)
SUBJECT_NAMESPACE = uuid.UUID("6f1c3f2e-8c1b-5b7e-9a51-7d0c2a9e4b10")


@dataclass(frozen=True)
class Subject:
    issuer_name: str                      # "entra", "self" or a trusted issuer's name
    iss: str
    external_id: str                      # "tid/oid" for Entra, `sub` otherwise
    scopes: frozenset[str]                # translated through the issuer's scope_map
    exp: int
    claims: Mapping[str, Any] = field(repr=False)
    tid: str | None = None
    oid: str | None = None
    replay_jti: str | None = None         # set when the issuer has replay_check

    def local_id(self) -> str:
        """A stable local subject id per (issuer, external subject); ours stay as they are."""
        if self.issuer_name == SELF:
            return self.external_id
        key = f"entra|{self.tid}|{self.oid}" if self.issuer_name == ENTRA else f"iss|{self.iss}|{self.external_id}"
        return _local_id(key)


@functools.lru_cache(maxsize=4096)   # uuid5 is ~6 µs; the same users exchange again and again
def _local_id(key: str) -> str:
    return str(uuid.uuid5(SUBJECT_NAMESPACE, key))


def _scope_claim(claims: Mapping[str, Any]) -> frozenset[str]:
    raw = claims.get("scp", claims.get("scope"))
    if isinstance(raw, str):
        return frozenset(s for s in raw.split(" ") if s)
    if isinstance(raw, list) and all(isinstance(s, str) for s in raw):
        return frozenset(raw)
    return frozenset()


class SubjectTokens:
    def __init__(self, settings: Settings, *, trusted: TrustedIssuerValidator, issuer: OwnTokens,
                 revoked: RevokedJtis, replay: ReplayCache,
                 entra: EntraTokens | None = None, opaque: OpaqueHandles | None = None) -> None:
        self._settings = settings
        self._opaque = opaque
        self._trusted = trusted
        self._issuer = issuer
        self._revoked = revoked
        self._replay = replay
        self._entra = entra
        authority = settings.entra.authority.rstrip("/") if settings.entra else None
        self._v2 = re.compile(rf"{re.escape(authority)}/{_GUID}/v2\.0") if authority else None

    def route(self, token: str, token_type: str | None, *, now: float | None = None) -> str:
        """The issuer name the unverified token claims to come from (routing only). With `now`,
        the `iss` of a token the Entra validator verified and still caches is read without a parse."""
        return self.route_peek(token, token_type, now=now)[0]

    def route_peek(self, token: str, token_type: str | None, *,
                   now: float | None = None) -> tuple[str, TokenPeek | None]:
        """`route`, and the look it took at the token (its sha256 and parse) for `validate(...,
        peek=)`: an Entra subject token is hashed and parsed once per exchange, not twice."""
        if token_type not in SUBJECT_TOKEN_TYPES:
            raise InvalidRequest("The subject_token_type is not supported.", reason="unsupported_subject_token_type")
        if self._opaque is not None and token_type == ACCESS_TOKEN_TYPE and is_handle(token):
            return SELF, None
        validator = self._entra if self._settings.entra else None
        peek = None
        try:
            if validator is not None and now is not None and isinstance(token, str):
                iss, peek = validator.route_issuer(token, now=now)
            else:
                iss = parse_compact(token).payload.get("iss")
        except TokenValidationError as e:
            raise InvalidRequest("The subject token is not acceptable.", reason="subject_malformed",
                                 detail=e.reason) from e
        if not isinstance(iss, str):
            raise InvalidRequest("The subject token is not acceptable.", reason="subject_no_issuer")
        if iss == self._settings.server.public_url:
            return SELF, None
        if self._settings.entra and (_V1.fullmatch(iss) or (self._v2 and self._v2.fullmatch(iss))):
            return ENTRA, peek
        trusted = self._trusted.find(iss)
        if trusted is None:
            raise InvalidRequest("The subject token is not acceptable.", reason="subject_untrusted_issuer")
        return trusted.name, None

    async def validate(self, token: str, issuer_name: str, *, client_id: str, now: float,
                       peek: TokenPeek | None = None) -> Subject:
        """`peek`: `route_peek`'s look at this same token (Entra subjects only)."""
        with span("token.validate", token_kind="subject", issuer=issuer_name):   # telemetry (no-op when off)
            return await self._validate(token, issuer_name, client_id=client_id, now=now, peek=peek)

    async def _validate(self, token: str, issuer_name: str, *, client_id: str, now: float,
                        peek: TokenPeek | None = None) -> Subject:
        try:
            if issuer_name == SELF:
                return await self._self(token, client_id, now)
            if issuer_name == ENTRA:
                return await self._entra_subject(token, now, peek)
            return await self._trusted_subject(token, now)
        except TokenValidationError as e:
            raise InvalidRequest("The subject token is not acceptable.", reason=f"subject_{e.reason}",
                                 detail=e.detail) from e

    async def commit(self, subject: Subject) -> None:
        """Record a single-use subject's jti once the request is acceptable (replay_check)."""
        if subject.replay_jti is None:
            return
        if not await self._replay.first_use(f"subject|{subject.iss}", subject.replay_jti, subject.exp):
            raise InvalidRequest("The subject token is not acceptable.", reason="subject_replayed",
                                 detail=f"issuer={subject.issuer_name} jti={subject.replay_jti[:64]}")

    async def release(self, subject: Subject) -> None:
        """Undo this request's own `commit` (a later single-use check of the request failed)."""
        if subject.replay_jti is not None:
            await self._replay.release(f"subject|{subject.iss}", subject.replay_jti)

    async def _self(self, token: str, client_id: str, now: float) -> Subject:
        if self._opaque is not None and is_handle(token):
            found = await self._opaque.claims(token, now=now)
            if found is None:
                raise TokenInvalid("unknown_handle")
            claims = dict(found)
        else:
            claims = self._issuer.verify(token, now=now)
        if await self._revoked.is_revoked(claims["jti"]):
            raise InvalidRequest("The subject token is not acceptable.", reason="subject_revoked",
                                 detail=f"jti={claims['jti']}")
        if claims.get("client_id") != client_id and client_id not in audiences(claims):
            raise InvalidRequest("The subject token is not acceptable.", reason="subject_not_for_client",
                                 detail=f"jti={claims['jti']}")
        sub = claims.get("sub")
        if not isinstance(sub, str) or not sub:
            raise InvalidRequest("The subject token is not acceptable.", reason="subject_claims")
        return Subject(SELF, claims["iss"], sub, _scope_claim(claims), claims["exp"], claims,
                       tid=claims.get("tid"), oid=claims.get("oid"))

    async def _entra_subject(self, token: str, now: float, peek: TokenPeek | None = None) -> Subject:
        validator = self._entra
        entra = self._settings.entra
        if validator is None or entra is None:
            raise InvalidRequest("The subject token is not acceptable.", reason="subject_entra_unavailable")
        p = await validator.validate(token, now=now, peek=peek)
        if not p.oid or not p.tid:
            raise InvalidRequest("The subject token is not acceptable.", reason="subject_claims")
        return Subject(ENTRA, str(p.claims.get("iss")), f"{p.tid}/{p.oid}",
                       translate_scopes(p.scopes, entra.scope_map), int(p.exp), p.claims,
                       tid=p.tid, oid=p.oid)

    async def _trusted_subject(self, token: str, now: float) -> Subject:
        ti, claims = await self._trusted.validate(token, now=now)
        return Subject(ti.name, ti.issuer, claims["sub"], translate_scopes(_scope_claim(claims), ti.scope_map),
                       claims["exp"], claims, replay_jti=claims.get("jti") if ti.replay_check else None)


__all__ = ["CLOCK_SKEW", "SUBJECT_TOKEN_TYPES", "Subject", "SubjectTokens"]
