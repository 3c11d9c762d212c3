"""The RFC 8693 §2.1 request preamble, read once for every token-exchange branch.

Both the exchange for our own tokens (token_exchange.py) and the downstream targets
(downstream_targets.py) start the same way: `subject_token` and `subject_token_type` are
required, `requested_token_type` defaults to the access-token type and must be one the branch
issues, `audience`/`resource` are the targets, `scope` the requested scopes, and the subject
token is routed to an issuer by its unverified `iss`. Each step is written into the audit
trace as it is known, so a refusal is audited with everything read so far.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Protocol

from service.errors import InvalidRequest
from service.grants.base import ACCESS_TOKEN_TYPE, TokenRequest
from service.validation.entra import TokenPeek


class Router(Protocol):
    def route_peek(self, token: str, token_type: str | None, *,
                   now: float | None = None) -> tuple[str, TokenPeek | None]: ...


@dataclass(frozen=True)
class ExchangeParams:
    subject_token: str = field(repr=False)
    subject_token_type: str
    requested_token_type: str
    targets: tuple[str, ...]
    requested_scopes: tuple[str, ...] | None
    issuer: str                            # the issuer name the subject token routes to
    # routing's look at the subject token (sha256, parse), handed to its validation
    peek: TokenPeek | None = field(default=None, repr=False, compare=False)


def read_exchange_params(req: TokenRequest, subjects: Router, *, token_types: Collection[str],
                         check_type: Callable[[str], None] | None = None,
                         now: float | None = None) -> ExchangeParams:
    """The preamble; InvalidRequest for a missing parameter or an unsupported token type.
    `check_type` adds the branch's own rule on the requested type (e.g. opaque clients); with `now`
    a subject token the Entra validator still caches is routed without a parse."""
    subject_token = req.require("subject_token")
    subject_type = req.require("subject_token_type")
    requested_type = req.get("requested_token_type") or ACCESS_TOKEN_TYPE
    req.trace.requested_token_type = requested_type
    if requested_type not in token_types:
        raise InvalidRequest("The requested_token_type is not supported.", reason="unsupported_requested_type")
    if check_type is not None:
        check_type(requested_type)
    targets = req.targets
    req.trace.audience = targets
    requested_scopes = req.requested_scopes()
    issuer, peek = subjects.route_peek(subject_token, subject_type, now=now)
    req.trace.issuer = issuer
    return ExchangeParams(subject_token, subject_type, requested_type, targets, requested_scopes, issuer, peek)
