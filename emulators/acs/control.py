"""The test control plane under `/_emulator/` (JSON; no auth — the emulator is TEST ONLY).

GET    /_emulator/requests[?field=value...]  request log (method, path, operation, client_request_id,
                                             auth hmac|bearer, status, fault, time, traceparent; never a token)
GET    /_emulator/faults                     pending faults
POST   /_emulator/faults                     {"operation"|"path", "status", "code", "message", "delay",
                                              "retry_after", "count"} → 201 the fault
DELETE /_emulator/faults                     drop all faults → 204
POST   /_emulator/reset                      faults + log; identities too with {"identities": true}
GET    /_emulator/identities                 {"identities": [{"id", "created_at", "revoked_before"}]}
POST   /_emulator/tokens/check               {"token"} → {"valid", "reason", "skypeid"?}: is an ACS token
                                             this emulator issued still valid (expiry, revoke, delete)?
"""

from __future__ import annotations

import json
import re
from typing import Any

from aiohttp import web

from .keys import STATE
from .state import OPERATIONS, Fault
from .tokens import check_token


def _bad(message: str) -> web.Response:
    return web.json_response({"error": {"code": "BadControlRequest", "message": message}}, status=400)


async def _body(request: web.Request) -> dict[str, Any]:
    raw = await request.read()
    if not raw.strip():
        return {}
    parsed = json.loads(raw)
    if not isinstance(parsed, dict):
        raise ValueError("the body must be a JSON object")
    return parsed


def _matches(entry: dict[str, Any], query) -> bool:
    for name, wanted in query.items():
        value = entry.get(name)
        if ("" if value is None else str(value).lower()) != wanted.lower():
            return False
    return True


async def list_requests(request: web.Request) -> web.Response:
    log = request.app[STATE].log
    return web.json_response({"requests": [e for e in log if _matches(e, request.query)]})


def _fault_from(body: dict[str, Any]) -> Fault:
    allowed = {"operation", "path", "status", "code", "message", "delay", "retry_after", "count"}
    unknown = set(body) - allowed
    if unknown:
        raise ValueError(f"unknown fault field(s): {', '.join(sorted(unknown))}")
    op = body.get("operation")
    if op is not None and op != "*" and op not in OPERATIONS:
        raise ValueError(f"operation must be one of {', '.join(OPERATIONS)} or '*'")
    status = body.get("status")
    if status is not None and (not isinstance(status, int) or not 400 <= status <= 599):
        raise ValueError("status must be an HTTP error status (400-599)")
    delay, count = body.get("delay", 0), body.get("count", 1)
    if not isinstance(delay, (int, float)) or delay < 0 or delay > 300:
        raise ValueError("delay must be 0..300 seconds")
    if not isinstance(count, int) or count < 1:
        raise ValueError("count must be a positive integer")
    retry_after, path = body.get("retry_after"), body.get("path")
    if retry_after is not None and (not isinstance(retry_after, int) or retry_after < 0):
        raise ValueError("retry_after must be a non-negative integer")
    if path is not None:
        try:
            re.compile(path)
        except (re.error, TypeError) as e:
            raise ValueError("path must be a regular expression") from e
    if status is None and not delay:
        raise ValueError("a fault needs a status and/or a delay")
    fault = Fault(operation=op, path=path, status=status, delay=float(delay), count=count,
                  retry_after=retry_after)
    if "code" in body:
        fault.code = str(body["code"])
    if "message" in body:
        fault.message = str(body["message"])
    return fault


async def add_fault(request: web.Request) -> web.Response:
    try:
        fault = _fault_from(await _body(request))
    except ValueError as e:
        return _bad(str(e))
    request.app[STATE].faults.append(fault)
    return web.json_response(fault.as_dict(), status=201)


async def list_faults(request: web.Request) -> web.Response:
    return web.json_response({"faults": [f.as_dict() for f in request.app[STATE].faults]})


async def clear_faults(request: web.Request) -> web.Response:
    request.app[STATE].faults.clear()
    return web.Response(status=204)


async def reset(request: web.Request) -> web.Response:
    try:
        body = await _body(request)
    except ValueError as e:
        return _bad(str(e))
    request.app[STATE].reset(identities=bool(body.get("identities")))
    return web.json_response({"reset": True, "identities": bool(body.get("identities"))})


async def list_identities(request: web.Request) -> web.Response:
    idents = request.app[STATE].identities.values()
    return web.json_response({"identities": [
        {"id": i.id, "created_at": i.created_at, "revoked_before": i.revoked_before} for i in idents]})


async def check(request: web.Request) -> web.Response:
    try:
        token = (await _body(request)).get("token")
    except ValueError as e:
        return _bad(str(e))
    if not isinstance(token, str) or not token:
        return _bad("token is required")
    valid, reason, claims = check_token(request.app[STATE], token)
    result: dict[str, Any] = {"valid": valid, "reason": reason}
    if claims:
        result.update(skypeid=claims.get("skypeid"), exp=claims.get("exp"), acsScope=claims.get("acsScope"))
    return web.json_response(result)


def setup(app: web.Application) -> None:
    r = app.router
    r.add_get("/_emulator/requests", list_requests)
    r.add_get("/_emulator/faults", list_faults)
    r.add_post("/_emulator/faults", add_fault)
    r.add_delete("/_emulator/faults", clear_faults)
    r.add_post("/_emulator/reset", reset)
    r.add_get("/_emulator/identities", list_identities)
    r.add_post("/_emulator/tokens/check", check)
