"""Verify Entra access tokens against the Entra emulator's JWKS, over HTTPS. TEST ONLY.

Used for `Authorization: Bearer` (aud `https://communication.azure.com`) and for the Teams
exchange (aud `https://auth.msft.communication.azure.com` or the ACS first-party app id). The
ACS emulator never imports the Entra emulator: it fetches the keys like real ACS would, from
`{entra_url}/{tid}/discovery/v2.0/keys` (then `/discovery/keys`, then the `common` ones).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable
from typing import Any

import aiohttp
import jwt

BEARER_AUDIENCES = ("https://communication.azure.com", "https://communication.azure.com/")
TEAMS_AUDIENCES = ("https://auth.msft.communication.azure.com", "1fd5118e-2576-4263-8130-9503064c837a")


class EntraTokenError(Exception):
    """The token is refused. `str(e)` is a safe reason (no token material)."""


class EntraKeys:
    """A small JWKS cache: keys by kid, refetched when a token names an unknown kid."""

    def __init__(self, entra_url: str | None, session: aiohttp.ClientSession | None) -> None:
        self._base = entra_url.rstrip("/") if entra_url else None
        self._session = session
        self._keys: dict[str, Any] = {}
        self._lock = asyncio.Lock()

    def issuers(self, tid: str) -> tuple[str, ...]:
        """v1 (`https://sts.windows.net/{tid}/`) and v2 (`{entra_url}/{tid}/v2.0`) issuers of a tenant."""
        return (f"https://sts.windows.net/{tid}/", f"{self._base}/{tid}/v2.0")

    def _urls(self, tid: str | None) -> list[str]:
        tenants = [t for t in (tid, "common") if t]
        return [f"{self._base}/{t}/discovery/{v}keys" for t in tenants for v in ("v2.0/", "")]

    async def _fetch(self, url: str) -> None:
        assert self._session is not None
        try:
            async with self._session.get(url, timeout=aiohttp.ClientTimeout(total=5)) as resp:
                if resp.status != 200:
                    return
                doc = await resp.json(content_type=None)
        except (TimeoutError, aiohttp.ClientError, json.JSONDecodeError, ValueError):
            return
        for jwk in doc.get("keys", []) if isinstance(doc, dict) else []:
            if isinstance(jwk, dict) and jwk.get("kid"):
                try:
                    self._keys[jwk["kid"]] = jwt.PyJWK(jwk).key
                except jwt.PyJWTError:
                    continue

    async def key(self, kid: str, tid: str | None) -> Any:
        """The public key for `kid`; an unknown kid refetches the JWKS (keys rotate; it is local)."""
        if kid in self._keys:
            return self._keys[kid]
        if self._base is None or self._session is None:
            raise EntraTokenError("Entra token verification is not configured (no --entra-url).")
        async with self._lock:
            for url in self._urls(tid):
                if kid in self._keys:
                    break
                await self._fetch(url)
        if kid not in self._keys:
            raise EntraTokenError("The token's signing key is not in the Entra JWKS.")
        return self._keys[kid]


async def verify(keys: EntraKeys, token: str, *, audiences: Iterable[str], now: float) -> dict[str, Any]:
    """Signature (RS256 via JWKS), audience, issuer shape, expiry and not-before; returns the claims."""
    try:
        header = jwt.get_unverified_header(token)
        unverified = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError as e:
        raise EntraTokenError("The token is not a JWT.") from e
    if header.get("alg") != "RS256" or not header.get("kid"):
        raise EntraTokenError("The token must be RS256 with a kid.")
    tid = unverified.get("tid") if isinstance(unverified.get("tid"), str) else None
    key = await keys.key(header["kid"], tid)
    try:
        claims = jwt.decode(token, key, algorithms=["RS256"], audience=list(audiences),
                            options={"verify_exp": False, "verify_nbf": False, "verify_iat": False,
                                     "require": ["exp", "aud", "iss"]})
    except jwt.InvalidAudienceError as e:
        raise EntraTokenError("The token's audience is not accepted.") from e
    except jwt.PyJWTError as e:
        raise EntraTokenError("The token's signature or claims are invalid.") from e
    if not isinstance(claims["exp"], (int, float)) or claims["exp"] <= now:
        raise EntraTokenError("The token has expired.")
    nbf = claims.get("nbf")
    if isinstance(nbf, (int, float)) and nbf > now + 300:
        raise EntraTokenError("The token is not valid yet.")
    if not tid or claims["iss"] not in keys.issuers(tid):
        raise EntraTokenError("The token's issuer is not the Entra issuer of its tenant.")
    return claims
