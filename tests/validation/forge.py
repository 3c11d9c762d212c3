"""Hand-made JWS tokens for hostile tests: our own attacker keys, raw JSON, broken encodings."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

ATTACKER_RSA = rsa.generate_private_key(public_exponent=65537, key_size=2048)
ATTACKER_EC = ec.generate_private_key(ec.SECP256R1())


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def segment(obj: Any) -> str:
    """A JSON value, or a raw JSON text given as str (to write duplicate keys)."""
    text = obj if isinstance(obj, str) else json.dumps(obj, separators=(",", ":"))
    return b64(text.encode())


def parts(token: str) -> tuple[dict, dict]:
    h, p, _ = token.split(".")
    pad = lambda s: s + "=" * (-len(s) % 4)  # noqa: E731
    return (json.loads(base64.urlsafe_b64decode(pad(h))), json.loads(base64.urlsafe_b64decode(pad(p))))


def rsa_jwk(key: rsa.RSAPrivateKey, kid: str) -> dict:
    nums = key.public_key().public_numbers()
    return {"kty": "RSA", "kid": kid, "use": "sig", "e": b64(nums.e.to_bytes(3, "big")),
            "n": b64(nums.n.to_bytes((nums.n.bit_length() + 7) // 8, "big"))}


def sign(header: Any, payload: Any, *, alg: str = "RS256", key: Any = None) -> str:
    """Sign with `alg` (RS256/RS512/PS256 with an RSA key, ES256, HS256/HS512 with bytes, none)."""
    signing_input = f"{segment(header)}.{segment(payload)}".encode()
    if alg.lower() == "none":
        sig = b""
    elif alg.startswith("HS"):
        digest = hashlib.sha256 if alg == "HS256" else hashlib.sha512
        sig = hmac.new(key, signing_input, digest).digest()
    elif alg == "ES256":
        der = (key or ATTACKER_EC).sign(signing_input, ec.ECDSA(hashes.SHA256()))
        r, s = decode_dss_signature(der)
        sig = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    else:
        algo = hashes.SHA512() if alg.endswith("512") else hashes.SHA256()
        pad = padding.PKCS1v15() if alg.startswith("RS") else padding.PSS(
            mgf=padding.MGF1(algo), salt_length=algo.digest_size)
        sig = (key or ATTACKER_RSA).sign(signing_input, pad, algo)
    return f"{signing_input.decode()}.{b64(sig)}"


def public_pem(key: Any) -> bytes:
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
