"""JSON response bodies rendered with orjson (several times faster than `json.dumps`).

`json_response(data, status=, headers=)` is `web.json_response` with orjson: compact UTF-8
JSON, `Content-Type: application/json; charset=utf-8`, same as aiohttp's.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
from aiohttp import web

CONTENT_TYPE = "application/json"


def json_response(data: Any, *, status: int = 200, headers: Mapping[str, str] | None = None) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, headers=headers, content_type=CONTENT_TYPE,
                        charset="utf-8")
