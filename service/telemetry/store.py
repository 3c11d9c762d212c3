"""`TracedStore`: a span per state-store operation, around any `Store` backend.

The app wraps its store in this only when telemetry is on, so the backends stay untouched and
cost nothing extra when it is off. Spans are `store.<op>` with `db.system` (the backend's URL
scheme: memory, sqlite, redis) and `tokenbroker.namespace` (the key's namespace, e.g.
`acs_identity`) — never the rest of the key, which may hold a jti or a hash of a user.
A `ping` (readiness probes) is not traced.
"""

from __future__ import annotations

from typing import Any

from .spans import span


def _namespace(key: str) -> str:
    return key.split(":", 1)[0][:64]


class TracedStore:
    def __init__(self, inner: Any, system: str) -> None:
        self._inner = inner
        self._system = system

    def __getattr__(self, name: str) -> Any:       # durable, and whatever a backend adds
        return getattr(self._inner, name)

    async def get(self, key: str) -> dict | None:
        with span("store.get", **{"db.system": self._system}, namespace=_namespace(key)) as s:
            value = await self._inner.get(key)
            s.set_attribute("tokenbroker.found", value is not None)
            return value

    async def put(self, key: str, value: dict, *, ttl: float | None = None) -> None:
        with span("store.put", **{"db.system": self._system}, namespace=_namespace(key)):
            await self._inner.put(key, value, ttl=ttl)

    async def put_if_absent(self, key: str, value: dict, *, ttl: float | None = None) -> bool:
        with span("store.put_if_absent", **{"db.system": self._system}, namespace=_namespace(key)) as s:
            stored = await self._inner.put_if_absent(key, value, ttl=ttl)
            s.set_attribute("tokenbroker.stored", stored)
            return stored

    async def delete(self, key: str) -> bool:
        with span("store.delete", **{"db.system": self._system}, namespace=_namespace(key)):
            return await self._inner.delete(key)

    async def take(self, key: str) -> dict | None:
        with span("store.take", **{"db.system": self._system}, namespace=_namespace(key)) as s:
            value = await self._inner.take(key)
            s.set_attribute("tokenbroker.found", value is not None)
            return value

    async def scan(self, prefix: str) -> list[tuple[str, dict]]:
        with span("store.scan", **{"db.system": self._system}, namespace=_namespace(prefix)) as s:
            found = await self._inner.scan(prefix)
            s.set_attribute("tokenbroker.count", len(found))
            return found

    async def ping(self) -> bool:
        return await self._inner.ping()

    async def close(self) -> None:
        await self._inner.close()
