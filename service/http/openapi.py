"""`GET /openapi.json`: the OpenAPI 3 document merged from every route module's `OPENAPI`."""

from __future__ import annotations

from types import ModuleType

from aiohttp import web

from .. import __version__

ERROR_SCHEMA = {
    "type": "object",
    "required": ["error"],
    "properties": {"error": {"type": "string"}, "error_description": {"type": "string"}},
}


def build_document(modules: list[ModuleType]) -> dict:
    paths: dict[str, dict] = {}
    for module in modules:
        for path, item in getattr(module, "OPENAPI", {}).items():
            paths.setdefault(path, {}).update(item)
    paths["/openapi.json"] = {"get": {"summary": "This document", "tags": ["operations"],
                                      "responses": {"200": {"description": "OpenAPI 3 document"}}}}
    return {
        "openapi": "3.1.0",
        "info": {"title": "tokenbroker", "version": __version__,
                 "description": "Token-exchange broker for Microsoft Entra ID and Azure Communication Services"},
        "paths": dict(sorted(paths.items())),
        "components": {
            "schemas": {"Error": ERROR_SCHEMA},
            "securitySchemes": {"entraBearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
                                "clientBasic": {"type": "http", "scheme": "basic"}},
        },
    }


def setup(app: web.Application, modules: list[ModuleType]) -> None:
    document = build_document(modules)

    async def openapi(request: web.Request) -> web.Response:
        return web.json_response(document)

    app.router.add_get("/openapi.json", openapi, name="openapi")
