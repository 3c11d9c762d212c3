"""`[store]` keys of the shared caches and managed Redis: encryption_key required with Redis and
named by `check-config`, from the environment, base64 of exactly 32 bytes, previous keys, and
the Redis-only keys refused elsewhere."""

from __future__ import annotations

import base64
import os
import subprocess

import pytest

from service.errors import ConfigurationError
from service.settings import describe, load_settings
from tests.support.serve_process import ROOT, TOKENBROKER, clean_env
from tests.support.store_keys import TEST_ENCRYPTION_KEY

REDIS_TOML = '[store]\nurl = "rediss://cache.example:6380/0"\n'


def problems(toml: str, environ: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigurationError) as failed:
        load_settings(toml, environ or {}, base_dir=ROOT)
    return failed.value.problems


def test_check_config_names_the_missing_encryption_key_of_a_redis_store(tmp_path):
    config = tmp_path / "broker.toml"
    config.write_text(REDIS_TOML)
    result = subprocess.run([*TOKENBROKER, "check-config", "--config", str(config)], capture_output=True,
                            text=True, cwd=ROOT, env=clean_env(), timeout=60, check=False)
    assert result.returncode == 2
    assert any(line.startswith("store.encryption_key: required") for line in
               (result.stdout + result.stderr).splitlines()), result.stdout + result.stderr
    ok = subprocess.run([*TOKENBROKER, "check-config", "--config", str(config)], capture_output=True, text=True,
                        cwd=ROOT, env={**clean_env(), "TOKENBROKER_STORE__ENCRYPTION_KEY": TEST_ENCRYPTION_KEY},
                        timeout=60, check=False)
    assert ok.returncode == 0, ok.stdout + ok.stderr


def test_the_key_may_come_from_the_environment_and_is_masked():
    settings = load_settings(REDIS_TOML, {"TOKENBROKER_STORE__ENCRYPTION_KEY": TEST_ENCRYPTION_KEY}, base_dir=ROOT)
    assert settings.store.encryption_key.reveal() == TEST_ENCRYPTION_KEY
    assert TEST_ENCRYPTION_KEY not in repr(settings) and TEST_ENCRYPTION_KEY not in str(describe(settings))


def test_keys_must_be_base64_of_exactly_32_bytes():
    short = base64.b64encode(os.urandom(16)).decode()
    found = problems(REDIS_TOML + f'encryption_key = "{short}"\nprevious_encryption_keys = ["not base64!"]\n')
    assert [p.split(":")[0] for p in found] == ["store.encryption_key", "store.previous_encryption_keys[0]"]


def test_memory_and_sqlite_stores_need_no_key_and_refuse_redis_only_keys():
    assert not load_settings('[store]\nurl = "sqlite:///state.db"\n', {}, base_dir=ROOT).store.encryption_key
    found = problems('[store]\nurl = "memory://"\npassword = "x"\nentra_auth = true\n')
    assert any(p.startswith("store.password: only with") for p in found)
    assert any(p.startswith("store.entra_auth: only with") for p in found)


def test_a_user_assigned_identity_needs_managed_identity_and_a_guid():
    found = problems(REDIS_TOML + f'encryption_key = "{TEST_ENCRYPTION_KEY}"\nmanaged_identity_client_id = "x"\n')
    assert {p.split(":")[0] for p in found} == {"store.managed_identity_client_id"} and len(found) == 2


def test_entra_auth_refuses_credentials_in_the_url():
    found = problems('[store]\nurl = "rediss://user:pw@cache.example:6380/0"\n'
                     f'encryption_key = "{TEST_ENCRYPTION_KEY}"\nentra_auth = true\nmanaged_identity = true\n')
    assert [p.split(":")[0] for p in found] == ["store.entra_auth"]
