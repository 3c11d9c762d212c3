"""The broker's one middleware: request context, CORS and error mapping in one coroutine.

(Three middlewares cost three coroutine frames and wrappers per request; one does the same
work.) Its steps, outermost first:

1. request context: `X-Request-Id` taken (if sane) or generated, echoed; contextvars bound;
   one canonical `http.request` log line and the request metrics.
2. CORS for `cors.allowed_origins` (exact origins; preflights answered here, with a request
   id like every other answer).
3. error mapping: BrokerError → its RFC JSON; aiohttp's HTTP exceptions (404, 405, 413) →
   JSON; a body that cannot be read (broken Content-Encoding, client gone) → 400
   invalid_request; anything else → a logged traceback and a generic 500 `server_error`.
   Every mapped error still gets the CORS headers and the request id.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import re
import time

from aiohttp import web
from aiohttp.typedefs import Handler

from ..errors import (
    BrokerError,
    InvalidRequest,
    MethodNotAllowed,
    NotFound,
    OAuthError,
    PayloadTooLarge,
    ServerError,
)
from ..logs import end_request, get_logger, start_request
from ..telemetry import refusal
from ..typedefs import METRICS, SETTINGS

log = get_logger("tokenbroker.http")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$").match
# Generated request ids: a random per-process prefix (64 bits) and a counter — unique across
# workers and replicas, and much cheaper than a uuid4 per request.
_ID_PREFIX = os.urandom(8).hex()
_ID_COUNTER = itertools.count(1)


def new_request_id() -> str:
    return f"{_ID_PREFIX}-{next(_ID_COUNTER):x}"

ALLOWED_HEADERS = "Authorization, teams-user-aad-token, Content-Type, X-Request-Id, traceparent, tracestate"
EXPOSED_HEADERS = "WWW-Authenticate, Retry-After, X-Request-Id"
_PREFLIGHT = {"Access-Control-Allow-Methods": "GET, POST, DELETE, OPTIONS",
              "Access-Control-Allow-Headers": ALLOWED_HEADERS, "Access-Control-Max-Age": "600",
              "Vary": "Origin"}


def route_name(request: web.Request) -> str:
    """The matched route's template (`/api/token/obo/{name}`), or `unmatched`."""
    route = request.match_info.route
    resource = route.resource if route is not None else None
    return resource.canonical if resource is not None else "unmatched"


def error_response(exc: BrokerError) -> web.Response:
    status, body, headers = exc.render()
    headers.setdefault("Cache-Control", "no-store")
    return web.Response(status=status, body=body, headers=headers)


_HTTP_MAP = {404: NotFound, 405: MethodNotAllowed, 413: PayloadTooLarge}


def _preflight(origin: str, allowed: bool) -> web.Response:
    if not allowed:
        refused = OAuthError("The origin is not allowed.", reason="cors_origin")
        refused.status, refused.error = 403, "access_denied"
        return error_response(refused)
    return web.Response(status=204, headers={"Access-Control-Allow-Origin": origin, **_PREFLIGHT})


def _http_error(exc: web.HTTPException) -> web.Response:
    cls = _HTTP_MAP.get(exc.status)
    mapped = cls() if cls else OAuthError(exc.reason)
    if cls is None:
        mapped.status = exc.status
    response = error_response(mapped)
    if exc.status == 405 and "Allow" in exc.headers:
        response.headers["Allow"] = exc.headers["Allow"]
    return response


def _refused(exc: BrokerError) -> web.Response:
    log.info("http.refused", error=exc.error, reason=exc.reason, detail=exc.detail or None,
             status=exc.status)
    refusal(exc.reason, exc.error)   # telemetry: the server span's status (no-op when off)
    return error_response(exc)


def _unreadable(exc: BaseException) -> web.Response:
    refused = InvalidRequest("The request body could not be read.", reason="body_unreadable")
    log.info("http.refused", error=refused.error, reason=refused.reason, cause=type(exc).__name__,
             status=refused.status)
    refusal(refused.reason, refused.error)   # telemetry (no-op when off)
    return error_response(refused)


@web.middleware
async def broker_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    headers = request.headers
    incoming = headers.get("X-Request-Id")
    request_id = incoming if incoming and _REQUEST_ID(incoming) else new_request_id()
    context = start_request(request_id)
    started = time.perf_counter()
    status = 500
    try:
        origin = headers.get("Origin")
        allowed = origin is not None and origin in request.app[SETTINGS].cors.allowed_origins
        if origin and request.method == "OPTIONS" and "Access-Control-Request-Method" in headers:
            response: web.StreamResponse = _preflight(origin, allowed)
        else:
            try:   # step 3: error mapping
                response = await handler(request)
            except BrokerError as exc:
                response = _refused(exc)
            except web.HTTPException as exc:
                if exc.status < 400:
                    raise
                response = _http_error(exc)
            except (web.RequestPayloadError, ConnectionResetError) as exc:  # body undecodable, or client gone
                response = _unreadable(exc)
            except Exception:  # the catch-all: detail only in the log
                log.exception("http.unexpected_error")
                response = error_response(ServerError())
            if allowed and origin is not None:
                out = response.headers
                out["Access-Control-Allow-Origin"] = origin
                out["Access-Control-Expose-Headers"] = EXPOSED_HEADERS
                out["Vary"] = "Origin"
        if request.content.exception() is not None:
            # The body stream broke (bad Content-Encoding): aiohttp would try to drain it after the
            # answer and log a traceback; mark it finished and close this connection instead.
            request.content.feed_eof()
            response.force_close()
        status = response.status
        response.headers["X-Request-Id"] = request_id
        return response
    except web.HTTPException as exc:   # a redirect passing through
        status = exc.status
        raise
    except asyncio.CancelledError:
        status = 499  # the client went away mid-request (nginx's "client closed request"), not a 5xx
        raise
    finally:
        elapsed = time.perf_counter() - started
        route = route_name(request)
        request.app[METRICS].observe_request(route, request.method, status, elapsed)
        log.info("http.request", method=request.method, route=route, status=status,
                 duration_ms=round(elapsed * 1000, 2))
        end_request(context)


MIDDLEWARES = [broker_middleware]
