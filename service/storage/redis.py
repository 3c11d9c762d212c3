"""`redis://host:port/db` (or `rediss://`): the shared store for several broker replicas.

Every key is stored under a prefix (default `tokenbroker:`; `?prefix=...` in the URL or the
`prefix=` argument), so the broker can share a Redis with other software. TTLs are Redis's own
(`SET ... PX`), counted on the server; `put_if_absent` is `SET NX PX`, `take` is `GETDEL`,
`scan` is `SCAN MATCH <escaped prefix>*` then `MGET`; `incr` (shared counters, e.g. the
throttle's) is `INCR` + `PEXPIRE` on creation, in one Lua script. `rediss://` verifies the server's
certificate and host name (system CAs plus `[tls] ca_bundle`); the password comes from the URL or
`store.password`, or Entra ID tokens from a credential provider (downstream/redis_entra.py). Connect and socket timeouts are short
and a failed connection is retried once without backoff, so an outage surfaces as
`StoreUnavailable` (503) within seconds instead of a hang.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.credentials import CredentialProvider
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from service.storage.base import StoreUnavailable, check_key, check_ttl, decode_value, encode_value

DEFAULT_PREFIX = "tokenbroker:"
_GLOB = re.compile(r"([*?\[\]\\])")
_MGET_BATCH = 500
_INCR_WITH_EXPIRY = """
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return n
"""


def split_prefix(url: str) -> tuple[str, str | None]:
    """Remove our own `prefix` query parameter from a redis URL: (url_for_redis_py, prefix)."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    prefix = next((v for k, v in query if k == "prefix"), None)
    rest = [(k, v) for k, v in query if k != "prefix"]
    return urlunsplit(parts._replace(query=urlencode(rest))), prefix


def _redacted(url: str) -> str:
    """host:port/db only: never log a password from the URL."""
    parts = urlsplit(url)
    return f"{parts.hostname}:{parts.port or 6379}{parts.path}"


class RedisStore:
    durable = True

    def __init__(self, url: str, *, prefix: str | None = None, connect_timeout: float = 2.0,
                 op_timeout: float = 3.0, ca_bundle: str = "", password: str = "",
                 credential_provider: CredentialProvider | None = None) -> None:
        """`ca_bundle`: extra CAs for `rediss://` (system CAs stay trusted); `password`: used
        instead of the URL's (its user name stays); `credential_provider`: e.g. Entra ID
        (redis_entra.py), exclusive with a password."""
        redis_url, url_prefix = split_prefix(url)
        self.prefix = prefix if prefix is not None else (url_prefix or DEFAULT_PREFIX)
        self._where = _redacted(redis_url)
        options: dict[str, Any] = {}
        if redis_url.lower().startswith("rediss://"):
            options.update(ssl_cert_reqs="required", ssl_check_hostname=True)
            if ca_bundle:
                options["ssl_ca_certs"] = ca_bundle
        if password:
            options["password"] = password
        if credential_provider is not None:
            options["credential_provider"] = credential_provider
        pool = aioredis.ConnectionPool.from_url(
            redis_url, socket_connect_timeout=connect_timeout, socket_timeout=op_timeout,
            retry=Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,)),
            decode_responses=False, **options)
        # The provider is passed to the client too: only then does redis-py re-send AUTH with a
        # renewed Entra token on the pooled connections (`Redis.from_url` loses that).
        self._redis = aioredis.Redis(connection_pool=pool, credential_provider=credential_provider)
        self._redis.auto_close_connection_pool = True      # as Redis.from_pool: aclose() closes it
        self._closed = False
        self.last_error = ""

    def _k(self, key: str) -> str:
        return self.prefix + check_key(key)

    def _unavailable(self, e: Exception) -> StoreUnavailable:
        return StoreUnavailable(f"redis store {self._where}: {type(e).__name__}: {e}")

    @staticmethod
    def _px(ttl: float | None) -> int | None:
        return None if ttl is None else max(1, round(ttl * 1000))

    async def get(self, key: str) -> dict | None:
        try:
            raw = await self._redis.get(self._k(key))
        except (RedisError, OSError) as e:
            raise self._unavailable(e) from e
        return None if raw is None else decode_value(raw)

    async def put(self, key: str, value: dict, *, ttl: float | None = None) -> None:
        name, text, px = self._k(key), encode_value(value), self._px(check_ttl(ttl))
        try:
            await self._redis.set(name, text, px=px)
        except (RedisError, OSError) as e:
            raise self._unavailable(e) from e

    async def put_if_absent(self, key: str, value: dict, *, ttl: float | None = None) -> bool:
        name, text, px = self._k(key), encode_value(value), self._px(check_ttl(ttl))
        try:
            return bool(await self._redis.set(name, text, px=px, nx=True))
        except (RedisError, OSError) as e:
            raise self._unavailable(e) from e

    async def delete(self, key: str) -> bool:
        try:
            return await self._redis.delete(self._k(key)) > 0
        except (RedisError, OSError) as e:
            raise self._unavailable(e) from e

    async def take(self, key: str) -> dict | None:
        try:
            raw = await self._redis.getdel(self._k(key))
        except (RedisError, OSError) as e:
            raise self._unavailable(e) from e
        return None if raw is None else decode_value(raw)

    async def scan(self, prefix: str) -> list[tuple[str, dict]]:
        pattern = _GLOB.sub(r"\\\1", self.prefix + prefix) + "*"
        cut = len(self.prefix.encode())
        try:
            names = sorted({n async for n in self._redis.scan_iter(match=pattern, count=500)})
            found: list[tuple[str, dict]] = []
            for i in range(0, len(names), _MGET_BATCH):
                batch = names[i:i + _MGET_BATCH]
                for name, raw in zip(batch, await self._redis.mget(batch), strict=True):
                    if raw is not None:          # expired or deleted since SCAN saw it
                        found.append((name[cut:].decode(), decode_value(raw)))
        except (RedisError, OSError) as e:
            raise self._unavailable(e) from e
        return sorted(found, key=lambda kv: kv[0])

    async def incr(self, key: str, *, ttl: float) -> int:
        """Atomically add 1 to a counter (created at 1 with `ttl`; the TTL is not extended)."""
        try:
            px = max(1, round(float(check_ttl(ttl) or 0) * 1000))   # ttl is required here (a positive number)
            return int(await self._redis.eval(_INCR_WITH_EXPIRY, 1, self._k(key), px))
        except (RedisError, OSError) as e:
            raise self._unavailable(e) from e

    async def ping(self) -> bool:
        """False when Redis does not answer; `last_error` then says why (no secrets in it)."""
        try:
            ok = bool(await self._redis.ping())
        except Exception as e:  # noqa: BLE001 - also a credential provider's token failure
            self.last_error = f"{type(e).__name__}: {str(e)[:160]}"
            return False
        self.last_error = ""
        return ok

    async def close(self) -> None:
        if not self._closed:
            self._closed = True
            await self._redis.aclose()
