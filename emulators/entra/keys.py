"""Signing keys: RSA keys with self-signed certificates, `kid` = `x5t`. TEST ONLY.

Rotation works like Entra's: a new key is published in the JWKS, then becomes the signer,
and the old one keeps verifying until it is retired (removed from the JWKS).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from .model import b64url


@dataclass
class SigningKey:
    kid: str
    private_key: rsa.RSAPrivateKey
    cert_der: bytes

    @property
    def public_key(self) -> rsa.RSAPublicKey:
        return self.private_key.public_key()

    def jwk(self, issuer: str | None = None) -> dict:
        nums = self.public_key.public_numbers()
        n = nums.n.to_bytes((nums.n.bit_length() + 7) // 8, "big")
        e = nums.e.to_bytes((nums.e.bit_length() + 7) // 8, "big")
        jwk = {"kty": "RSA", "use": "sig", "kid": self.kid, "x5t": self.kid, "n": b64url(n),
               "e": b64url(e), "x5c": [base64.b64encode(self.cert_der).decode("ascii")]}
        if issuer:
            jwk["issuer"] = issuer
        return jwk

    def pem(self) -> bytes:
        return self.private_key.private_bytes(serialization.Encoding.PEM,
                                              serialization.PrivateFormat.PKCS8,
                                              serialization.NoEncryption())


NOT_BEFORE = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)


def _self_signed(key: rsa.RSAPrivateKey) -> bytes:
    """A certificate that depends on the key only (serial from the public key, fixed validity,
    deterministic PKCS#1 v1.5 signature), so the same key gives the same `kid` after a restart."""
    public_der = key.public_key().public_bytes(serialization.Encoding.DER,
                                               serialization.PublicFormat.SubjectPublicKeyInfo)
    serial = int.from_bytes(hashlib.sha256(public_der).digest()[:16], "big") >> 1
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "accounts.emulator.test (TEST ONLY)")])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(serial)
            .not_valid_before(NOT_BEFORE).not_valid_after(NOT_BEFORE + dt.timedelta(days=3650))
            .sign(key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.DER)


def make_key(private_key: rsa.RSAPrivateKey | None = None) -> SigningKey:
    key = private_key or rsa.generate_private_key(public_exponent=65537, key_size=2048)
    der = _self_signed(key)
    return SigningKey(b64url(hashlib.sha1(der).digest()), key, der)


class KeyRing:
    """Published keys, newest last; `signer` is the one new tokens are signed with."""

    def __init__(self, keys: list[SigningKey]) -> None:
        if not keys:
            raise ValueError("a key ring needs at least one key")
        self._keys = list(keys)
        self._signer = keys[-1].kid

    @classmethod
    def load_or_create(cls, path: Path | None) -> KeyRing:
        """One signing key, persisted as PEM at `path` when given (stable across restarts)."""
        if path is None:
            return cls([make_key()])
        if path.exists():
            key = serialization.load_pem_private_key(path.read_bytes(), password=None)
            assert isinstance(key, rsa.RSAPrivateKey)
            return cls([make_key(key)])
        signing = make_key()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(signing.pem())
        path.chmod(0o600)
        return cls([signing])

    @property
    def signer(self) -> SigningKey:
        return self.get(self._signer)  # type: ignore[return-value]

    def get(self, kid: str) -> SigningKey | None:
        return next((k for k in self._keys if k.kid == kid), None)

    def all(self) -> list[SigningKey]:
        return list(self._keys)

    def add(self, *, activate: bool = False) -> SigningKey:
        key = make_key()
        self._keys.append(key)
        if activate:
            self._signer = key.kid
        return key

    def activate(self, kid: str) -> bool:
        if self.get(kid) is None:
            return False
        self._signer = kid
        return True

    def retire(self, kid: str) -> bool:
        """Remove a key from the JWKS. The signer cannot be retired."""
        if kid == self._signer or self.get(kid) is None:
            return False
        self._keys = [k for k in self._keys if k.kid != kid]
        return True

    def jwks(self, issuer: str | None = None) -> dict:
        return {"keys": [k.jwk(issuer) for k in self._keys]}
