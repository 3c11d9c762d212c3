"""Liveness, readiness and metrics."""

from __future__ import annotations

import asyncio

from aiohttp import web

from ..logs import get_logger
from ..typedefs import METRICS, READY_CHECKS, ReadyCheck
from .json_body import json_response

log = get_logger("tokenbroker.health")
READY_TIMEOUT = 3.0


async def healthz(request: web.Request) -> web.Response:
    return json_response({"status": "ok"})


async def _run_check(name: str, check: ReadyCheck) -> tuple[str, bool]:
    try:
        return name, bool(await asyncio.wait_for(check(), READY_TIMEOUT))
    except Exception as exc:  # a failing check is an answer, not an error
        log.warning("ready.check_failed", check=name, error=type(exc).__name__)
        return name, False


async def readyz(request: web.Request) -> web.Response:
    checks = request.app[READY_CHECKS]
    results = dict(await asyncio.gather(*(_run_check(n, c) for n, c in checks.items())))
    failing = sorted(n for n, ok in results.items() if not ok)
    body: dict[str, object] = {"status": "ok" if not failing else "unavailable",
            "checks": {n: ("ok" if ok else "failing") for n, ok in sorted(results.items())}}
    if failing:
        body["failing"] = failing
    return json_response(body, status=503 if failing else 200)


async def metrics(request: web.Request) -> web.Response:
    payload, content_type = request.app[METRICS].render()
    return web.Response(body=payload, headers={"Content-Type": content_type})


def setup(app: web.Application) -> None:
    app.router.add_get("/healthz", healthz, name="healthz", allow_head=True)
    app.router.add_get("/readyz", readyz, name="readyz", allow_head=True)
    app.router.add_get("/metrics", metrics, name="metrics")


_PLAIN = {"description": "OK"}
OPENAPI = {
    "/healthz": {"get": {"summary": "Liveness", "tags": ["operations"], "responses": {
        "200": {"description": "The process serves", "content": {"application/json": {
            "schema": {"type": "object", "properties": {"status": {"type": "string"}}}}}}}}},
    "/readyz": {"get": {"summary": "Readiness: config, keys, store and JWKS usable", "tags": ["operations"],
                        "responses": {"200": _PLAIN, "503": {"description": "Failing checks named"}}}},
    "/metrics": {"get": {"summary": "Prometheus text exposition", "tags": ["operations"],
                         "responses": {"200": {"description": "metrics",
                                               "content": {"text/plain": {}}}}}},
}
