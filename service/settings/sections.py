"""Builders for the service-side sections: server, tls, entra, acs, obo, issuer, store, cors, throttle.

Each takes the raw (already overridden) table, type-checks it against the schema, applies the
cross-key rules of CONTRACT §2 and returns the frozen dataclass, reporting problems to `Checks`.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from .checks import Checks, origin_problem, resource_of, url_problem
from .issuers_and_clients import LINKING
from .model import (
    AcsSettings,
    CorsSettings,
    EntraSettings,
    IssuerSettings,
    OboSettings,
    ServerSettings,
    StoreSettings,
    ThrottleSettings,
    TlsSettings,
    parse_connection_string,
)
from .schema import SCHEMA, read_table

SIGNING_ALGS = ("ES256", "RS256", "EdDSA")
ACS_IDENTITY_SCOPES = ("chat", "voip", "chat.join", "chat.join.limited", "voip.join")
OBO_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
OIDC_SCOPES = {"openid", "profile", "offline_access", "email"}
STORE_SCHEMES = ("memory://", "sqlite://", "redis://", "rediss://")


def _read(raw: Any, section: str, c: Checks) -> dict[str, Any]:
    return read_table(raw or {}, SCHEMA[section], section, c.problems, c.sources)


def build_server(raw: Any, c: Checks) -> ServerSettings:
    v = _read(raw, "server", c)
    if not v["host"].strip():
        c.add("server.host", "must not be empty")
    c.at_least("server.port", v["port"], 0, 65535)
    c.at_least("server.shutdown_grace", v["shutdown_grace"], 0)
    c.at_least("server.body_timeout", v["body_timeout"], 1)
    if v["public_url"]:
        problem = url_problem(v["public_url"], allow_http=True)
        if problem:
            c.add("server.public_url", f"URL {problem}")
        elif v["public_url"].endswith("/"):
            c.add("server.public_url", "must not end with '/' (it is exactly the token issuer)")
    return ServerSettings(**v)


def build_tls(raw: Any, c: Checks) -> TlsSettings:
    v = _read(raw, "tls", c)
    if v["proxy"]:
        problem = url_problem(v["proxy"], origin_only=True, allow_http=True)
        if problem:
            c.add("tls.proxy", f"proxy URL {problem}")
    return TlsSettings(ca_bundle=c.file("tls.ca_bundle", v["ca_bundle"]), proxy=v["proxy"])


def build_entra(raw: Any, c: Checks) -> EntraSettings | None:
    if raw is None:
        return None
    v = _read(raw, "entra", c)
    if not v["tenant_id"]:
        c.add("entra.tenant_id", "required when [entra] is set")
    else:
        c.guid("entra.tenant_id", v["tenant_id"])
    if not v["client_id"].strip():
        c.add("entra.client_id", "required when [entra] is set")
    for tenant in v["allowed_tenants"]:
        c.guid("entra.allowed_tenants", tenant)
    authority = v["authority"].rstrip("/")
    problem = url_problem(authority, origin_only=True)
    if problem:
        c.add("entra.authority", f"URL {problem}")
    given = [k for k in ("client_secret", "client_certificate", "federated_token_file") if v[k]]
    if len(given) > 1:
        c.add(f"entra.{given[1]}", "at most one of entra.client_secret, entra.client_certificate, "
              "entra.federated_token_file may be set")
    for key in ("client_certificate", "federated_token_file"):
        v[key] = c.file(f"entra.{key}", v[key])
    c.strings_nonblank("entra.required_scopes", v["required_scopes"])
    c.strings_nonblank("entra.audiences", v["audiences"])
    c.at_least("entra.clock_skew", v["clock_skew"], 0)
    c.at_least("entra.timeout", v["timeout"], 1)
    v["authority"] = authority
    _entra_linking(v, c)
    return EntraSettings(**v)


def _entra_linking(v: dict[str, Any], c: Checks) -> None:
    """Entra accounts link on (tid, oid) only: `email`/`upn` are mutable and unverified."""
    if v["linking"] not in LINKING:
        c.add("entra.linking", f"must be one of {' | '.join(LINKING)}")
    for name in v["lookup_attributes"]:
        if name != "oid":
            c.add("entra.lookup_attributes", f"{name!r} is not accepted: Entra links on oid only "
                  "(email, upn and preferred_username are mutable and unverified)")
    if v["linking"] == "link_by_attribute" and not v["lookup_attributes"]:
        c.add("entra.lookup_attributes", "required (non-empty) when linking = \"link_by_attribute\"")


def build_acs(raw: Any, c: Checks) -> AcsSettings | None:
    if raw is None:
        return None
    v = _read(raw, "acs", c)
    endpoint, key, conn = v["endpoint"], v["access_key"], v["connection_string"]
    if key and conn:
        c.add("acs.connection_string", "at most one of acs.access_key and acs.connection_string may be set")
    _check_managed_identity(v, c)
    if key:
        c.base64("acs.access_key", key)
    if conn:
        parts = parse_connection_string(conn)
        if not parts.get("endpoint") or not parts.get("accesskey"):
            c.add("acs.connection_string", "must look like 'endpoint=https://...;accesskey=...'")
        else:
            problem = url_problem(parts["endpoint"], origin_only=True)
            if problem:
                c.add("acs.connection_string", f"endpoint {problem}")
            c.base64("acs.connection_string", parts["accesskey"])
    if endpoint:
        endpoint = endpoint.rstrip("/")
        problem = url_problem(endpoint, origin_only=True)
        if problem:
            c.add("acs.endpoint", f"URL {problem}")
    elif not conn:
        c.add("acs.endpoint", "required (or acs.connection_string)")
    if not v["allowed_teams_client_apps"]:
        c.add("acs.allowed_teams_client_apps", "must not be empty when [acs] is set")
    c.strings_nonblank("acs.allowed_teams_client_apps", v["allowed_teams_client_apps"])
    if not v["teams_scopes"]:
        c.add("acs.teams_scopes", "must not be empty")
    if not v["identity_scopes"]:
        c.add("acs.identity_scopes", "must not be empty")
    for scope in v["identity_scopes"]:
        if scope not in ACS_IDENTITY_SCOPES:
            c.add("acs.identity_scopes", f"unknown ACS scope {scope!r} (one of {', '.join(ACS_IDENTITY_SCOPES)})")
    c.at_least("acs.identity_token_ttl", v["identity_token_ttl"], 3600, 86400)
    c.at_least("acs.timeout", v["timeout"], 1)
    v["endpoint"] = endpoint
    return AcsSettings(**v)


def _check_managed_identity(v: dict[str, Any], c: Checks) -> None:
    """`managed_identity = true` replaces the key: exclusive with access_key/connection_string."""
    if v["managed_identity"]:
        for other in ("access_key", "connection_string"):
            if v[other]:
                c.add("acs.managed_identity", f"true excludes acs.{other} (the managed identity "
                      "authenticates the broker to ACS): set one of them")
    client_id = v["managed_identity_client_id"]
    if client_id:
        if not v["managed_identity"]:
            c.add("acs.managed_identity_client_id", "only with acs.managed_identity = true")
        c.guid("acs.managed_identity_client_id", client_id)


def build_obo(raw: Any, c: Checks) -> dict[str, OboSettings]:
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        c.add("obo", "expected tables [obo.<name>]")
        return {}
    out: dict[str, OboSettings] = {}
    for name, table in raw.items():
        path = f"obo.{name}"
        if not isinstance(table, Mapping):
            c.add(path, "expected a table [obo.<name>] with scopes")
            continue
        if not OBO_NAME.match(name):
            c.add(path, "name must match [a-z0-9][a-z0-9_-]*")
        v = read_table(table, SCHEMA["obo"], path, c.problems, c.sources)
        scopes = v["scopes"]
        if not scopes:
            c.add(f"{path}.scopes", "must not be empty")
        c.strings_nonblank(f"{path}.scopes", scopes)
        resources = {resource_of(s) for s in scopes if s not in OIDC_SCOPES}
        if len(resources) > 1:
            listed = ", ".join(repr(r) for r in sorted(resources))
            c.add(f"{path}.scopes", f"all scopes must be for one resource (found {listed})")
        out[name] = OboSettings(name=name, scopes=tuple(scopes))
    return out


def build_issuer(raw: Any, c: Checks) -> IssuerSettings:
    v = _read(raw, "issuer", c)
    if v["signing_alg"] not in SIGNING_ALGS:
        c.add("issuer.signing_alg", f"must be one of {' | '.join(SIGNING_ALGS)}")
    if not v["keys_dir"]:
        c.add("issuer.keys_dir", "must not be empty")
    v["keys_dir"] = c.directory(v["keys_dir"] or "keys")
    c.at_least("issuer.key_activation_delay", v["key_activation_delay"], 0)
    c.at_least("issuer.access_token_ttl", v["access_token_ttl"], 1)
    c.at_least("issuer.refresh_token_ttl", v["refresh_token_ttl"], 1)
    c.at_least("issuer.key_reload_interval", v["key_reload_interval"], 1, 3600)
    return IssuerSettings(**v)


def build_store(raw: Any, c: Checks) -> StoreSettings:
    v = _read(raw, "store", c)
    if not v["url"].lower().startswith(STORE_SCHEMES):
        c.add("store.url", "must start with memory://, sqlite:///, redis:// or rediss://")
    redis = v["url"].lower().startswith(("redis://", "rediss://"))
    if redis and not v["encryption_key"]:
        c.add("store.encryption_key", "required with a Redis store (it encrypts the shared token caches): "
              "base64 of 32 random bytes, e.g. from `openssl rand -base64 32`, or set "
              "TOKENBROKER_STORE__ENCRYPTION_KEY")
    keys = [("store.encryption_key", v["encryption_key"])] if v["encryption_key"] else []
    keys += [(f"store.previous_encryption_keys[{i}]", k) for i, k in enumerate(v["previous_encryption_keys"])]
    for key, value in keys:
        if not _aes256_key(value):
            c.add(key, "must be the base64 of exactly 32 bytes")
    for key in ("password", "entra_auth"):
        if v[key] and not redis:
            c.add(f"store.{key}", "only with a redis:// or rediss:// store.url")
    url_has_credentials = redis and "@" in urlsplit(v["url"]).netloc
    if v["entra_auth"] and (v["password"] or url_has_credentials):
        c.add("store.entra_auth", "excludes store.password and a user or password in store.url "
              "(the Entra token is the password, its oid the user)")
    if v["managed_identity"] and not v["entra_auth"]:
        c.add("store.managed_identity", "only with store.entra_auth = true")
    if v["managed_identity_client_id"]:
        if not v["managed_identity"]:
            c.add("store.managed_identity_client_id", "only with store.managed_identity = true")
        c.guid("store.managed_identity_client_id", v["managed_identity_client_id"])
    return StoreSettings(**v)


def _aes256_key(text: str) -> bool:
    try:
        return len(base64.b64decode(text.strip(), validate=True)) == 32
    except (binascii.Error, ValueError):
        return False


def build_cors(raw: Any, c: Checks) -> CorsSettings:
    v = _read(raw, "cors", c)
    for origin in v["allowed_origins"]:
        problem = origin_problem(origin)
        if problem:
            c.add("cors.allowed_origins", f"{origin!r}: {problem}")
    return CorsSettings(**v)


def build_throttle(raw: Any, c: Checks) -> ThrottleSettings:
    v = _read(raw, "throttle", c)
    c.at_least("throttle.max_failures", v["max_failures"], 0)
    c.at_least("throttle.window", v["window"], 1)
    c.at_least("throttle.lockout", v["lockout"], 1)
    return ThrottleSettings(**v)
