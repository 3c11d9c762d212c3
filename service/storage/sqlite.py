"""`sqlite:///relative/state.db` or `sqlite:////abs/state.db`: a durable single-host store.

One table `kv(key TEXT PRIMARY KEY, value TEXT, expires_at REAL)` in WAL mode. Every call runs
on one dedicated worker thread that owns the connection, so the event loop never blocks.
Atomicity comes from single SQL statements (`INSERT ... ON CONFLICT ... WHERE expired`,
`DELETE ... RETURNING`), which also holds between processes sharing the file. Expired rows are
absent for every operation and are deleted opportunistically (on open and every few writes).
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from service.storage.base import StoreUnavailable, check_key, check_ttl, decode_value, encode_value

T = TypeVar("T")
_SWEEP_EVERY = 256
_SCHEMA = """
CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value TEXT NOT NULL, expires_at REAL);
CREATE INDEX IF NOT EXISTS kv_expires_at ON kv (expires_at) WHERE expires_at IS NOT NULL;
"""
_LIVE = "(expires_at IS NULL OR expires_at > ?)"


class SqliteStore:
    durable = True

    def __init__(self, path: str | Path, *, clock: Callable[[], float] = time.time,
                 busy_timeout: float = 5.0) -> None:
        self.path = Path(path)
        self._clock = clock
        self._busy_timeout = busy_timeout
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-store")
        self._conn: sqlite3.Connection | None = None
        self._writes = 0
        self._closed = False

    # --- worker-thread side -------------------------------------------------------------

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, timeout=self._busy_timeout, isolation_level=None)
            try:
                self._initialise(conn)
            except BaseException:
                conn.close()
                raise
            self._conn = conn
        return self._conn

    def _initialise(self, conn: sqlite3.Connection) -> None:
        """Switching to WAL can answer "database is locked" at once, without the busy handler,
        while another process opens the same file: retry within the busy timeout."""
        deadline = time.monotonic() + self._busy_timeout
        while True:
            try:
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=NORMAL")
                conn.executescript(_SCHEMA)
                self._sweep(conn)
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.02)

    def _sweep(self, conn: sqlite3.Connection) -> None:
        conn.execute("DELETE FROM kv WHERE expires_at IS NOT NULL AND expires_at <= ?", (self._clock(),))

    def _wrote(self, conn: sqlite3.Connection) -> None:
        self._writes += 1
        if self._writes % _SWEEP_EVERY == 0:
            self._sweep(conn)

    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        if self._closed:
            raise StoreUnavailable("sqlite store is closed")

        def call() -> T:
            return fn(self._connection())

        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, call)
        except (sqlite3.Error, OSError) as e:
            raise StoreUnavailable(f"sqlite store {self.path}: {type(e).__name__}: {e}") from e

    # --- Store --------------------------------------------------------------------------

    async def get(self, key: str) -> dict | None:
        check_key(key)

        def op(conn: sqlite3.Connection) -> str | None:
            row = conn.execute(f"SELECT value FROM kv WHERE key = ? AND {_LIVE}",
                               (key, self._clock())).fetchone()
            return row[0] if row else None

        text = await self._run(op)
        return None if text is None else decode_value(text)

    async def put(self, key: str, value: dict, *, ttl: float | None = None) -> None:
        check_key(key)
        text, ttl = encode_value(value), check_ttl(ttl)

        def op(conn: sqlite3.Connection) -> None:
            expires_at = None if ttl is None else self._clock() + ttl
            conn.execute("INSERT OR REPLACE INTO kv (key, value, expires_at) VALUES (?, ?, ?)",
                         (key, text, expires_at))
            self._wrote(conn)

        await self._run(op)

    async def put_if_absent(self, key: str, value: dict, *, ttl: float | None = None) -> bool:
        check_key(key)
        text, ttl = encode_value(value), check_ttl(ttl)

        def op(conn: sqlite3.Connection) -> bool:
            now = self._clock()
            cur = conn.execute(
                "INSERT INTO kv (key, value, expires_at) VALUES (?, ?, ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at "
                "WHERE kv.expires_at IS NOT NULL AND kv.expires_at <= ?",
                (key, text, None if ttl is None else now + ttl, now))
            self._wrote(conn)
            return cur.rowcount == 1

        return await self._run(op)

    async def delete(self, key: str) -> bool:
        check_key(key)

        def op(conn: sqlite3.Connection) -> bool:
            row = conn.execute("DELETE FROM kv WHERE key = ? RETURNING expires_at", (key,)).fetchone()
            return row is not None and (row[0] is None or row[0] > self._clock())

        return await self._run(op)

    async def take(self, key: str) -> dict | None:
        check_key(key)

        def op(conn: sqlite3.Connection) -> str | None:
            row = conn.execute("DELETE FROM kv WHERE key = ? RETURNING value, expires_at",
                               (key,)).fetchone()
            if row is None or (row[1] is not None and row[1] <= self._clock()):
                return None
            return row[0]

        text = await self._run(op)
        return None if text is None else decode_value(text)

    async def scan(self, prefix: str) -> list[tuple[str, dict]]:
        def op(conn: sqlite3.Connection) -> list[tuple[str, str]]:
            return conn.execute(
                f"SELECT key, value FROM kv WHERE key >= ? AND substr(key, 1, ?) = ? AND {_LIVE} "
                "ORDER BY key", (prefix, len(prefix), prefix, self._clock())).fetchall()

        return [(k, decode_value(v)) for k, v in await self._run(op)]

    async def ping(self) -> bool:
        try:
            return await self._run(lambda conn: conn.execute("SELECT 1").fetchone() == (1,))
        except StoreUnavailable:
            return False

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True

        def op() -> None:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

        try:
            await asyncio.get_running_loop().run_in_executor(self._executor, op)
        finally:
            self._executor.shutdown(wait=False)
