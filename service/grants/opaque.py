"""Opaque access tokens for clients with `token_format = "opaque"`.

The handle is 256 random bits, base64url (43 characters, no dots, so it never parses as a
JWT). Only its SHA-256 is stored, holding exactly the claims the JWT would have carried
(`iss, sub, aud, client_id, scope, exp, iat, jti, tid, oid, act`), for the token's lifetime:

    opaque:<sha256(handle)>     {"claims": {...}}           TTL = exp - now

Introspection, revocation and exchanges of our own tokens (`self` subject tokens of type
access_token) resolve handles here; a revoked handle is deleted (and its `jti` denied).
"""

from __future__ import annotations

import math
import re
import secrets
from dataclasses import replace
from typing import Any, ClassVar, Protocol, TypeVar

from service.digest import sha256_hex
from service.settings import ClientSettings
from service.storage.base import Store, make_key

NAMESPACE = "opaque"
HANDLE_BYTES = 32
OPAQUE = "opaque"
_HANDLE = re.compile(r"[A-Za-z0-9_-]{43}")


class _Issued(Protocol):
    """token_exchange.Issued, as far as this module needs it (a dataclass with the signed claims)."""
    __dataclass_fields__: ClassVar[dict[str, Any]]

    @property
    def claims(self) -> dict[str, Any]: ...


IssuedT = TypeVar("IssuedT", bound=_Issued)


def is_handle(token: str) -> bool:
    """True when `token` has the shape of one of our handles (says nothing about validity)."""
    return isinstance(token, str) and _HANDLE.fullmatch(token) is not None


def wants_opaque(client: ClientSettings) -> bool:
    return client.token_format == OPAQUE


class OpaqueHandles:
    def __init__(self, store: Store) -> None:
        self._store = store

    @staticmethod
    def _key(handle: str) -> str:
        return make_key(NAMESPACE, sha256_hex(handle))

    async def issue(self, claims: dict[str, Any], *, now: float) -> str:
        """A new handle standing for `claims` (which carry `exp`) until they expire."""
        handle = secrets.token_urlsafe(HANDLE_BYTES)
        await self._store.put(self._key(handle), {"claims": claims}, ttl=max(1.0, claims["exp"] - now))
        return handle

    async def claims(self, handle: str, *, now: float) -> dict[str, Any] | None:
        """The claims of a live handle, else None (unknown, expired or revoked)."""
        if not is_handle(handle):
            return None
        record = await self._store.get(self._key(handle))
        if record is None or not isinstance(record.get("claims"), dict):
            return None
        claims = record["claims"]
        if now >= claims.get("exp", 0):
            return None
        return claims

    async def delete(self, handle: str) -> bool:
        return is_handle(handle) and await self._store.delete(self._key(handle))

    async def finish(self, issued: IssuedT, client: ClientSettings, *, now: float) -> IssuedT:
        """The issued token as the client wants it: the JWT as is, or a handle for its claims.

        `issued` is token_exchange.Issued (a dataclass carrying the `token`, `expires_in` and the
        full `claims` that were signed)."""
        if not wants_opaque(client):
            return issued
        handle = await self.issue(dict(issued.claims), now=now)
        return replace(issued, token=handle, expires_in=max(1, issued.claims["exp"] - math.floor(now)))
