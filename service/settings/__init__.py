"""The broker's configuration: one TOML file, overridden by environment, then flags.

    settings = load_settings_file(path, os.environ, flags={"server.port": 0})

Only the entry point passes `os.environ` in; nothing here reads the process environment.
Every problem is collected and raised at once as `ConfigurationError(problems)`, each string
starting with the key path it is about (`entra.client_id: required ...`) or, for an unknown
environment variable, its name. The reference of every key is `docs/configuration.md`.

The package: `model` (the frozen dataclasses `Settings`, `EntraSettings`, ... , `Secret`),
`schema` (every key, its kind and default), `env` (environment/flag overrides), `checks`
(reusable value checks), `sections` (service-side section builders) and `issuers_and_clients`
(the [[trusted_issuers]] and [[clients]] of token exchange). Everything outside this package
imports from `service.settings` only; tests may build the dataclasses directly.
"""

from __future__ import annotations

import dataclasses
import tomllib
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

from service.errors import ConfigurationError

from .checks import Checks
from .env import CONFIG_VARIABLE, apply_overrides, env_name
from .issuers_and_clients import build_clients, build_trusted_issuers, check_issuer_urls
from .model import (
    MASK,
    REFRESH_TOKEN,
    TOKEN_EXCHANGE,
    AcsSettings,
    ClientSettings,
    CorsSettings,
    EntraSettings,
    FederatedIdentity,
    IssuerSettings,
    OboSettings,
    Secret,
    ServerSettings,
    Settings,
    StoreSettings,
    TelemetrySettings,
    ThrottleSettings,
    TlsSettings,
    TrustedIssuer,
    mask_url,
    parse_connection_string,
)
from .schema import ARRAYS, NAMED_TABLES, SCHEMA
from .sections import (
    build_acs,
    build_cors,
    build_entra,
    build_issuer,
    build_obo,
    build_server,
    build_store,
    build_throttle,
    build_tls,
)
from .telemetry import build_telemetry

__all__ = [
    "CONFIG_VARIABLE", "REFRESH_TOKEN", "TOKEN_EXCHANGE", "AcsSettings", "ClientSettings",
    "ConfigurationError", "CorsSettings", "EntraSettings", "FederatedIdentity", "IssuerSettings",
    "OboSettings", "Secret", "ServerSettings", "Settings", "StoreSettings", "TelemetrySettings",
    "ThrottleSettings", "TlsSettings", "SCHEMA", "TrustedIssuer", "describe", "env_name", "load_settings",
    "load_settings_file", "parse_connection_string",
]

_NO_FLAGS: Mapping[str, object] = MappingProxyType({})


def load_settings(toml_text: str, environ: Mapping[str, str], *, base_dir: Path,
                  flags: Mapping[str, object] = _NO_FLAGS, config_path: Path | None = None) -> Settings:
    """Parse, override (flags > environ > file), type-check and cross-check the configuration."""
    try:
        raw: dict[str, Any] = tomllib.loads(toml_text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigurationError([f"config: not valid TOML: {e}"]) from e
    checks = Checks(base_dir=Path(base_dir).absolute())
    checks.sources = apply_overrides(raw, environ, flags, checks.problems)
    for section, value in raw.items():
        if section not in SCHEMA:
            checks.add(section, "unknown section")
        elif section not in ARRAYS and section not in NAMED_TABLES and not isinstance(value, dict):
            checks.add(section, f"expected a table [{section}]")
            raw[section] = None
    entra = build_entra(raw.get("entra"), checks)
    issuers = build_trusted_issuers(raw.get("trusted_issuers"), checks)
    settings = Settings(
        server=build_server(raw.get("server"), checks),
        tls=build_tls(raw.get("tls"), checks),
        entra=entra,
        acs=build_acs(raw.get("acs"), checks),
        obo=build_obo(raw.get("obo"), checks),
        issuer=build_issuer(raw.get("issuer"), checks),
        trusted_issuers=issuers,
        clients=build_clients(raw.get("clients"), checks, issuers=issuers, has_entra=entra is not None),
        store=build_store(raw.get("store"), checks),
        cors=build_cors(raw.get("cors"), checks),
        throttle=build_throttle(raw.get("throttle"), checks),
        telemetry=build_telemetry(raw.get("telemetry"), environ, checks),
        config_path=config_path,
    )
    check_issuer_urls(issuers, settings.server.public_url, checks)
    if settings.obo and not _has_obo_credential(entra):
        checks.add("obo", "[obo.*] needs [entra] with client_secret, client_certificate or federated_token_file")
    if settings.store.entra_auth and not settings.store.managed_identity and not _has_obo_credential(entra):
        checks.add("store.entra_auth", "needs store.managed_identity = true or [entra] with client_secret, "
                   "client_certificate or federated_token_file (the broker's own credential)")
    if checks.problems:
        raise ConfigurationError(checks.problems)
    return settings


def _has_obo_credential(entra: EntraSettings | None) -> bool:
    return entra is not None and bool(entra.client_secret or entra.client_certificate
                                      or entra.federated_token_file)


def load_settings_file(path: str | Path, environ: Mapping[str, str],
                       flags: Mapping[str, object] = _NO_FLAGS) -> Settings:
    """`load_settings` on a file; relative paths in it resolve against the file's folder."""
    path = Path(path).expanduser().absolute()
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigurationError([f"config: cannot read {path}: {e.__class__.__name__}"]) from e
    return load_settings(text, environ, base_dir=path.parent, flags=flags, config_path=path)


def describe(settings: Settings) -> dict[str, Any]:
    """A JSON-able view with every secret masked (for logs and `check-config`)."""
    return _plain(settings)


def _plain(value: Any) -> Any:
    if isinstance(value, Secret):
        return MASK if value else ""
    if isinstance(value, StoreSettings):
        return {"url": mask_url(value.url), **{f.name: _plain(getattr(value, f.name))
                                               for f in dataclasses.fields(value) if f.name != "url"}}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value
