"""Brute-force protection for the token, introspection and revocation endpoints.

A failure counter per key: `client:<client_id as claimed>` or `ip:<address prefix>` (an IPv4
address, an IPv6 /64: one host's whole allocation counts as one). When a key collects
`max_failures` failures within `window` seconds it is locked for `lockout` seconds; while
locked, requests carrying it are refused before any crypto or store work. A success does not
reset the count. Framework-free: the caller passes `now`.

`Throttle` (this module) is the per-replica, in-memory counter. Its memory is bounded
(`max_keys` keys, stored hashed, each at most `max_failures` timestamps) and it cannot be
flushed: a lock is NEVER evicted before its lockout ends. When the table is full, the least
recently touched counter with a single failure goes first (what a flood of random client ids
creates), then the least recently touched counter with more; if only locks remain, a new key
is not tracked (its failures still count against the request's other keys).
`SharedThrottle` (throttle_shared.py) keeps counters and locks in Redis for every replica.
"""

from __future__ import annotations

import functools
import heapq
import ipaddress
import math
from collections import OrderedDict, deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from service.digest import sha256_hex
from service.errors import BrokerError, InvalidClient, InvalidGrant, InvalidRequest
from service.grants.client_auth import Credentials, extract
from service.settings import ThrottleSettings

MAX_KEYS = 100_000
#: refusals that answer policy or configuration, not a guessed credential or token
_NOT_GUESSING = frozenset({
    "subject_issuer_not_allowed", "actor_issuer_not_allowed", "subject_entra_unavailable",
    "actor_entra_unavailable", "actor_token_type_mismatch", "refresh_tokens_disabled",
})


def counts_as_failure(exc: BrokerError) -> bool:
    """Bad client credentials, a refused subject/actor token, an unknown or revoked grant."""
    if exc.reason in _NOT_GUESSING:
        return False
    if isinstance(exc, InvalidClient | InvalidGrant):
        return True
    return isinstance(exc, InvalidRequest) and exc.reason.startswith(("subject_", "actor_"))


def claimed_client_id(authorization: str | None, form: Mapping[str, Sequence[str]]) -> str:
    """Who the request says it is (Basic user, client_id, or the assertion's subject); unchecked."""
    return claimed_credentials(authorization, form)[0]


def claimed_credentials(authorization: str | None,
                        form: Mapping[str, Sequence[str]]) -> tuple[str, Credentials | None]:
    """`claimed_client_id` and the credentials it extracted (None when they do not extract:
    authenticating the client then raises the reason), so they are extracted once per request."""
    try:
        creds = extract(authorization, form)
    except BrokerError:
        values = form.get("client_id", ())
        return (values[0] if len(values) == 1 else ""), None
    return creds.client_id, creds


@functools.lru_cache(maxsize=4096)   # parsing an address is ~9 µs; a client keeps its address
def address_key(remote: str) -> str:
    """The address a failure is counted against: IPv4 as is, IPv6 by its /64 (mapped IPv4 as IPv4)."""
    try:
        ip = ipaddress.ip_address(remote.split("%", 1)[0])
    except ValueError:
        return remote
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


def throttle_keys(client_id: str, remote: str | None) -> tuple[str, ...]:
    keys = []
    if client_id:
        keys.append(f"client:{client_id}")
    if remote:
        keys.append(f"ip:{address_key(remote)}")
    return tuple(keys)


def slot_id(key: str) -> str:
    kind, _, value = key.partition(":")
    return f"{kind}:{sha256_hex(value)[:32]}"


@dataclass
class Throttle:
    max_failures: int = 20
    window: float = 60
    lockout: float = 60
    max_keys: int = MAX_KEYS
    _single: OrderedDict[str, float] = field(default_factory=OrderedDict, repr=False)   # sid -> failed at
    _counting: OrderedDict[str, deque[float]] = field(default_factory=OrderedDict, repr=False)
    _locked: dict[str, float] = field(default_factory=dict, repr=False)                 # sid -> until
    _expiry: list[tuple[float, str]] = field(default_factory=list, repr=False)          # heap of locks

    @classmethod
    def from_settings(cls, settings: ThrottleSettings) -> Throttle:
        return cls(settings.max_failures, settings.window, settings.lockout)

    @property
    def enabled(self) -> bool:
        return self.max_failures > 0

    @property
    def shared(self) -> bool:
        return False

    def check(self, keys: Iterable[str], now: float) -> int | None:
        """Seconds until every locked key among `keys` is free again, or None if none is locked."""
        if not self.enabled:
            return None
        wait = max((self._locked.get(slot_id(key), 0.0) - now for key in keys), default=0.0)
        return max(1, math.ceil(wait)) if wait > 0 else None

    def record_failure(self, keys: Iterable[str], now: float) -> list[str]:
        """Count one failure against each key; returns the keys this failure locked."""
        if not self.enabled:
            return []
        return [key for key in keys if self._fail(slot_id(key), now)]

    async def locked_for(self, keys: Iterable[str], now: float) -> int | None:
        return self.check(keys, now)

    async def failed(self, keys: Iterable[str], now: float) -> list[str]:
        return self.record_failure(keys, now)

    def __len__(self) -> int:
        return len(self._single) + len(self._counting) + len(self._locked)

    def _fail(self, sid: str, now: float) -> bool:
        until = self._locked.get(sid)
        if until is not None:
            if until > now:
                return False                       # failures while locked neither count nor relock
            del self._locked[sid]
        failures = self._counting.get(sid)
        if failures is None:
            first = self._single.pop(sid, None)
            if first is None:
                if not self._make_room(now):
                    return False
                if self.max_failures > 1:
                    self._single[sid] = now
                    return False
            failures = deque((first,) if first is not None else (), maxlen=self.max_failures)
            self._counting[sid] = failures
        else:
            self._counting.move_to_end(sid)
        failures.append(now)
        while failures and failures[0] <= now - self.window:
            failures.popleft()
        if len(failures) < self.max_failures:
            return False
        del self._counting[sid]
        self._purge(now)
        self._locked[sid] = now + self.lockout
        heapq.heappush(self._expiry, (now + self.lockout, sid))
        return True

    def _purge(self, now: float) -> None:
        """Forget lockouts that are over (the heap never holds more than the live locks and these)."""
        while self._expiry and self._expiry[0][0] <= now:
            until, sid = heapq.heappop(self._expiry)
            if self._locked.get(sid) == until:
                del self._locked[sid]

    def _make_room(self, now: float) -> bool:
        self._purge(now)
        while len(self) >= self.max_keys:
            if self._single:
                self._single.popitem(last=False)
            elif self._counting:
                self._counting.popitem(last=False)
            else:
                return False                       # only live locks: never evicted
        return True
