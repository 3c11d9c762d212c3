"""`GET /`: a small JSON index of the broker (what the `dev` banner links to).

Links are paths on this server (resolve them against the URL you called); `issuer` is the
public URL our tokens name. Nothing here depends on configuration secrets or state.
"""

from __future__ import annotations

from aiohttp import web

from .. import __version__
from ..typedefs import SETTINGS
from .metadata import JWKS_PATH, metadata_paths

NAME = "tokenbroker"
DESCRIPTION = "Token-exchange broker for Microsoft Entra ID and Azure Communication Services"


def index_document(public_url: str) -> dict:
    oauth_metadata, openid_metadata = metadata_paths(public_url)[:2]
    return {
        "name": NAME,
        "version": __version__,
        "description": DESCRIPTION,
        "issuer": public_url,
        "links": {
            "openapi": "/openapi.json",
            "healthz": "/healthz",
            "readyz": "/readyz",
            "metrics": "/metrics",
            "metadata": oauth_metadata,
            "openid_configuration": openid_metadata,
            "jwks": JWKS_PATH,
        },
    }


async def index(request: web.Request) -> web.Response:
    return web.json_response(index_document(request.app[SETTINGS].server.public_url))


def setup(app: web.Application) -> None:
    app.router.add_get("/", index, name="index", allow_head=True)


_LINKS = {"type": "object", "additionalProperties": {"type": "string"},
          "required": ["openapi", "readyz", "metrics", "metadata"]}
OPENAPI = {
    "/": {"get": {
        "summary": "Index: name, version and links to this document, readiness, metrics and metadata",
        "tags": ["operations"],
        "responses": {"200": {"description": "The index", "content": {"application/json": {"schema": {
            "type": "object", "required": ["name", "version", "links"],
            "properties": {"name": {"type": "string"}, "version": {"type": "string"},
                           "description": {"type": "string"}, "issuer": {"type": "string"},
                           "links": _LINKS}}}}}},
    }},
}
