"""The `Store` Protocol every backend implements, plus URL parsing and key helpers.

Semantics shared by every backend (the contract suite in tests/storage checks them):

- **Values** are JSON objects (`dict`). They are serialised on the way in, so a caller never
  shares a mutable object with the store, and a value that is not JSON-able fails at once with
  `TypeError`. Tuples come back as lists, exactly as in JSON.
- **Keys** are strings namespaced `"ns:..."` (build them with `make_key`). Backends may add
  their own prefix (Redis: `tokenbroker:`); it never shows in keys returned by `scan`.
- **TTL** is in seconds (float), counted from the call. `None` means "keep until deleted".
  A non-positive TTL is a `ValueError`. An expired entry is absent for every operation
  (`get`, `take`, `delete`, `scan`, `put_if_absent`) even before a backend reclaims its space.
- **put** overwrites unconditionally and replaces any earlier TTL (idempotent).
- **put_if_absent** is atomic: of any number of concurrent callers (tasks, processes or
  broker replicas sharing the backend) exactly one gets `True`; the others get `False` and
  the stored value is the winner's. An expired entry counts as absent.
- **take** is "consume": an atomic get-and-delete. Of concurrent callers exactly one receives
  the value, the others `None`. Use it for one-time codes and refresh-token rotation.
- **delete** returns whether a live entry was removed; deleting twice is harmless.
- **ping** returns `False` (never raises) when the backend is unreachable; every other
  operation raises `StoreUnavailable` (a `DownstreamError`, HTTP 503) instead of hanging.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Protocol, runtime_checkable
from urllib.parse import quote

from service.errors import ConfigurationError, DownstreamError


class StoreUnavailable(DownstreamError):
    """The state store failed or is unreachable: answered as 503 temporarily_unavailable."""

    default_description = "The state store is temporarily unavailable."

    def __init__(self, detail: str = "", *, retry_after: int | None = 1) -> None:
        super().__init__(status=503, service="store", retry_after=retry_after,
                         detail=detail, reason="store_unavailable")


@runtime_checkable
class Store(Protocol):
    """Key/value state with per-entry TTL. See the module docstring for the exact semantics."""

    durable: bool
    """False for `memory://`: state is lost on restart and not shared between replicas."""

    async def get(self, key: str) -> dict | None:
        """The live value under `key`, or None when absent or expired."""

    async def put(self, key: str, value: dict, *, ttl: float | None = None) -> None:
        """Store `value` under `key`, replacing any value and TTL."""

    async def put_if_absent(self, key: str, value: dict, *, ttl: float | None = None) -> bool:
        """Atomically store `value` only if no live entry exists; True if this call stored it."""

    async def delete(self, key: str) -> bool:
        """Remove `key`; True if a live entry was removed."""

    async def take(self, key: str) -> dict | None:
        """Consume: atomically return and remove the live value (exactly one caller gets it)."""

    async def scan(self, prefix: str) -> list[tuple[str, dict]]:
        """Every live `(key, value)` whose key starts with `prefix`, sorted by key."""

    async def ping(self) -> bool:
        """True when the backend answers; False (never an exception) when it does not."""

    async def close(self) -> None:
        """Release connections/threads. Idempotent."""


def make_key(namespace: str, *parts: str) -> str:
    """`"ns:part1:part2"` with ':' and '%' in parts percent-encoded, so parts never collide."""
    if not namespace or ":" in namespace:
        raise ValueError("namespace must be non-empty and contain no ':'")
    encoded = []
    for part in parts:
        if not isinstance(part, str) or not part:
            raise ValueError("key parts must be non-empty strings")
        encoded.append(quote(part, safe="", encoding="utf-8") if (":" in part or "%" in part) else part)
    return ":".join([namespace, *encoded])


def encode_value(value: dict) -> str:
    """Serialise a value for storage; TypeError unless it is a JSON-able dict."""
    if not isinstance(value, dict):
        raise TypeError(f"store values must be dicts, not {type(value).__name__}")
    try:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    except ValueError as e:   # NaN/Infinity or a circular reference
        raise TypeError(f"store value is not JSON-able: {e}") from e


def decode_value(text: str | bytes) -> dict:
    return json.loads(text)


def check_key(key: str) -> str:
    if not isinstance(key, str) or not key:
        raise ValueError("store keys must be non-empty strings")
    return key


def check_ttl(ttl: float | None) -> float | None:
    """None, or a finite number of seconds > 0."""
    if ttl is None:
        return None
    if isinstance(ttl, bool) or not isinstance(ttl, int | float) or not math.isfinite(ttl) or ttl <= 0:
        raise ValueError(f"ttl must be a positive number of seconds or None, not {ttl!r}")
    return float(ttl)


@dataclass(frozen=True)
class StoreUrl:
    """A parsed `store.url`: scheme is memory | sqlite | redis (rediss counts as redis)."""

    scheme: str
    url: str
    path: str = ""          # sqlite: the file path as written (relative or absolute)


def parse_store_url(url: str) -> StoreUrl:
    """Validate `store.url`; ConfigurationError naming the key on anything unknown."""
    if not isinstance(url, str) or "://" not in url:
        raise ConfigurationError(
            [f"store.url: {url!r} is not a URL; use memory://, sqlite:///path or redis://host:port/db"])
    scheme, rest = url.split("://", 1)
    scheme = scheme.lower()
    if scheme == "memory":
        if rest.strip("/"):
            raise ConfigurationError(["store.url: memory:// takes no host or path"])
        return StoreUrl("memory", url)
    if scheme == "sqlite":
        # SQLAlchemy convention: sqlite:///relative.db, sqlite:////absolute/path.db
        if not rest.startswith("/") or not rest[1:] or "?" in rest or "#" in rest:
            raise ConfigurationError(
                ["store.url: sqlite URLs look like sqlite:///relative/state.db or sqlite:////abs/state.db"])
        return StoreUrl("sqlite", url, path=rest[1:])
    if scheme in ("redis", "rediss"):
        if not rest or rest.startswith("/"):
            raise ConfigurationError(["store.url: redis URLs look like redis://host:6379/0"])
        return StoreUrl("redis", url)
    raise ConfigurationError(
        [f"store.url: unknown scheme {scheme!r}; use memory://, sqlite:///path or redis://host:port/db"])
