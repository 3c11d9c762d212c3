"""Client authentication: one method, form-decoded Basic credentials, hashed secrets."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

import pytest

from service.errors import InvalidClient
from service.grants.client_auth import authenticate, extract, secret_matches
from service.settings import ClientSettings, Settings, load_settings

SETTINGS = load_settings(f"""
[[clients]]
client_id = "a b:c"
client_secret = "s3cr=t&+:%-0123456789abcdefghijk"
[[clients]]
client_id = "hashed"
client_secret = "sha256:{hashlib.sha256(b'pw').hexdigest()}"
""", {}, base_dir=Path.cwd())
# a client with no secret (e.g. private_key_jwt only) never passes secret authentication
SETTINGS = Settings(clients=(*SETTINGS.clients, ClientSettings(client_id="keyonly")))


def basic(raw: str) -> str:
    return "Basic " + base64.b64encode(raw.encode()).decode()


def test_basic_credentials_are_form_decoded_per_rfc6749():
    creds = extract(basic("a+b%3Ac:s3cr%3Dt%26%2B%3A%25-0123456789abcdefghijk"), {})
    assert (creds.client_id, creds.secret, creds.basic) == ("a b:c", "s3cr=t&+:%-0123456789abcdefghijk", True)
    assert authenticate(SETTINGS, creds).client_id == "a b:c"


def test_post_credentials_work():
    creds = extract(None, {"client_id": ["hashed"], "client_secret": ["pw"]})
    assert authenticate(SETTINGS, creds).client_id == "hashed"


@pytest.mark.parametrize("header, form, basic_flag", [
    (None, {}, False),
    (None, {"client_id": ["hashed"]}, False),
    (basic("hashed:pw"), {"client_secret": ["pw"]}, True),
    (basic("hashed:pw"), {"client_id": ["other"]}, True),
    (None, {"client_id": ["hashed"], "client_secret": ["pw"], "client_assertion": ["x"]}, False),
    (None, {"client_id": ["hashed"], "client_secret": ["pw", "pw"]}, False),
    ("Bearer abc", {}, True),
    (basic("no-colon"), {}, True),
    ("Basic !!!", {}, True),
])
def test_malformed_or_multiple_methods_are_invalid_client(header, form, basic_flag):
    with pytest.raises(InvalidClient) as caught:
        extract(header, form)
    assert ("WWW-Authenticate" in caught.value.headers()) is basic_flag


@pytest.mark.parametrize("client_id, secret", [("hashed", "nope"), ("unknown", "pw"), ("keyonly", ""),
                                               ("hashed", "sha256:" + hashlib.sha256(b"pw").hexdigest())])
def test_wrong_secrets_unknown_clients_and_secretless_clients_fail(client_id, secret):
    with pytest.raises(InvalidClient):
        authenticate(SETTINGS, extract(None, {"client_id": [client_id], "client_secret": [secret or "x"]}))


def test_secret_matching():
    assert secret_matches("pw", "pw") and not secret_matches("pw", "pW")
    assert secret_matches("pw", "sha256:" + hashlib.sha256(b"pw").hexdigest().upper())
