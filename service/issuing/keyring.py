"""The broker's own signing keys: one JSON file per key in `keys_dir`, rotated MultiFernet-style.

Sign with the newest key whose `active_from` has passed; publish (and verify with) every key not
yet past its `retire_after`, including a rotated-in key before it starts signing. Keys are parsed
once; `reload()` re-reads the directory only when its listing or mtimes changed, so a rotation
by `tokenbroker keys rotate` (or another replica) is picked up without a restart.
Time is passed in (`now`, epoch seconds); nothing here reads the clock.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

from service.errors import ConfigurationError, ServerError
from service.issuing import jwk
from service.issuing.jwk import PrivateKey
from service.logs import get_logger
from service.validation.jwt_checks import PublicKey

log = get_logger(__name__)

ALGORITHMS = ("ES256", "RS256", "EdDSA")
_KEY = "issuer.keys_dir"


@dataclass(frozen=True)
class SigningKey:
    kid: str
    alg: str
    private_key: PrivateKey


@dataclass(frozen=True)
class _Entry:
    kid: str
    alg: str
    created_at: float
    active_from: float
    retire_after: float | None
    private_key: PrivateKey
    public_key: PublicKey
    public_jwk: dict
    pem: str

    def published(self, now: float) -> bool:
        return self.retire_after is None or now < self.retire_after

    def order(self) -> tuple:
        # newest last; on equal activation a key not scheduled for retirement is the newer one
        return (self.active_from, self.retire_after is None, self.created_at, self.kid)

    def record(self) -> dict:
        return {"kid": self.kid, "alg": self.alg, "created_at": self.created_at,
                "active_from": self.active_from, "retire_after": self.retire_after,
                "private_key_pem": self.pem}


class Keyring:
    """Signing keys of one `keys_dir`. Build with `load_or_create`; state swaps atomically."""

    def __init__(self, keys_dir: Path, alg: str) -> None:
        if alg not in ALGORITHMS:
            raise ConfigurationError([f"issuer.signing_alg: must be one of {', '.join(ALGORITHMS)}"])
        if not Path(keys_dir).is_absolute():
            raise ConfigurationError([f"{_KEY}: must be an absolute path"])
        self.keys_dir = Path(keys_dir)
        self.alg = alg
        self._snapshot: tuple[tuple[_Entry, ...], dict[str, _Entry]] = ((), {})
        self._signature: tuple = ()

    # --- construction -------------------------------------------------------------------

    @classmethod
    def load_or_create(cls, keys_dir: Path, alg: str = "ES256", *, now: float) -> Keyring:
        """Load every key in `keys_dir`; create the dir and a first key (active at once) when
        no usable key exists. Unreadable or unwritable directories are configuration errors."""
        ring = cls(keys_dir, alg)
        try:
            if not ring.keys_dir.exists():
                ring.keys_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
                ring.keys_dir.chmod(0o700)
            with ring._locked():
                ring._reload_or_raise()
                if not any(e.published(now) for e in ring._entries):
                    created = ring._new_entry(now, active_from=int(now))
                    ring._write(created)
                    ring._reload_or_raise()
                    log.info("keyring.key_created", kid=created.kid, alg=alg)
        except OSError as e:
            raise ConfigurationError([f"{_KEY}: cannot use {ring.keys_dir}: {e.strerror}"]) from e
        log.info("keyring.loaded", kids=[e.kid for e in ring._entries], keys_dir=str(ring.keys_dir))
        newest = ring._entries[-1]
        if newest.alg != alg:
            log.warning("keyring.alg_differs", kid=newest.kid, key_alg=newest.alg, configured=alg,
                        hint="run `tokenbroker keys rotate` to switch algorithms")
        return ring

    @property
    def _entries(self) -> tuple[_Entry, ...]:
        return self._snapshot[0]

    # --- reading ------------------------------------------------------------------------

    def signing_key(self, now: float) -> SigningKey:
        """The newest published key whose `active_from <= now`."""
        best = None
        for e in self._entries:  # sorted oldest → newest
            if e.active_from <= now and e.published(now):
                best = e
        if best is None:
            raise ServerError(detail="keyring: no active signing key", reason="no_signing_key")
        return SigningKey(best.kid, best.alg, best.private_key)

    def has_signing_key(self, now: float) -> bool:
        return any(e.active_from <= now and e.published(now) for e in self._entries)

    def jwks(self, now: float) -> dict:
        """Public JWKs of every key not past `retire_after`, newest first (pre-published included)."""
        return {"keys": [dict(e.public_jwk) for e in reversed(self._entries) if e.published(now)]}

    def public_key(self, kid: str, *, now: float | None = None) -> tuple[PublicKey, str] | None:
        """(public key, alg) of a known key; with `now`, only while it is still published."""
        e = self._snapshot[1].get(kid) if isinstance(kid, str) else None
        if e is None or (now is not None and not e.published(now)):
            return None
        return e.public_key, e.alg

    @property
    def kids(self) -> tuple[str, ...]:
        return tuple(e.kid for e in self._entries)

    # --- rotation -----------------------------------------------------------------------

    def rotate(self, now: float, activation_delay: int, *, max_token_ttl: int) -> str:
        """Add a key that is published now and signs from `now + activation_delay`; schedule the
        current keys' retirement for when the last token they can still sign has expired.
        Files of keys already past `retire_after` are deleted. Returns the new kid."""
        for name, value in (("key_activation_delay", activation_delay), ("max_token_ttl", max_token_ttl)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be a non-negative integer")
        try:
            with self._locked():
                self._reload_or_raise()  # act on the directory as it is now, not as we last saw it
                active_from = int(now) + activation_delay
                retire_at = active_from + max_token_ttl
                for e in self._entries:
                    if not e.published(now):
                        (self.keys_dir / f"{e.kid}.json").unlink(missing_ok=True)
                        log.info("keyring.key_deleted", kid=e.kid)
                        continue
                    # a pending key that would activate after the new one never signs: it is
                    # superseded and retires when the new key takes over
                    until = active_from if e.active_from >= active_from else retire_at
                    if e.retire_after is None or e.retire_after > until:
                        self._write(replace(e, retire_after=until))
                new = self._new_entry(now, active_from=active_from)
                self._write(new)
                self._reload_or_raise()
        except OSError as e:
            raise ConfigurationError([f"{_KEY}: cannot rotate keys in {self.keys_dir}: {e.strerror}"]) from e
        log.info("keyring.rotated", kid=new.kid, active_from=active_from, retire_after=retire_at)
        return new.kid

    # --- reloading ----------------------------------------------------------------------

    def reload(self) -> bool:
        """Re-read `keys_dir` if its listing or any file changed; True when the key set changed.
        A broken file keeps the last good state (logged) and is retried on the next call."""
        try:
            return self._reload_or_raise()
        except (OSError, ConfigurationError) as e:
            log.warning("keyring.reload_failed", keys_dir=str(self.keys_dir),
                        error=type(e).__name__, detail=str(e))
            return False

    def _reload_or_raise(self) -> bool:
        signature = self._listing()
        if signature == self._signature:
            return False
        entries = []
        for name, *_ in signature:
            entries.append(self._parse(self.keys_dir / name))
        entries.sort(key=_Entry.order)
        before = [(e.kid, e.active_from, e.retire_after) for e in self._entries]
        after = [(e.kid, e.active_from, e.retire_after) for e in entries]
        self._snapshot = (tuple(entries), {e.kid: e for e in entries})  # one atomic swap
        self._signature = signature
        if before != after:
            log.info("keyring.reloaded", kids=[e.kid for e in entries])
        return before != after

    def _listing(self) -> tuple:
        out = []
        with os.scandir(self.keys_dir) as it:
            for d in it:
                if d.name.endswith(".json") and not d.name.startswith("."):
                    st = d.stat()
                    out.append((d.name, st.st_ino, st.st_mtime_ns, st.st_size))
        return tuple(sorted(out))

    def _parse(self, path: Path) -> _Entry:
        try:
            raw = json.loads(path.read_text("utf-8"))
            kid, alg, pem = raw["kid"], raw["alg"], raw["private_key_pem"]
            times = [raw["created_at"], raw["active_from"]]
            retire = raw["retire_after"]
            if (not all(isinstance(v, str) for v in (kid, alg, pem)) or alg not in ALGORITHMS
                    or not all(_is_number(t) for t in times) or not (retire is None or _is_number(retire))):
                raise ValueError("bad field types")
        except (ValueError, KeyError, TypeError) as e:
            raise ConfigurationError([f"{_KEY}: {path.name} is not a valid key file"]) from e
        known = self._snapshot[1].get(kid)
        if known is not None and known.pem == pem:  # parse each PEM once (RSA: ~37 ms)
            private = known.private_key
        else:
            private = jwk.load_private_pem(pem, alg, where=f"{_KEY}: {path.name}")
        public = private.public_key()
        public_jwk = jwk.public_jwk(public, alg)
        if public_jwk["kid"] != kid or path.name != f"{kid}.json":
            raise ConfigurationError([f"{_KEY}: {path.name}: kid does not match the key's thumbprint"])
        if os.stat(path).st_mode & 0o077:
            log.warning("keyring.insecure_permissions", file=path.name)
        return _Entry(kid, alg, times[0], times[1], retire, private, public, public_jwk, pem)

    # --- writing ------------------------------------------------------------------------

    def _new_entry(self, now: float, *, active_from: int) -> _Entry:
        private = jwk.generate(self.alg)
        public = private.public_key()
        public_jwk = jwk.public_jwk(public, self.alg)
        return _Entry(public_jwk["kid"], self.alg, int(now), active_from, None, private, public,
                      public_jwk, jwk.private_pem(private))

    def _write(self, entry: _Entry) -> None:
        """Atomically (temp file + rename) write one key file, mode 0600."""
        final = self.keys_dir / f"{entry.kid}.json"
        tmp = self.keys_dir / f".{entry.kid}.{secrets.token_hex(4)}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(entry.record(), f, indent=2)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, final)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        _fsync_dir(self.keys_dir)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """Serialise creation and rotation between processes sharing `keys_dir`."""
        fd = os.open(self.keys_dir / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the lock


def rotate_keys(keys_dir: Path, alg: str, *, now: float, activation_delay: int, max_token_ttl: int) -> str:
    """For `tokenbroker keys rotate`: load (creating a first key if needed) and rotate."""
    ring = Keyring.load_or_create(keys_dir, alg, now=now)
    return ring.rotate(now, activation_delay, max_token_ttl=max_token_ttl)


def _is_number(v: object) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
