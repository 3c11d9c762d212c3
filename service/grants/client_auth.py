"""Client authentication at the token, introspection and revocation endpoints.

Methods: `client_secret_basic` (RFC 6749 §2.3.1: id and secret are form-urlencoded before
Basic encoding, so they are form-decoded here), `client_secret_post` and `private_key_jwt`
(recognised here; the assertion is verified by `client_assertion.ClientAuthenticator`).
Exactly one method per request. Secrets are plain or `sha256:<hex>`; comparison is
constant-time and also runs for unknown clients. Every failure is `InvalidClient`, with
`WWW-Authenticate: Basic` when the Authorization header was used.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import unquote_plus

from service.errors import InvalidClient, TokenValidationError
from service.settings import ClientSettings, Settings
from service.validation.jwt_checks import parse_compact

METHODS = ("client_secret_basic", "client_secret_post", "private_key_jwt")
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
_DUMMY_SECRET = "sha256:" + hashlib.sha256(b"tokenbroker-no-such-client").hexdigest()
_FORM_FIELDS = ("client_id", "client_secret", "client_assertion", "client_assertion_type")


@dataclass(frozen=True)
class Credentials:
    client_id: str
    secret: str
    method: str
    assertion: str = ""            # private_key_jwt only (verified by client_assertion.py)

    @property
    def basic(self) -> bool:
        return self.method == "client_secret_basic"


def extract(authorization: str | None, form: Mapping[str, Sequence[str]]) -> Credentials:
    """The one set of client credentials in a request (pure; nothing is checked yet)."""
    basic = authorization is not None
    fields: dict[str, str] = {}
    for name in _FORM_FIELDS:
        values = form.get(name, ())
        if len(values) > 1:
            raise InvalidClient(reason="repeated_credentials", basic=basic)
        if values and values[0]:
            fields[name] = values[0]
    methods = [m for m, present in (("client_secret_basic", basic),
                                    ("client_secret_post", "client_secret" in fields),
                                    ("private_key_jwt", "client_assertion" in fields
                                     or "client_assertion_type" in fields)) if present]
    if len(methods) != 1:
        reason = "no_client_authentication" if not methods else "multiple_client_authentication"
        raise InvalidClient(reason=reason, basic=basic)
    if basic:
        client_id, secret = _parse_basic(authorization or "")
        if "client_id" in fields and fields["client_id"] != client_id:
            raise InvalidClient(reason="client_id_mismatch", basic=True)
        return Credentials(client_id, secret, "client_secret_basic")
    if methods[0] == "private_key_jwt":
        return _assertion_credentials(fields)
    if "client_id" not in fields:
        raise InvalidClient(reason="no_client_id")
    return Credentials(fields["client_id"], fields["client_secret"], "client_secret_post")


def _assertion_credentials(fields: Mapping[str, str]) -> Credentials:
    """RFC 7521 §4.2: the assertion names the client (`sub`); a `client_id` sent too must match."""
    if fields.get("client_assertion_type") != ASSERTION_TYPE or "client_assertion" not in fields:
        raise InvalidClient(reason="bad_client_assertion_type")
    try:
        sub = parse_compact(fields["client_assertion"]).payload.get("sub")
    except TokenValidationError as e:
        raise InvalidClient(reason="assertion_malformed", detail=e.reason) from e
    if not isinstance(sub, str) or not sub:
        raise InvalidClient(reason="assertion_no_sub")
    if fields.get("client_id", sub) != sub:
        raise InvalidClient(reason="client_id_mismatch")
    return Credentials(sub, "", "private_key_jwt", fields["client_assertion"])


def _parse_basic(header: str) -> tuple[str, str]:
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() != "basic" or not value.strip():
        raise InvalidClient(reason="bad_authorization_header", basic=True)
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, ValueError) as e:
        raise InvalidClient(reason="bad_basic_encoding", basic=True) from e
    raw_id, sep, raw_secret = decoded.partition(":")
    if not sep:
        raise InvalidClient(reason="bad_basic_encoding", basic=True)
    try:
        client_id = unquote_plus(raw_id, errors="strict")
        secret = unquote_plus(raw_secret, errors="strict")
    except UnicodeDecodeError as e:
        raise InvalidClient(reason="bad_basic_encoding", basic=True) from e
    if not client_id:
        raise InvalidClient(reason="no_client_id", basic=True)
    return client_id, secret


def secret_matches(presented: str, configured: str) -> bool:
    """Constant-time comparison with a plain or `sha256:<hex>` configured secret.

    Both sides are compared as SHA-256 digests of equal length, so neither the time taken nor
    an early exit on a length mismatch (hmac.compare_digest's documented leak) tells anything
    about the configured secret's length."""
    digest = hashlib.sha256(presented.encode("utf-8")).hexdigest().encode()
    if configured.startswith("sha256:"):
        expected = configured[7:].strip().lower().encode()
    else:
        expected = hashlib.sha256(configured.encode("utf-8")).hexdigest().encode()
    return hmac.compare_digest(digest, expected)


def authenticate(settings: Settings, creds: Credentials) -> ClientSettings:
    """The authenticated client, else `InvalidClient` (same work for unknown clients)."""
    if creds.method == "private_key_jwt":     # needs the async ClientAuthenticator
        raise InvalidClient(reason="assertion_not_verified")
    client = settings.client(creds.client_id)
    configured = client.client_secret.reveal() if client is not None else ""
    ok = secret_matches(creds.secret, configured or _DUMMY_SECRET)
    if client is None or not configured or not ok:
        reason = "unknown_client" if client is None else "bad_secret"
        raise InvalidClient(reason=reason, basic=creds.basic, detail=f"client_id={creds.client_id[:64]}")
    return client
