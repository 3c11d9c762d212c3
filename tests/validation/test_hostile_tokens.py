"""At least 40 hostile tokens, each refused by GET /api/me with the right RFC 6750 answer.

Every case asserts the status, the error code in the body and in WWW-Authenticate, and the
refusal reason counted in `token_validation_failures_total` (so a token refused for the wrong
reason — e.g. a bad signature where a duplicate key should have been caught — fails).
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from emulators.entra import demo
from tests.validation.conftest import ALLOWED_APPS, BROKER, SPA, Kit
from tests.validation.forge import ATTACKER_RSA, b64, rsa_jwk, segment, sign

EVIL_KID = "evil-" + uuid.uuid4().hex
UNKNOWN_APP = str(uuid.uuid4())


@dataclass(frozen=True)
class Case:
    build: Callable[[Kit], str]          # the Authorization header value
    status: int
    error: str
    reason: str


def bearer(fn: Callable[[Kit], str]) -> Callable[[Kit], str]:
    return lambda k: f"Bearer {fn(k)}"


def minted(**kw) -> Callable[[Kit], str]:
    return bearer(lambda k: k.mint(**kw))


def claims(**over) -> Callable[[Kit], str]:
    """A genuine emulator-signed token with claims overridden (None removes a claim)."""
    return bearer(lambda k: k.mint(claims={name: (v(k) if callable(v) else v) for name, v in over.items()}))


def forged(header: dict | None = None, payload: Callable[[Kit], dict] | None = None, *,
           alg: str = "RS256", key_from_kit: bool = False, drop: tuple[str, ...] = ()) -> Callable[[Kit], str]:
    """Signed by the attacker (or keyed with the emulator's public PEM for HS*)."""
    def build(k: Kit) -> str:
        h = {**k.header, **(header or {})}
        for name in drop:
            h.pop(name, None)
        body = payload(k) if payload else k.claims
        key = k.signing_pem if key_from_kit else None
        return sign(h, body, alg=alg, key=key)
    return bearer(build)


def invalid(reason: str) -> tuple[int, str, str]:
    return 401, "invalid_token", reason


def _sig_tamper(k: Kit, new_sig: str) -> str:
    h, p, _ = k.token.split(".")
    return f"{h}.{p}.{new_sig}"


def _sig(k: Kit) -> bytes:
    s = k.token.split(".")[2]
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def _payload_tamper(k: Kit, **changes) -> str:
    h, _, s = k.token.split(".")
    return f"{h}.{segment({**k.claims, **changes})}.{s}"


def _alg_swap(alg: str) -> Callable[[Kit], str]:
    def build(k: Kit) -> str:
        _, p, s = k.token.split(".")
        return f"{segment({**k.header, 'alg': alg})}.{p}.{s}"
    return build


def _iss(tid: str) -> Callable[[Kit], str]:
    return lambda k: k.claims["iss"].replace(k.claims["tid"], tid)


FOREIGN_TID = str(uuid.uuid4())
ATTACKER_JWK = rsa_jwk(ATTACKER_RSA, EVIL_KID)

CASES: dict[str, tuple[Callable[[Kit], str], tuple[int, str, str]]] = {
    # algorithm confusion
    "alg none": (forged({"alg": "none"}, alg="none"), invalid("alg")),
    "alg None": (forged({"alg": "None"}, alg="none"), invalid("alg")),
    "alg NONE": (forged({"alg": "NONE"}, alg="none"), invalid("alg")),
    "alg nOnE": (forged({"alg": "nOnE"}, alg="none"), invalid("alg")),
    "alg none keeping the genuine signature": (bearer(_alg_swap("none")), invalid("alg")),
    "alg missing": (forged(drop=("alg",)), invalid("alg")),
    "HS256 keyed with the RSA public key PEM": (
        forged({"alg": "HS256"}, alg="HS256", key_from_kit=True), invalid("alg")),
    "HS512 keyed with the RSA public key PEM": (
        forged({"alg": "HS512"}, alg="HS512", key_from_kit=True), invalid("alg")),
    "RS512 by an attacker": (forged({"alg": "RS512"}, alg="RS512"), invalid("alg")),
    "PS256 by an attacker": (forged({"alg": "PS256"}, alg="PS256"), invalid("alg")),
    "ES256 by an attacker": (forged({"alg": "ES256"}, alg="ES256"), invalid("alg")),
    # audience
    "wrong aud": (claims(aud="api://someone-else"), invalid("audience")),
    "aud as an array holding ours": (claims(aud=[BROKER]), invalid("audience")),
    "aud with a trailing slash": (claims(aud=f"api://{BROKER}/"), invalid("audience")),
    "aud in another case": (claims(aud=BROKER.upper()), invalid("audience")),
    # issuer and tenant
    "foreign iss": (claims(iss=lambda k: f"https://evil.example/{k.claims['tid']}/v2.0"), invalid("issuer")),
    "v1 iss on a v2 token": (claims(iss=lambda k: f"https://sts.windows.net/{k.claims['tid']}/"), invalid("issuer")),
    "iss with a trailing slash": (claims(iss=lambda k: k.claims["iss"] + "/"), invalid("issuer")),
    "iss of the home tenant, tid of the second": (claims(tid=demo.PARTNER_TENANT_ID), invalid("issuer")),
    "tenant not allowed": (claims(tid=FOREIGN_TID, iss=_iss(FOREIGN_TID)), (403, "access_denied", "tenant")),
    "tid not a tenant id": (claims(tid="../x", iss=_iss("../x")), invalid("claims")),
    # lifetime
    "expired an hour ago": (claims(exp=lambda k: k.now - 3600), invalid("expired")),
    "expired beyond the clock skew": (claims(exp=lambda k: k.now - 200), invalid("expired")),
    "nbf in the future": (claims(nbf=lambda k: k.now + 3600), invalid("not_yet_valid")),
    "iat in the future": (claims(iat=lambda k: k.now + 3600), invalid("not_yet_valid")),
    "exp missing": (claims(exp=None), invalid("claims")),
    "exp as a numeric string": (claims(exp=lambda k: str(k.now + 3600)), invalid("claims")),
    "exp as a float with a fraction": (claims(exp=lambda k: k.now + 3600.5), invalid("claims")),
    "exp as an integral float": (claims(exp=lambda k: float(k.now + 3600)), invalid("claims")),
    "exp as a boolean": (claims(exp=True), invalid("claims")),
    "nbf as a string": (claims(nbf="0"), invalid("claims")),
    # keys
    "unknown kid": (forged({"kid": EVIL_KID}), invalid("unknown_kid")),
    "no kid": (forged(drop=("kid", "x5t")), invalid("unknown_kid")),
    "emulator kid, attacker key": (forged(), invalid("signature")),
    "jwk header with the attacker key": (forged({"kid": EVIL_KID, "jwk": ATTACKER_JWK}), invalid("unknown_kid")),
    "jwk header under the emulator kid": (forged({"jwk": ATTACKER_JWK}), invalid("signature")),
    "jku header to an attacker JWKS": (
        forged({"kid": EVIL_KID, "jku": "https://127.0.0.1:9/jwks"}), invalid("unknown_kid")),
    "x5u header to an attacker certificate": (
        forged({"x5u": "https://127.0.0.1:9/cert.pem"}), invalid("signature")),
    "x5c header with an attacker chain": (forged({"x5c": ["MIIBIjANBgkqhkiG9w0BAQ"]}), invalid("signature")),
    "crit header": (forged({"crit": ["exp"], "exp": 1}), invalid("crit")),
    "Graph-style nonce header": (forged({"nonce": "abc"}), invalid("token_type")),
    # signature
    "tampered oid": (bearer(lambda k: _payload_tamper(k, oid=str(uuid.uuid4()))), invalid("signature")),
    "tampered scp": (bearer(lambda k: _payload_tamper(k, scp="user_impersonation admin")), invalid("signature")),
    "truncated signature": (bearer(lambda k: _sig_tamper(k, b64(_sig(k)[:-3]))), invalid("signature")),
    "empty signature": (bearer(lambda k: _sig_tamper(k, "")), invalid("signature")),
    "padded signature": (bearer(lambda k: k.token + "=="), invalid("malformed")),
    "signature of another token": (bearer(lambda k: _sig_tamper(k, k.mint().split(".")[2])), invalid("signature")),
    # malformed
    "garbage": (lambda k: "Bearer abc", invalid("malformed")),
    "two dots only": (lambda k: "Bearer ..", invalid("malformed")),
    "one dot": (lambda k: "Bearer a.b", invalid("malformed")),
    "non-base64 characters": (lambda k: "Bearer !!!.???.***", invalid("malformed")),
    "five segments (JWE)": (lambda k: f"Bearer {k.token}.a.b", invalid("malformed")),
    "empty bearer": (lambda k: "Bearer ", invalid("malformed")),
    "two credentials": (lambda k: f"Bearer {k.token} {k.token}", invalid("malformed")),
    "duplicate claim keys": (bearer(lambda k: sign(
        k.header, '{"aud":"x","aud":"' + BROKER + '","exp":' + str(k.now + 60) + '}')), invalid("malformed")),
    "duplicate header keys": (bearer(lambda k: sign(
        '{"alg":"RS256","kid":"' + EVIL_KID + '","kid":"' + k.header["kid"] + '"}', k.claims)), invalid("malformed")),
    "payload is an array": (bearer(lambda k: sign(k.header, "[1,2,3]")), invalid("malformed")),
    "header is not JSON": (bearer(lambda k: f"{b64(b'not json')}.{k.token.split('.', 1)[1]}"), invalid("malformed")),
    "oversized token (17 KB)": (claims(pad="x" * 17_000), invalid("too_large")),
    "oversized header (20 KB)": (lambda k: "Bearer " + "a" * 20_000, invalid("too_large")),
    # claim types and token kinds
    "missing tid": (claims(tid=None), invalid("claims")),
    "missing oid": (claims(oid=None), invalid("claims")),
    "tid not a string": (claims(tid=12345), invalid("claims")),
    "oid not a string": (claims(oid=["a"]), invalid("claims")),
    "scp not a string": (claims(scp=["user_impersonation"]), invalid("claims")),
    "roles not an array": (claims(roles="admin"), invalid("claims")),
    "azp missing": (claims(azp=None), invalid("claims")),
    "azp not a string": (claims(azp=5), invalid("claims")),
    "ver missing": (claims(ver=None), invalid("claims")),
    "ver 3.0": (claims(ver="3.0"), invalid("version")),
    "an id token for the client app": (
        claims(aud=SPA, nonce="n-1", scp=None, azp=None), invalid("token_type")),
    "an id token with the broker as audience": (claims(nonce="n-1", scp=None), invalid("token_type")),
    "neither scp nor roles": (claims(scp=None), invalid("token_type")),
    "app-only token": (minted(app_only=True, scopes=None, claims={"roles": ["Broker.Access"]}),
                       (403, "access_denied", "app_only")),
    "client app not allowed": (minted(client_id=UNKNOWN_APP), (403, "access_denied", "client_app")),
    "v1 token of an app not allowed": (
        minted(version=1, client_id=UNKNOWN_APP), (403, "access_denied", "client_app")),
    "missing scope": (minted(scopes=["other.scope"]), (403, "insufficient_scope", "missing_scope")),
    "scope in another case": (claims(scp="User_Impersonation"), (403, "insufficient_scope", "missing_scope")),
    "scope as a prefix": (claims(scp="user_impersonation2"), (403, "insufficient_scope", "missing_scope")),
    "scope as a full URI": (claims(scp=f"api://{BROKER}/user_impersonation"),
                            (403, "insufficient_scope", "missing_scope")),
}


def failures(broker, reason: str) -> float:
    from service.typedefs import METRICS
    value = broker.app[METRICS].registry.get_sample_value(
        "tokenbroker_token_validation_failures_total", {"reason": reason})
    return value or 0.0


def test_there_are_at_least_forty_hostile_cases():
    assert len(CASES) >= 40


@pytest.fixture(name="broker")
async def _broker(broker_for):
    return await broker_for(allowed_client_apps=ALLOWED_APPS)


@pytest.mark.parametrize("name", list(CASES))
async def test_a_hostile_token_is_refused_with_the_right_answer(name, broker, kit):
    build, (status, error, reason) = CASES[name]
    resp = await broker.get("/api/me", headers={"Authorization": build(kit)})
    body = await resp.json()
    assert resp.status == status, body
    assert body["error"] == error
    challenge = resp.headers["WWW-Authenticate"]
    assert challenge.startswith('Bearer realm="tokenbroker"')
    assert f'error="{error}"' in challenge
    if error == "insufficient_scope":
        assert 'scope="user_impersonation"' in challenge
    assert failures(broker, reason) == 1, f"refused, but not for {reason!r}"
    assert kit.token.split(".")[2] not in str(body)
