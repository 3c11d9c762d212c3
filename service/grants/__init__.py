"""The token endpoint's grants: grant type → handler, plus introspection and revocation.

`TokenService.build(settings, ...)` wires every collaborator once (at startup); handlers keep
no per-request state. No aiohttp.web here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from service.errors import UnsupportedGrantType
from service.grants.base import REFRESH_TOKEN, TOKEN_EXCHANGE, Grant, TokenRequest, TokenResponse
from service.grants.client_assertion import ClientAssertions, ClientAuthenticator, load_client_keys
from service.grants.client_auth import Credentials
from service.grants.collaborators import EntraTokens, OboExchange, OwnTokens, TeamsExchange
from service.grants.downstream_targets import DownstreamTargets
from service.grants.federation import Federation
from service.grants.introspection import Introspector
from service.grants.linking import AccountLinker, Accounts
from service.grants.opaque import OpaqueHandles
from service.grants.refresh_families import RefreshTokens
from service.grants.refresh_token import RefreshTokenGrant
from service.grants.revocation import Revoker
from service.grants.subject_tokens import SubjectTokens
from service.grants.throttle import Throttle
from service.grants.throttle_shared import SharedThrottle, throttle_for
from service.grants.token_exchange import TokenExchangeGrant
from service.settings import ClientSettings, Settings
from service.storage.base import Store
from service.storage.jti_records import ReplayCache, RevokedJtis
from service.validation.trusted_issuers import TrustedIssuerValidator

GRANT_TYPES = (TOKEN_EXCHANGE, REFRESH_TOKEN)

__all__ = ["GRANT_TYPES", "Grant", "TokenRequest", "TokenResponse", "TokenService"]


@dataclass(frozen=True)
class TokenService:
    settings: Settings
    handlers: dict[str, Grant]
    introspector: Introspector
    revoker: Revoker
    clients: ClientAuthenticator | None = None      # every client-authentication method
    throttle: Throttle | SharedThrottle | None = None   # brute-force counter (per replica, or Redis)

    async def authenticate_client(self, authorization: str | None, form: Mapping[str, Sequence[str]], *,
                                  now: float, creds: Credentials | None = None) -> ClientSettings:
        """The authenticated ClientSettings (secret or private_key_jwt), else InvalidClient.
        `creds`: what `client_auth.extract(authorization, form)` gave already (not redone)."""
        if self.clients is None:
            raise RuntimeError("TokenService was built without a client authenticator")
        return await self.clients.authenticate(authorization, form, now=now, creds=creds)

    def handler(self, grant_type: str | None) -> Grant:
        handler = self.handlers.get(grant_type or "")
        if handler is None:
            raise UnsupportedGrantType(reason="unsupported_grant_type")
        return handler

    @classmethod
    def build(cls, settings: Settings, *, store: Store, issuer: OwnTokens, trusted: TrustedIssuerValidator,
              clock: Callable[[], float], entra: EntraTokens | None = None, acs: TeamsExchange | None = None,
              obo: OboExchange | None = None) -> TokenService:
        """`entra`, `acs`, `obo`: the app's EntraValidator, AcsClient, EntraOboClient (None when
        not configured); create_app builds them before the grants."""
        revoked = RevokedJtis(store, clock=clock)
        replay = ReplayCache(store, clock=clock)
        refresh = RefreshTokens(store)
        opaque = OpaqueHandles(store)
        subjects = SubjectTokens(settings, trusted=trusted, issuer=issuer, revoked=revoked, replay=replay,
                                 entra=entra, opaque=opaque)
        handlers: dict[str, Grant] = {
            TOKEN_EXCHANGE: TokenExchangeGrant(settings, subjects=subjects, issuer=issuer, refresh_tokens=refresh,
                                               federation=Federation(settings),
                                               linker=AccountLinker(settings, Accounts(store)), opaque=opaque,
                                               downstream=DownstreamTargets(settings, subjects=subjects,
                                                                            entra=entra, acs=acs, obo=obo)),
            REFRESH_TOKEN: RefreshTokenGrant(issuer=issuer, refresh_tokens=refresh, opaque=opaque),
        }
        introspector = Introspector(issuer=issuer, revoked=revoked, refresh_tokens=refresh, opaque=opaque)
        assertions = ClientAssertions(load_client_keys(settings), issuer_url=settings.server.public_url,
                                      replay=replay)
        return cls(settings, handlers, introspector,
                   Revoker(introspector=introspector, revoked=revoked, refresh_tokens=refresh),
                   clients=ClientAuthenticator(settings, assertions),
                   throttle=throttle_for(settings.throttle, store))
