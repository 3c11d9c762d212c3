"""A plain client secret shorter than 32 characters is a configuration error (issue 14, finding 3):
guessing must be hopeless even with the throttle off. `check-config` names the key."""

from __future__ import annotations

import hashlib
import subprocess
import sys

import pytest

from service.settings import ConfigurationError, load_settings

CLIENT = '[[clients]]\nclient_id = "portal"\nclient_secret = "{secret}"\n'


def problems(secret: str, tmp_path) -> list[str]:
    try:
        load_settings(CLIENT.format(secret=secret), {}, base_dir=tmp_path)
    except ConfigurationError as e:
        return e.problems
    return []


@pytest.mark.parametrize("secret", ["portal-secret", "x" * 31])
def test_a_plain_secret_under_32_characters_is_refused_naming_the_key(secret, tmp_path):
    [problem] = problems(secret, tmp_path)
    assert problem.startswith("clients[portal].client_secret:") and "32" in problem


def test_32_characters_and_hashed_secrets_are_accepted(tmp_path):
    assert problems("x" * 32, tmp_path) == []
    assert problems("sha256:" + hashlib.sha256(b"short").hexdigest(), tmp_path) == []  # cannot be checked


def test_check_config_reports_a_short_secret_with_exit_2(tmp_path):
    config = tmp_path / "broker.toml"
    config.write_text(CLIENT.format(secret="hunter2"))
    done = subprocess.run([sys.executable, "-m", "service", "check-config", "--config", str(config)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "clients[portal].client_secret" in done.stdout + done.stderr
    assert "hunter2" not in done.stdout + done.stderr
