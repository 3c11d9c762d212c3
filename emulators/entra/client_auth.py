"""Client authentication at the token endpoint: secret (body or Basic), certificate assertion,
federated assertion. TEST ONLY."""

from __future__ import annotations

import base64
import hmac
import ssl
from urllib.parse import unquote, urlsplit

import aiohttp
import jwt

from .errors import EntraError
from .model import App, unpad
from .state import EmulatorState
from .tokens import OwnTokenError, decode_own, is_own_issuer

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


def _basic(header: str) -> tuple[str, str] | None:
    if not header.lower().startswith("basic "):
        return None
    try:
        raw = base64.b64decode(header[6:].strip(), validate=True).decode()
    except ValueError as e:
        raise EntraError(9002313, "Malformed Basic authorization header.") from e
    cid, _, secret = raw.partition(":")
    return unquote(cid), unquote(secret)


async def authenticate(state: EmulatorState, form: dict, headers: dict) -> tuple[App, str]:
    """Return the calling app and its authentication strength (`0` public, `1` secret, `2`
    certificate or federated)."""
    basic = _basic(headers.get("Authorization", ""))
    client_id = form.get("client_id") or (basic[0] if basic else "")
    secret = form.get("client_secret") or (basic[1] if basic else "")
    assertion = form.get("client_assertion", "")
    if not client_id:
        raise EntraError(900144, "The request body must contain the following parameter: 'client_id'.")
    app = state.app(client_id)
    if app is None or app.client_id.lower() != client_id.lower():
        raise EntraError(700016, f"Application with identifier '{client_id}' was not found in the directory.")
    if app.public_client:
        if secret or assertion:
            raise EntraError(700025)
        return app, "0"
    if secret:
        if not any(hmac.compare_digest(secret.encode(), s.encode()) for s in app.secrets):
            raise EntraError(7000215, "Invalid client secret provided. Ensure the secret being sent in the "
                                      f"request is the client secret value, not the client secret ID, for a "
                                      f"secret added to app '{app.client_id}'.")
        return app, "1"
    if assertion:
        if form.get("client_assertion_type") != ASSERTION_TYPE:
            raise EntraError(9002313, "client_assertion_type must be " + ASSERTION_TYPE + ".")
        await _check_assertion(state, app, assertion)
        return app, "2"
    raise EntraError(7000218)


def _token_endpoint_audience(state: EmulatorState, aud: object) -> bool:
    auds = aud if isinstance(aud, list) else [aud]
    for a in auds:
        parts = urlsplit(str(a))
        if (f"{parts.scheme}://{parts.netloc}" == state.base_url
                and parts.path.rstrip("/").endswith(("/oauth2/v2.0/token", "/oauth2/token"))):
            return True
    return False


def _check_time(state: EmulatorState, claims: dict) -> None:
    now, skew = state.now(), 300
    exp, nbf = claims.get("exp"), claims.get("nbf")
    if not isinstance(exp, int | float) or exp + skew < now or (isinstance(nbf, int | float) and nbf - skew > now):
        raise EntraError(700024)


async def _check_assertion(state: EmulatorState, app: App, assertion: str) -> None:
    try:
        header = jwt.get_unverified_header(assertion)
        unverified = jwt.decode(assertion, options={"verify_signature": False})
    except jwt.PyJWTError as e:
        raise EntraError(9002313, "The client assertion is not a well-formed JWT.") from e
    if unverified.get("iss") == app.client_id and unverified.get("sub") == app.client_id:
        await _check_certificate_assertion(state, app, assertion, header)
    else:
        await _check_federated_assertion(state, app, assertion, header, unverified)


async def _check_certificate_assertion(state: EmulatorState, app: App, assertion: str, header: dict) -> None:
    alg = header.get("alg")
    x5t, x5t256 = unpad(str(header.get("x5t", ""))), unpad(str(header.get("x5t#S256", "")))
    cert = next((c for c in app.certificates if (x5t and c.x5t == x5t) or (x5t256 and c.x5t_s256 == x5t256)),
                None)
    if cert is None or alg not in ("RS256", "PS256"):
        raise EntraError(700027, "Client assertion failed signature validation. [Reason - The key was not "
                                 f"found., Thumbprint of key used by client: '{x5t or x5t256}']")
    try:
        claims = jwt.decode(assertion, cert.public_key, algorithms=[alg],
                            options={"verify_aud": False, "verify_exp": False, "verify_nbf": False,
                                     "verify_iat": False})
    except jwt.PyJWTError as e:
        raise EntraError(700027) from e
    if not _token_endpoint_audience(state, claims.get("aud")):
        raise EntraError(700027, "Client assertion audience claim does not match the token endpoint.")
    _check_time(state, claims)


async def _check_federated_assertion(state: EmulatorState, app: App, assertion: str, header: dict,
                                     unverified: dict) -> None:
    aud = unverified.get("aud")
    auds = aud if isinstance(aud, list) else [aud]
    cred = next((f for f in app.federated_credentials
                 if f.issuer == unverified.get("iss") and f.subject == unverified.get("sub")
                 and f.audience in auds), None)
    if cred is None:
        raise EntraError(70021, "No matching federated identity record found for presented assertion. "
                                f"Assertion Issuer: '{unverified.get('iss')}'. Assertion Subject: "
                                f"'{unverified.get('sub')}'. Assertion Audience: '{aud}'.")
    if is_own_issuer(state, cred.issuer) and not cred.jwks_uri:
        try:
            claims = decode_own(state, assertion)
        except OwnTokenError as e:
            raise EntraError(700027, f"Federated assertion failed validation: {e}.") from e
    else:
        key = await _fetch_key(state, cred.jwks_uri, str(header.get("kid", "")))
        try:
            claims = jwt.decode(assertion, key, algorithms=["RS256", "PS256", "ES256"],
                                options={"verify_aud": False, "verify_exp": False, "verify_nbf": False,
                                         "verify_iat": False})
        except jwt.PyJWTError as e:
            raise EntraError(700027, "Federated assertion failed signature validation.") from e
    _check_time(state, claims)


async def _fetch_key(state: EmulatorState, jwks_uri: str, kid: str) -> object:
    if not jwks_uri:
        raise EntraError(700027, "The federated credential has no JWKS to validate the assertion with.")
    ctx = ssl.create_default_context()
    if state.config.ca_bundle:
        ctx.load_verify_locations(cafile=state.config.ca_bundle)
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
            async with session.get(jwks_uri, ssl=ctx) as resp:
                resp.raise_for_status()
                jwks = await resp.json(content_type=None)
    except (aiohttp.ClientError, TimeoutError, ValueError) as e:
        raise EntraError(700027, "Could not fetch the federated issuer's signing keys.") from e
    for jwk in jwks.get("keys", []) if isinstance(jwks, dict) else []:
        if jwk.get("kid") == kid or (not kid and len(jwks["keys"]) == 1):
            try:
                return jwt.PyJWK(jwk).key
            except jwt.PyJWTError as e:
                raise EntraError(700027, "The federated issuer's key is unusable.") from e
    raise EntraError(700027, "Federated assertion failed signature validation. [Reason - The key was not found.]")
