"""Every configuration key with its kind and file-level default, and the type checks.

One table drives the file reader, the environment/flag overlay and the docs: a key that is
not here does not exist (and is an error wherever it appears).
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from typing import Any

from .model import REFRESH_TOKEN, TOKEN_EXCHANGE

STR, INT, BOOL, STRS, SCOPE_MAP, FED_IDS = "str", "int", "bool", "strs", "scope_map", "fed_ids"
RATIO = "ratio"          # a number (integer or float)

EXPECTED = {
    STR: "a string", INT: "an integer", BOOL: "a boolean (true/false)",
    STRS: "an array of strings", SCOPE_MAP: "a table of string arrays",
    FED_IDS: "an array of tables {issuer, subject, audience}", RATIO: "a number",
}

Schema = Mapping[str, tuple[str, Any]]

SCHEMA: dict[str, Schema] = {
    "server": {"host": (STR, "127.0.0.1"), "port": (INT, 8080), "public_url": (STR, ""),
               "shutdown_grace": (INT, 15), "body_timeout": (INT, 30)},
    "tls": {"ca_bundle": (STR, ""), "proxy": (STR, "")},
    "entra": {
        "authority": (STR, "https://login.microsoftonline.com"), "tenant_id": (STR, ""),
        "allowed_tenants": (STRS, []), "client_id": (STR, ""), "client_secret": (STR, ""),
        "client_certificate": (STR, ""), "federated_token_file": (STR, ""), "audiences": (STRS, []),
        "required_scopes": (STRS, ["user_impersonation"]), "allowed_client_apps": (STRS, []),
        "allow_app_only": (BOOL, False), "clock_skew": (INT, 120), "timeout": (INT, 10),
        "scope_map": (SCOPE_MAP, {}), "linking": (STR, "none"), "lookup_attributes": (STRS, []),
        "app_signing_keys": (BOOL, False),
    },
    "acs": {
        "endpoint": (STR, ""), "access_key": (STR, ""), "connection_string": (STR, ""),
        "teams_scopes": (STRS, ["Teams.ManageCalls", "Teams.ManageChats"]),
        "allowed_teams_client_apps": (STRS, []), "verify_teams_token_signature": (BOOL, True),
        "identity_scopes": (STRS, ["chat", "voip"]), "identity_token_ttl": (INT, 3600),
        "timeout": (INT, 10), "managed_identity": (BOOL, False),
        "managed_identity_client_id": (STR, ""),
    },
    "obo": {"scopes": (STRS, [])},
    "issuer": {"signing_alg": (STR, "ES256"), "keys_dir": (STR, "keys"),
               "key_activation_delay": (INT, 600), "access_token_ttl": (INT, 900),
               "refresh_token_ttl": (INT, 86400), "key_reload_interval": (INT, 5)},
    "trusted_issuers": {
        "name": (STR, ""), "issuer": (STR, ""), "jwks_uri": (STR, ""), "certificate": (STR, ""),
        "secret": (STR, ""), "audiences": (STRS, []), "algorithms": (STRS, ["RS256"]),
        "max_token_age": (INT, 0), "replay_check": (BOOL, False), "scope_map": (SCOPE_MAP, {}),
        "linking": (STR, "none"), "lookup_attributes": (STRS, []), "mandate_linked": (BOOL, False),
    },
    "clients": {
        "client_id": (STR, ""), "client_secret": (STR, ""), "jwks": (STR, ""),
        "grant_types": (STRS, [TOKEN_EXCHANGE, REFRESH_TOKEN]), "allowed_issuers": (STRS, []),
        "allowed_audiences": (STRS, []), "allowed_scopes": (STRS, []),
        "refresh_tokens": (BOOL, False), "access_token_ttl": (INT, 0), "token_format": (STR, "jwt"),
        "federated_identities": (FED_IDS, []),
    },
    "store": {"url": (STR, "memory://"), "encryption_key": (STR, ""), "previous_encryption_keys": (STRS, []),
              "password": (STR, ""), "entra_auth": (BOOL, False), "managed_identity": (BOOL, False),
              "managed_identity_client_id": (STR, "")},
    "cors": {"allowed_origins": (STRS, [])},
    "throttle": {"max_failures": (INT, 0), "window": (INT, 60), "lockout": (INT, 60)},
    "telemetry": {"otlp_endpoint": (STR, ""), "service_name": (STR, "tokenbroker"),
                  "sample_ratio": (RATIO, 1.0)},
}

NAMED_TABLES = {"obo"}                                        # [obo.<name>]
ARRAYS = {"trusted_issuers": "name", "clients": "client_id"}  # [[section]] -> the key naming an entry
SECRET_KEYS = {("entra", "client_secret"), ("acs", "access_key"), ("acs", "connection_string"),
               ("trusted_issuers", "secret"), ("clients", "client_secret"),
               ("store", "encryption_key"), ("store", "previous_encryption_keys"), ("store", "password")}


def entry_path(section: str, entry: Mapping[str, Any], index: int) -> str:
    """How problems name an array-of-tables entry: `clients[portal]`, else `clients[0]`."""
    name = entry.get(ARRAYS[section]) if isinstance(entry, Mapping) else None
    return f"{section}[{name}]" if isinstance(name, str) and name else f"{section}[{index}]"


def type_ok(kind: str, value: Any) -> bool:
    if kind == STR:
        return isinstance(value, str)
    if kind == INT:
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == BOOL:
        return isinstance(value, bool)
    if kind == STRS:
        return isinstance(value, list | tuple) and all(isinstance(v, str) for v in value)
    if kind == SCOPE_MAP:
        return isinstance(value, Mapping) and all(
            isinstance(k, str) and type_ok(STRS, v) for k, v in value.items())
    if kind == FED_IDS:
        return isinstance(value, list | tuple) and all(isinstance(v, Mapping) for v in value)
    if kind == RATIO:
        return isinstance(value, int | float) and not isinstance(value, bool)
    raise ValueError(kind)


def parse_env_value(kind: str, text: str) -> Any:
    """A TOML literal when the text parses as one (and suits a non-string key), else the text."""
    if kind in (STRS, FED_IDS) and not text.strip():
        return []
    if kind == SCOPE_MAP and not text.strip():
        return {}
    try:
        doc = tomllib.loads(f"v = {text}")
    except tomllib.TOMLDecodeError:
        return text
    if set(doc) != {"v"}:
        return text
    value = doc["v"]
    if kind == STR and not isinstance(value, str):
        return text
    return value


def read_table(raw: Mapping[str, Any], schema: Schema, path: str, problems: list[str],
               sources: Mapping[str, str]) -> dict[str, Any]:
    """Type-check one table against its schema; unknown or mistyped keys become problems.

    Returns every schema key, with the default where the key is absent or mistyped.
    """
    out: dict[str, Any] = {}
    for key in raw:
        if key not in schema:
            problems.append(f"{path}.{key}: unknown key")
    for key, (kind, default) in schema.items():
        if key not in raw:
            out[key] = default
            continue
        value = raw[key]
        if type_ok(kind, value):
            out[key] = value
        else:
            where = sources.get(f"{path}.{key}")
            suffix = f" (from {where})" if where else ""
            problems.append(f"{path}.{key}: expected {EXPECTED[kind]}, got {_type_name(value)}{suffix}")
            out[key] = default
    return out


def _type_name(value: Any) -> str:
    return {bool: "boolean", int: "integer", float: "float", str: "string", list: "array",
            dict: "table"}.get(type(value), type(value).__name__)
