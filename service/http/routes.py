"""The route modules of the broker. Each has `setup(app)` and an `OPENAPI` dict."""

from __future__ import annotations

import importlib
from types import ModuleType

from aiohttp import web

from . import dispatch, openapi

# Order does not matter; each module owns its paths. Add new feature modules here.
ROUTE_MODULES = [
    "service.http.health",
    "service.http.index",
    "service.http.token_endpoint",
    "service.http.introspect",
    "service.http.revoke",
    "service.http.metadata",
    "service.http.api_me",
    "service.http.api_acs",
    "service.http.api_obo",
]


def route_modules() -> list[ModuleType]:
    return [importlib.import_module(name) for name in ROUTE_MODULES]


def setup_routes(app: web.Application) -> None:
    modules = route_modules()
    for module in modules:
        module.setup(app)
    openapi.setup(app, modules)
    dispatch.install(app)   # exact-path dispatch for these routes (aiohttp's routing for the rest)
