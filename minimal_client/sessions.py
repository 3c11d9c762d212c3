"""Server-side sessions kept in memory, behind an opaque random cookie.

The browser only ever holds a random session id (cookie `HttpOnly; SameSite=Lax`, plus
`Secure` by default whenever the client is served over https). Browsers treat
http://localhost (and http://127.0.0.1) as a secure context, but whether a `Secure` cookie is
stored and sent back over plain http there differs between browsers and HTTP libraries
(aiohttp's cookie jar never sends one over http), so for the http://127.0.0.1 dev setup the
flag is off unless `cookie_secure = true` is configured. Each
session owns its msal `SerializableTokenCache`, the pending auth code flow, the signed-in
user's account id and claims, and a CSRF token for state-changing requests.
"""

from __future__ import annotations

import asyncio
import hmac
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import msal

COOKIE_NAME = "minimal_client_session"


@dataclass
class Session:
    sid: str
    created: float
    last_seen: float
    csrf_token: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    cache: msal.SerializableTokenCache = field(default_factory=msal.SerializableTokenCache)
    flows: dict[str, dict[str, Any]] = field(default_factory=dict)   # purpose -> msal flow
    home_account_id: str | None = None
    user: dict[str, Any] | None = None   # name, username, oid, tid (from the id token)
    flash: dict[str, Any] | None = None  # an error to show once on the next page
    # msal calls of one session run one at a time: Entra rotates refresh tokens, so two
    # concurrent refreshes with the same one would make the second fail.
    lock: asyncio.Lock = field(default_factory=asyncio.Lock, repr=False)

    @property
    def signed_in(self) -> bool:
        return self.home_account_id is not None

    def csrf_ok(self, presented: str | None) -> bool:
        return bool(presented) and hmac.compare_digest(presented.encode(), self.csrf_token.encode())


class SessionStore:
    """In-memory sessions with an idle timeout and a size cap (oldest evicted first)."""

    def __init__(self, *, ttl: float, max_sessions: int = 10_000,
                 clock: Callable[[], float] = time.time) -> None:
        self._ttl = ttl
        self._max = max_sessions
        self._clock = clock
        self._items: OrderedDict[str, Session] = OrderedDict()

    def __len__(self) -> int:
        return len(self._items)

    def get(self, sid: str | None) -> Session | None:
        if not sid:
            return None
        s = self._items.get(sid)
        if s is None:
            return None
        now = self._clock()
        if now - s.last_seen > self._ttl:
            del self._items[sid]
            return None
        s.last_seen = now
        self._items.move_to_end(sid)
        return s

    def create(self) -> Session:
        now = self._clock()
        s = Session(sid=secrets.token_urlsafe(32), created=now, last_seen=now)
        self._items[s.sid] = s
        while len(self._items) > self._max:
            self._items.popitem(last=False)
        return s

    def rotate(self, old: Session) -> Session:
        """Give `old`'s contents a fresh id (after sign-in: no session fixation)."""
        self._items.pop(old.sid, None)
        old.sid = secrets.token_urlsafe(32)
        old.csrf_token = secrets.token_urlsafe(32)
        old.last_seen = self._clock()
        self._items[old.sid] = old
        return old

    def delete(self, sid: str) -> None:
        self._items.pop(sid, None)


class Handoffs:
    """One-time parking of a form_post callback's parameters.

    The authority's form_post arrives as a cross-site POST, which (rightly) carries no
    `SameSite=Lax` cookie. Its parameters are parked here under a random id and the browser is
    sent on with a 303 to `GET callback?handoff=<id>`: a top-level GET, which does carry the
    cookie, so the flow is still checked against the browser's own session (no login CSRF)."""

    def __init__(self, *, ttl: float = 120, max_items: int = 1000,
                 clock: Callable[[], float] = time.time) -> None:
        self._ttl = ttl
        self._max = max_items
        self._clock = clock
        self._items: OrderedDict[str, tuple[float, dict[str, str]]] = OrderedDict()

    def park(self, params: dict[str, str]) -> str:
        hid = secrets.token_urlsafe(32)
        self._items[hid] = (self._clock() + self._ttl, params)
        while len(self._items) > self._max:
            self._items.popitem(last=False)
        return hid

    def take(self, hid: str | None) -> dict[str, str] | None:
        if not hid:
            return None
        item = self._items.pop(hid, None)
        if item is None or item[0] < self._clock():
            return None
        return item[1]
