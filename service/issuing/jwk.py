"""Key material for the keyring: generation, PEM round trip, public JWKs and RFC 7638 kids."""

from __future__ import annotations

import base64
import hashlib
import json

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from service.errors import ConfigurationError
from service.validation.jwt_checks import PublicKey

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey
_RSA_BITS = 2048  # RS256 signing is the costly one (~0.3 ms); 2048 is NIST-acceptable through 2030


def generate(alg: str) -> PrivateKey:
    if alg == "ES256":
        return ec.generate_private_key(ec.SECP256R1())
    if alg == "RS256":
        return rsa.generate_private_key(public_exponent=65537, key_size=_RSA_BITS)
    if alg == "EdDSA":
        return ed25519.Ed25519PrivateKey.generate()
    raise ValueError(f"unsupported signing algorithm {alg!r}")


def private_pem(key: PrivateKey) -> str:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode("ascii")


def load_private_pem(pem: str, alg: str, *, where: str) -> PrivateKey:
    """Parse a PKCS#8 PEM and check that its type fits `alg` (P-256 for ES256, RSA ≥ 2048 …)."""
    try:
        key = serialization.load_pem_private_key(pem.encode("ascii"), password=None)
    except (ValueError, TypeError, UnicodeError) as e:
        raise ConfigurationError([f"{where}: unreadable private key"]) from e
    ok = ((alg == "ES256" and isinstance(key, ec.EllipticCurvePrivateKey)
           and isinstance(key.curve, ec.SECP256R1))
          or (alg == "RS256" and isinstance(key, rsa.RSAPrivateKey) and key.key_size >= 2048)
          or (alg == "EdDSA" and isinstance(key, ed25519.Ed25519PrivateKey)))
    if not ok or not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey):
        raise ConfigurationError([f"{where}: key type does not match alg {alg}"])
    return key


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _uint(n: int, length: int | None = None) -> str:
    length = length or max(1, (n.bit_length() + 7) // 8)
    return _b64(n.to_bytes(length, "big"))


def _required_members(public: PublicKey) -> dict[str, str]:
    """The RFC 7638 §3.2 required members of a public JWK."""
    if isinstance(public, ec.EllipticCurvePublicKey):
        point = public.public_numbers()
        return {"crv": "P-256", "kty": "EC", "x": _uint(point.x, 32), "y": _uint(point.y, 32)}
    if isinstance(public, rsa.RSAPublicKey):
        rsa_numbers = public.public_numbers()
        return {"e": _uint(rsa_numbers.e), "kty": "RSA", "n": _uint(rsa_numbers.n)}
    if isinstance(public, ed25519.Ed25519PublicKey):
        raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return {"crv": "Ed25519", "kty": "OKP", "x": _b64(raw)}
    raise TypeError(f"unsupported key type {type(public).__name__}")


def thumbprint(public: PublicKey) -> str:
    """RFC 7638 JWK thumbprint (SHA-256, base64url): the key's `kid`."""
    members = _required_members(public)
    canonical = json.dumps(members, sort_keys=True, separators=(",", ":")).encode("utf-8")
    return _b64(hashlib.sha256(canonical).digest())


def public_jwk(public: PublicKey, alg: str) -> dict[str, str]:
    members = _required_members(public)
    return {**members, "kid": thumbprint(public), "alg": alg, "use": "sig"}
