"""The brute-force throttle at the token, introspection and revocation endpoints.

`keys(request, form)` names the request (claimed client id, remote address); `enforce` answers
429 `too_many_attempts` + Retry-After while one of them is locked, before any crypto or store
work; `note` counts a refusal that looks like guessing (service.grants.throttle.counts_as_failure).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from aiohttp import web

from ..digest import short_hash
from ..errors import BrokerError, TooManyAttempts
from ..grants.throttle import claimed_client_id, counts_as_failure, throttle_keys
from ..logs import get_logger
from ..typedefs import CLOCK, GRANTS, METRICS

log = get_logger("tokenbroker.throttle")


def _endpoint(request: web.Request) -> str:
    return (request.match_info.route.name or "unknown").removeprefix("oauth2_")


def keys(request: web.Request, form: Mapping[str, Sequence[str]]) -> tuple[str, ...]:
    return throttle_keys(claimed_client_id(request.headers.get("Authorization"), form), request.remote)


def enforce(request: web.Request, keys: tuple[str, ...]) -> None:
    throttle = request.app[GRANTS].throttle
    if throttle is None:
        return
    now = request.app[CLOCK]()
    retry_after = throttle.check(keys, now)
    if retry_after is None:
        return
    kind = next(k for k in keys if throttle.check((k,), now) is not None).partition(":")[0]
    request.app[METRICS].throttled_total.labels(_endpoint(request), kind).inc()
    raise TooManyAttempts(retry_after=retry_after, reason="throttled")


def note(request: web.Request, keys: tuple[str, ...], exc: BrokerError) -> None:
    throttle = request.app[GRANTS].throttle
    if throttle is None or not counts_as_failure(exc):
        return
    for key in throttle.record_failure(keys, request.app[CLOCK]()):
        kind, _, value = key.partition(":")
        log.warning("throttle.locked", endpoint=_endpoint(request), key_kind=kind, key_hash=short_hash(value),
                    lockout=throttle.lockout, failure_reason=exc.reason)
