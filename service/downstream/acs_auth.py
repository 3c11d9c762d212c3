"""How the broker authenticates to ACS: HMAC key, connection string, managed identity, or an
Entra credential.

Precedence (CONTRACT §2 [acs]): `acs.access_key` (with `acs.endpoint`), else
`acs.connection_string`, else — with `acs.managed_identity = true` (an extension; settings make
it exclusive with the two keys) — the host's Azure managed identity through azure-identity's aio
`ManagedIdentityCredential` (`acs.managed_identity_client_id` picks a user-assigned identity;
empty = system-assigned; azure-identity finds the platform's token endpoint from the
environment: App Service / Container Apps `IDENTITY_ENDPOINT` + `IDENTITY_HEADER`, VMs' IMDS,
AKS workload identity's `AZURE_FEDERATED_TOKEN_FILE`), else an azure-identity aio credential
built from `[entra]`: `client_secret` → ClientSecretCredential, `client_certificate` →
CertificateCredential, `federated_token_file` → ClientAssertionCredential (the file is re-read
for every new token, as workload identity rotates it) — built by
`entra_credentials.client_credential`, shared with the OBO client. ACS's scope is
`https://communication.azure.com//.default` (the SDK asks). docs/acs.md shows the set-up in Azure.

Failures of either credential reach `acs_errors.map_error` unchanged (502 credentials refused,
503/504 when the token endpoint is down or slow, never a 500); the managed identity adds an
operator-facing log line (`acs.managed_identity_unavailable` / `acs.managed_identity_unreachable`)
because its causes — no identity assigned, wrong environment — are the platform's, not a secret's.

The connection string is parsed here and fed to the constructor: the SDK's
`from_connection_string` forces https and keeps a trailing `/` that breaks the HMAC
signature (notes/acs.md §5). Entra credentials and the managed identity use the app's shared
aiohttp session, so they trust `tls.ca_bundle` and reuse connections; retries are ours
(`retry_total=0`).
"""
from __future__ import annotations

from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any

import aiohttp
from azure.core.credentials import AzureKeyCredential
from azure.core.exceptions import ServiceRequestError, ServiceResponseError
from azure.identity import CredentialUnavailableError
from azure.identity.aio import ManagedIdentityCredential

from service.errors import ConfigurationError
from service.logs import get_logger
from service.settings import AcsSettings, EntraSettings, parse_connection_string

from .entra_credentials import BrokerCredential, client_credential, load_broker_credential, pipeline_kwargs

log = get_logger("tokenbroker.downstream.acs")
MANAGED_IDENTITY = "managed_identity"


@dataclass
class AcsAuth:
    endpoint: str          # scheme://host[:port], no trailing slash
    credential: Any        # AzureKeyCredential | azure.identity.aio credential
    kind: str              # "access_key" | "connection_string" | "managed_identity" | "client_secret" | ...

    async def close(self) -> None:
        close = getattr(self.credential, "close", None)
        if close is not None:
            await close()


class ManagedIdentity:
    """azure-identity's aio `ManagedIdentityCredential`, logging why it failed for the operator.

    Exceptions pass through unchanged (acs_errors maps them); the log names the identity
    (`system-assigned` or the user-assigned client id), never a token.
    """

    def __init__(self, client_id: str, session: aiohttp.ClientSession, *, timeout: float) -> None:
        self.identity = client_id or "system-assigned"
        try:
            self._credential = ManagedIdentityCredential(client_id=client_id or None,
                                                         **pipeline_kwargs(session, timeout=timeout))
        except ValueError as exc:   # e.g. workload identity's environment without a client id
            raise ConfigurationError([f"acs.managed_identity_client_id: {exc}"]) from exc

    async def get_token(self, *scopes: str, **kwargs: Any) -> Any:
        return await self._guard(self._credential.get_token(*scopes, **kwargs))

    async def get_token_info(self, *scopes: str, options: Any = None) -> Any:
        return await self._guard(self._credential.get_token_info(*scopes, options=options))

    async def _guard(self, call: Awaitable[Any]) -> Any:
        try:
            return await call
        except CredentialUnavailableError as exc:
            log.error("acs.managed_identity_unavailable", identity=self.identity,
                      problem=str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__,
                      hint="is a managed identity assigned to this host (and acs.managed_identity_client_id "
                           "its client id)? Outside Azure set acs.access_key or an [entra] credential")
            raise
        except (ServiceRequestError, ServiceResponseError) as exc:
            log.warning("acs.managed_identity_unreachable", identity=self.identity,
                        error=type(exc).__name__)
            raise

    async def close(self) -> None:
        await self._credential.close()

    async def __aenter__(self) -> ManagedIdentity:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


def build_auth(acs: AcsSettings, entra: EntraSettings | None, session: aiohttp.ClientSession, *,
               broker: BrokerCredential | None = None) -> AcsAuth:
    """The configured ACS authentication. `broker` is the already loaded [entra] credential
    (loading reads files: do it off the event loop, e.g. `asyncio.to_thread`)."""
    if acs.access_key:
        return AcsAuth(acs.endpoint.rstrip("/"), AzureKeyCredential(acs.access_key.reveal()), "access_key")
    if acs.connection_string:
        parts = parse_connection_string(acs.connection_string.reveal())
        endpoint = (parts.get("endpoint") or acs.endpoint).rstrip("/")
        return AcsAuth(endpoint, AzureKeyCredential(parts.get("accesskey", "")), "connection_string")
    if acs.managed_identity:
        return AcsAuth(acs.endpoint.rstrip("/"), ManagedIdentity(acs.managed_identity_client_id, session,
                                                                 timeout=acs.timeout), MANAGED_IDENTITY)
    if entra is None:
        raise ConfigurationError(["acs.access_key: set acs.access_key or acs.connection_string "
                                  "(or acs.managed_identity, or an [entra] credential)"])
    broker = broker or load_broker_credential(entra)
    return AcsAuth(acs.endpoint.rstrip("/"), client_credential(entra, session, credential=broker),
                   broker.kind)
