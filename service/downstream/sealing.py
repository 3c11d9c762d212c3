"""AES-256-GCM sealing of shared cache entries, with key ids for rotation.

    box = SealingKeys.from_settings(settings.store)        # encryption_key + previous_encryption_keys
    sealed = box.seal(b"plaintext", aad=b"obo:<digest>")  # {"v": 1, "kid", "n", "c"} (JSON-able)
    box.open(sealed, aad=b"obo:<digest>")                  # bytes, or None (unknown kid, tampered)

- Every entry is encrypted under `store.encryption_key` with a fresh 96-bit random nonce; the
  Redis key is the associated data, so an entry copied to another key does not open.
- `kid` = the first 8 hex characters of sha256(key): it names the key, never reveals it.
  Entries written under a key in `store.previous_encryption_keys` still open; new entries use
  the current key. An entry under an unknown key, or one that fails authentication, opens to
  None (a cache miss) and is counted by the caller; it is never an error for the user.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from collections.abc import Iterable
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from service.settings import Secret, StoreSettings

VERSION = 1
NONCE_BYTES = 12


def key_id(key: bytes) -> str:
    return hashlib.sha256(key).hexdigest()[:8]


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


class SealingKeys:
    def __init__(self, current: bytes, previous: Iterable[bytes] = ()) -> None:
        keys = [current, *previous]
        if any(len(k) != 32 for k in keys):
            raise ValueError("AES-256-GCM keys are 32 bytes")
        self.kid = key_id(current)
        self._current = AESGCM(current)
        self._by_kid = {key_id(k): AESGCM(k) for k in reversed(keys)}   # the current key wins a clash

    @classmethod
    def from_settings(cls, store: StoreSettings) -> SealingKeys:
        """The keys of `[store]` (settings checked they are base64 of 32 bytes)."""
        def raw(secret: Secret) -> bytes:
            return base64.b64decode(secret.reveal().strip(), validate=True)
        return cls(raw(store.encryption_key), [raw(k) for k in store.previous_encryption_keys])

    def seal(self, plaintext: bytes, *, aad: bytes) -> dict[str, Any]:
        nonce = os.urandom(NONCE_BYTES)
        return {"v": VERSION, "kid": self.kid, "n": _b64(nonce),
                "c": _b64(self._current.encrypt(nonce, plaintext, aad))}

    def open(self, sealed: object, *, aad: bytes) -> bytes | None:
        if not isinstance(sealed, dict) or sealed.get("v") != VERSION:
            return None
        aead = self._by_kid.get(str(sealed.get("kid")))
        if aead is None:
            return None
        try:
            nonce = base64.b64decode(str(sealed["n"]), validate=True)
            return aead.decrypt(nonce, base64.b64decode(str(sealed["c"]), validate=True), aad)
        except (KeyError, binascii.Error, ValueError, InvalidTag):
            return None
