"""Configuration: TOML plus MINIMAL_CLIENT_* variables, strict about keys and types."""

from __future__ import annotations

from pathlib import Path

import pytest

from minimal_client.config import TEAMS_SCOPES, ConfigError, load_config, load_config_file

SAMPLE = Path(__file__).resolve().parents[2] / "minimal_client" / "config.sample.toml"
BASE = {
    "MINIMAL_CLIENT_AUTHORITY": "https://127.0.0.1:9443/",
    "MINIMAL_CLIENT_TENANT": "11111111-1111-1111-1111-111111111111",
    "MINIMAL_CLIENT_CLIENT_ID": "client",
    "MINIMAL_CLIENT_CLIENT_SECRET": "secret",
    "MINIMAL_CLIENT_BROKER_URL": "http://127.0.0.1:8080/",
    "MINIMAL_CLIENT_BROKER_APP_ID": "broker-app",
}


def test_environment_alone_configures_the_client_with_documented_defaults():
    cfg = load_config("", BASE)
    assert cfg.authority == "https://127.0.0.1:9443"
    assert cfg.authority_url == "https://127.0.0.1:9443/11111111-1111-1111-1111-111111111111"
    assert cfg.broker_url == "http://127.0.0.1:8080"
    assert cfg.broker_scopes == ("api://broker-app/user_impersonation",)
    assert cfg.teams_scopes == TEAMS_SCOPES
    assert cfg.obo_names == ("workspace",)
    assert cfg.redirect_uri("http://127.0.0.1:8000") == "http://127.0.0.1:8000/auth/callback"


def test_environment_values_are_toml_literals_and_override_the_file():
    text = 'obo_names = ["a"]\nport = 9000\n'
    cfg = load_config(text, {**BASE, "MINIMAL_CLIENT_OBO_NAMES": '["workspace", "graph"]',
                             "MINIMAL_CLIENT_COOKIE_SECURE": "false"})
    assert cfg.obo_names == ("workspace", "graph")
    assert cfg.port == 9000
    assert cfg.cookie_secure is False


def test_secure_cookie_follows_the_scheme_unless_configured():
    cfg = load_config("", BASE)
    assert cfg.secure_cookie("http://127.0.0.1:8000") is False
    assert cfg.secure_cookie("https://client.example") is True
    forced = load_config("", {**BASE, "MINIMAL_CLIENT_COOKIE_SECURE": "true"})
    assert forced.secure_cookie("http://127.0.0.1:8000") is True


def test_unknown_keys_missing_keys_and_bad_values_are_all_named():
    with pytest.raises(ConfigError) as info:
        load_config('authority = "http://login.example/tenant"\nport = "x"\nfoo = 1\n',
                    {"MINIMAL_CLIENT_BOGUS": "1"})
    text = "\n".join(info.value.problems)
    for key in ("foo: unknown key", "bogus: unknown key", "port: must be an integer"):
        assert key in text
    with pytest.raises(ConfigError) as info:
        load_config('authority = "http://login.example/tenant"\n', {})
    text = "\n".join(info.value.problems)
    for key in ("authority:", "tenant: required", "client_id: required", "client_secret: required",
                "broker_url: required", "broker_scopes: required"):
        assert key in text


def test_the_secret_never_appears_in_the_repr():
    cfg = load_config("", {**BASE, "MINIMAL_CLIENT_CLIENT_SECRET": "s3cr3t-value"})
    assert "s3cr3t-value" not in repr(cfg) and "s3cr3t-value" not in str(cfg)


def test_the_commented_sample_file_loads_once_the_secret_is_given():
    cfg = load_config_file(SAMPLE, {"MINIMAL_CLIENT_CLIENT_SECRET": "from-env"})
    assert cfg.authority.startswith("https://")
    assert cfg.broker_scopes and cfg.teams_scopes == TEAMS_SCOPES
