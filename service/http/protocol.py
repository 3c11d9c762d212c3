"""The broker's HTTP/1.1 connection handling, below the app and its middlewares.

aiohttp answers requests it cannot parse (a bad request line, a header line over the limit, a
Content-Encoding it cannot decode, bytes after a short Content-Length) itself, before any
middleware runs: by default it logs a traceback whose exception message quotes the raw bytes
(a refresh token, a client secret, a bearer token's first bytes) and answers a plain-text 400
that echoes them. `BrokerRequestHandler` takes that path over:

- the log gets ONE structured warning, `http.bad_request`, with `kind` (the parser's exception
  class), `peer`, `status` and byte counts; never a request byte, never a traceback;
- the client gets RFC 6749 JSON: 415 `invalid_request` (with `Accept-Encoding`) for a
  Content-Encoding we cannot decode, 400 `invalid_request` for everything else unparseable,
  500 `server_error` if a handler ever escaped the error middleware; the connection is closed.

It also drains on SIGTERM (`BrokerServer.drain`): from then on every response carries
`Connection: close`; a request whose bytes have arrived, or arrive on an already open
connection within the grace, is answered; connections are closed once answered (or at the end
of the grace). `BrokerRunner` is an `AppRunner` whose server builds these handlers.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import ContentEncodingError, HttpProcessingError, LineTooLong
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest

from ..errors import BrokerError, InvalidRequest, ServerError, UnsupportedMediaType
from ..logs import get_logger

log = get_logger("tokenbroker.http")
LINGER_SECONDS = 2.0


def _answer(status: int, exc: BaseException | None) -> BrokerError:
    if isinstance(exc, ContentEncodingError):
        return UnsupportedMediaType(reason="content_encoding")
    if status >= 500:
        return ServerError()
    if isinstance(exc, LineTooLong):
        return InvalidRequest("A request line or header is too long.", reason="line_too_long")
    return InvalidRequest("The request could not be parsed as HTTP/1.1.", reason="bad_http")


class _LingeringTransport:
    """After an unparseable request: answer, half-close, discard what the client still sends
    (for up to LINGER_SECONDS), then close; closing with unread bytes would make the kernel send
    a reset that destroys the answer before the client reads it."""

    def __init__(self, transport: asyncio.Transport) -> None:
        self._transport = transport

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)

    def close(self) -> None:
        real = self._transport
        if real.is_closing():
            return
        if real.can_write_eof():
            real.write_eof()
            asyncio.get_running_loop().call_later(LINGER_SECONDS, real.close)
        else:
            real.close()


class BrokerRequestHandler(RequestHandler):
    """aiohttp's per-connection protocol, with our error answers, byte counts and draining."""

    bytes_received = 0

    def data_received(self, data: bytes) -> None:
        self.bytes_received += len(data)
        if not isinstance(self.transport, _LingeringTransport):  # lingering: discard
            super().data_received(data)

    def handle_error(self, request: BaseRequest, status: int = 500, exc: BaseException | None = None,
                     message: str | None = None) -> web.StreamResponse:
        """Never logs or echoes `exc`'s message or `message`: both may quote request bytes."""
        kind = type(exc).__name__ if exc is not None else f"status_{status}"
        code, body, headers = _answer(status, exc).render()
        headers["Cache-Control"] = "no-store"
        fields: dict[str, Any] = {"kind": kind, "peer": request.remote, "status": code,
                                  "bytes_received": self.bytes_received,
                                  "request_number": self._request_count}
        if isinstance(exc, HttpProcessingError) or exc is None:
            log.warning("http.bad_request", **fields)
        else:  # a handler escaped the error middleware: the type, never the message (it may quote input)
            log.error("http.unhandled_error", **fields)
        if request.writer.output_size > 0:  # a response has begun: nothing more can be said
            raise ConnectionError("response already started")
        response = web.Response(status=code, body=body, headers=headers)
        response.force_close()
        if isinstance(exc, HttpProcessingError) and self.transport is not None:
            self.transport = _LingeringTransport(self.transport)  # type: ignore[assignment]
        return response

    def log_exception(self, *args: Any, **kw: Any) -> None:
        """aiohttp's other error logs ("Unhandled exception", a handler returning no response):
        the exception's type only; its message and aiohttp's text may quote request data."""
        exc = kw.get("exc_info")
        log.error("http.connection_error", kind=type(exc).__name__ if isinstance(exc, BaseException) else None,
                  bytes_received=self.bytes_received)

    async def finish_response(self, request: BaseRequest, resp: web.StreamResponse,
                              start_time: float | None) -> tuple[web.StreamResponse, bool]:
        manager = self._manager
        if isinstance(manager, BrokerServer) and manager.draining and not resp.prepared:
            resp.force_close()  # after SIGTERM: `Connection: close` on every response
        return await super().finish_response(request, resp, start_time)


class BrokerServer(web.Server):
    """aiohttp's low-level server, building `BrokerRequestHandler`s; knows how to drain."""

    draining = False
    on_connection_lost: Callable[[], None] | None = None   # the balanced acceptor's count (http/balance.py)

    def __call__(self) -> RequestHandler:
        return BrokerRequestHandler(self, loop=self._loop, **self._kwargs)

    def connection_lost(self, handler: RequestHandler, exc: BaseException | None = None) -> None:
        if self.on_connection_lost is not None and handler in self._connections:
            self.on_connection_lost()
        super().connection_lost(handler, exc)

    async def drain(self, grace: float) -> int:
        """Answer what arrives on open connections, each with `Connection: close`, until every
        connection has closed or `grace` seconds have passed; returns the connections left."""
        self.draining = True
        deadline = time.monotonic() + grace
        while self.connections and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        return len(self.connections)


class BrokerRunner(web.AppRunner):
    """An AppRunner whose server is a `BrokerServer` (same arguments aiohttp would use)."""

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        return BrokerServer(server.request_handler, request_factory=server.request_factory,
                            handler_cancellation=server.handler_cancellation,
                            loop=server._loop, **server._kwargs)
