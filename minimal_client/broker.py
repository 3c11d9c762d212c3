"""Calls to the broker and the result shape the page renders.

Each action result is `{"status", "broker_response", "decoded", "expires_at", "request_id"}`:
the broker's HTTP status and JSON body exactly as returned, plus the token's JWT header and
claims DECODED, NOT VERIFIED (plain base64url decoding — this client checks no signature, and
the page says so).
"""

from __future__ import annotations

import base64
import binascii
import json
import ssl
import time
import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import aiohttp

from .config import ClientConfig


def make_session(cfg: ClientConfig) -> aiohttp.ClientSession:
    """The one outgoing session to the broker: system CAs plus `ca_bundle`; explicit timeout."""
    ctx = ssl.create_default_context()
    if cfg.ca_bundle:
        ctx.load_verify_locations(cafile=cfg.ca_bundle)
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(ssl=ctx),
        timeout=aiohttp.ClientTimeout(total=cfg.timeout),
        trust_env=False,
    )


def _b64url_json(segment: str) -> Any:
    raw = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    return json.loads(raw)


def decode_unverified(token: Any) -> dict[str, Any] | None:
    """JWT header and claims by base64 decoding only — NOT a verification. None if not a JWT."""
    if not isinstance(token, str) or token.count(".") != 2:
        return None
    header_b64, claims_b64, _sig = token.split(".")
    try:
        header, claims = _b64url_json(header_b64), _b64url_json(claims_b64)
    except (binascii.Error, ValueError, UnicodeDecodeError):
        return None
    if not isinstance(header, dict) or not isinstance(claims, dict):
        return None
    return {"header": header, "claims": claims}


def _token_of(body: Any) -> Any:
    if isinstance(body, Mapping):
        return body.get("token") or body.get("access_token")
    return None


def _expiry(body: Any, decoded: dict[str, Any] | None, now: float) -> int | None:
    """From the broker's `expiresOn` (ISO 8601) or `expires_in`, else the claims' `exp`."""
    if isinstance(body, Mapping):
        on = body.get("expiresOn")
        if isinstance(on, str):
            try:
                return int(datetime.fromisoformat(on.replace("Z", "+00:00")).timestamp())
            except ValueError:
                pass
        ein = body.get("expires_in")
        if isinstance(ein, int | float) and not isinstance(ein, bool):
            return int(now + ein)
    exp = decoded["claims"].get("exp") if decoded else None
    if isinstance(exp, int | float) and not isinstance(exp, bool):
        return int(exp)
    return None


class BrokerClient:
    """Thin client of the broker's /api routes; never raises for HTTP-level answers."""

    def __init__(self, cfg: ClientConfig, session: aiohttp.ClientSession) -> None:
        self._base = cfg.broker_url
        self._session = session

    async def call(self, method: str, path: str, *, bearer: str, request_id: str,
                   headers: Mapping[str, str] | None = None) -> dict[str, Any]:
        """One broker request → the action result shape (status None when unreachable)."""
        hdrs = {"Authorization": f"Bearer {bearer}", "X-Request-Id": request_id,
                "Accept": "application/json", **(headers or {})}
        try:
            async with self._session.request(method, f"{self._base}{path}", headers=hdrs) as resp:
                text = await resp.text(errors="replace")
                status = resp.status
        except (aiohttp.ClientError, TimeoutError) as e:
            return result(None, {"error": "broker_unreachable",
                                 "error_description": f"{type(e).__name__}: could not reach the broker"},
                          request_id)
        try:
            body: Any = json.loads(text) if text else None
        except ValueError:
            body = text
        return result(status, body, request_id)


def result(status: int | None, body: Any, request_id: str) -> dict[str, Any]:
    ok = status is not None and status < 300
    decoded = decode_unverified(_token_of(body)) if ok else None
    return {
        "status": status,
        "broker_response": body,
        "decoded": decoded,
        "expires_at": _expiry(body, decoded, time.time()) if ok else None,
        "request_id": request_id,
    }


def new_request_id() -> str:
    return str(uuid.uuid4())
