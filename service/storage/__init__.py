"""State storage: `open_store(settings.store.url)` returns a `Store` (see storage/base.py).

    memory://                       dev/tests only: lost on restart, not shared (warns outside dev)
    sqlite:///relative/state.db     one host; relative to `base_dir` (the config file's folder)
    sqlite:////abs/path/state.db
    redis://host:6379/0             several replicas; `?prefix=` changes the `tokenbroker:` prefix
    rediss://user@host:6380/0       TLS (Azure Cache for Redis); password / Entra ID via redis_options

Backends connect lazily, so opening never blocks the event loop; call `await store.ping()` at
startup to fail fast. The records on top of a Store: `jti_records.py` (replay cache, revoked jtis),
`acs_identity_map.py`, and the refresh-token families in `grants/refresh_families.py`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from service.logs import get_logger
from service.storage.base import Store, StoreUnavailable, make_key, parse_store_url

__all__ = ["Store", "StoreUnavailable", "make_key", "open_store"]

log = get_logger(__name__)


def open_store(url: str, *, clock: Callable[[], float] = time.time, base_dir: Path | None = None,
               dev: bool = False, **redis_options: Any) -> Store:
    """Build the backend named by `store.url`; ConfigurationError (naming `store.url`) if unknown.

    `clock` drives TTLs of the memory and sqlite backends (Redis counts TTLs itself).
    `dev=False` makes `memory://` log a loud `store.ephemeral` warning. `redis_options` go to
    `RedisStore` (ca_bundle, password, credential_provider).
    """
    parsed = parse_store_url(url)
    if parsed.scheme == "memory":
        from service.storage.memory import MemoryStore
        if not dev:
            log.warning("store.ephemeral", url="memory://",
                        message="memory:// loses all state on restart and is not shared between "
                                "replicas; use sqlite:// or redis:// outside development")
        return MemoryStore(clock=clock)
    if parsed.scheme == "sqlite":
        from service.storage.sqlite import SqliteStore
        path = Path(parsed.path)
        if not path.is_absolute():
            path = (base_dir or Path.cwd()) / path
        return SqliteStore(path, clock=clock)
    from service.storage.redis import RedisStore
    return RedisStore(parsed.url, **redis_options)
