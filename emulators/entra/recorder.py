"""Request log and fault injection, as one middleware around every non-control route. TEST ONLY.

A fault is `{"route": <substring of the path>, "grant_type": ..., "status": 503, "error":
"temporarily_unavailable", "aadsts": 50079, "description": ..., "delay": 1.5, "count": 1,
"retry_after": 5}`: the next `count` matching requests wait `delay` seconds, then (when a status,
error or aadsts is given) get that answer instead of the real one.
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from .errors import EntraError
from .state import STATE_KEY, EmulatorState

LOGGED_HEADERS = ("client-request-id", "x-ms-client-request-id", "x-client-sku", "x-client-ver",
                  "x-anchormailbox", "x-ms-lib-capability", "user-agent", "return-client-request-id",
                  "traceparent")
LOGGED_FIELDS = ("grant_type", "client_id", "scope", "requested_token_use", "client_assertion_type",
                 "client_info", "redirect_uri")
SECRET_QUERY = {"code", "client_secret", "assertion", "client_assertion", "refresh_token"}


def _matches(fault: dict, path: str, fields: dict) -> bool:
    if fault.get("route") and str(fault["route"]) not in path:
        return False
    if fault.get("grant_type") and fields.get("grant_type") != fault["grant_type"]:
        return False
    return True


def _fault_response(request: web.Request, fault: dict) -> web.Response | None:
    status, error, code = fault.get("status"), fault.get("error"), fault.get("aadsts")
    retry_after = fault.get("retry_after")
    if code:
        return EntraError(int(code), fault.get("description"), error=error, status=status,
                          retry_after=retry_after, suberror=fault.get("suberror"),
                          claims=fault.get("claims")).render(request)
    if not status and not error:
        return None
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
    body = {"error": error or ("temporarily_unavailable" if int(status or 400) >= 500 else "invalid_request"),
            "error_description": fault.get("description", "Injected fault (emulator).")}
    return web.json_response(body, status=int(status or 400), headers=headers)


@web.middleware
async def recorder(request: web.Request, handler) -> web.StreamResponse:
    if request.path.startswith("/_emulator"):
        return await handler(request)
    state: EmulatorState = request.app[STATE_KEY]
    fields: dict[str, str] = {}
    if request.method == "POST" and request.content_type == "application/x-www-form-urlencoded":
        try:
            form = await request.post()
            fields = {k: str(form[k]) for k in LOGGED_FIELDS if k in form}
        except ValueError:
            fields = {}
    entry = {"time": state.now(), "method": request.method, "path": request.path,
             "query": {k: v for k, v in request.query.items() if k not in SECRET_QUERY}, **fields,
             "headers": {h: request.headers[h] for h in LOGGED_HEADERS if h in request.headers},
             "fault": False}
    state.log.append(entry)
    fault = next((f for f in state.faults if _matches(f, request.path, fields)), None)
    if fault is not None:
        fault["count"] = int(fault.get("count", 1)) - 1
        if fault["count"] <= 0:
            state.faults.remove(fault)
        entry["fault"] = True
        if fault.get("delay"):
            await asyncio.sleep(float(fault["delay"]))
        injected = _fault_response(request, fault)
        if injected is not None:
            entry["status"] = injected.status
            return injected
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        entry["status"] = exc.status
        raise
    entry["status"] = response.status
    return response


def filter_log(state: EmulatorState, query: dict[str, str]) -> list[dict]:
    out = state.log
    if query.get("path"):
        out = [e for e in out if query["path"] in e["path"]]
    for key in ("grant_type", "client_id", "method", "requested_token_use"):
        if query.get(key):
            out = [e for e in out if e.get(key) == query[key]]
    return out
