"""Emulated ACS access tokens: HS256 JWTs modelled on real ones (notes/acs.md §6). TEST ONLY."""

from __future__ import annotations

import datetime as dt
import math
import uuid
from typing import Any

import jwt

from .state import AcsState

KNOWN_SCOPES = frozenset({"chat", "voip", "chat.join", "chat.join.limited", "voip.join"})
MIN_MINUTES, MAX_MINUTES, DEFAULT_MINUTES = 60, 1440, 1440


def expires_on(instant: float) -> str:
    """ISO 8601 with 7 fractional digits and `+00:00`, like `2023-10-10T21:39:39.3244584+00:00`."""
    d = dt.datetime.fromtimestamp(instant, dt.UTC)
    return d.strftime("%Y-%m-%dT%H:%M:%S") + f".{d.microsecond:06d}0+00:00"


def _mint(state: AcsState, *, skypeid: str, scopes: list[str], now: float, expiry: float,
          identity_id: str | None) -> dict[str, str]:
    cfg = state.config
    jti = str(uuid.uuid4())
    claims: dict[str, Any] = {
        "skypeid": skypeid,
        "scp": 1792,
        "csi": str(int(now)),
        "iat": int(now),
        "exp": math.ceil(expiry),
        "acsScope": ",".join(scopes),
        "resourceId": cfg.resource_id,
        "resourceLocation": cfg.resource_location,
        "jti": jti,
    }
    token = jwt.encode(claims, cfg.token_secret, algorithm="HS256", headers={"kid": "acs-emulator"})
    state.issued[jti] = (identity_id or skypeid, now)
    return {"token": token, "expiresOn": expires_on(expiry)}


def issue_for_identity(state: AcsState, identity_id: str, scopes: list[str], minutes: int) -> dict[str, str]:
    now = state.config.clock()
    skypeid = identity_id.removeprefix("8:")
    return _mint(state, skypeid=skypeid, scopes=scopes, now=now, expiry=now + minutes * 60,
                 identity_id=identity_id)


def issue_for_teams_user(state: AcsState, oid: str, exp: int) -> dict[str, str]:
    """A Teams user token; it expires exactly with the Entra token it was exchanged for."""
    return _mint(state, skypeid=f"orgid:{oid}", scopes=["voip", "chat"], now=state.config.clock(),
                 expiry=float(exp), identity_id=None)


def check_token(state: AcsState, token: str) -> tuple[bool, str, dict[str, Any]]:
    """(valid, reason, claims) for a token this emulator issued: signature, expiry, revocation."""
    try:
        claims = jwt.decode(token, state.config.token_secret, algorithms=["HS256"],
                            options={"verify_exp": False})
    except jwt.PyJWTError:
        return False, "malformed", {}
    now = state.config.clock()
    if claims.get("exp", 0) <= now:
        return False, "expired", claims
    owner, issued_at = state.issued.get(claims.get("jti", ""), (None, None))
    if owner is None or issued_at is None:
        return False, "unknown", claims
    if owner.startswith("8:acs:"):
        ident = state.identities.get(owner)
        if ident is None:
            return False, "identity_deleted", claims
        if issued_at <= ident.revoked_before:
            return False, "revoked", claims
    return True, "ok", claims
