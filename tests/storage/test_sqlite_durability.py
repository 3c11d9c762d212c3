"""The sqlite backend keeps state across a restart and reclaims expired rows."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from service.errors import DownstreamError
from service.storage import StoreUnavailable
from service.storage.sqlite import SqliteStore
from tests.storage.conftest import FakeClock


def _rows(path: Path) -> list[str]:
    conn = sqlite3.connect(path)
    try:
        return [k for (k,) in conn.execute("SELECT key FROM kv ORDER BY key")]
    finally:
        conn.close()


async def test_data_survives_close_and_reopen_and_expired_entries_are_gone(tmp_path: Path):
    clock = FakeClock()
    path = tmp_path / "nested" / "dir" / "state.db"
    store = SqliteStore(path, clock=clock)
    await store.put("fam:1", {"user": "Zoë", "gen": 3})
    await store.put("code:short", {"v": 1}, ttl=30)
    await store.put("code:long", {"v": 2}, ttl=3600)
    await store.close()
    assert path.is_file()

    clock.advance(60)
    reopened = SqliteStore(path, clock=clock)
    try:
        assert await reopened.get("fam:1") == {"user": "Zoë", "gen": 3}
        assert await reopened.get("code:long") == {"v": 2}
        assert await reopened.get("code:short") is None
        assert _rows(path) == ["code:long", "fam:1"]          # swept when reopened
        assert await reopened.put_if_absent("code:short", {"v": 3}) is True
    finally:
        await reopened.close()


async def test_the_database_runs_in_wal_mode(tmp_path: Path):
    path = tmp_path / "state.db"
    store = SqliteStore(path)
    assert await store.ping() is True
    await store.close()
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        conn.close()


async def test_an_unusable_path_is_a_503_store_error(tmp_path: Path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    store = SqliteStore(blocker / "state.db")
    try:
        assert await store.ping() is False
        with pytest.raises(StoreUnavailable) as caught:
            await store.put("t:x", {"v": 1})
        assert isinstance(caught.value, DownstreamError) and caught.value.status == 503
    finally:
        await store.close()


async def test_a_closed_store_refuses_calls_with_a_store_error(tmp_path: Path):
    store = SqliteStore(tmp_path / "state.db")
    await store.close()
    with pytest.raises(StoreUnavailable):
        await store.get("t:x")
