"""Read a form-encoded POST body safely (token, introspection and revocation endpoints).

Content-Type must be `application/x-www-form-urlencoded` (charset, if any, UTF-8); the body is
capped; it is parsed with blank values kept so repeated keys are detected by the caller; bytes
that are not UTF-8 (raw or percent-encoded) are `invalid_request`.
"""

from __future__ import annotations

import asyncio
import functools
import re
from collections.abc import Mapping, Sequence
from urllib.parse import unquote

from aiohttp import web

from ..errors import InvalidRequest, PayloadTooLarge, RequestTimeout, UnsupportedMediaType
from ..typedefs import SETTINGS

FORM_TYPE = "application/x-www-form-urlencoded"
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f]").search   # a control character other than tab
MAX_FORM_BYTES = 64 * 1024
MAX_FIELDS = 64
DECODABLE = frozenset({"", "identity", "gzip", "deflate"})  # what aiohttp decodes without extras
#: field names may hold any character but a control character other than tab (OpenAPI 3.1 / JSON Schema)
FIELD_NAME = {"pattern": "^[^\\u0000-\\u0008\\u000a-\\u001f]*$"}
_ERROR = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
#: the answers every form endpoint may give about the body itself, for its OpenAPI responses
BODY_ERRORS = {
    "408": {"description": "invalid_request: the body did not arrive within server.body_timeout "
                           "(the connection is closed)", "content": _ERROR},
    "413": {"description": "invalid_request: the body is over 64 KiB", "content": _ERROR},
    "415": {"description": "invalid_request: a Content-Encoding other than identity, gzip or deflate "
                           "(Accept-Encoding names those)", "content": _ERROR},
}


def form_schema(properties: dict, required: list[str]) -> dict:
    """The OpenAPI request body of a form endpoint: these fields, others ignored, names checked."""
    return {FORM_TYPE: {"schema": {"type": "object", "properties": properties, "required": required,
                                   "propertyNames": FIELD_NAME}}}


async def read_form(request: web.Request, *, max_bytes: int = MAX_FORM_BYTES) -> dict[str, list[str]]:
    if request.content_type != FORM_TYPE:
        raise InvalidRequest("The body must be application/x-www-form-urlencoded.", reason="content_type")
    charset = request.charset
    if charset and charset.lower().replace("_", "-") not in ("utf-8", "utf8"):
        raise InvalidRequest("The body must be UTF-8.", reason="charset")
    if request.headers.get("Content-Encoding", "").strip().lower() not in DECODABLE:
        raise UnsupportedMediaType(reason="content_encoding")
    if request.content_length is not None and request.content_length > max_bytes:
        raise PayloadTooLarge(reason="form_too_large")
    raw = await _read_body(request, max_bytes)
    if len(raw) > max_bytes:
        raise PayloadTooLarge(reason="form_too_large")
    try:
        pairs = parse_pairs(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise InvalidRequest("The form body is malformed.", reason="form_encoding") from e
    form: dict[str, list[str]] = {}
    for name, value in pairs:
        if _CONTROL(name):
            raise InvalidRequest("The form body is malformed.", reason="form_encoding")
        form.setdefault(name, []).append(value)
    return form


def parse_pairs(text: str) -> list[tuple[str, str]]:
    """`urllib.parse.parse_qsl(text, keep_blank_values=True, errors="strict",
    max_num_fields=MAX_FIELDS)`, without its per-field calls where nothing is percent-encoded
    (equality with parse_qsl is pinned by a test): "&"-separated, empty parts skipped, a part
    without "=" is a blank value, "+" is a space, %XX is UTF-8 (ValueError /
    UnicodeDecodeError otherwise)."""
    if text.count("&") >= MAX_FIELDS:
        raise ValueError("Max number of fields exceeded")
    pairs = []
    for part in text.split("&"):
        if not part:
            continue
        name, _, value = part.partition("=")
        if "+" in name:
            name = name.replace("+", " ")
        if "%" in name:
            name = unquote(name, errors="strict")
        if "+" in value:
            value = value.replace("+", " ")
        if "%" in value:
            value = _unquote_public(value) if name in PUBLIC_FIELDS and len(value) <= 256 else \
                unquote(value, errors="strict")
        pairs.append((name, value))
    return pairs


#: parameters whose values are public and repeat on every request (token type URNs, grant types,
#: audiences, scopes): their decoding is memoised. Never a token, secret or assertion.
PUBLIC_FIELDS = frozenset({"grant_type", "subject_token_type", "actor_token_type", "requested_token_type",
                           "token_type_hint", "audience", "resource", "scope", "client_assertion_type"})


@functools.lru_cache(maxsize=1024)
def _unquote_public(value: str) -> str:
    """`unquote(value, errors="strict")` of a PUBLIC_FIELDS value (urllib's is ~3 µs a call)."""
    return unquote(value, errors="strict")


async def _read_body(request: web.Request, max_bytes: int) -> bytearray:
    """Up to max_bytes + 1 bytes; 408 when the body is slower than `server.body_timeout` (the
    stream is then marked broken, so the request middleware closes the connection). A body
    that has fully arrived already (the usual case: it came with the head) is taken without
    arming a timer."""
    raw = bytearray()              # read() answers what has arrived so far: loop to the end
    content = request.content
    if content.is_eof() and content.exception() is None:
        return bytearray(content.read_nowait(max_bytes + 1))   # everything buffered, up to the cap
    try:
        async with asyncio.timeout(request.app[SETTINGS].server.body_timeout):
            while len(raw) <= max_bytes and (chunk := await request.content.read(max_bytes + 1 - len(raw))):
                raw += chunk
    except TimeoutError as e:
        refused = RequestTimeout(reason="body_timeout")
        request.content.set_exception(refused)
        raise refused from e
    return raw


def single(form: Mapping[str, Sequence[str]], name: str) -> str | None:
    """A single-valued parameter: None when absent or empty; repeated → invalid_request."""
    values = form.get(name, ())
    if len(values) > 1:
        raise InvalidRequest(f"The parameter {name} is repeated.", reason="repeated_parameter")
    return values[0] if values and values[0] else None
