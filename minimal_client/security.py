"""Security headers on every response, a last-resort error middleware, and request checks."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from .config import ClientConfig

log = logging.getLogger(__name__)


def csp(cfg: ClientConfig) -> str:
    # form-action lists the authority too: Chromium applies form-action to redirects that
    # follow a form submission, and sign-in ends at the authority.
    return ("default-src 'self'; script-src 'self'; style-src 'self'; object-src 'none'; "
            f"base-uri 'none'; frame-ancestors 'none'; form-action 'self' {cfg.authority}")


def header_hook(cfg: ClientConfig) -> Callable[[web.Request, web.StreamResponse], Awaitable[None]]:
    """An `on_response_prepare` hook: runs for every response, static files and errors included."""
    policy = csp(cfg)

    async def add_headers(request: web.Request, response: web.StreamResponse) -> None:
        h = response.headers
        h["Content-Security-Policy"] = policy
        h["X-Content-Type-Options"] = "nosniff"
        h["Referrer-Policy"] = "no-referrer"
        h["X-Frame-Options"] = "DENY"
        h["Cross-Origin-Opener-Policy"] = "same-origin"
        if not request.path.startswith("/static/"):
            h["Cache-Control"] = "no-store"
            h["Pragma"] = "no-cache"

    return add_headers


@web.middleware
async def error_middleware(request: web.Request,
                           handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                           ) -> web.StreamResponse:
    """Anything unexpected becomes a generic JSON 500 (logged without request contents)."""
    try:
        return await handler(request)
    except web.HTTPException:
        raise
    except Exception:
        log.exception("minimal_client.unhandled_error path=%s", request.path)
        return web.json_response({"error": "server_error",
                                  "error_description": "unexpected error in the minimal client"},
                                 status=500)


def origin_of(request: web.Request) -> str:
    return f"{request.scheme}://{request.host}"


def same_origin(request: web.Request, public_url: str) -> bool:
    """Browsers send Origin on POST; when present it must be ours."""
    origin = request.headers.get("Origin")
    if origin is None:
        return request.headers.get("Sec-Fetch-Site", "same-origin") in ("same-origin", "none")
    if origin == "null":
        # Our `Referrer-Policy: no-referrer` makes browsers send `Origin: null` on form POSTs
        # (Fetch spec); Sec-Fetch-Site, which a page cannot forge, must then say same-origin.
        return request.headers.get("Sec-Fetch-Site") == "same-origin"
    return origin == (public_url or origin_of(request))


def json_error(status: int, error: str, description: str, **extra: object) -> web.Response:
    return web.json_response({"error": error, "error_description": description, **extra}, status=status)
