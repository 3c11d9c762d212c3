"""Client credentials with real msal and azure-identity: secret, certificate, federated assertion."""

from __future__ import annotations

import datetime as dt
import hashlib
import time
import uuid

import jwt
import msal
import pytest
from aiohttp import web
from azure.core.exceptions import ClientAuthenticationError
from azure.identity import ClientSecretCredential
from azure.identity.aio import ClientAssertionCredential
from azure.identity.aio import ClientSecretCredential as AioClientSecretCredential
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from emulators.entra import demo
from tests.support.threaded import start_threaded

BROKER_DEFAULT = f"{demo.BROKER_APP_ID_URI}/.default"


def _claims(token: str) -> dict:
    return jwt.decode(token, options={"verify_signature": False})


def _daemon(entra, credential) -> msal.ConfidentialClientApplication:
    return msal.ConfidentialClientApplication(demo.DAEMON_CLIENT_ID, client_credential=credential,
                                              authority=entra.authority(), instance_discovery=False,
                                              http_client=entra.http())


@pytest.fixture(name="certificate", scope="module")
def _certificate() -> tuple[str, str, str]:
    """(private key PEM, certificate PEM, SHA-1 thumbprint hex)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "daemon test cert")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=30)).sign(key, hashes.SHA256()))
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    cert_pem = cert.public_bytes(serialization.Encoding.PEM).decode()
    thumbprint = hashlib.sha1(cert.public_bytes(serialization.Encoding.DER)).hexdigest()
    return key_pem, cert_pem, thumbprint


def test_client_credentials_with_a_secret_gives_an_app_only_token_with_roles(entra):
    result = _daemon(entra, demo.DAEMON_SECRET).acquire_token_for_client([BROKER_DEFAULT])
    assert result["token_type"] == "Bearer" and result["expires_in"] >= 3000
    claims = _claims(result["access_token"])
    assert claims["roles"] == [demo.BROKER_APP_ROLE] and "scp" not in claims
    assert claims["oid"] == claims["sub"] and claims["idtyp"] == "app"
    assert claims["azp"] == demo.DAEMON_CLIENT_ID and claims["azpacr"] == "1"
    assert claims["aud"] == demo.BROKER_CLIENT_ID and claims["tid"] == demo.TENANT_ID


def test_client_credentials_with_a_certificate_thumbprint(entra, certificate):
    key_pem, cert_pem, thumbprint = certificate
    registered = entra.control("POST", f"apps/{demo.DAEMON_CLIENT_ID}/certificates", {"pem": cert_pem})
    result = _daemon(entra, {"private_key": key_pem, "thumbprint": thumbprint}).acquire_token_for_client(
        [f"{demo.WORKSPACE_CLIENT_ID}/.default"])
    assert "access_token" in result, result
    claims = _claims(result["access_token"])
    assert claims["azpacr"] == "2" and claims["roles"] == [demo.WORKSPACE_APP_ROLE]
    assert registered["x5t"]
    log = entra.requests(grant_type="client_credentials")[-1]
    assert log["client_assertion_type"].endswith("jwt-bearer")


def test_client_credentials_with_a_public_certificate_uses_ps256(entra, certificate):
    key_pem, cert_pem, _ = certificate
    entra.control("POST", f"apps/{demo.DAEMON_CLIENT_ID}/certificates", {"pem": cert_pem})
    result = _daemon(entra, {"private_key": key_pem, "public_certificate": cert_pem}).acquire_token_for_client(
        [BROKER_DEFAULT])
    assert _claims(result["access_token"])["azpacr"] == "2", result


def test_an_unregistered_certificate_is_refused(entra, certificate):
    key_pem, _, thumbprint = certificate
    result = _daemon(entra, {"private_key": key_pem, "thumbprint": thumbprint}).acquire_token_for_client(
        [BROKER_DEFAULT])
    assert result["error"] == "invalid_client" and result["error_codes"] == [700027]


def test_a_bad_secret_is_aadsts7000215_with_a_correlation_id(entra):
    result = _daemon(entra, "not-the-secret").acquire_token_for_client([BROKER_DEFAULT])
    assert result["error"] == "invalid_client" and result["error_codes"] == [7000215]
    assert result["error_description"].startswith("AADSTS7000215:")
    sent = entra.requests(grant_type="client_credentials")[-1]["headers"]["client-request-id"]
    assert result["correlation_id"] == sent and result["trace_id"] and result["timestamp"]


def test_client_credentials_without_default_is_1002012_and_an_unknown_scope_is_70011(entra):
    result = _daemon(entra, demo.DAEMON_SECRET).acquire_token_for_client([demo.BROKER_SCOPE])
    assert result["error"] == "invalid_scope" and result["error_codes"] == [1002012]
    app = msal.ConfidentialClientApplication(demo.CLIENT_ID, client_credential=demo.CLIENT_SECRET,
                                             authority=entra.authority(), instance_discovery=False,
                                             http_client=entra.http())
    bad = app.acquire_token_on_behalf_of(
        entra.mint(resource=demo.CLIENT_ID, user="alice", client_id=demo.PUBLIC_CLIENT_ID),
        [f"{demo.BROKER_APP_ID_URI}/no_such_scope"])
    assert bad["error"] == "invalid_scope" and bad["error_codes"] == [70011]


def test_sync_azure_identity_client_secret_credential_without_instance_discovery(entra):
    cred = ClientSecretCredential(demo.TENANT_ID, demo.DAEMON_CLIENT_ID, demo.DAEMON_SECRET,
                                  authority=entra.url.removeprefix("https://"), disable_instance_discovery=True,
                                  connection_verify=entra.ca_bundle, retry_total=0)
    token = cred.get_token(BROKER_DEFAULT)
    assert _claims(token.token)["roles"] == [demo.BROKER_APP_ROLE] and token.expires_on > time.time() + 3000
    with pytest.raises(ClientAuthenticationError):
        ClientSecretCredential(demo.TENANT_ID, demo.DAEMON_CLIENT_ID, "wrong", authority=entra.url,
                               disable_instance_discovery=True, connection_verify=entra.ca_bundle,
                               retry_total=0).get_token(BROKER_DEFAULT)


async def test_aio_azure_identity_client_secret_credential_caches_its_token(entra):
    async with AioClientSecretCredential(demo.TENANT_ID, demo.DAEMON_CLIENT_ID, demo.DAEMON_SECRET,
                                         authority=entra.url, connection_verify=entra.ca_bundle,
                                         retry_total=0) as cred:
        first = await cred.get_token(BROKER_DEFAULT)
        second = await cred.get_token(BROKER_DEFAULT)
    assert first.token == second.token
    assert _claims(first.token)["azp"] == demo.DAEMON_CLIENT_ID
    assert len(entra.requests(grant_type="client_credentials")) == 1


async def test_aio_credential_surfaces_an_aadsts_error(entra):
    async with AioClientSecretCredential(demo.TENANT_ID, demo.DAEMON_CLIENT_ID, "wrong-secret",
                                         authority=entra.url, connection_verify=entra.ca_bundle,
                                         retry_total=0) as cred:
        with pytest.raises(ClientAuthenticationError) as info:
            await cred.get_token(BROKER_DEFAULT)
    assert "AADSTS7000215" in str(info.value)


async def test_a_federated_assertion_minted_by_the_emulator_itself(entra):
    subject = "system:serviceaccount:demo:broker"
    issuer = f"{entra.url}/{demo.TENANT_ID}/v2.0"
    entra.control("POST", f"apps/{demo.DAEMON_CLIENT_ID}/federated-credentials",
                  {"issuer": issuer, "subject": subject})
    assertion = entra.mint(resource=demo.BROKER_CLIENT_ID, app_only=True,
                           claims={"aud": "api://AzureADTokenExchange", "sub": subject})
    async with ClientAssertionCredential(demo.TENANT_ID, demo.DAEMON_CLIENT_ID, lambda: assertion,
                                         authority=entra.url, connection_verify=entra.ca_bundle,
                                         retry_total=0) as cred:
        token = await cred.get_token(BROKER_DEFAULT)
    assert _claims(token.token)["azpacr"] == "2"


def test_a_federated_assertion_verified_through_a_jwks_url(entra):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key(), as_dict=True) | {"kid": "k1", "use": "sig"}

    def make_app(url: str) -> web.Application:
        app = web.Application()

        async def keys(_request):
            return web.json_response({"keys": [jwk]})
        app.router.add_get("/keys", keys)
        return app

    server = start_threaded(make_app, None)
    try:
        issuer, subject = "https://token.actions.example", f"repo:demo:{uuid.uuid4()}"
        entra.control("POST", f"apps/{demo.DAEMON_CLIENT_ID}/federated-credentials",
                      {"issuer": issuer, "subject": subject, "jwks_uri": f"{server.url}/keys"})
        now = int(time.time())
        good = jwt.encode({"iss": issuer, "sub": subject, "aud": "api://AzureADTokenExchange", "iat": now,
                           "exp": now + 600}, key, algorithm="RS256", headers={"kid": "k1"})
        result = _daemon(entra, {"client_assertion": good}).acquire_token_for_client([BROKER_DEFAULT])
        assert _claims(result["access_token"])["azp"] == demo.DAEMON_CLIENT_ID, result
        forged_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        forged = jwt.encode({"iss": issuer, "sub": subject, "aud": "api://AzureADTokenExchange", "iat": now,
                             "exp": now + 600}, forged_key, algorithm="RS256", headers={"kid": "k1"})
        refused = _daemon(entra, {"client_assertion": forged}).acquire_token_for_client([BROKER_DEFAULT])
        assert refused["error"] == "invalid_client" and refused["error_codes"] == [700027]
        unknown = jwt.encode({"iss": issuer, "sub": "someone-else", "aud": "api://AzureADTokenExchange",
                              "iat": now, "exp": now + 600}, key, algorithm="RS256", headers={"kid": "k1"})
        none = _daemon(entra, {"client_assertion": unknown}).acquire_token_for_client([BROKER_DEFAULT])
        assert none["error_codes"] == [70021]
    finally:
        server.stop()
