"""The broker's own Entra ID credential, built from `[entra]` (CONTRACT §2).

Exactly one of three is configured (settings enforce it):

- `client_secret`: the app registration's secret;
- `client_certificate`: a PEM file holding the certificate and its private key (read once,
  at start-up, so a broken file fails the start and not the first request);
- `federated_token_file`: a file holding a federated assertion (workload identity). It is
  rotated by the platform, so it is read again on every use, never cached.

`BrokerCredential.obo_kwargs()` gives the credential keywords of azure-identity's aio
`OnBehalfOfCredential`; `client_credential(...)` gives a ready aio credential for
app-only calls (e.g. ACS with an Entra credential). Both share `pipeline_kwargs(session)`:
the app's aiohttp session as transport (its CA bundle and connection pool) and no
azure-core retries (the caller retries within its own deadline).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from azure.core.credentials_async import AsyncTokenCredential
from azure.core.pipeline.transport import AioHttpTransport
from azure.identity.aio import CertificateCredential, ClientAssertionCredential, ClientSecretCredential
from cryptography import x509
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from ..errors import ConfigurationError
from ..settings import EntraSettings

SECRET, CERTIFICATE, FEDERATED = "client_secret", "client_certificate", "federated_token_file"


def pipeline_kwargs(session: aiohttp.ClientSession, *, timeout: float = 10) -> dict[str, Any]:
    """azure-core pipeline keywords: our session as transport, no SDK retries, bounded I/O."""
    transport = AioHttpTransport(session=session, session_owner=False,
                                 connection_timeout=timeout, read_timeout=timeout)
    return {"transport": transport, "retry_total": 0}


class CredentialUnavailable(Exception):
    """The broker's credential material could not be read (e.g. the federated token file)."""


def read_federated_token(path: str) -> str:
    """The current federated assertion (small file; re-read on every use because it rotates)."""
    try:
        token = Path(path).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeError) as e:
        raise CredentialUnavailable(f"entra.federated_token_file: {type(e).__name__}") from e
    if not token:
        raise CredentialUnavailable("entra.federated_token_file is empty")
    return token


def _load_certificate(path: str) -> bytes:
    """The PEM bytes, after checking they hold a certificate and an unencrypted private key."""
    try:
        pem = Path(path).read_bytes()
        x509.load_pem_x509_certificate(pem)
        load_pem_private_key(pem, password=None)
    except (OSError, ValueError, TypeError) as e:
        raise ConfigurationError(
            [f"entra.client_certificate: {path} must be a PEM file with the certificate and its "
             f"unencrypted private key ({type(e).__name__})"]) from e
    return pem


@dataclass(frozen=True)
class BrokerCredential:
    """Which credential the broker app presents to Entra, and its material."""
    kind: str                                  # SECRET | CERTIFICATE | FEDERATED
    client_id: str
    secret: str = field(default="", repr=False)
    certificate_pem: bytes = field(default=b"", repr=False)
    token_file: str = ""

    async def obo_kwargs(self) -> dict[str, Any]:
        """Credential keywords for one `OnBehalfOfCredential`. The federated file is read
        here, off the event loop, so the assertion is fresh for this exchange."""
        if self.kind == SECRET:
            return {"client_secret": self.secret}
        if self.kind == CERTIFICATE:
            return {"client_certificate": self.certificate_pem}
        assertion = await asyncio.to_thread(read_federated_token, self.token_file)
        return {"client_assertion_func": lambda: assertion}


def load_broker_credential(entra: EntraSettings) -> BrokerCredential:
    """The configured credential; ConfigurationError when none is usable."""
    if entra.client_secret:
        return BrokerCredential(SECRET, entra.client_id, secret=entra.client_secret.reveal())
    if entra.client_certificate:
        return BrokerCredential(CERTIFICATE, entra.client_id,
                                certificate_pem=_load_certificate(entra.client_certificate))
    if entra.federated_token_file:
        return BrokerCredential(FEDERATED, entra.client_id, token_file=entra.federated_token_file)
    raise ConfigurationError(["entra.client_secret: the broker needs a credential for Entra "
                              "(client_secret, client_certificate or federated_token_file)"])


def client_credential(entra: EntraSettings, session: aiohttp.ClientSession, *,
                      tenant_id: str | None = None,
                      credential: BrokerCredential | None = None) -> AsyncTokenCredential:
    """An azure-identity aio credential for the broker app itself (client credentials flow)
    in `tenant_id` (default: `entra.tenant_id`), against `entra.authority`, over `session`.

    Use with `await cred.get_token("<resource>/.default")`; close it with `await cred.close()`
    (the session stays open). The federated variant reads the token file on each token request.
    """
    cred = credential or load_broker_credential(entra)
    common = {"authority": entra.authority, **pipeline_kwargs(session, timeout=entra.timeout)}
    tenant = tenant_id or entra.tenant_id
    if cred.kind == SECRET:
        return ClientSecretCredential(tenant, cred.client_id, cred.secret, **common)
    if cred.kind == CERTIFICATE:
        return CertificateCredential(tenant, cred.client_id, certificate_data=cred.certificate_pem, **common)
    token_file = cred.token_file
    return ClientAssertionCredential(tenant, cred.client_id, lambda: read_federated_token(token_file),
                                     **common)
