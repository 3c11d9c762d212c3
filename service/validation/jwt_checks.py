"""Strict, framework-free parsing and checking of compact JWS tokens.

PyJWT accepts things a validator of foreign tokens must refuse (duplicate JSON keys resolve to
the last value, numeric strings pass as `exp`, padded or non-canonical base64 makes signatures
malleable, the wrong key type raises `TypeError`). This module does the parsing itself and
raises `TokenInvalid(reason)` for every malformation, so callers never see a foreign exception.
It is reused for every issuer we trust (Entra, trusted issuers, Teams tokens).

This is the broker's one JWT verifier: our own tokens (issuing/issuer.py), client assertions
and every foreign token go through it, with one set of reasons (short codes for logs/metrics):

    malformed      not a compact JWS with strict JSON and canonical base64url
    too_large      over MAX_TOKEN_BYTES (16 KB), checked before any decoding
    alg            alg not allowed (or not the one pinned to the key), incl. "none"
    crit           a `crit` header (we implement no extensions)
    signature      the signature does not verify with the key (or the key is of another family)
    claims         a registered claim of the wrong type or missing (`exp` as a string, ...)
    expired        now >= exp + skew
    not_yet_valid  nbf or iat later than now + skew
    unknown_kid    no published key with that kid
    issuer, audience, token_type   not the expected iss / aud / typ

Deliberate differences from PyJWT (tests/validation/test_verifier_vs_pyjwt.py lists them):
duplicate JSON keys, NaN/Infinity, lone surrogates, padded or non-canonical base64url, string or
float NumericDates and boolean claims are refused where PyJWT accepts them; a key of the wrong
type is a `signature` refusal where PyJWT raises TypeError; RSA keys under 2048 bits never
verify.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any, Literal, overload

import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from service.errors import TokenInvalid

MAX_TOKEN_BYTES = 16 * 1024
#: the public keys a signature can be checked with; `bytes` is an HMAC secret
PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey
VerifyingKey = PublicKey | bytes
_URLSAFE_TO_STD = bytes.maketrans(b"-_", b"+/")
_PADDING = {0: b"", 2: b"==", 3: b"="}
_B64_VALUE = {c: i for i, c in enumerate("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")}
_HASHES: dict[str, type[hashes.SHA256 | hashes.SHA384 | hashes.SHA512]] = {
    "256": hashes.SHA256, "384": hashes.SHA384, "512": hashes.SHA512}
_EC_CURVES = {"ES256": ("secp256r1", 32), "ES384": ("secp384r1", 48), "ES512": ("secp521r1", 66)}
#: JWS header parameters whose keys we never use (RFC 8725 §3.5): they are simply ignored.
KEY_CARRYING_HEADERS = frozenset({"jku", "x5u", "jwk", "x5c"})


@dataclass(frozen=True)
class Jws:
    header: Mapping[str, Any]
    payload: Mapping[str, Any]
    signing_input: bytes
    signature: bytes


def b64url_decode(segment: str) -> bytes:
    """Unpadded, canonical base64url only (a non-canonical encoding would be malleable).

    The alphabet is checked by binascii's strict mode after mapping `-_` to `+/` (so `+`, `/`
    and `=` are refused first): one C pass instead of a regex and a lenient decode."""
    if len(segment) % 4 == 1 or "+" in segment or "/" in segment or "=" in segment or not segment.isascii():
        raise TokenInvalid("malformed", "bad base64url")
    try:
        raw = binascii.a2b_base64(segment.encode("ascii").translate(_URLSAFE_TO_STD) + _PADDING[len(segment) % 4],
                                  strict_mode=True)
    except (binascii.Error, ValueError) as e:
        raise TokenInvalid("malformed", "bad base64url") from e
    # canonical = the unused low bits of the last character are zero (what re-encoding checks)
    rem = len(segment) % 4
    if rem and _B64_VALUE[segment[-1]] & (0x0F if rem == 2 else 0x03):
        raise TokenInvalid("malformed", "non-canonical base64url")
    return raw


def b64url_encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate key {key[:40]!r}")
        out[key] = value
    return out


def _no_constants(name: str) -> Any:
    raise ValueError(f"non-standard JSON constant {name}")


def _compact_object(raw: bytes) -> dict[str, Any] | None:
    """The fast path: orjson parses `raw` and renders it back byte for byte — then `raw` is the
    one compact serialisation of a dict (no duplicate key survives a round trip; orjson refuses
    NaN, invalid UTF-8 and lone surrogates). Anything else (spaces, escapes, exponents, big
    integers, errors) takes the strict path below, with its exact reasons."""
    try:
        value = orjson.loads(raw)
        if isinstance(value, dict) and orjson.dumps(value) == raw:
            return value
    except (orjson.JSONDecodeError, orjson.JSONEncodeError):
        pass
    return None


def strict_json_object(raw: bytes, what: str) -> dict[str, Any]:
    """A JSON object without duplicate keys, NaN/Infinity, invalid UTF-8 or lone surrogates."""
    fast = _compact_object(raw)
    if fast is not None:
        return fast
    try:
        value = json.loads(raw.decode("utf-8"), object_pairs_hook=_no_duplicates,
                           parse_constant=_no_constants)
    except (ValueError, UnicodeDecodeError, RecursionError) as e:
        raise TokenInvalid("malformed", f"{what}: {e}"[:200]) from e
    if not isinstance(value, dict):
        raise TokenInvalid("malformed", f"{what} is not a JSON object")
    try:   # a `\ud800` escape decodes to a lone surrogate, which no store, log or hash can encode
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError as e:
        raise TokenInvalid("malformed", f"{what}: lone surrogate escape") from e
    return value


def parse_compact(token: object, *, max_bytes: int = MAX_TOKEN_BYTES) -> Jws:
    """Split and decode a compact JWS. Nothing is verified yet."""
    if not isinstance(token, str) or not token:
        raise TokenInvalid("malformed", "empty token")
    if len(token) > max_bytes:
        raise TokenInvalid("too_large", f"{len(token)} characters")
    if not token.isascii():
        raise TokenInvalid("malformed", "non-ASCII token")
    parts = token.split(".")
    if len(parts) != 3:
        raise TokenInvalid("malformed", f"{len(parts)} segments")
    header = strict_json_object(b64url_decode(parts[0]), "header")
    payload = strict_json_object(b64url_decode(parts[1]), "payload")
    signature = b64url_decode(parts[2])
    return Jws(header, payload, f"{parts[0]}.{parts[1]}".encode("ascii"), signature)


def check_header(header: Mapping[str, Any], algorithms: Collection[str]) -> str:
    """Allow-listed `alg` (exact case), no `crit` (we implement no extensions), string `kid`.

    Returns the algorithm. `jku`/`x5u`/`jwk`/`x5c` are ignored: keys come only from our config.
    """
    alg = header.get("alg")
    if not isinstance(alg, str) or alg not in algorithms:
        raise TokenInvalid("alg", f"alg {str(alg)[:20]!r} not allowed")
    if "crit" in header:
        raise TokenInvalid("crit", "unsupported critical header parameters")
    if "kid" in header and not isinstance(header["kid"], str):
        raise TokenInvalid("malformed", "kid is not a string")
    if "typ" in header and not isinstance(header["typ"], str):
        raise TokenInvalid("malformed", "typ is not a string")
    return alg


def verify_signature(alg: str, key: VerifyingKey, signing_input: bytes, signature: bytes) -> bool:
    """True when `signature` is valid for `alg` with `key`; the key family must fit the alg.

    Never raises for a bad signature or a key of the wrong type (PyJWT's TypeError trap).
    """
    if not signature:
        return False
    family, bits = alg[:2], alg[2:]
    try:
        if family in ("RS", "PS") and bits in _HASHES and isinstance(key, rsa.RSAPublicKey):
            if key.key_size < 2048:
                return False
            algo = _HASHES[bits]()
            pad = (padding.PKCS1v15() if family == "RS" else
                   padding.PSS(mgf=padding.MGF1(algo), salt_length=algo.digest_size))
            key.verify(signature, signing_input, pad, algo)
            return True
        if alg in _EC_CURVES and isinstance(key, ec.EllipticCurvePublicKey):
            curve, size = _EC_CURVES[alg]
            if key.curve.name != curve or len(signature) != 2 * size:
                return False
            r = int.from_bytes(signature[:size], "big")
            s = int.from_bytes(signature[size:], "big")
            key.verify(encode_dss_signature(r, s), signing_input, ec.ECDSA(_HASHES[bits]()))
            return True
        if alg in ("EdDSA", "Ed25519") and isinstance(key, ed25519.Ed25519PublicKey):
            key.verify(signature, signing_input)
            return True
        if family == "HS" and bits in _HASHES and isinstance(key, bytes | bytearray) and key:
            digest = {"256": hashlib.sha256, "384": hashlib.sha384, "512": hashlib.sha512}[bits]
            return hmac.compare_digest(hmac.new(bytes(key), signing_input, digest).digest(), signature)
    except (InvalidSignature, ValueError, TypeError):
        return False
    return False


# --- typed claim access ---------------------------------------------------------------------

@overload
def int_claim(claims: Mapping[str, Any], name: str, *, required: Literal[True]) -> int: ...
@overload
def int_claim(claims: Mapping[str, Any], name: str, *, required: bool = False) -> int | None: ...
def int_claim(claims: Mapping[str, Any], name: str, *, required: bool = False) -> int | None:
    """An integer NumericDate: bool, float and numeric strings are refused."""
    if name not in claims:
        if required:
            raise TokenInvalid("claims", f"missing {name}")
        return None
    value = claims[name]
    if type(value) is not int:
        raise TokenInvalid("claims", f"{name} is not an integer")
    return value


@overload
def str_claim(claims: Mapping[str, Any], name: str, *, required: Literal[True]) -> str: ...
@overload
def str_claim(claims: Mapping[str, Any], name: str, *, required: bool = False) -> str | None: ...
def str_claim(claims: Mapping[str, Any], name: str, *, required: bool = False) -> str | None:
    if name not in claims:
        if required:
            raise TokenInvalid("claims", f"missing {name}")
        return None
    value = claims[name]
    if not isinstance(value, str) or (required and not value):
        raise TokenInvalid("claims", f"{name} is not a non-empty string")
    return value


def str_list_claim(claims: Mapping[str, Any], name: str) -> tuple[str, ...]:
    """A JSON array of strings (e.g. `roles`); absent → ()."""
    if name not in claims:
        return ()
    value = claims[name]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise TokenInvalid("claims", f"{name} is not an array of strings")
    return tuple(value)


def audiences(claims: Mapping[str, Any]) -> tuple[str, ...]:
    """The string values of `aud` (a string or an array; anything else → ()), leniently: for
    claims that were already verified, to ask whether a name is among them."""
    aud = claims.get("aud")
    if isinstance(aud, str):
        return (aud,)
    if isinstance(aud, list):
        return tuple(a for a in aud if isinstance(a, str))
    return ()


@overload
def check_times(claims: Mapping[str, Any], *, now: float, skew: float,
                require_exp: Literal[True] = True) -> int: ...
@overload
def check_times(claims: Mapping[str, Any], *, now: float, skew: float, require_exp: bool) -> int | None: ...
def check_times(claims: Mapping[str, Any], *, now: float, skew: float,
                require_exp: bool = True) -> int | None:
    """exp (required by default), nbf and iat as integers, each with `skew` leeway. Returns exp.

    The one time boundary of every token check: expired when `now >= exp + skew` (as PyJWT),
    not yet valid when `nbf` or `iat` is later than `now + skew`."""
    exp = int_claim(claims, "exp", required=require_exp)
    nbf = int_claim(claims, "nbf")
    iat = int_claim(claims, "iat")
    if exp is not None and now >= exp + skew:     # RFC 7519 §4.1.4: valid only *before* exp
        raise TokenInvalid("expired", "token expired")
    if nbf is not None and now + skew < nbf:
        raise TokenInvalid("not_yet_valid", "nbf in the future")
    if iat is not None and now + skew < iat:
        raise TokenInvalid("not_yet_valid", "iat in the future")
    return exp
