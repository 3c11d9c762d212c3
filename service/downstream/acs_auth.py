"""How the broker authenticates to ACS: HMAC key, connection string, or an Entra credential.

Precedence (CONTRACT §2 [acs]): `acs.access_key` (with `acs.endpoint`), else
`acs.connection_string`, else an azure-identity aio credential built from `[entra]`:
`client_secret` → ClientSecretCredential, `client_certificate` → CertificateCredential,
`federated_token_file` → ClientAssertionCredential (the file is re-read for every new token,
as workload identity rotates it) — built by `entra_credentials.client_credential`, shared with
the OBO client; ACS's scope is `https://communication.azure.com//.default` (the SDK asks). In Azure, a managed identity would be the natural choice
(`azure.identity.aio.ManagedIdentityCredential`); it is not wired because it cannot be
tested locally (documented in docs/acs.md).

The connection string is parsed here and fed to the constructor: the SDK's
`from_connection_string` forces https and keeps a trailing `/` that breaks the HMAC
signature (notes/acs.md §5). Entra credentials use the app's shared aiohttp session, so they
trust `tls.ca_bundle` and reuse connections; retries are ours (`retry_total=0`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import aiohttp
from azure.core.credentials import AzureKeyCredential

from service._settings_model import parse_connection_string
from service.errors import ConfigurationError
from service.settings import AcsSettings, EntraSettings

from .entra_credentials import BrokerCredential, client_credential, load_broker_credential


@dataclass
class AcsAuth:
    endpoint: str          # scheme://host[:port], no trailing slash
    credential: Any        # AzureKeyCredential | azure.identity.aio credential
    kind: str              # "access_key" | "connection_string" | "client_secret" | ...

    async def close(self) -> None:
        close = getattr(self.credential, "close", None)
        if close is not None:
            await close()


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
    if entra is None:
        raise ConfigurationError(["acs.access_key: set acs.access_key or acs.connection_string "
                                  "(or an [entra] credential)"])
    broker = broker or load_broker_credential(entra)
    return AcsAuth(acs.endpoint.rstrip("/"), client_credential(entra, session, credential=broker),
                   broker.kind)
