"""private_key_jwt (RFC 7523 §2.2): every rule of the assertion, checked through ClientAuthenticator
on a real memory store, with keys and assertions made by PyJWT/cryptography (tests/support)."""

from __future__ import annotations

import base64
import json
import time

import jwt
import pytest

from service.errors import ConfigurationError, InvalidClient
from service.grants.client_assertion import ClientAssertions, ClientAuthenticator, load_client_keys
from service.settings import load_settings
from service.storage import open_store
from service.storage.jti_records import ReplayCache
from tests.support.client_keys import ASSERTION_TYPE, ClientKeys, generate

ISSUER = "https://broker.example"


@pytest.fixture(name="keys")
def _keys(tmp_path) -> ClientKeys:
    return ClientKeys.create(tmp_path, "signer", ISSUER, kinds=("RSA", "EC", "OKP"))


@pytest.fixture(name="auth")
async def _auth(tmp_path, keys):
    settings = load_settings(f"""
[server]
public_url = "{ISSUER}"
[[clients]]
client_id = "signer"
jwks = "{keys.path}"
[[clients]]
client_id = "secretive"
client_secret = "s3cret-0123456789abcdefghijklmno"
""", {}, base_dir=tmp_path)
    store = open_store("memory://", dev=True)
    assertions = ClientAssertions(load_client_keys(settings), issuer_url=ISSUER, replay=ReplayCache(store))
    yield ClientAuthenticator(settings, assertions)
    await store.close()


async def authenticate(auth, form, header=None):
    grouped: dict[str, list[str]] = {}
    for k, v in form:
        grouped.setdefault(k, []).append(v)
    return await auth.authenticate(header, grouped, now=time.time())


async def refused(auth, form, header=None) -> str:
    with pytest.raises(InvalidClient) as caught:
        await authenticate(auth, form, header)
    assert caught.value.status == 401 and caught.value.error == "invalid_client"
    return caught.value.reason


@pytest.mark.parametrize("kid, alg", [("signer-rsa", "RS256"), ("signer-rsa", "PS256"), ("signer-ec", "ES256"),
                                      ("signer-okp", "EdDSA")])
async def test_an_assertion_signed_with_a_registered_key_authenticates_the_client(auth, keys, kid, alg):
    client = await authenticate(auth, keys.form(keys.assertion(kid, alg=alg)))
    assert client.client_id == "signer"


async def test_a_client_id_parameter_must_name_the_same_client(auth, keys):
    assert (await authenticate(auth, keys.form(client_id="signer"))).client_id == "signer"
    assert await refused(auth, keys.form(client_id="secretive")) == "client_id_mismatch"


async def test_a_replayed_assertion_is_refused(auth, keys):
    assertion = keys.assertion()
    await authenticate(auth, keys.form(assertion))
    assert await refused(auth, keys.form(assertion)) == "assertion_replayed"


async def test_a_refused_assertion_does_not_use_up_its_jti(auth, keys):
    await refused(auth, keys.form(keys.assertion(aud=f"{ISSUER}/oauth2/token", jti="same-jti")))
    assert (await authenticate(auth, keys.form(keys.assertion(jti="same-jti")))).client_id == "signer"


@pytest.mark.parametrize("aud", [f"{ISSUER}/oauth2/token", [ISSUER], [ISSUER, "https://other.example"],
                                 f"{ISSUER}/", "https://other.example", None])
async def test_the_audience_must_be_exactly_the_issuer_as_a_single_string(auth, keys, aud):
    assert await refused(auth, keys.form(keys.assertion(aud=aud))) == "assertion_audience"


async def test_an_expired_assertion_is_refused(auth, keys):
    now = int(time.time())
    assertion = keys.assertion(iat=now - 200, exp=now - 100)
    assert await refused(auth, keys.form(assertion)) == "assertion_expired"


@pytest.mark.parametrize("iat_offset, exp_offset", [(0, 301), (-100, 250), (20, 310)])
async def test_an_assertion_living_longer_than_five_minutes_is_refused(auth, keys, iat_offset, exp_offset):
    """exp - iat > 300, or exp - now > 300 (an iat slightly in the future, within the skew)."""
    now = int(time.time())
    assertion = keys.assertion(iat=now + iat_offset, exp=now + exp_offset)
    assert await refused(auth, keys.form(assertion)) == "assertion_too_long_lived"


@pytest.mark.parametrize("claim", ["jti", "iat", "exp", "iss"])
async def test_an_assertion_missing_a_required_claim_is_refused(auth, keys, claim):
    assert await refused(auth, keys.form(keys.assertion(**{claim: None}))) == "assertion_claims"


@pytest.mark.parametrize("claims", [{"iss": "secretive"}, {"iss": "someone"}])
async def test_the_issuer_must_be_the_client(auth, keys, claims):
    assert await refused(auth, keys.form(keys.assertion(**claims))) == "assertion_wrong_iss_or_sub"


async def test_the_subject_names_the_client_so_another_subject_is_refused(auth, keys):
    # sub picks the client; "secretive" has no keys, an unknown sub is no client at all
    assert await refused(auth, keys.form(keys.assertion(sub="secretive"))) == "assertion_client_has_no_jwks"
    assert await refused(auth, keys.form(keys.assertion(sub="nobody"))) == "assertion_unknown_client"


async def test_an_unknown_kid_or_a_missing_kid_is_refused(auth, keys):
    assert await refused(auth, keys.form(keys.assertion("signer-rsa", key=keys.keys["signer-rsa"],
                                                        headers={"kid": "nope"}))) == "assertion_unknown_kid"
    no_kid = jwt.encode({"iss": "signer", "sub": "signer", "aud": ISSUER, "iat": int(time.time()),
                         "exp": int(time.time()) + 60, "jti": "x"}, keys.keys["signer-ec"], algorithm="ES256")
    assert await refused(auth, keys.form(no_kid)) == "assertion_unknown_kid"


async def test_an_assertion_signed_by_another_key_under_a_registered_kid_is_refused(auth, keys):
    forged = keys.assertion("signer-ec", key=generate("EC"))
    assert await refused(auth, keys.form(forged)) == "assertion_signature"


async def test_the_algorithm_is_pinned_to_the_key_type(auth, keys):
    # an EC signature presented under the RSA key's kid
    mixed = keys.assertion("signer-ec", headers={"kid": "signer-rsa"})
    assert await refused(auth, keys.form(mixed)) == "assertion_alg"


def _unsigned(header: dict, claims: dict) -> str:
    enc = [base64.urlsafe_b64encode(json.dumps(p).encode()).rstrip(b"=").decode() for p in (header, claims)]
    return f"{enc[0]}.{enc[1]}."


@pytest.mark.parametrize("alg", ["none", "HS256", "RS512", "ES384"])
async def test_algorithms_outside_the_allow_list_are_refused(auth, keys, alg):
    now = int(time.time())
    token = _unsigned({"alg": alg, "kid": "signer-rsa"},
                      {"iss": "signer", "sub": "signer", "aud": ISSUER, "iat": now, "exp": now + 60, "jti": alg})
    assert await refused(auth, keys.form(token)) == "assertion_alg"


async def test_two_methods_at_once_are_refused(auth, keys):
    basic = "Basic " + base64.b64encode(b"signer:x").decode()
    assert await refused(auth, keys.form(), basic) == "multiple_client_authentication"
    assert await refused(auth, keys.form(client_secret="x")) == "multiple_client_authentication"


@pytest.mark.parametrize("form", [
    [("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:saml2-bearer"),
     ("client_assertion", "a.b.c")],
    [("client_assertion_type", ASSERTION_TYPE)],
    [("client_assertion", "not-a-jwt")],
    [("client_assertion_type", ASSERTION_TYPE), ("client_assertion", "not-a-jwt")],
])
async def test_a_malformed_assertion_request_is_refused(auth, form):
    await refused(auth, form)


async def test_a_keyed_client_cannot_use_a_secret_and_a_secret_client_cannot_use_a_key(auth, keys, tmp_path):
    await refused(auth, [("client_id", "signer"), ("client_secret", "anything")])
    other = ClientKeys.create(tmp_path, "secretive", ISSUER, kinds=("EC",))
    assert await refused(auth, other.form()) == "assertion_client_has_no_jwks"
    assert (await authenticate(auth, [("client_id", "secretive"), ("client_secret", "s3cret-0123456789abcdefghijklmno")])).client_id \
        == "secretive"


def test_an_unusable_jwks_file_is_a_configuration_error(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"keys": [{"kty": "oct", "k": "c2VjcmV0", "kid": "h"}]}')
    settings = load_settings(f'[[clients]]\nclient_id = "c"\njwks = "{bad}"\n', {}, base_dir=tmp_path)
    with pytest.raises(ConfigurationError) as caught:
        load_client_keys(settings)
    assert "clients[0].jwks" in str(caught.value.problems)
