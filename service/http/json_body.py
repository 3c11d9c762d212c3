"""JSON response bodies rendered with orjson (several times faster than `json.dumps`).

`json_response(data, status=, headers=)` is `web.json_response` with orjson: compact UTF-8
JSON, `Content-Type: application/json; charset=utf-8`, same as aiohttp's.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
from aiohttp import web

CONTENT_TYPE = "application/json; charset=utf-8"


def json_response(data: Any, *, status: int = 200, headers: Mapping[str, str] | None = None) -> web.Response:
    all_headers = {**headers, "Content-Type": CONTENT_TYPE} if headers else {"Content-Type": CONTENT_TYPE}
    return web.Response(body=orjson.dumps(data), status=status, headers=all_headers)
