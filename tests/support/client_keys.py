"""A client's key pairs for private_key_jwt: a JWKS file written with PyJWT (not our code) and
assertions signed with the private keys."""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


def generate(kind: str) -> Any:
    if kind == "RSA":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if kind == "EC":
        return ec.generate_private_key(ec.SECP256R1())
    return ed25519.Ed25519PrivateKey.generate()


def public_jwk(private: Any, kid: str) -> dict[str, Any]:
    public = private.public_key()
    algo = RSAAlgorithm if isinstance(public, rsa.RSAPublicKey) else \
        ECAlgorithm if isinstance(public, ec.EllipticCurvePublicKey) else OKPAlgorithm
    return {**algo.to_jwk(public, as_dict=True), "kid": kid, "use": "sig"}


@dataclass
class ClientKeys:
    """The keys of one client: kid -> private key, published in `path` (a JWKS file)."""

    client_id: str
    issuer: str                                  # the broker's issuer identifier (assertion aud)
    path: Path
    keys: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def create(cls, tmp_path: Path, client_id: str, issuer: str, kinds: tuple[str, ...] = ("RSA", "EC")
               ) -> ClientKeys:
        ck = cls(client_id, issuer, tmp_path / f"{client_id}.jwks.json")
        for kind in kinds:
            ck.keys[f"{client_id}-{kind.lower()}"] = generate(kind)
        ck.path.write_text(json.dumps({"keys": [public_jwk(k, kid) for kid, k in ck.keys.items()]}))
        return ck

    def assertion(self, kid: str | None = None, *, alg: str | None = None, key: Any = None,
                  lifetime: int = 60, headers: dict[str, Any] | None = None, **claims: Any) -> str:
        """A signed assertion; pass a claim as None to leave it out."""
        kid = kid or next(iter(self.keys))
        key = key or self.keys[kid]
        alg = alg or ("RS256" if isinstance(key, rsa.RSAPrivateKey) else
                      "ES256" if isinstance(key, ec.EllipticCurvePrivateKey) else "EdDSA")
        now = int(time.time())
        body: dict[str, Any] = {"iss": self.client_id, "sub": self.client_id, "aud": self.issuer,
                                "iat": now, "exp": now + lifetime, "jti": secrets.token_urlsafe(12)}
        body.update(claims)
        body = {k: v for k, v in body.items() if v is not None}
        return jwt.encode(body, key, algorithm=alg, headers={"kid": kid, **(headers or {})})

    def form(self, assertion: str | None = None, **overrides: Any) -> list[tuple[str, str]]:
        return [("client_assertion_type", ASSERTION_TYPE), ("client_assertion", assertion or self.assertion()),
                *overrides.items()]
