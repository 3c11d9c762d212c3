"""Refresh-token families on a `Store` (revoked jtis and the replay cache: storage/jti_records.py).

    refresh:<sha256>          the live token of a family   {"family", "client_id", "grant"}
    refresh_used:<sha256>     a rotated-out token           {"family"}
    refresh_family:<id>       the family                    {"client_id", "exp", "revoked"}

Every entry lives until the family's absolute expiry. Tokens are opaque random strings and
only their SHA-256 is stored. Presenting a rotated-out token revokes the whole family
(OAuth 2.0 Security BCP §4.14.2): the thief and the victim both lose it. Two concurrent uses of
one token are a reuse too: at most one succeeds, and the family is revoked.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

from service.digest import sha256_hex
from service.errors import InvalidGrant
from service.logs import get_logger
from service.storage.base import Store, make_key

log = get_logger(__name__)

LIVE, USED, FAMILY = "refresh", "refresh_used", "refresh_family"


@dataclass(frozen=True)
class RefreshGrant:
    """What a refresh token stands for (stored as JSON)."""

    family: str
    client_id: str
    exp: int                       # absolute expiry of the family
    grant: dict[str, Any]          # sub, aud, scope, tid, oid, issuer ...


def _ttl(exp: float, now: float) -> float:
    return max(1.0, exp - now)


class RefreshTokens:
    def __init__(self, store: Store) -> None:
        self._store = store

    async def create_family(self, client_id: str, grant: dict[str, Any], *, exp: int, now: float) -> str:
        family = secrets.token_urlsafe(16)
        await self._store.put(make_key(FAMILY, family),
                              {"client_id": client_id, "exp": exp, "revoked": False}, ttl=_ttl(exp, now))
        return await self._issue(RefreshGrant(family, client_id, exp, grant), now)

    async def _issue(self, rg: RefreshGrant, now: float) -> str:
        token = secrets.token_urlsafe(32)
        value = {"family": rg.family, "client_id": rg.client_id, "exp": rg.exp, "grant": rg.grant}
        await self._store.put(make_key(LIVE, sha256_hex(token)), value, ttl=_ttl(rg.exp, now))
        return token

    async def lookup(self, token: str, *, now: float) -> RefreshGrant | None:
        """The live grant behind `token` (not consumed), or None."""
        record = await self._store.get(make_key(LIVE, sha256_hex(token)))
        if record is None or now >= record["exp"] or not await self._family_live(record["family"]):
            return None
        return RefreshGrant(record["family"], record["client_id"], record["exp"], record["grant"])

    async def rotate(self, token: str, *, client_id: str, now: float) -> tuple[RefreshGrant, str]:
        """Consume `token` and issue its successor; InvalidGrant when unknown, expired, revoked,
        of another client, or reused (which revokes the family)."""
        digest = sha256_hex(token)
        live_key = make_key(LIVE, digest)
        record = await self._store.get(live_key)
        if record is None:
            await self._detect_reuse(digest, now)
            raise InvalidGrant(reason="unknown_refresh_token")
        if record["client_id"] != client_id:
            raise InvalidGrant(reason="other_client", detail=f"family={record['family']}")
        if now >= record["exp"] or not await self._family_live(record["family"]):
            raise InvalidGrant(reason="refresh_token_expired_or_revoked", detail=f"family={record['family']}")
        if await self._store.take(live_key) is None:
            # a concurrent use consumed it between our read and our take: that IS a reuse, even if
            # the winner has not recorded it as used yet (two replicas on Redis), so the family goes
            await self.revoke_family(record["family"], now=now)
            log.warning("refresh_token.reuse_detected", family=record["family"], concurrent=True)
            raise InvalidGrant(reason="refresh_token_reused", detail=f"family={record['family']}")
        await self._store.put(make_key(USED, digest), {"family": record["family"]},
                              ttl=_ttl(record["exp"], now))
        rg = RefreshGrant(record["family"], record["client_id"], record["exp"], record["grant"])
        return rg, await self._issue(rg, now)

    async def _detect_reuse(self, digest: str, now: float) -> None:
        used = await self._store.get(make_key(USED, digest))
        if used is not None:
            await self.revoke_family(used["family"], now=now)
            log.warning("refresh_token.reuse_detected", family=used["family"])
            raise InvalidGrant(reason="refresh_token_reused", detail=f"family={used['family']}")

    async def _family_live(self, family: str) -> bool:
        record = await self._store.get(make_key(FAMILY, family))
        return record is not None and not record.get("revoked")

    async def revoke_family(self, family: str, *, now: float) -> None:
        key = make_key(FAMILY, family)
        record = await self._store.get(key)
        if record is None or record.get("revoked"):
            return
        await self._store.put(key, {**record, "revoked": True}, ttl=_ttl(record["exp"], now))
        log.info("refresh_token.family_revoked", family=family)

    async def revoke(self, token: str, *, client_id: str, now: float) -> bool:
        """RFC 7009 for a refresh token of `client_id`: revokes its family. False if not ours."""
        grant = await self.lookup(token, now=now)
        if grant is None or grant.client_id != client_id:
            return False
        await self.revoke_family(grant.family, now=now)
        return True
