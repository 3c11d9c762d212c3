"""The brute-force throttle at the token, introspection and revocation endpoints.

`keys(request, form)` names the request (claimed client id, remote address); `enforce` answers
429 `too_many_attempts` + Retry-After while one of them is locked, before any crypto or store
work; `note` counts a refusal that looks like guessing (service.grants.throttle.counts_as_failure).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from aiohttp import web

from ..digest import short_hash
from ..errors import BrokerError, DownstreamError, TooManyAttempts
from ..grants.client_auth import Credentials
from ..grants.throttle import claimed_credentials, counts_as_failure, throttle_keys
from ..logs import get_logger
from ..typedefs import CLOCK, GRANTS, METRICS

log = get_logger("tokenbroker.throttle")


def _endpoint(request: web.Request) -> str:
    return (request.match_info.route.name or "unknown").removeprefix("oauth2_")


def keys(request: web.Request, form: Mapping[str, Sequence[str]]) -> tuple[str, ...]:
    return keys_and_credentials(request, form)[0]


def keys_and_credentials(request: web.Request,
                         form: Mapping[str, Sequence[str]]) -> tuple[tuple[str, ...], Credentials | None]:
    """`keys`, and the client credentials extracted on the way (for `authenticate_client`)."""
    claimed, creds = claimed_credentials(request.headers.get("Authorization"), form)
    return throttle_keys(claimed, request.remote), creds


async def enforce(request: web.Request, keys: tuple[str, ...]) -> None:
    throttle = request.app[GRANTS].throttle
    if throttle is None or not throttle.enabled:
        return
    now = request.app[CLOCK]()
    retry_after = await throttle.locked_for(keys, now)
    if retry_after is None:
        return
    kind = "client"
    for key in keys:
        if await throttle.locked_for((key,), now) is not None:
            kind = key.partition(":")[0]
            break
    request.app[METRICS].throttled_total.labels(_endpoint(request), kind).inc()
    raise TooManyAttempts(retry_after=retry_after, reason="throttled")


async def note(request: web.Request, keys: tuple[str, ...], exc: BrokerError) -> None:
    throttle = request.app[GRANTS].throttle
    if throttle is None or not throttle.enabled or not counts_as_failure(exc):
        return
    try:
        locked = await throttle.failed(keys, request.app[CLOCK]())
    except DownstreamError:  # the refusal stands; the shared counter missed one failure
        log.warning("throttle.store_unavailable", endpoint=_endpoint(request))
        return
    for key in locked:
        kind, _, value = key.partition(":")
        log.warning("throttle.locked", endpoint=_endpoint(request), key_kind=kind, key_hash=short_hash(value),
                    lockout=throttle.lockout, failure_reason=exc.reason, shared=throttle.shared)
