"""The broker's own credential for OBO: a certificate, or a federated token file (workload identity)."""

from __future__ import annotations

import datetime as dt

import aiohttp
import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from structlog.testing import capture_logs

from emulators.entra import demo
from service.app import create_app, outgoing_ssl_context
from service.downstream.entra_credentials import client_credential
from service.errors import ConfigurationError
from service.settings import load_settings
from tests.obo.conftest import broker_toml, obo, obo_calls, portal_token

WORKLOAD_SUBJECT = "system:serviceaccount:tokenbroker:broker"
EXCHANGE_AUDIENCE = "api://AzureADTokenExchange"


def certificate_pem(common_name: str = "tokenbroker") -> tuple[bytes, bytes]:
    """(certificate PEM, certificate + unencrypted key PEM)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1)).sign(key, hashes.SHA256()))
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return cert_pem, cert_pem + key_pem


def workload_token(entra, subject: str = WORKLOAD_SUBJECT) -> str:
    """A token from the emulator's own issuer, as a workload identity platform would project it."""
    return entra.mint(resource=demo.BROKER_CLIENT_ID, app_only=True, version=2,
                      claims={"aud": EXCHANGE_AUDIENCE, "sub": subject})


def register_federated_credential(entra) -> None:
    entra.control("POST", f"apps/{demo.BROKER_CLIENT_ID}/federated-credentials",
                  {"issuer": f"{entra.url}/{entra.tenant_id}/v2.0", "subject": WORKLOAD_SUBJECT,
                   "audience": EXCHANGE_AUDIENCE})


async def test_a_certificate_credential_is_accepted_by_entra(obo_broker, entra, tmp_path):
    cert_pem, bundle = certificate_pem()
    entra.control("POST", f"apps/{demo.BROKER_CLIENT_ID}/certificates", {"pem": cert_pem.decode()})
    (tmp_path / "broker.pem").write_bytes(bundle)
    broker = await obo_broker(credential={"client_certificate": "broker.pem"})
    resp, body = await obo(broker, portal_token(entra))
    assert resp.status == 200, body
    [call] = obo_calls(entra)
    assert call["client_assertion_type"] == "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


async def test_an_unregistered_certificate_is_refused_as_a_502(obo_broker, entra, tmp_path):
    _, bundle = certificate_pem("stranger")
    (tmp_path / "broker.pem").write_bytes(bundle)
    broker = await obo_broker(credential={"client_certificate": "broker.pem"})
    with capture_logs() as logs:
        resp, body = await obo(broker, portal_token(entra))
    assert resp.status == 502, body
    [line] = [e for e in logs if e["event"] == "obo.credentials_refused"]
    assert (line["aadsts"], line["credential"]) == (700027, "client_certificate")


async def test_a_certificate_file_without_a_key_fails_the_start(aiohttp_client, entra, tmp_path):
    cert_pem, _ = certificate_pem()
    (tmp_path / "broker.pem").write_bytes(cert_pem)
    settings = load_settings(broker_toml(entra, tmp_path, credential={"client_certificate": "broker.pem"}),
                             {}, base_dir=tmp_path)
    with pytest.raises(ConfigurationError) as info:
        await aiohttp_client(create_app(settings))
    assert "entra.client_certificate" in str(info.value)


async def test_a_federated_token_file_is_accepted_and_read_again_on_each_use(obo_broker, entra, tmp_path):
    register_federated_credential(entra)
    token_file = tmp_path / "azure-identity-token"
    token_file.write_text(workload_token(entra))
    broker = await obo_broker(credential={"federated_token_file": str(token_file)})
    resp, body = await obo(broker, portal_token(entra))
    assert resp.status == 200, body
    [call] = obo_calls(entra)
    assert call["client_assertion_type"] == "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

    token_file.write_text(workload_token(entra))           # the platform rotated it: still fine
    resp, body = await obo(broker, portal_token(entra))
    assert resp.status == 200, body

    token_file.write_text(workload_token(entra, subject="system:serviceaccount:other:intruder"))
    with capture_logs() as logs:
        resp, body = await obo(broker, portal_token(entra))
    assert resp.status == 502, body                         # the new content was used
    [line] = [e for e in logs if e["event"] == "obo.credentials_refused"]
    assert (line["aadsts"], line["credential"]) == (70021, "federated_token_file")


async def test_a_vanished_federated_token_file_is_a_502_not_a_500(obo_broker, entra, tmp_path):
    token_file = tmp_path / "azure-identity-token"
    token_file.write_text("placeholder")
    broker = await obo_broker(credential={"federated_token_file": str(token_file)})
    token_file.unlink()
    with capture_logs() as logs:
        resp, body = await obo(broker, portal_token(entra))
    assert resp.status == 502, body
    assert any(e["event"] == "obo.credentials_unreadable" for e in logs)
    assert obo_calls(entra) == []


@pytest.mark.parametrize("kind", ["client_secret", "client_certificate", "federated_token_file"])
async def test_client_credential_gets_an_app_token_with_each_kind(entra, tmp_path, kind):
    """`client_credential` (shared with ACS): the broker app's own token, over our session."""
    if kind == "client_secret":
        credential = {"client_secret": demo.BROKER_SECRET}
    elif kind == "client_certificate":
        cert_pem, bundle = certificate_pem()
        entra.control("POST", f"apps/{demo.BROKER_CLIENT_ID}/certificates", {"pem": cert_pem.decode()})
        (tmp_path / "broker.pem").write_bytes(bundle)
        credential = {"client_certificate": "broker.pem"}
    else:
        register_federated_credential(entra)
        (tmp_path / "token").write_text(workload_token(entra))
        credential = {"federated_token_file": "token"}
    settings = load_settings(broker_toml(entra, tmp_path, credential=credential), {}, base_dir=tmp_path)
    connector = aiohttp.TCPConnector(ssl=outgoing_ssl_context(str(entra.ca_bundle)))
    async with aiohttp.ClientSession(connector=connector) as session:
        cred = client_credential(settings.entra, session)
        async with cred:
            token = await cred.get_token(f"{demo.WORKSPACE_APP_ID_URI}/.default")
        assert not session.closed                     # the app's session outlives the credential
    claims = jwt.decode(token.token, options={"verify_signature": False})
    assert claims["aud"] == demo.WORKSPACE_CLIENT_ID and claims["azp"] == demo.BROKER_CLIENT_ID
    [call] = entra.requests(grant_type="client_credentials")
    assert call["path"] == f"/{demo.TENANT_ID}/oauth2/v2.0/token"
