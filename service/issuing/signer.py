"""Compact JWS signing for our own tokens, straight on `cryptography` (the signing path only).

PyJWT re-serialises and re-encodes the same protected header for every token and goes
through its algorithm registry; here the header (`alg`, `kid`, `typ: at+jwt`) is encoded once
per key, the payload is rendered with orjson, and the signature comes from the key itself:

    ES256   ECDSA P-256 / SHA-256, the DER signature turned into raw r || s (RFC 7518 §3.4)
    RS256   RSASSA-PKCS1-v1_5 / SHA-256
    EdDSA   Ed25519

The output is an ordinary compact JWS that any JOSE library verifies (tests check it with
PyJWT and with `TokenIssuer.verify`).
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

import orjson
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

_SHA256 = hashes.SHA256()
_ECDSA = ec.ECDSA(_SHA256)
_PKCS1 = padding.PKCS1v15()


def b64url(raw: bytes) -> bytes:
    return base64.urlsafe_b64encode(raw).rstrip(b"=")


def _default(value: Any) -> Any:
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def sign_es256(key: ec.EllipticCurvePrivateKey, data: bytes) -> bytes:
    r, s = decode_dss_signature(key.sign(data, _ECDSA))
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


class JwsSigner:
    def __init__(self, typ: str) -> None:
        self._typ = typ
        self._headers: dict[tuple[str, str], bytes] = {}

    def _header(self, kid: str, alg: str) -> bytes:
        found = self._headers.get((kid, alg))
        if found is None:
            found = b64url(orjson.dumps({"alg": alg, "kid": kid, "typ": self._typ}))
            if len(self._headers) > 64:   # rotated keys: keep the cache small
                self._headers.clear()
            self._headers[(kid, alg)] = found
        return found

    def sign(self, payload: Mapping[str, Any], *, kid: str, alg: str, private_key: Any) -> str:
        signing_input = self._header(kid, alg) + b"." + b64url(orjson.dumps(payload, default=_default))
        if alg == "ES256" and isinstance(private_key, ec.EllipticCurvePrivateKey):
            signature = sign_es256(private_key, signing_input)
        elif alg == "RS256" and isinstance(private_key, rsa.RSAPrivateKey):
            signature = private_key.sign(signing_input, _PKCS1, _SHA256)
        elif alg == "EdDSA" and isinstance(private_key, ed25519.Ed25519PrivateKey):
            signature = private_key.sign(signing_input)
        else:
            raise ValueError(f"cannot sign {alg} with a {type(private_key).__name__}")
        return (signing_input + b"." + b64url(signature)).decode("ascii")
