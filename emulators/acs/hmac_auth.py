"""HMAC-SHA256 request signatures, verified the way ACS does (notes/acs.md §2). TEST ONLY.

string_to_sign = "{VERB}\\n{path_and_query}\\n{x-ms-date};{host};{x-ms-content-sha256}"
Authorization: HMAC-SHA256 SignedHeaders=x-ms-date;host;x-ms-content-sha256&Signature=<b64>

The path and query are the raw bytes as sent (`request.raw_path`: the sync SDK escapes `:` and
the aio one does not) and the host is the `Host` header as received — never a configured value.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Mapping
from email.utils import parsedate_to_datetime

SCHEME = "HMAC-SHA256"
SIGNED_HEADERS = "x-ms-date;host;x-ms-content-sha256"


class HmacError(Exception):
    """The request signature is refused; the message says why (safe to return: no secrets)."""


def content_hash(body: bytes) -> str:
    return base64.b64encode(hashlib.sha256(body).digest()).decode()


def string_to_sign(method: str, raw_path: str, date: str, host: str, body_hash: str) -> str:
    return f"{method.upper()}\n{raw_path}\n{date};{host};{body_hash}"


def sign(key_b64: str, sts: str) -> str:
    return base64.b64encode(hmac.new(base64.b64decode(key_b64), sts.encode(), hashlib.sha256).digest()).decode()


def _parse(authorization: str) -> tuple[str, str]:
    scheme, _, rest = authorization.partition(" ")
    if scheme != SCHEME or not rest:
        raise HmacError("Authorization is not an HMAC-SHA256 signature.")
    parts: dict[str, str] = {}
    for item in rest.strip().split("&"):
        name, sep, value = item.partition("=")
        if not sep:
            raise HmacError("Malformed HMAC-SHA256 Authorization header.")
        parts[name.strip().lower()] = value.strip()
    signed, signature = parts.get("signedheaders", ""), parts.get("signature", "")
    if signed.lower() != SIGNED_HEADERS:
        raise HmacError(f"SignedHeaders must be {SIGNED_HEADERS}.")
    if not signature:
        raise HmacError("The HMAC signature is missing.")
    return signed, signature


def verify(*, method: str, raw_path: str, headers: Mapping[str, str], body: bytes, key_b64: str,
           now: float, window: float) -> None:
    """Raise `HmacError` unless the request is signed with `key_b64` and fresh."""
    _, signature = _parse(headers.get("Authorization", ""))
    date, host, declared_hash = headers.get("x-ms-date"), headers.get("Host"), headers.get("x-ms-content-sha256")
    if not date or not host or declared_hash is None:
        raise HmacError("x-ms-date, Host and x-ms-content-sha256 are required.")
    if not hmac.compare_digest(declared_hash.encode(), content_hash(body).encode()):
        raise HmacError("x-ms-content-sha256 does not match the request body.")
    try:
        sent_at = parsedate_to_datetime(date).timestamp()
    except (TypeError, ValueError, IndexError) as e:
        raise HmacError("x-ms-date is not an RFC 1123 date.") from e
    if abs(sent_at - now) > window:
        raise HmacError("x-ms-date is outside the accepted time window.")
    try:
        expected = sign(key_b64, string_to_sign(method, raw_path, date, host, declared_hash))
    except (binascii.Error, ValueError) as e:  # our own key is bad: configuration problem
        raise HmacError("The emulator's access key is not valid base64.") from e
    if not hmac.compare_digest(expected.encode(), signature.encode()):
        raise HmacError("The HMAC signature does not match.")
