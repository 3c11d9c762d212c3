"""Brute-force protection for the token, introspection and revocation endpoints.

A bounded, in-memory sliding-window failure counter per key (per replica: replicas do not
share counts). A key is `client:<client_id as claimed>` or `ip:<remote address>`. When a key
collects `max_failures` failures within `window` seconds it is locked for `lockout` seconds;
while locked, requests carrying it are refused before any crypto or store work. A success
does not reset the count. At most `max_keys` keys are kept (least recently touched evicted).
Keys are stored hashed, so memory per key is bounded whatever a client claims to be.
Framework-free: the caller passes `now`.
"""

from __future__ import annotations

import math
from collections import OrderedDict, deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from service.digest import sha256_hex
from service.errors import BrokerError, InvalidClient, InvalidGrant, InvalidRequest
from service.grants.client_auth import extract
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
    try:
        return extract(authorization, form).client_id
    except BrokerError:
        values = form.get("client_id", ())
        return values[0] if len(values) == 1 else ""


def throttle_keys(client_id: str, remote: str | None) -> tuple[str, ...]:
    keys = []
    if client_id:
        keys.append(f"client:{client_id}")
    if remote:
        keys.append(f"ip:{remote}")
    return tuple(keys)


@dataclass
class _Slot:
    failures: deque[float]
    locked_until: float = 0.0


@dataclass
class Throttle:
    max_failures: int = 20
    window: float = 60
    lockout: float = 60
    max_keys: int = MAX_KEYS
    _slots: OrderedDict[str, _Slot] = field(default_factory=OrderedDict, repr=False)

    @classmethod
    def from_settings(cls, settings: ThrottleSettings) -> Throttle:
        return cls(settings.max_failures, settings.window, settings.lockout)

    @property
    def enabled(self) -> bool:
        return self.max_failures > 0

    def check(self, keys: Iterable[str], now: float) -> int | None:
        """Seconds until every locked key among `keys` is free again, or None if none is locked."""
        if not self.enabled:
            return None
        wait = 0.0
        for key in keys:
            slot = self._slots.get(_slot_id(key))
            if slot is not None and slot.locked_until > now:
                wait = max(wait, slot.locked_until - now)
        return max(1, math.ceil(wait)) if wait > 0 else None

    def record_failure(self, keys: Iterable[str], now: float) -> list[str]:
        """Count one failure against each key; returns the keys this failure locked."""
        if not self.enabled:
            return []
        locked = []
        for key in keys:
            slot = self._touch(_slot_id(key))
            if slot.locked_until > now:
                continue
            slot.failures.append(now)
            while slot.failures and slot.failures[0] <= now - self.window:
                slot.failures.popleft()
            if len(slot.failures) >= self.max_failures:
                slot.locked_until = now + self.lockout
                slot.failures.clear()
                locked.append(key)
        return locked

    def __len__(self) -> int:
        return len(self._slots)

    def _touch(self, sid: str) -> _Slot:
        slot = self._slots.get(sid)
        if slot is None:
            slot = self._slots[sid] = _Slot(deque(maxlen=self.max_failures))
            while len(self._slots) > self.max_keys:
                self._slots.popitem(last=False)
        else:
            self._slots.move_to_end(sid)
        return slot


def _slot_id(key: str) -> str:
    kind, _, value = key.partition(":")
    return f"{kind}:{sha256_hex(value)[:32]}"
