"""What the grants need from the layers below, as Protocols (hynek/svcs style).

The grants depend on these shapes, not on the classes app.py builds, so a test (or another
implementation) can hand in anything that fits; mypy checks that what create_app passes does.

    OwnTokens          issuing.TokenIssuer            mint and verify the broker's own tokens
    EntraTokens        validation.EntraValidator      the [entra] bearer rules, and the generic ones
    TeamsExchange      downstream.acs.AcsClient       ACS "Teams user" tokens (cached, single-flight)
    OboExchange        downstream.entra_obo.EntraOboClient   Entra On-Behalf-Of for [obo.<name>]
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from datetime import datetime
from typing import Any, Protocol

from service.downstream.entra_obo import OboCaller, OboToken
from service.issuing import MintedToken
from service.settings import OboSettings
from service.validation.entra import EntraPrincipal, TokenPeek


class OwnTokens(Protocol):
    issuer_url: str

    def mint(self, claims: Mapping[str, Any], *, now: float, ttl: float) -> MintedToken: ...

    def verify(self, token: str, *, now: float, leeway: float = 0) -> dict[str, Any]: ...


class EntraTokens(Protocol):
    async def validate(self, token: str, *, now: float, peek: TokenPeek | None = None) -> EntraPrincipal: ...

    def route_issuer(self, token: str, *, now: float) -> tuple[Any, TokenPeek]: ...

    async def validate_for(self, token: str, *, now: float, audiences: Collection[str],
                           required_scopes: Collection[str], allowed_apps: Collection[str] | None,
                           allow_app_only: bool = False,
                           verify_signature: bool = True, rules: str | None = None,
                           peek: TokenPeek | None = None) -> EntraPrincipal: ...

    def cached_principal(self, token: str, *, now: float, rules: str) -> tuple[EntraPrincipal | None, TokenPeek]: ...


class TeamsExchange(Protocol):
    async def exchange_teams_token_cached(self, teams_token: str, client_id: str, user_object_id: str,
                                          *, not_after: float | None = None,
                                          trace: dict[str, Any] | None = None,
                                          token_hash: str | None = None) -> tuple[str, datetime]: ...


class OboExchange(Protocol):
    def downstream(self, name: str) -> OboSettings | None: ...

    async def exchange(self, downstream: OboSettings, assertion: str, caller: OboCaller, *,
                       trace: dict[str, Any] | None = None) -> OboToken: ...
