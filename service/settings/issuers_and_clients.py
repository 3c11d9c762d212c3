"""Builders for the token-exchange side: [[trusted_issuers]] and [[clients]] (CONTRACT §2)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from .checks import Checks, url_problem
from .model import (
    REFRESH_TOKEN,
    TOKEN_EXCHANGE,
    ClientSettings,
    FederatedIdentity,
    TrustedIssuer,
)
from .schema import SCHEMA, entry_path, read_table

RESERVED_ISSUERS = ("entra", "self")
HMAC_ALGS = ("HS256", "HS384", "HS512")
KEY_ALGS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA")
LINKING = ("none", "jit", "require_linked", "link_by_attribute")
GRANT_TYPES = (TOKEN_EXCHANGE, REFRESH_TOKEN)
TOKEN_FORMATS = ("jwt", "opaque")
HASHED_SECRET = re.compile(r"^sha256:[0-9a-fA-F]{64}$")
MIN_HMAC_SECRET = 32
MIN_CLIENT_SECRET = 32      # plain [[clients]] secrets: unguessable even without the throttle


def _entries(raw: Any, section: str, c: Checks) -> list[tuple[str, Mapping[str, Any]]]:
    if raw is None:
        return []
    if not isinstance(raw, list) or not all(isinstance(e, Mapping) for e in raw):
        c.add(section, f"expected an array of tables ([[{section}]])")
        return []
    return [(entry_path(section, e, i), e) for i, e in enumerate(raw)]


def _scope_map_ok(c: Checks, path: str, scope_map: Mapping[str, Any]) -> None:
    if any(not k.strip() for k in scope_map):
        c.add(path, "keys must be non-empty scope names")


def build_trusted_issuers(raw: Any, c: Checks) -> tuple[TrustedIssuer, ...]:
    out: list[TrustedIssuer] = []
    seen: set[str] = set()
    for path, entry in _entries(raw, "trusted_issuers", c):
        v = read_table(entry, SCHEMA["trusted_issuers"], path, c.problems, c.sources)
        name = v["name"]
        if not name.strip():
            c.add(f"{path}.name", "required")
        elif name in RESERVED_ISSUERS:
            c.add(f"{path}.name", f"{name!r} is reserved")
        elif name in seen:
            c.add(f"{path}.name", "duplicate trusted issuer name")
        seen.add(name)
        if not v["issuer"].strip():
            c.add(f"{path}.issuer", "required (the exact iss of its tokens)")
        keys = [k for k in ("jwks_uri", "certificate", "secret") if v[k]]
        if len(keys) != 1:
            c.add(f"{path}.jwks_uri", "exactly one of jwks_uri, certificate, secret must be set"
                  + (f" (found {', '.join(keys)})" if keys else ""))
        if v["jwks_uri"]:
            problem = url_problem(v["jwks_uri"])
            if problem:
                c.add(f"{path}.jwks_uri", f"URL {problem}")
        v["certificate"] = c.file(f"{path}.certificate", v["certificate"])
        if v["secret"] and len(v["secret"].encode()) < MIN_HMAC_SECRET:
            c.add(f"{path}.secret", f"must be at least {MIN_HMAC_SECRET} bytes")
        _check_algorithms(c, f"{path}.algorithms", v["algorithms"], hmac=bool(v["secret"]),
                          keyed=bool(v["jwks_uri"] or v["certificate"]))
        if not v["audiences"]:
            c.add(f"{path}.audiences", "must not be empty")
        c.strings_nonblank(f"{path}.audiences", v["audiences"])
        c.at_least(f"{path}.max_token_age", v["max_token_age"], 0)
        _scope_map_ok(c, f"{path}.scope_map", v["scope_map"])
        if v["linking"] not in LINKING:
            c.add(f"{path}.linking", f"must be one of {' | '.join(LINKING)}")
        if v["linking"] == "link_by_attribute" and not v["lookup_attributes"]:
            c.add(f"{path}.lookup_attributes", "required (non-empty) when linking = \"link_by_attribute\"")
        out.append(TrustedIssuer(**v))
    return tuple(out)


def check_issuer_urls(issuers: tuple[TrustedIssuer, ...], public_url: str, c: Checks) -> None:
    """The unverified `iss` routes a token to exactly one validator: a trusted issuer URL may be
    neither another entry's (it would silently shadow it) nor the broker's own `public_url`."""
    seen: dict[str, str] = {}
    for i, ti in enumerate(issuers):
        path = f"trusted_issuers[{ti.name or i}].issuer"
        if ti.issuer and ti.issuer == public_url:
            c.add(path, "is the broker's own issuer (server.public_url)")
        elif ti.issuer in seen:
            c.add(path, f"already the issuer of trusted issuer {seen[ti.issuer]!r}")
        seen.setdefault(ti.issuer, ti.name)


def _check_algorithms(c: Checks, path: str, algs: list[str], *, hmac: bool, keyed: bool) -> None:
    if not algs:
        c.add(path, "must not be empty")
    for alg in algs:
        if alg.lower() == "none":
            c.add(path, "'none' is never accepted")
        elif alg not in HMAC_ALGS + KEY_ALGS:
            c.add(path, f"unsupported algorithm {alg!r} (one of {', '.join(KEY_ALGS + HMAC_ALGS)})")
        elif alg in HMAC_ALGS and keyed:
            c.add(path, f"{alg} needs a secret, not jwks_uri/certificate")
        elif alg in KEY_ALGS and hmac:
            c.add(path, f"{alg} needs jwks_uri or certificate, not a secret")


def build_clients(raw: Any, c: Checks, *, issuers: tuple[TrustedIssuer, ...],
                  has_entra: bool) -> tuple[ClientSettings, ...]:
    out: list[ClientSettings] = []
    seen: set[str] = set()
    owners: dict[tuple[str, str], str] = {}
    issuer_names = {t.name for t in issuers}
    for path, entry in _entries(raw, "clients", c):
        v = read_table(entry, SCHEMA["clients"], path, c.problems, c.sources)
        cid = v["client_id"]
        if not cid.strip():
            c.add(f"{path}.client_id", "required")
        elif cid in seen:
            c.add(f"{path}.client_id", "duplicate client_id")
        seen.add(cid)
        secret, jwks = v["client_secret"], v["jwks"]
        if secret and jwks:
            c.add(f"{path}.client_secret", "set client_secret or jwks, not both")
        elif not secret and not jwks:
            c.add(f"{path}.client_secret", "a client needs client_secret or jwks")
        if secret.startswith("sha256:") and not HASHED_SECRET.match(secret):
            c.add(f"{path}.client_secret", "a hashed secret must be 'sha256:' followed by 64 hex digits")
        elif secret and not secret.startswith("sha256:") and len(secret) < MIN_CLIENT_SECRET:
            c.add(f"{path}.client_secret", f"must be at least {MIN_CLIENT_SECRET} characters (a random "
                                           "value, e.g. `python -c 'import secrets; print(secrets.token_urlsafe(32))'`)")
        v["jwks"] = c.file(f"{path}.jwks", jwks)
        for grant in v["grant_types"]:
            if grant not in GRANT_TYPES:
                c.add(f"{path}.grant_types", f"unsupported grant type {grant!r} (one of {', '.join(GRANT_TYPES)})")
        for name in v["allowed_issuers"]:
            if name == "entra" and not has_entra:
                c.add(f"{path}.allowed_issuers", "'entra' requires an [entra] section")
            elif name not in ("entra", "self") and name not in issuer_names:
                c.add(f"{path}.allowed_issuers", f"{name!r} is not 'entra', 'self' or a trusted issuer name")
        c.at_least(f"{path}.access_token_ttl", v["access_token_ttl"], 0)
        if v["token_format"] not in TOKEN_FORMATS:
            c.add(f"{path}.token_format", f"must be one of {' | '.join(TOKEN_FORMATS)}")
        v["federated_identities"] = _federated(c, f"{path}.federated_identities",
                                               v["federated_identities"], cid, issuer_names, owners)
        out.append(ClientSettings(**v))
    return tuple(out)


def _federated(c: Checks, path: str, items: list[Mapping[str, Any]], client_id: str,
               issuer_names: set[str], owners: dict[tuple[str, str], str]) -> tuple[FederatedIdentity, ...]:
    out: list[FederatedIdentity] = []
    fields = ("issuer", "subject", "audience")
    for i, item in enumerate(items):
        where = f"{path}[{i}]"
        extra = sorted(set(item) - set(fields))
        for key in extra:
            c.add(f"{where}.{key}", "unknown key")
        bad = [k for k in fields if not isinstance(item.get(k), str) or not item.get(k, "").strip()]
        for key in bad:
            c.add(f"{where}.{key}", "required (a non-empty string)")
        if bad:
            continue
        fed = FederatedIdentity(item["issuer"], item["subject"], item["audience"])
        if fed.issuer not in issuer_names:
            c.add(f"{where}.issuer", f"{fed.issuer!r} is not a trusted issuer name")
        owner = owners.setdefault((fed.issuer, fed.subject), client_id)
        if owner != client_id:
            c.add(f"{where}.subject", f"issuer/subject pair already belongs to client {owner!r}")
        out.append(fed)
    return tuple(out)
