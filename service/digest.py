"""Hashes used as cache keys and log-safe token references."""

from __future__ import annotations

import hashlib


def sha256_hex(text: str | bytes) -> str:
    """Never fails: a header's non-UTF-8 bytes reach us as lone surrogates (aiohttp decodes with
    surrogateescape), which `surrogatepass` encodes instead of raising."""
    data = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text
    return hashlib.sha256(data).hexdigest()


def short_hash(text: str | bytes) -> str:
    """12 hex characters: enough to correlate log lines, useless to an attacker."""
    return sha256_hex(text)[:12]
