"""Structured JSON logging (structlog), request-scoped context, and audit events.

Never log a token, secret or key: log `jti`, `kid`, `tid`, `oid`, app id or `short_hash`.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, MutableMapping
from contextvars import ContextVar, Token
from typing import Any, TextIO

import structlog
from structlog.typing import EventDict, Processor

_request_id: ContextVar[str] = ContextVar("request_id", default="")


def current_request_id() -> str:
    return _request_id.get()


def set_request_id(value: str) -> Token[str]:
    return _request_id.set(value)


def reset_request_id(token: Token[str]) -> None:
    _request_id.reset(token)


def _add_request_id(_logger: object, _name: str, event_dict: EventDict) -> EventDict:
    rid = _request_id.get()
    if rid and "request_id" not in event_dict:
        event_dict["request_id"] = rid
    return event_dict


# --- trace correlation hook (service.telemetry) ---------------------------------------------
# None unless telemetry is configured; then a callable giving the current (trace_id, span_id)
# in hex, or None outside a traced request. Every log line of a traced request carries both.
_trace_source: Callable[[], tuple[str, str] | None] | None = None


def set_trace_source(source: Callable[[], tuple[str, str] | None] | None) -> None:
    global _trace_source
    _trace_source = source


def _add_trace_ids(_logger: Any, _name: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    source = _trace_source
    if source is not None and "trace_id" not in event_dict:
        ids = source()
        if ids is not None:
            event_dict["trace_id"], event_dict["span_id"] = ids
    return event_dict
# --- end of the trace correlation hook ----------------------------------------------------------


def configure_logging(*, json: bool = True, level: str = "INFO", stream: TextIO | None = None) -> None:
    """JSON lines on stdout (console renderer on a TTY when json=False); stdlib records too."""
    stream = stream or sys.stdout
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        _add_request_id,
        _add_trace_ids,
        structlog.stdlib.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer = structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer()
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*shared, structlog.stdlib.ExtraAdder()],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                    structlog.processors.format_exc_info, renderer],
    )
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("azure").setLevel(logging.WARNING)
    logging.getLogger("azure.identity").setLevel(logging.ERROR)  # we log each Entra refusal ourselves
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)


def get_logger(name: str) -> Any:   # structlog's BoundLogger proxy (untyped by design)
    return structlog.get_logger(name)


_audit = structlog.get_logger("tokenbroker.audit")


def audit(event: str, **fields: Any) -> None:
    """One audit event: dotted name, decision, reason code, ids and hashes — never a token."""
    _audit.info(event, audit=True, **fields)
