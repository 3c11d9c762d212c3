"""Structured JSON logging, request-scoped context, and audit events.

Never log a token, secret or key: log `jti`, `kid`, `tid`, `oid`, app id or `short_hash`.

The hot path does not touch the stdlib `logging` machinery: `get_logger(name)` is a structlog
logger whose chain is request context → level → timestamp → orjson, written as one line
(one `write`) straight to the stream. Third-party stdlib records (azure, aiohttp, asyncio) are
still rendered as the same JSON lines through a root handler. Per-request fields (`tid`,
`app_id`, `client_id`, ...) live in ONE context variable set by the request middleware
(`bind(**fields)` adds to it), so rendering a line never walks every context variable.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import os
import sys
import time
from collections.abc import Callable, MutableMapping
from contextvars import ContextVar, Token
from typing import IO, Any

import orjson
import structlog

_request_id: ContextVar[str] = ContextVar("request_id", default="")
_fields: ContextVar[dict[str, Any] | None] = ContextVar("log_fields", default=None)

EventDict = MutableMapping[str, Any]


def current_request_id() -> str:
    return _request_id.get()


def set_request_id(value: str) -> Token[str]:
    return _request_id.set(value)


def reset_request_id(token: Token[str]) -> None:
    _request_id.reset(token)


def start_request(request_id: str) -> tuple[Token[str], Token[dict[str, Any] | None]]:
    """Bind a fresh request context (request id + an empty field dict); undo with `end_request`."""
    return _request_id.set(request_id), _fields.set({})


def end_request(tokens: tuple[Token[str], Token[dict[str, Any] | None]]) -> None:
    _request_id.reset(tokens[0])
    _fields.reset(tokens[1])


def bind(**fields: Any) -> None:
    """Add fields (ids, hashes — never a token) to every later line of the current request."""
    current = _fields.get()
    if current is None:
        _fields.set(dict(fields))
    else:
        current.update(fields)


def request_fields() -> dict[str, Any]:
    """The fields bound to the current request so far (a copy)."""
    return dict(_fields.get() or {})


# --- trace correlation hook (service.telemetry) ---------------------------------------------
# None unless telemetry is configured; then a callable giving the current (trace_id, span_id)
# in hex, or None outside a traced request. Every log line of a traced request carries both.
_trace_source: Callable[[], tuple[str, str] | None] | None = None


def set_trace_source(source: Callable[[], tuple[str, str] | None] | None) -> None:
    global _trace_source
    _trace_source = source


def _add_context(_logger: Any, _name: str, event_dict: EventDict) -> EventDict:
    fields = _fields.get()
    if fields:
        for key, value in fields.items():
            event_dict.setdefault(key, value)
    rid = _request_id.get()
    if rid and "request_id" not in event_dict:
        event_dict["request_id"] = rid
    source = _trace_source      # one global read per line while telemetry is off
    if source is not None and "trace_id" not in event_dict:
        ids = source()
        if ids is not None:
            event_dict["trace_id"], event_dict["span_id"] = ids
    return event_dict


def _default(value: Any) -> Any:
    return repr(value)


_OPTS = orjson.OPT_NON_STR_KEYS | orjson.OPT_APPEND_NEWLINE


def _render_json(_logger: Any, _name: str, event_dict: EventDict) -> bytes:
    return orjson.dumps(event_dict, default=_default, option=_OPTS)


class LineWriter:
    """structlog's final "logger": whole lines only.

    On a real file descriptor, lines logged from the event loop are collected and written with
    ONE `os.write` at the end of the current loop iteration (`call_soon`): concurrent requests
    share a syscall, and nothing waits longer than the iteration that logged it. Outside a
    running loop (start-up, threads, the CLI) a line is written at once. Any other text stream
    (tests use StringIO) gets `write` + `flush` per line.
    """

    def __init__(self, stream: IO[str]) -> None:
        self._stream = stream
        self._pending: list[bytes] = []
        self._scheduled = False
        self._loop: asyncio.AbstractEventLoop | None = None
        try:
            stream.flush()
            self._fd: int | None = stream.fileno()
        except (AttributeError, OSError, ValueError):
            self._fd = None
        atexit.register(self.flush)

    def msg(self, line: bytes | str) -> None:
        if isinstance(line, str):
            line = line.encode() if line.endswith("\n") else (line + "\n").encode()
        if self._fd is None:
            self._stream.write(line.decode())
            self._stream.flush()
            return
        loop = asyncio._get_running_loop()   # None outside a loop (no exception per line)
        if loop is None:
            self._write(line)
            return
        self._pending.append(line)
        if not self._scheduled or self._loop is not loop:   # (a loop closed before flushing)
            self._scheduled, self._loop = True, loop
            loop.call_soon(self.flush)

    def flush(self) -> None:
        self._scheduled = False
        if self._pending:
            data = b"".join(self._pending)
            self._pending.clear()
            self._write(data)

    def _write(self, data: bytes) -> None:
        assert self._fd is not None
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(self._fd, view):]
        except OSError:   # stdout closed: logging must never take the request down
            pass

    log = debug = info = warn = warning = error = err = critical = exception = fatal = failure = msg


def configure_logging(*, json: bool = True, level: str = "INFO", stream: IO[str] | None = None) -> None:
    """JSON lines on stdout (console renderer on a TTY when json=False); stdlib records too."""
    stream = stream or sys.stdout
    writer = LineWriter(stream)
    shared: list[Any] = [_add_context, structlog.processors.add_log_level,
                         structlog.processors.TimeStamper(fmt="iso", utc=True)]
    global _fast
    render: Any = _render_json if json else structlog.dev.ConsoleRenderer()
    chain = [*shared, structlog.processors.format_exc_info, render]
    min_level = logging.getLevelName(level.upper())
    structlog.configure(
        processors=chain,
        logger_factory=lambda *_args: writer,
        wrapper_class=structlog.make_filtering_bound_logger(min_level),
        # not cached: structlog.testing.capture_logs() must still see every logger
        cache_logger_on_first_use=False,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*shared, structlog.stdlib.ExtraAdder()],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                    structlog.processors.format_exc_info,
                    structlog.processors.JSONRenderer(serializer=lambda v, **_kw: orjson.dumps(
                        v, default=_default, option=orjson.OPT_NON_STR_KEYS).decode())
                    if json else structlog.dev.ConsoleRenderer()],
    )
    # (a structlog without its module-level configuration object gets no fast path)
    _fast = _Fast(chain, writer, min_level) if json and hasattr(structlog._config, "_CONFIG") else None
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("azure").setLevel(logging.WARNING)
    logging.getLogger("azure.identity").setLevel(logging.ERROR)  # we log each Entra refusal ourselves
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)


class Logger:
    """What `get_logger(name)` returns: `debug/info/warning/error/critical/exception(event, **kw)`.

    After `configure_logging(json=True)` and while structlog still runs exactly that chain, a
    line is built here directly (context, level, timestamp, orjson, one write) — the same
    line structlog would render, without building a bound logger per call. Otherwise (console
    output, `structlog.testing.capture_logs()`, another configuration) it is structlog's
    `get_logger(name)` with every processor.
    """

    __slots__ = ("_proxy",)

    def __init__(self, name: str) -> None:
        self._proxy = structlog.get_logger(name)

    def _emit(self, method: str, level: int, event: str, kw: dict[str, Any]) -> None:
        fast = _fast
        if fast is None or fast.config.default_processors is not fast.chain or fast.chain[-1] is not _render_json:
            getattr(self._proxy, method)(event, **kw)
            return
        if level < fast.level:
            return
        kw["event"] = event
        _add_context(None, method, kw)
        kw["level"] = _LEVEL_NAMES[method]
        kw["timestamp"] = _timestamp()
        if method == "exception":
            kw.setdefault("exc_info", True)
            structlog.processors.format_exc_info(None, method, kw)
        fast.writer.msg(orjson.dumps(kw, default=_default, option=_OPTS))

    def info_fields(self, event: str, fields: dict[str, Any]) -> None:
        """`info(event, **fields)` for a dict the caller built and hands over (it is consumed):
        the audit line of a request is assembled once, not copied through two `**` calls."""
        self._emit("info", logging.INFO, event, fields)

    def debug(self, event: str, **kw: Any) -> None:
        self._emit("debug", logging.DEBUG, event, kw)

    def info(self, event: str, **kw: Any) -> None:
        self._emit("info", logging.INFO, event, kw)

    def warning(self, event: str, **kw: Any) -> None:
        self._emit("warning", logging.WARNING, event, kw)

    warn = warning

    def error(self, event: str, **kw: Any) -> None:
        self._emit("error", logging.ERROR, event, kw)

    def exception(self, event: str, **kw: Any) -> None:
        self._emit("exception", logging.ERROR, event, kw)

    def critical(self, event: str, **kw: Any) -> None:
        self._emit("critical", logging.CRITICAL, event, kw)


_LEVEL_NAMES = {"debug": "debug", "info": "info", "warning": "warning", "error": "error",
                "exception": "error", "critical": "critical"}


class _Fast:
    """The JSON chain configure_logging installed, as a fast path for `Logger`.

    `Logger._emit` takes it while structlog still runs exactly that chain: the same list
    object (`structlog.configure` with another list replaces it) ending in our renderer
    (`structlog.testing.capture_logs()` empties that list and appends its capture). Two
    identity checks per line — no `get_config()` dict, no list comparison."""

    def __init__(self, chain: list[Any], writer: LineWriter, level: int) -> None:
        self.chain, self.writer, self.level = chain, writer, level
        self.config: Any = structlog._config._CONFIG   # noqa: SLF001 (read per line)


_fast: _Fast | None = None
_stamp_second = -1
_stamp_prefix = ""


def _timestamp() -> str:
    """`2026-11-23T10:00:00.123456Z` (what structlog's TimeStamper(fmt="iso", utc=True) writes),
    the date part formatted once per second."""
    global _stamp_second, _stamp_prefix
    now = time.time()
    second = int(now)
    if second != _stamp_second:
        _stamp_second, _stamp_prefix = second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
    return f"{_stamp_prefix}.{int((now - second) * 1_000_000):06d}Z"


def get_logger(name: str) -> Logger:
    return Logger(name)


_audit = Logger("tokenbroker.audit")


def audit(event: str, **fields: Any) -> None:
    """One audit event: dotted name, decision, reason code, ids and hashes — never a token."""
    fields["audit"] = True
    _audit.info_fields(event, fields)


def audit_fields(event: str, fields: dict[str, Any]) -> None:
    """`audit(event, **fields)` for a dict built by the caller (consumed, not copied)."""
    fields["audit"] = True
    _audit.info_fields(event, fields)
