"""Async cache of discovery documents and JWKS, one entry per URL.

- single-flight: concurrent misses on one URL share one fetch;
- keys are refreshed in the background once older than `max_age`; a fetch failure keeps the
  last known good value (an outage never drops warm keys);
- an unknown `kid` triggers a refetch at most once per `cooldown` seconds per JWKS URL;
- every fetch has a deadline (`timeout`, at most 5 s) and a response-size cap (`max_bytes`),
  and never blocks the event loop (unlike PyJWT's `PyJWKClient`);
- failed fetches back off per upstream host (one state for the whole process): after the n-th
  consecutive failure no fetch to that host is tried for min(30, 2^(n-1)) s × a jitter in
  [0.5, 1]; meanwhile a request needing a fetch gets 503 `temporarily_unavailable` with
  `Retry-After` at once. The first success ends the backoff.

The cache never creates a ClientSession; it is given one. No aiohttp.web here.
"""

from __future__ import annotations

import asyncio
import json
import math
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from service.errors import DownstreamError, TokenInvalid
from service.logs import get_logger
from service.metrics import Metrics
from service.validation.jwt_checks import PublicKey, b64url_decode

log = get_logger("tokenbroker.jwks")

MAX_FETCH_SECONDS = 5.0
BACKOFF_FIRST = 1.0      # seconds after the first failure (before jitter)
BACKOFF_MAX = 30.0
_CURVES: dict[str, type[ec.SECP256R1 | ec.SECP384R1 | ec.SECP521R1]] = {
    "P-256": ec.SECP256R1, "P-384": ec.SECP384R1, "P-521": ec.SECP521R1}


@dataclass(frozen=True)
class CachedKey:
    kid: str
    key: PublicKey
    kty: str
    alg: str | None = None
    issuer: str | None = None


class FetchError(Exception):
    """A discovery/JWKS fetch failed (status, size, timeout, not JSON)."""


def key_from_jwk(jwk: dict[str, Any]) -> Any:
    """A cryptography public key from a public JWK (RSA, EC, OKP/Ed25519). ValueError otherwise."""
    kty = jwk.get("kty")

    def num(name: str) -> int:
        value = jwk.get(name)
        if not isinstance(value, str):
            raise ValueError(f"missing {name}")
        return int.from_bytes(b64url_decode(value), "big")

    try:
        if kty == "RSA":
            return rsa.RSAPublicNumbers(num("e"), num("n")).public_key()
        if kty == "EC" and jwk.get("crv") in _CURVES:
            curve = _CURVES[jwk["crv"]]()
            return ec.EllipticCurvePublicNumbers(num("x"), num("y"), curve).public_key()
        if kty == "OKP" and jwk.get("crv") == "Ed25519" and isinstance(jwk.get("x"), str):
            return ed25519.Ed25519PublicKey.from_public_bytes(b64url_decode(jwk["x"]))
    except TokenInvalid as e:
        raise ValueError("bad base64url in JWK") from e
    raise ValueError(f"unsupported key type {str(kty)[:10]!r}")


def parse_jwks(doc: Any) -> dict[str, CachedKey]:
    """kid → key for every usable signing key; unusable entries are skipped (and logged)."""
    if not isinstance(doc, dict) or not isinstance(doc.get("keys"), list):
        raise FetchError("JWKS has no keys array")
    keys: dict[str, CachedKey] = {}
    for jwk in doc["keys"]:
        if not isinstance(jwk, dict) or not isinstance(jwk.get("kid"), str):
            continue
        if jwk.get("use", "sig") != "sig" or jwk["kid"] in keys:
            continue
        try:
            key = key_from_jwk(jwk)
        except ValueError as e:
            log.warning("jwks.key_skipped", kid=jwk["kid"][:64], error=str(e))
            continue
        alg = jwk.get("alg") if isinstance(jwk.get("alg"), str) else None
        issuer = jwk.get("issuer") if isinstance(jwk.get("issuer"), str) else None
        keys[jwk["kid"]] = CachedKey(jwk["kid"], key, jwk["kty"], alg, issuer)
    return keys


@dataclass
class _Entry:
    value: Any = None
    fetched_at: float | None = None       # last success (monotonic)
    attempted_at: float | None = None     # last attempt (monotonic)
    inflight: asyncio.Task | None = field(default=None, repr=False)


@dataclass
class Backoff:
    """Consecutive fetch failures of one upstream host, and when the next fetch may be tried."""
    failures: int = 0
    retry_at: float = 0.0

    def wait(self, now: float) -> float:
        return max(0.0, self.retry_at - now)

    def failed(self, now: float, jitter: float) -> float:
        self.failures += 1
        delay = min(BACKOFF_MAX, BACKOFF_FIRST * 2 ** (self.failures - 1)) * jitter
        self.retry_at = now + delay
        return delay

    def succeeded(self) -> None:
        self.failures, self.retry_at = 0, 0.0


def _host(url: str) -> str:
    return url.split("://", 1)[-1].split("/", 1)[0]


class JwksCache:
    def __init__(self, session: aiohttp.ClientSession, *, timeout: float, cooldown: float = 30,
                 max_bytes: int = 65536, metrics: Metrics | None = None,
                 clock: Callable[[], float] = time.monotonic, max_age: float = 3600,
                 doc_max_age: float = 86400) -> None:
        self._session = session
        self._timeout = min(float(timeout), MAX_FETCH_SECONDS) if timeout else MAX_FETCH_SECONDS
        self._cooldown = cooldown
        self._max_bytes = max_bytes
        self._metrics = metrics
        self._clock = clock
        self._max_age = max_age
        self._doc_max_age = doc_max_age
        self._docs: dict[str, _Entry] = {}
        self._jwks: dict[str, _Entry] = {}
        self._background: set[asyncio.Task] = set()
        self._backoff: dict[str, Backoff] = {}
        self._jitter: Callable[[], float] = lambda: random.uniform(0.5, 1.0)

    # --- public -------------------------------------------------------------------------------

    async def get_document(self, url: str) -> dict:
        """A JSON object document (OpenID discovery); cached, single-flight, last-known-good."""
        entry = self._docs.get(url)
        if entry is None:
            entry = self._docs[url] = _Entry()
        if entry.value is None:
            await self._refresh(entry, url, self._load_document)
        elif self._stale(entry, self._doc_max_age):
            self._refresh_in_background(entry, url, self._load_document)
        return entry.value

    def known_document(self, url: str) -> dict | None:
        """`get_document` without a coroutine when the document is held (a stale one is refreshed
        in the background, as there); None when it must be fetched first."""
        entry = self._docs.get(url)
        if entry is None or entry.value is None:
            return None
        if self._stale(entry, self._doc_max_age):
            self._refresh_in_background(entry, url, self._load_document)
        return entry.value

    def known_key(self, jwks_uri: str, kid: str) -> CachedKey | None:
        """`get_key` without a coroutine when the key is held (stale keys are refreshed in the
        background, as there); None when `get_key` must fetch or refuse."""
        entry = self._jwks.get(jwks_uri)
        if entry is None or entry.value is None:
            return None
        key = entry.value.get(kid)
        if key is not None and self._stale(entry, self._max_age):
            self._refresh_in_background(entry, jwks_uri, self._load_jwks)
        return key

    async def get_key(self, jwks_uri: str, kid: str) -> CachedKey:
        """The key `kid` of `jwks_uri`. TokenInvalid("unknown_kid") when absent after the
        (cooldown-limited) refetch; DownstreamError(503) when no keys were ever fetched."""
        entry = self._jwks.get(jwks_uri)
        if entry is None:
            entry = self._jwks[jwks_uri] = _Entry()
        if entry.value is None:
            await self._refresh(entry, jwks_uri, self._load_jwks)
        elif kid in entry.value:
            if self._stale(entry, self._max_age):
                self._refresh_in_background(entry, jwks_uri, self._load_jwks)
        elif entry.inflight is not None or self._cooldown_over(entry):
            try:
                await self._refresh(entry, jwks_uri, self._load_jwks)
            except DownstreamError:
                pass  # keep serving the last known good keys
        key = entry.value.get(kid)
        if key is None:
            raise TokenInvalid("unknown_kid", f"kid {kid[:64]!r} not in JWKS")
        return key

    async def get_keys(self, jwks_uri: str) -> dict[str, CachedKey]:
        """Every key of `jwks_uri` (fetched when cold); used to warm the cache."""
        entry = self._jwks.setdefault(jwks_uri, _Entry())
        if entry.value is None:
            await self._refresh(entry, jwks_uri, self._load_jwks)
        return dict(entry.value)

    def ready(self) -> bool:
        """True once at least one JWKS has been fetched (warm keys are usable)."""
        return any(e.value for e in self._jwks.values())

    async def close(self) -> None:
        tasks = list(self._background) + [e.inflight for e in (*self._docs.values(),
                                                             *self._jwks.values()) if e.inflight]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # --- internals ----------------------------------------------------------------------------

    def _stale(self, entry: _Entry, max_age: float) -> bool:
        return entry.fetched_at is None or self._clock() - entry.fetched_at >= max_age

    def _cooldown_over(self, entry: _Entry) -> bool:
        return entry.attempted_at is None or self._clock() - entry.attempted_at >= self._cooldown

    def backoff(self, url: str) -> Backoff:
        return self._backoff.setdefault(_host(url), Backoff())

    def _refuse_during_backoff(self, url: str) -> None:
        wait = self.backoff(url).wait(self._clock())
        if wait > 0:
            self._count("cache_events_total", cache="jwks", event="backoff")
            raise DownstreamError("The identity provider is unavailable; retry later.", status=503,
                                  service="jwks", retry_after=max(1, math.ceil(wait)),
                                  detail=f"{_host(url)}: backing off", reason="jwks_backoff")

    async def _refresh(self, entry: _Entry, url: str,
                       loader: Callable[[str], Awaitable[Any]]) -> None:
        if entry.inflight is None:
            self._refuse_during_backoff(url)
            entry.attempted_at = self._clock()
            entry.inflight = asyncio.ensure_future(self._run(entry, url, loader))
        else:
            self._count("cache_events_total", cache="jwks", event="coalesced")
        await asyncio.shield(entry.inflight)

    def _refresh_in_background(self, entry: _Entry, url: str, loader: Callable[[str], Awaitable[Any]]) -> None:
        if entry.inflight is not None or not self._cooldown_over(entry) or self.backoff(url).wait(self._clock()):
            return
        entry.attempted_at = self._clock()
        entry.inflight = task = asyncio.ensure_future(self._run(entry, url, loader))
        self._background.add(task)
        task.add_done_callback(self._forget)

    def _forget(self, task: asyncio.Task) -> None:
        self._background.discard(task)
        if not task.cancelled():
            task.exception()  # already logged; mark retrieved

    async def _run(self, entry: _Entry, url: str, loader: Callable[[str], Awaitable[Any]]) -> None:
        backoff = self.backoff(url)
        try:
            entry.value = await loader(url)
            entry.fetched_at = self._clock()
            backoff.succeeded()
        except FetchError as e:
            delay = backoff.failed(self._clock(), self._jitter())
            log.warning("jwks.fetch_failed", url=url, error=str(e)[:200], failures=backoff.failures,
                        backoff_seconds=round(delay, 2))
            raise DownstreamError("The identity provider's keys are unavailable.", status=503,
                                  service="jwks", retry_after=max(1, math.ceil(delay)),
                                  detail=f"{url}: {e}", reason="jwks") from e
        finally:
            entry.inflight = None

    async def _load_document(self, url: str) -> dict:
        doc = await self._fetch_json(url)
        if not isinstance(doc, dict):
            raise FetchError("document is not a JSON object")
        return doc

    async def _load_jwks(self, url: str) -> dict[str, CachedKey]:
        try:
            keys = parse_jwks(await self._fetch_json(url))
        except FetchError:
            self._count("jwks_fetches_total", outcome="error")
            raise
        self._count("jwks_fetches_total", outcome="ok")
        return keys

    async def _fetch_json(self, url: str) -> Any:
        timeout = aiohttp.ClientTimeout(total=self._timeout)
        try:
            async with self._session.get(url, timeout=timeout, allow_redirects=False,
                                         headers={"Accept": "application/json"}) as resp:
                if resp.status != 200:
                    raise FetchError(f"HTTP {resp.status}")
                if resp.content_length is not None and resp.content_length > self._max_bytes:
                    raise FetchError("response too large")
                body = bytearray()
                async for chunk in resp.content.iter_chunked(16384):
                    body += chunk
                    if len(body) > self._max_bytes:
                        raise FetchError("response too large")
            return json.loads(bytes(body))
        except (TimeoutError, aiohttp.ClientError, ValueError, UnicodeDecodeError) as e:
            raise FetchError(f"{type(e).__name__}: {e}"[:200]) from e

    def _count(self, name: str, **labels: str) -> None:
        metric = getattr(self._metrics, name, None) if self._metrics is not None else None
        if metric is not None:
            metric.labels(**labels).inc()
