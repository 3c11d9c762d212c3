"""Exact-path dispatch: the broker's routes without aiohttp's per-request routing.

For every request aiohttp's `Application._handle` resolves the path through the router (a new
match info, frozen, its app list built), checks `Expect`, and runs the middlewares behind a
wrapper that sets the match info's current app. A request for one of our plain routes, sent
exactly as registered, needs none of that: the answer is always the same route.

`install(app)` replaces the application's `_handle` (what aiohttp's `Server` calls; read when a
runner or test server starts, so `serve` and every test take this path) with one that looks the
`(method, raw path)` up in a table built once at startup, each entry holding a match info built
and frozen once (no parameters: plain resources only) and the handler already wrapped in the
app's middlewares, outermost first — the same chain aiohttp builds and caches. Anything else
(a query string, percent-escapes, a trailing slash, an absolute-form target, another method,
an `Expect` header, a dynamic route, an unknown path) goes to aiohttp's own `_handle`, unchanged:
404s, 405s, redirects and HEAD handling stay aiohttp's. Applications with sub-applications
(their current-app bookkeeping is per request) or an old-style middleware are left alone, and
so is every path with a `*` route (aiohttp's resource order decides which route answers there).
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.web_urldispatcher import PlainResource, UrlMappingMatchInfo

Handle = Callable[[web.Request], Awaitable[web.StreamResponse]]
Table = dict[tuple[str, str], tuple[UrlMappingMatchInfo, Handle]]


def build_table(app: web.Application) -> Table | None:
    """`(method, path)` → (shared frozen match info, handler inside the middlewares); None when
    the application has anything but plain and dynamic resources (sub-applications) or an
    old-style middleware."""
    if any(getattr(m, "__middleware_version__", None) != 1 for m in app.middlewares):
        return None   # an old-style middleware: aiohttp's own chain only
    table: Table = {}
    any_method: set[str] = set()      # paths with a "*" route: aiohttp's order decides there
    for resource in app.router.resources():
        if not isinstance(resource, PlainResource):
            if isinstance(resource, web.DynamicResource):
                continue
            return None
        path = resource.canonical
        for route in resource:
            if route.method == "*":
                any_method.add(path)
            if route.method == "*" or (route.method, path) in table:   # aiohttp too takes the first
                continue
            match_info = UrlMappingMatchInfo({}, route)
            match_info.add_app(app)
            match_info.freeze()
            handler: Handle = route.handler
            for middleware in reversed(app.middlewares):
                handler = functools.partial(middleware, handler=handler)
            table[(route.method, path)] = (match_info, handler)
    return {key: entry for key, entry in table.items() if key[1] not in any_method}


def _dispatcher(table: Table, fallback: Handle) -> Handle:
    lookup = table.get

    async def handle(request: web.Request) -> web.StreamResponse:
        found = lookup((request.method, request.raw_path))
        if found is None or "Expect" in request.headers:
            return await fallback(request)
        request._match_info = found[0]   # noqa: SLF001 (what aiohttp's _handle sets)
        return await found[1](request)

    return handle


async def use_table(app: web.Application) -> None:
    """on_startup: dispatch by the table from now on (every route is registered by then)."""
    table = build_table(app)
    if table:
        # an instance attribute shadowing the method; object.__setattr__ because aiohttp's
        # debug mode warns about attributes it does not know
        object.__setattr__(app, "_handle", _dispatcher(table, app._handle))  # noqa: SLF001


def install(app: web.Application) -> None:
    app.on_startup.append(use_table)
