"""RFC 8414 authorization server metadata (and the OpenID alias, same document) and the JWKS.

The metadata path is inserted before the issuer's path when `public_url` has one
(`/.well-known/oauth-authorization-server/<path>`); the OpenID alias is appended to it.
Beyond RFC 8414 the document advertises the token-exchange capabilities: accepted subject
token types and the token types we can issue.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from aiohttp import web

from ..grants import GRANT_TYPES
from ..grants.base import ACCESS_TOKEN_TYPE, JWT_TOKEN_TYPE
from ..grants.client_assertion import ALGORITHMS as ASSERTION_ALGORITHMS
from ..grants.client_auth import METHODS
from ..grants.downstream_targets import available_targets
from ..grants.subject_tokens import SUBJECT_TOKEN_TYPES
from ..grants.token_exchange import REQUESTED_TOKEN_TYPES
from ..settings import Settings
from ..typedefs import CLOCK, KEYRING, SETTINGS

OAUTH_METADATA = "/.well-known/oauth-authorization-server"
OPENID_METADATA = "/.well-known/openid-configuration"
JWKS_PATH = "/oauth2/jwks"


def document(settings: Settings) -> dict:
    base = settings.server.public_url
    return {
        "issuer": base,
        "token_endpoint": f"{base}/oauth2/token",
        "jwks_uri": f"{base}{JWKS_PATH}",
        "introspection_endpoint": f"{base}/oauth2/introspect",
        "revocation_endpoint": f"{base}/oauth2/revoke",
        "grant_types_supported": list(GRANT_TYPES),
        "response_types_supported": [],
        "token_endpoint_auth_methods_supported": list(METHODS),
        "introspection_endpoint_auth_methods_supported": list(METHODS),
        "revocation_endpoint_auth_methods_supported": list(METHODS),
        "token_endpoint_auth_signing_alg_values_supported": list(ASSERTION_ALGORITHMS),   # private_key_jwt
        "introspection_endpoint_auth_signing_alg_values_supported": list(ASSERTION_ALGORITHMS),
        "revocation_endpoint_auth_signing_alg_values_supported": list(ASSERTION_ALGORITHMS),
        "token_exchange_subject_token_types_supported": list(SUBJECT_TOKEN_TYPES),
        "token_exchange_requested_token_types_supported": list(REQUESTED_TOKEN_TYPES),
        "issued_token_types_supported": [ACCESS_TOKEN_TYPE, JWT_TOKEN_TYPE],
        "access_token_signing_alg_values_supported": [settings.issuer.signing_alg],
        "tokenbroker_downstream_targets": available_targets(settings),   # audience=acs:teams | obo:<name>
    }


def metadata_paths(public_url: str) -> tuple[str, ...]:
    path = urlsplit(public_url).path.rstrip("/")
    if not path:
        return OAUTH_METADATA, OPENID_METADATA
    return f"{OAUTH_METADATA}{path}", f"{path}{OPENID_METADATA}", OPENID_METADATA


async def jwks(request: web.Request) -> web.Response:
    keys = request.app[KEYRING].jwks(request.app[CLOCK]())
    return web.json_response(keys, content_type="application/jwk-set+json",
                             headers={"Cache-Control": "public, max-age=300"})


def setup(app: web.Application) -> None:
    body = document(app[SETTINGS])

    async def metadata(request: web.Request) -> web.Response:
        return web.json_response(body, headers={"Cache-Control": "public, max-age=3600"})

    for i, path in enumerate(metadata_paths(app[SETTINGS].server.public_url)):
        app.router.add_get(path, metadata, name=f"as_metadata_{i}")
    app.router.add_get(JWKS_PATH, jwks, name="oauth2_jwks")


_DOC = {"200": {"description": "Authorization server metadata", "content": {"application/json": {
    "schema": {"type": "object", "required": ["issuer", "token_endpoint", "jwks_uri"]}}}}}
OPENAPI = {
    OAUTH_METADATA: {"get": {"summary": "RFC 8414 metadata (path-inserted when public_url has a path)",
                             "tags": ["oauth2"], "responses": _DOC}},
    OPENID_METADATA: {"get": {"summary": "Same document as the RFC 8414 metadata", "tags": ["oauth2"],
                              "responses": _DOC}},
    JWKS_PATH: {"get": {"summary": "Public signing keys of our tokens (incl. pre-published and retired)",
                        "tags": ["oauth2"], "responses": {"200": {"description": "JWK Set", "content": {
                            "application/jwk-set+json": {}}}}}},
}
