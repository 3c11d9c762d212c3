"""Log lines: structlog straight to one orjson line per event, without the stdlib machinery.

Our own events never pass through a stdlib handler; third-party stdlib records still come out
as the same JSON lines; per-request fields bound during a request are on every later line of
it; on a real file descriptor each line is one write.
"""

from __future__ import annotations

import io
import json
import logging
import os

import pytest
import structlog

from service.logs import audit, bind, configure_logging, end_request, get_logger, start_request


class Counting(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture(name="restore_logging")
def _restore_logging():
    root = logging.getLogger()
    saved = (root.handlers[:], root.level, structlog.get_config())
    yield
    root.handlers[:], level, config = saved
    root.setLevel(level)
    structlog.configure(**config)


def _lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines()]


def test_our_events_are_json_lines_that_never_reach_a_stdlib_handler(restore_logging):
    stream = io.StringIO()
    configure_logging(json=True, stream=stream)
    counting = Counting()
    logging.getLogger().addHandler(counting)
    context = start_request("rid-1")
    try:
        bind(tid="t-1", app_id="app-1")
        bind(client_id="portal")
        audit("token_exchange", decision="allow", reason="ok", jti="j-1")
        get_logger("tokenbroker.http").info("http.request", route="/oauth2/token", status=200)
    finally:
        end_request(context)
    get_logger("tokenbroker.http").info("after.request")
    first, second, third = _lines(stream.getvalue())
    assert first["event"] == "token_exchange" and first["audit"] is True
    for line in (first, second):
        assert (line["request_id"], line["tid"], line["app_id"], line["client_id"]) == (
            "rid-1", "t-1", "app-1", "portal")
        assert line["level"] == "info" and line["timestamp"].endswith("Z")
    assert "request_id" not in third and "tid" not in third     # the request's context is gone
    assert counting.records == []


def test_third_party_stdlib_records_become_the_same_json_lines(restore_logging):
    stream = io.StringIO()
    configure_logging(json=True, stream=stream)
    logging.getLogger("azure.core.test").warning("slow %s", "call")
    (line,) = _lines(stream.getvalue())
    assert (line["event"], line["level"]) == ("slow call", "warning")


def test_levels_below_the_configured_one_are_dropped(restore_logging):
    stream = io.StringIO()
    configure_logging(json=True, level="WARNING", stream=stream)
    log = get_logger("x")
    log.info("quiet")
    log.warning("loud", n=1)
    assert [line["event"] for line in _lines(stream.getvalue())] == ["loud"]


def test_on_a_file_descriptor_every_line_is_whole(restore_logging, tmp_path):
    path = tmp_path / "out.log"
    with open(path, "w") as stream:
        configure_logging(json=True, stream=stream)
        log = get_logger("x")
        for i in range(200):
            log.info("e", i=i, pad="x" * 5000)      # larger than a pipe's atomic write
    lines = _lines(path.read_text())
    assert [line["i"] for line in lines] == list(range(200))
    assert os.path.getsize(path) > 200 * 5000


def test_exceptions_are_rendered_into_the_line(restore_logging):
    stream = io.StringIO()
    configure_logging(json=True, stream=stream)
    try:
        raise ValueError("boom")
    except ValueError:
        get_logger("x").exception("http.unexpected_error")
    (line,) = _lines(stream.getvalue())
    assert line["level"] == "error" and "ValueError: boom" in line["exception"]


def test_capture_logs_still_sees_every_event_after_configure_logging(restore_logging):
    from structlog.testing import capture_logs
    stream = io.StringIO()
    configure_logging(json=True, stream=stream)
    with capture_logs() as captured:
        audit("acs.teams_exchange", decision="allow")
        get_logger("x").warning("w", n=2)
    assert [(e["event"], e["log_level"]) for e in captured] == [("acs.teams_exchange", "info"), ("w", "warning")]
    assert stream.getvalue() == ""                 # captured instead of written
    get_logger("x").info("after")
    assert _lines(stream.getvalue())[0]["event"] == "after"


async def test_lines_logged_in_the_loop_are_written_together_by_the_end_of_the_iteration(restore_logging, tmp_path):
    import asyncio
    path = tmp_path / "out.log"
    with open(path, "w") as stream:
        configure_logging(json=True, stream=stream)
        log = get_logger("x")
        for i in range(3):
            log.info("e", i=i)
        assert path.read_text() == ""               # not yet: one write at the end of the iteration
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        assert [line["i"] for line in _lines(path.read_text())] == [0, 1, 2]
