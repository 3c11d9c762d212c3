"""One contract suite for every Store backend (memory, sqlite, redis), plus open_store."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from service.errors import BrokerError, ConfigurationError, DownstreamError
from service.storage import Store, StoreUnavailable, open_store
from service.storage.memory import MemoryStore
from service.storage.redis import RedisStore
from service.storage.sqlite import SqliteStore
from tests.storage.conftest import REDIS_URL

TTL = 1.0   # Redis really waits this long; memory/sqlite only move a fake clock


async def test_a_missing_key_reads_as_none(backend):
    assert await backend.store.get("t:missing") is None
    assert await backend.store.take("t:missing") is None


async def test_put_then_get_round_trips_and_put_overwrites(backend):
    store = backend.store
    await store.put("t:a", {"n": 1})
    assert await store.get("t:a") == {"n": 1}
    await store.put("t:a", {"n": 2})
    assert await store.get("t:a") == {"n": 2}


async def test_values_round_trip_as_json_objects(backend):
    value = {"name": "Zoë 測試 🚀", "nested": {"list": [1, 2.5, None, True, {"x": "y"}], "empty": {}},
             "tuple": (1, 2), "quote": "a\"b\\c\n"}
    await backend.store.put("t:json", value)
    got = await backend.store.get("t:json")
    assert got == {**value, "tuple": [1, 2]}
    got["nested"]["list"].append("mutated")
    assert await backend.store.get("t:json") == {**value, "tuple": [1, 2]}


async def test_values_that_are_not_json_objects_are_refused(backend):
    with pytest.raises(TypeError):
        await backend.store.put("t:bad", ["not", "a", "dict"])
    with pytest.raises(TypeError):
        await backend.store.put("t:bad", {"x": object()})
    with pytest.raises(TypeError):
        await backend.store.put_if_absent("t:bad", {"x": float("nan")})
    with pytest.raises(ValueError):
        await backend.store.put("t:bad", {"x": 1}, ttl=0)
    assert await backend.store.get("t:bad") is None


async def test_delete_reports_whether_something_was_deleted(backend):
    store = backend.store
    await store.put("t:d", {"v": 1})
    assert await store.delete("t:d") is True
    assert await store.delete("t:d") is False
    assert await store.get("t:d") is None


async def test_take_consumes_the_value_once(backend):
    store = backend.store
    await store.put("t:code", {"sub": "alice"})
    assert await store.take("t:code") == {"sub": "alice"}
    assert await store.take("t:code") is None
    assert await store.get("t:code") is None


async def test_entries_expire_after_their_ttl_for_every_operation(backend):
    store = backend.store
    for name in ("get", "take", "delete", "scan", "pia"):
        await store.put(f"exp:{name}", {"v": name}, ttl=TTL)
    await store.put("exp:keep", {"v": "keep"})
    assert await store.get("exp:get") == {"v": "get"}
    await backend.advance(TTL + 0.3)
    assert await store.get("exp:get") is None
    assert await store.take("exp:take") is None
    assert await store.delete("exp:delete") is False
    assert await store.scan("exp:") == [("exp:keep", {"v": "keep"})]
    assert await store.put_if_absent("exp:pia", {"v": "new"}) is True
    assert await store.get("exp:pia") == {"v": "new"}
    assert await store.get("exp:keep") == {"v": "keep"}


async def test_put_replaces_an_earlier_ttl(backend):
    store = backend.store
    await store.put("t:r", {"v": 1}, ttl=TTL)
    await store.put("t:r", {"v": 2})
    await store.put("t:s", {"v": 1})
    await store.put("t:s", {"v": 2}, ttl=TTL)
    await backend.advance(TTL + 0.3)
    assert await store.get("t:r") == {"v": 2}
    assert await store.get("t:s") is None


async def test_put_if_absent_keeps_the_existing_value(backend):
    store = backend.store
    assert await store.put_if_absent("t:p", {"v": "first"}, ttl=60) is True
    assert await store.put_if_absent("t:p", {"v": "second"}) is False
    assert await store.get("t:p") == {"v": "first"}


async def test_put_if_absent_has_exactly_one_winner_among_50_concurrent_callers(backend):
    others = [backend.store, backend.another()]
    results = await asyncio.gather(*(others[i % 2].put_if_absent("t:race", {"who": i}, ttl=60)
                                     for i in range(50)))
    winners = [i for i, won in enumerate(results) if won]
    assert len(winners) == 1
    assert await backend.store.get("t:race") == {"who": winners[0]}


async def test_take_hands_the_value_to_exactly_one_of_50_concurrent_callers(backend):
    await backend.store.put("t:once", {"secret_ref": "r1"})
    others = [backend.store, backend.another()]
    results = await asyncio.gather(*(others[i % 2].take("t:once") for i in range(50)))
    assert [r for r in results if r is not None] == [{"secret_ref": "r1"}]
    assert await backend.store.get("t:once") is None


async def test_scan_returns_the_live_entries_under_a_prefix_sorted_by_key(backend):
    store = backend.store
    for key in ("fam:b:2", "fam:a:1", "fam:a*[x]?:1", "family:x", "other:fam:a:1"):
        await store.put(key, {"k": key})
    assert await store.scan("fam:a") == [("fam:a*[x]?:1", {"k": "fam:a*[x]?:1"}),
                                         ("fam:a:1", {"k": "fam:a:1"})]
    assert [k for k, _ in await store.scan("fam:")] == ["fam:a*[x]?:1", "fam:a:1", "fam:b:2"]
    assert await store.scan("fam:a*") == [("fam:a*[x]?:1", {"k": "fam:a*[x]?:1"})]
    assert await store.scan("nothing:") == []


async def test_ping_answers_and_close_is_idempotent(backend):
    assert await backend.store.ping() is True
    assert isinstance(backend.store, Store)
    another = backend.another()
    await another.close()
    await another.close()


async def test_a_redis_outage_is_a_quick_503_store_error_not_a_hang():
    store = RedisStore("redis://127.0.0.1:1/0", connect_timeout=1.0, op_timeout=1.0)
    try:
        assert await store.ping() is False
        with pytest.raises(StoreUnavailable) as caught:
            await asyncio.wait_for(store.put("t:x", {"v": 1}), timeout=10)
        err = caught.value
        assert isinstance(err, DownstreamError) and isinstance(err, BrokerError)
        assert err.status == 503 and err.service == "store"
        assert err.body()["error"] == "temporarily_unavailable"
        assert "127.0.0.1:1" in err.detail
        with pytest.raises(StoreUnavailable):
            await asyncio.wait_for(store.take("t:x"), timeout=10)
    finally:
        await store.close()


@pytest.mark.parametrize("url", ["mongodb://localhost/x", "postgres://db/x", "memory", "",
                                 "sqlite://", "sqlite:///", "redis://", "memory://somewhere"])
def test_open_store_refuses_unknown_or_malformed_urls_naming_the_key(url):
    with pytest.raises(ConfigurationError) as caught:
        open_store(url)
    assert caught.value.problems and all(p.startswith("store.url") for p in caught.value.problems)


async def test_open_store_builds_each_backend(tmp_path: Path, redis_prefix: str):
    with capture_logs() as logs:
        memory = open_store("memory://", dev=True)
    assert isinstance(memory, MemoryStore) and memory.durable is False
    assert logs == []
    relative = open_store("sqlite:///data/state.db", base_dir=tmp_path)
    absolute = open_store(f"sqlite:///{tmp_path}/abs/state.db")
    redis = open_store(f"{REDIS_URL}?prefix={redis_prefix}")
    try:
        assert isinstance(relative, SqliteStore) and relative.path == tmp_path / "data" / "state.db"
        assert isinstance(absolute, SqliteStore) and absolute.path == tmp_path / "abs" / "state.db"
        assert isinstance(redis, RedisStore) and redis.prefix == redis_prefix
        for store in (relative, absolute, redis):
            assert store.durable is True
            await store.put("t:k", {"v": 1})
            assert await store.take("t:k") == {"v": 1}
        assert (tmp_path / "data" / "state.db").is_file()
    finally:
        for store in (memory, relative, absolute, redis):
            await store.close()


def test_memory_store_outside_dev_warns_loudly():
    with capture_logs() as logs:
        open_store("memory://")
    assert [(e["event"], e["log_level"]) for e in logs] == [("store.ephemeral", "warning")]
