"""What every grant shares: the parsed token request, the response, the audit trace.

`TokenRequest.from_form` enforces RFC 6749 §3.2 / RFC 8693 §2.1 parameter rules: every
parameter is single-valued except `audience` and `resource`; a parameter sent without a value
is treated as omitted (RFC 6749 §3.1). Handlers are plain async objects (no aiohttp.web):

    class Grant(Protocol):
        GRANT_TYPE: str
        async def handle(req: TokenRequest, *, now: float) -> TokenResponse
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from service.errors import InvalidRequest
from service.settings import ClientSettings

TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
REFRESH_TOKEN = "refresh_token"

ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"
JWT_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:jwt"
REFRESH_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:refresh_token"

MULTI_VALUED = frozenset({"audience", "resource"})
MAX_TARGETS = 10


@dataclass
class AuditTrace:
    """Filled in by the handler as it goes, so a refusal is audited with what was known."""

    issuer: str = ""
    subject_hash: str = ""
    audience: tuple[str, ...] = ()
    requested_token_type: str = ""
    issued_token_type: str = ""
    jti: str = ""
    rule: str = ""
    extra: dict[str, Any] = field(default_factory=dict)   # e.g. downstream correlation ids
    # side events of the exchange (account.created / linked / unmatched), emitted by http/audit.py
    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)


@dataclass(frozen=True)
class TokenRequest:
    grant_type: str
    client: ClientSettings
    params: Mapping[str, str]                  # single-valued, non-empty values only
    audience: tuple[str, ...] = ()
    resource: tuple[str, ...] = ()
    trace: AuditTrace = field(default_factory=AuditTrace, compare=False)

    @classmethod
    def from_form(cls, form: Mapping[str, Sequence[str]], client: ClientSettings) -> TokenRequest:
        params: dict[str, str] = {}
        multi: dict[str, list[str]] = {name: [] for name in MULTI_VALUED}
        for name, values in form.items():
            if name in MULTI_VALUED:
                multi[name].extend(v for v in values if v)
                continue
            if len(values) > 1:
                raise InvalidRequest(f"The parameter {name[:40]} is repeated.", reason="repeated_parameter")
            if values and values[0]:
                params[name] = values[0]
        if len(multi["audience"]) + len(multi["resource"]) > MAX_TARGETS:
            raise InvalidRequest("Too many audience or resource values.", reason="too_many_targets")
        return cls(params.get("grant_type", ""), client, params,
                   tuple(multi["audience"]), tuple(multi["resource"]))

    def get(self, name: str) -> str | None:
        return self.params.get(name)

    def require(self, name: str) -> str:
        value = self.params.get(name)
        if value is None:
            raise InvalidRequest(f"The parameter {name} is required.", reason=f"missing_{name}")
        return value

    @property
    def targets(self) -> tuple[str, ...]:
        """audience and resource values, in order, without duplicates."""
        return tuple(dict.fromkeys((*self.audience, *self.resource)))

    def requested_scopes(self) -> tuple[str, ...] | None:
        """The `scope` parameter split on spaces; None when not sent."""
        raw = self.params.get("scope")
        if raw is None:
            return None
        scopes = tuple(dict.fromkeys(s for s in raw.split(" ") if s))
        if not scopes or any(not _scope_token(s) for s in scopes):
            raise InvalidRequest("The scope parameter is malformed.", reason="bad_scope_syntax")
        return scopes


def _scope_token(s: str) -> bool:
    """RFC 6749 §3.3 scope-token: 1*( %x21 / %x23-5B / %x5D-7E )."""
    return _SCOPE_TOKEN(s) is not None


_SCOPE_TOKEN = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+").fullmatch


@dataclass(frozen=True)
class TokenResponse:
    access_token: str
    issued_token_type: str
    expires_in: int
    token_type: str = "Bearer"
    scope: str | None = None                   # only when it differs from the request
    refresh_token: str | None = None

    def body(self) -> dict[str, Any]:
        out: dict[str, Any] = {"access_token": self.access_token,
                               "issued_token_type": self.issued_token_type,
                               "token_type": self.token_type, "expires_in": self.expires_in}
        if self.scope is not None:
            out["scope"] = self.scope
        if self.refresh_token is not None:
            out["refresh_token"] = self.refresh_token
        return out


class Grant(Protocol):
    GRANT_TYPE: str

    async def handle(self, req: TokenRequest, *, now: float) -> TokenResponse: ...


def scope_for_response(requested: tuple[str, ...] | None, issued: tuple[str, ...]) -> str | None:
    """RFC 6749 §5.1: `scope` is returned when it differs from what was requested."""
    if requested is not None and set(requested) == set(issued):
        return None
    if requested is None and not issued:
        return None
    return " ".join(issued)
