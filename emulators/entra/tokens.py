"""Access and ID tokens with Entra's v1.0 / v2.0 claim shapes, signed by the key ring. TEST ONLY.

Invented details (not observable on real Entra): `sub` is b64url(SHA-256(oid:app)) cut to 43
characters, pairwise per user and audience app (per client for ID tokens); `aio`/`rh`/`uti`
are random; `iat = nbf = now`.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import uuid

import jwt

from .model import App, User, b64url
from .state import EmulatorState


def v2_issuer(state: EmulatorState, tid: str) -> str:
    return f"{state.base_url}/{tid}/v2.0"


def v1_issuer(tid: str) -> str:
    return f"https://sts.windows.net/{tid}/"


def pairwise_sub(oid: str, app_id: str) -> str:
    return b64url(hashlib.sha256(f"{oid}:{app_id.lower()}".encode()).digest())[:43]


def client_info(oid: str, tid: str) -> str:
    return b64url(json.dumps({"uid": oid, "utid": tid}, separators=(",", ":")).encode())


def _rand(n: int = 16) -> str:
    return secrets.token_urlsafe(n)


def sign(state: EmulatorState, claims: dict, *, v1: bool) -> str:
    """Signed with the global signing key, or the audience app's own key (claims mapping)."""
    key = state.signing_key_for(str(claims.get("aud", "")))
    headers = {"typ": "JWT", "alg": "RS256", "kid": key.kid}
    if v1:
        headers["x5t"] = key.kid
    return jwt.encode(claims, key.private_key, algorithm="RS256", headers=headers)


def access_token(state: EmulatorState, *, tenant: str, resource: App, client: App | None,
                 user: User | None, scopes: list[str] | None = None, roles: list[str] | None = None,
                 acr: str = "1", aud_uri: bool = False, version: int | None = None,
                 lifetime: int | None = None, extra: dict | None = None) -> tuple[str, dict]:
    """Mint an access token for `resource`; delegated when `user` is given, else app-only."""
    now = int(state.now())
    ver = version or resource.access_token_version
    client_id = client.client_id if client else resource.client_id
    aud = resource.app_id_uri if (ver == 1 and aud_uri and resource.app_id_uri) else resource.client_id
    claims: dict = {
        "aud": aud, "iss": v1_issuer(tenant) if ver == 1 else v2_issuer(state, tenant),
        "iat": now, "nbf": now, "exp": now + int(lifetime or state.token_lifetime()),
        "aio": _rand(), "rh": f"0.{_rand(24)}.", "tid": tenant, "uti": _rand(16), "ver": f"{ver}.0",
    }
    if ver == 1:
        claims.update(appid=client_id, appidacr=acr)
    else:
        claims.update(azp=client_id, azpacr=acr)
    if user is not None:
        claims.update(name=user.name, oid=user.oid, sub=pairwise_sub(user.oid, resource.client_id),
                      scp=" ".join(scopes or []))
        if ver == 1:
            claims.update(upn=user.upn, unique_name=user.upn, amr=["pwd"], acr="1",
                          family_name=user.name.split()[-1], given_name=user.name.split()[0])
        else:
            claims["preferred_username"] = user.upn
        user_roles = roles if roles is not None else user.app_roles.get(resource.client_id, [])
        if user_roles:
            claims["roles"] = list(user_roles)
    else:
        sp_oid = client.service_principal_oid if client else str(uuid.uuid4())
        claims.update(oid=sp_oid, sub=sp_oid, idtyp="app", roles=list(roles or []))
    for name, value in (extra or {}).items():
        if value is None:
            claims.pop(name, None)
        else:
            claims[name] = value
    return sign(state, claims, v1=ver == 1), claims


def id_token(state: EmulatorState, *, tenant: str, client_id: str, user: User, nonce: str | None,
             email: bool = False, lifetime: int | None = None) -> str:
    now = int(state.now())
    claims: dict = {
        "aud": client_id, "iss": v2_issuer(state, tenant), "iat": now, "nbf": now,
        "exp": now + int(lifetime or state.token_lifetime()), "name": user.name, "oid": user.oid,
        "preferred_username": user.upn, "rh": f"0.{_rand(24)}.", "sid": str(uuid.uuid5(uuid.NAMESPACE_URL,
                                                                                    f"sid:{user.oid}")),
        "sub": pairwise_sub(user.oid, client_id), "tid": tenant, "uti": _rand(16), "ver": "2.0",
        "auth_time": now,
    }
    if nonce:
        claims["nonce"] = nonce
    if email and user.email:
        claims["email"] = user.email
    return sign(state, claims, v1=False)


class OwnTokenError(Exception):
    """A token that claims to be ours does not verify: reason in args[0]."""


def decode_own(state: EmulatorState, token: str, *, audience: list[str] | None = None) -> dict:
    """Verify a token signed by this emulator (signature, issuer, audience); expiry is the
    caller's business (so it can answer with its own error code)."""
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError as e:
        raise OwnTokenError("malformed") from e
    kid = str(header.get("kid", ""))
    key = state.keys.get(kid) or next((k for k in state.app_keys.values() if k.kid == kid), None)
    if key is None or header.get("alg") != "RS256":
        raise OwnTokenError("unknown signing key")
    try:
        claims = jwt.decode(token, key.public_key, algorithms=["RS256"],
                            options={"verify_exp": False, "verify_nbf": False, "verify_aud": False,
                                     "verify_iat": False})
    except jwt.PyJWTError as e:
        raise OwnTokenError("bad signature") from e
    tid = str(claims.get("tid", ""))
    if claims.get("iss") not in (v1_issuer(tid), v2_issuer(state, tid)) or state.tenant(tid) is None:
        raise OwnTokenError("foreign issuer")
    if audience is not None:
        aud = str(claims.get("aud", "")).rstrip("/").lower()
        if aud not in {a.rstrip("/").lower() for a in audience}:
            raise OwnTokenError("wrong audience")
    return claims


def is_own_issuer(state: EmulatorState, iss: str) -> bool:
    for t in state.tenants.values():
        if iss in (v1_issuer(t.id), v2_issuer(state, t.id)):
            return True
    return False
