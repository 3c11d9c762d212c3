"""Microsoft Entra ID authentication to Azure Cache for Redis (`store.entra_auth = true`).

Built on the `redis-entraid` package: its `EntraIdCredentialsProvider` gives redis-py the user
name (the token's `oid`) and password (the access token for `https://redis.azure.com`), and
its token manager renews the token at 70 % of its lifetime and re-sends `AUTH <oid> <token>`
on every pooled connection (redis-py's streaming credential provider), so long-lived
connections never outlive their token.

Who the broker is:
- `store.managed_identity = true`: the host's managed identity through msal's
  `ManagedIdentityClient` (App Service / Container Apps `IDENTITY_ENDPOINT` + `IDENTITY_HEADER`,
  VM IMDS); `store.managed_identity_client_id` picks a user-assigned identity;
- otherwise the broker's own `[entra]` credential (`BrokerCredential`: secret, certificate, or
  `federated_token_file` — AKS Workload Identity, re-read for every new token) through msal's
  `ConfidentialClientApplication` against `entra.authority` in `entra.tenant_id`.

The token endpoints are called over `requests` with the system CAs plus `tls.ca_bundle`.
Limit (redis-entraid's design): a token request runs synchronously where redis-py asks for it —
at the first connection and at each renewal; msal's token cache answers every other
connection without a network call.
"""

from __future__ import annotations

import ssl
from typing import Any

import msal
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from redis.auth.idp import IdentityProviderInterface
from redis.auth.token_manager import RetryPolicy, TokenManagerConfig
from redis_entraid.cred_provider import EntraIdCredentialsProvider
from redis_entraid.identity_provider import ManagedIdentityProvider, ServicePrincipalProvider
from requests.adapters import HTTPAdapter

from ..settings import EntraSettings, StoreSettings
from .entra_credentials import CERTIFICATE, SECRET, BrokerCredential, read_federated_token

REDIS_RESOURCE = "https://redis.azure.com"
REDIS_SCOPE = f"{REDIS_RESOURCE}/.default"
REFRESH_RATIO = 0.7          # renew when 70 % of the token's lifetime has passed


class _CaAdapter(HTTPAdapter):
    """requests with an SSLContext: the system CAs plus the configured bundle."""

    def __init__(self, ca_bundle: str) -> None:
        self._ctx = ssl.create_default_context()
        if ca_bundle:
            self._ctx.load_verify_locations(cafile=ca_bundle)
        super().__init__()

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        kwargs["ssl_context"] = self._ctx
        super().init_poolmanager(*args, **kwargs)


def http_session(ca_bundle: str) -> requests.Session:
    session = requests.Session()
    session.mount("https://", _CaAdapter(ca_bundle))
    return session


def msal_client_credential(credential: BrokerCredential) -> Any:
    """The broker credential in msal's `client_credential` shape."""
    if credential.kind == SECRET:
        return credential.secret
    if credential.kind == CERTIFICATE:
        cert = x509.load_pem_x509_certificate(credential.certificate_pem)
        return {"private_key": credential.certificate_pem.decode(),
                "thumbprint": cert.fingerprint(hashes.SHA1()).hex()}  # noqa: S303 - x5t is SHA-1
    token_file = credential.token_file
    return {"client_assertion": lambda: read_federated_token(token_file)}


def identity_provider(store: StoreSettings, entra: EntraSettings | None, *, ca_bundle: str,
                      broker: BrokerCredential | None) -> IdentityProviderInterface:
    """redis-entraid's identity provider for the configured identity (settings checked the inputs)."""
    http = http_session(ca_bundle)
    if store.managed_identity:
        identity: Any = (msal.UserAssignedManagedIdentity(client_id=store.managed_identity_client_id)
                         if store.managed_identity_client_id else msal.SystemAssignedManagedIdentity())
        return ManagedIdentityProvider(msal.ManagedIdentityClient(identity, http_client=http), REDIS_RESOURCE)
    if entra is None or broker is None:
        raise ValueError("store.entra_auth without a managed identity needs the [entra] credential")
    app = msal.ConfidentialClientApplication(
        entra.client_id, client_credential=msal_client_credential(broker),
        authority=f"{entra.authority.rstrip('/')}/{entra.tenant_id}", instance_discovery=False,
        http_client=http, timeout=entra.timeout)
    return ServicePrincipalProvider(app, [REDIS_SCOPE])


def credential_provider(idp: IdentityProviderInterface, *,
                        refresh_ratio: float = REFRESH_RATIO) -> EntraIdCredentialsProvider:
    """Tokens from `idp`, renewed at `refresh_ratio` of their lifetime and re-sent to Redis."""
    return EntraIdCredentialsProvider(idp, TokenManagerConfig(refresh_ratio, 0, 100, RetryPolicy(3, 100)))


def redis_credential_provider(store: StoreSettings, entra: EntraSettings | None, *, ca_bundle: str,
                              broker: BrokerCredential | None) -> EntraIdCredentialsProvider:
    """The redis-py credential provider for `store.entra_auth`."""
    return credential_provider(identity_provider(store, entra, ca_bundle=ca_bundle, broker=broker))
