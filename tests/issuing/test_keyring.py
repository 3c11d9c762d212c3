"""Keyring: first start, persistence, rotation schedule, reload across instances (CLI, replicas)."""

from __future__ import annotations

import base64
import json
import stat

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from service.errors import ConfigurationError
from service.issuing import jwk
from service.issuing.keyring import Keyring, rotate_keys

T0 = 1_800_000_000.0
DELAY = 600
TTL = 900


@pytest.fixture(name="keys_dir")
def _keys_dir(tmp_path):
    return tmp_path / "state" / "keys"


def _files(keys_dir):
    return sorted(p for p in keys_dir.iterdir() if p.suffix == ".json")


def test_first_start_creates_private_dir_and_one_active_key_file(keys_dir):
    ring = Keyring.load_or_create(keys_dir, "ES256", now=T0)

    assert stat.S_IMODE(keys_dir.stat().st_mode) == 0o700
    [path] = _files(keys_dir)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    record = json.loads(path.read_text())
    assert set(record) == {"kid", "alg", "created_at", "active_from", "retire_after", "private_key_pem"}
    assert record["alg"] == "ES256" and record["retire_after"] is None
    assert record["active_from"] <= T0
    assert path.name == f"{record['kid']}.json"
    assert ring.signing_key(T0).kid == record["kid"]
    assert not [p for p in keys_dir.iterdir() if p.name.endswith(".tmp")]


def test_second_start_loads_the_same_key_instead_of_creating_one(keys_dir):
    first = Keyring.load_or_create(keys_dir, "ES256", now=T0)
    second = Keyring.load_or_create(keys_dir, "ES256", now=T0 + 3600)

    assert second.signing_key(T0 + 3600).kid == first.signing_key(T0).kid
    assert len(_files(keys_dir)) == 1


@pytest.mark.parametrize(("alg", "key_type"), [
    ("ES256", ec.EllipticCurvePrivateKey), ("RS256", rsa.RSAPrivateKey),
    ("EdDSA", ed25519.Ed25519PrivateKey)])
def test_kid_is_the_rfc7638_thumbprint_of_the_published_jwk(keys_dir, alg, key_type):
    ring = Keyring.load_or_create(keys_dir, alg, now=T0)
    key = ring.signing_key(T0)

    assert isinstance(key.private_key, key_type) and key.alg == alg
    [published] = ring.jwks(T0)["keys"]
    assert published["kid"] == key.kid == jwk.thumbprint(key.private_key.public_key())
    assert published["alg"] == alg and published["use"] == "sig"
    assert not {"d", "p", "q", "dp", "dq", "qi"} & set(published)


def test_rfc7638_example_thumbprint():
    # RFC 7638 §3.1: the example RSA key's thumbprint
    n = ("0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECP"
         "ebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY"
         "368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0f"
         "M4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw")
    pad = "=" * (-len(n) % 4)
    modulus = int.from_bytes(base64.urlsafe_b64decode(n + pad), "big")
    public = rsa.RSAPublicNumbers(65537, modulus).public_key()
    assert jwk.thumbprint(public) == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"


def test_rotation_prepublishes_the_next_key_and_signs_with_it_only_after_activation(keys_dir):
    ring = Keyring.load_or_create(keys_dir, "ES256", now=T0)
    old = ring.signing_key(T0).kid

    new = ring.rotate(T0 + 10, DELAY, max_token_ttl=TTL)

    assert new != old
    assert [k["kid"] for k in ring.jwks(T0 + 10)["keys"]] == [new, old]
    assert ring.signing_key(T0 + 10 + DELAY - 1).kid == old
    assert ring.signing_key(T0 + 10 + DELAY).kid == new
    new_file = json.loads((keys_dir / f"{new}.json").read_text())
    assert new_file["active_from"] == int(T0 + 10) + DELAY


def test_a_rotated_out_key_stays_published_until_its_last_token_expired(keys_dir):
    ring = Keyring.load_or_create(keys_dir, "ES256", now=T0)
    old = ring.signing_key(T0).kid
    new = ring.rotate(T0, DELAY, max_token_ttl=TTL)
    retire = json.loads((keys_dir / f"{old}.json").read_text())["retire_after"]

    assert retire == int(T0) + DELAY + TTL
    assert ring.public_key(old, now=retire - 1) is not None
    assert {k["kid"] for k in ring.jwks(retire - 1)["keys"]} == {old, new}
    assert ring.public_key(old, now=retire) is None
    assert [k["kid"] for k in ring.jwks(retire)["keys"]] == [new]


def test_the_next_rotation_deletes_files_of_retired_keys(keys_dir):
    ring = Keyring.load_or_create(keys_dir, "ES256", now=T0)
    first = ring.signing_key(T0).kid
    second = ring.rotate(T0, 0, max_token_ttl=TTL)
    later = T0 + TTL + 1

    third = ring.rotate(later, 0, max_token_ttl=TTL)

    assert {p.stem for p in _files(keys_dir)} == {second, third}
    assert first not in ring.kids
    assert ring.signing_key(later).kid == third


def test_rotation_with_no_delay_signs_with_the_new_key_at_once(keys_dir):
    ring = Keyring.load_or_create(keys_dir, "ES256", now=T0)
    new = ring.rotate(T0, 0, max_token_ttl=TTL)
    assert ring.signing_key(T0).kid == new


def test_a_pending_key_superseded_by_a_quicker_rotation_never_signs(keys_dir):
    ring = Keyring.load_or_create(keys_dir, "ES256", now=T0)
    slow = ring.rotate(T0, 10 * DELAY, max_token_ttl=TTL)
    quick = ring.rotate(T0, DELAY, max_token_ttl=TTL)

    for now in (T0 + DELAY, T0 + 10 * DELAY, T0 + 20 * DELAY):
        assert ring.signing_key(now).kid == quick
    assert slow not in {k["kid"] for k in ring.jwks(T0 + DELAY)["keys"]}


def test_changing_the_algorithm_takes_effect_through_a_rotation(keys_dir):
    Keyring.load_or_create(keys_dir, "ES256", now=T0)
    ring = Keyring.load_or_create(keys_dir, "RS256", now=T0)
    assert ring.signing_key(T0).alg == "ES256"  # the existing key keeps signing: no surprise switch

    new = ring.rotate(T0, DELAY, max_token_ttl=TTL)

    assert ring.signing_key(T0 + DELAY).alg == "RS256"
    assert {(k["kid"], k["alg"], k["kty"]) for k in ring.jwks(T0)["keys"]} >= {(new, "RS256", "RSA")}
    assert {k["alg"] for k in ring.jwks(T0)["keys"]} == {"ES256", "RS256"}


def test_reload_picks_up_a_rotation_done_by_another_process(keys_dir):
    server = Keyring.load_or_create(keys_dir, "ES256", now=T0)
    old = server.signing_key(T0).kid
    assert server.reload() is False

    new = rotate_keys(keys_dir, "ES256", now=T0 + 5, activation_delay=DELAY, max_token_ttl=TTL)

    assert new not in server.kids
    assert server.reload() is True
    assert server.reload() is False
    assert [k["kid"] for k in server.jwks(T0 + 5)["keys"]] == [new, old]
    assert server.signing_key(T0 + 5 + DELAY).kid == new
    assert server.public_key(new) is not None


def test_two_keyrings_on_one_dir_serve_identical_jwks(keys_dir):
    a = Keyring.load_or_create(keys_dir, "ES256", now=T0)
    b = Keyring.load_or_create(keys_dir, "ES256", now=T0)
    a.rotate(T0 + 1, DELAY, max_token_ttl=TTL)
    b.reload()

    for now in (T0 + 1, T0 + 1 + DELAY, T0 + 1 + DELAY + TTL):
        assert a.jwks(now) == b.jwks(now)
        assert a.signing_key(now).kid == b.signing_key(now).kid


def test_reload_keeps_the_last_good_keys_when_a_file_is_corrupt(keys_dir):
    ring = Keyring.load_or_create(keys_dir, "ES256", now=T0)
    before = ring.jwks(T0)
    (keys_dir / "broken.json").write_text("{not json")

    assert ring.reload() is False
    assert ring.jwks(T0) == before
    with pytest.raises(ConfigurationError) as err:
        Keyring.load_or_create(keys_dir, "ES256", now=T0)
    assert "issuer.keys_dir" in str(err.value)


def test_a_key_file_whose_kid_does_not_match_its_key_is_refused(keys_dir):
    Keyring.load_or_create(keys_dir, "ES256", now=T0)
    [path] = _files(keys_dir)
    record = json.loads(path.read_text())
    record["kid"] = "forged"
    (keys_dir / "forged.json").write_text(json.dumps(record))
    path.unlink()

    with pytest.raises(ConfigurationError):
        Keyring.load_or_create(keys_dir, "ES256", now=T0)


def test_a_key_of_the_wrong_type_for_its_alg_is_refused(keys_dir):
    Keyring.load_or_create(keys_dir, "ES256", now=T0)
    [path] = _files(keys_dir)
    record = json.loads(path.read_text())
    record["alg"] = "RS256"
    path.write_text(json.dumps(record))

    with pytest.raises(ConfigurationError):
        Keyring.load_or_create(keys_dir, "ES256", now=T0)


def test_an_unusable_keys_dir_is_a_configuration_error_not_an_ephemeral_key(tmp_path):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")  # a file where a directory should be: fails even as root

    with pytest.raises(ConfigurationError) as err:
        Keyring.load_or_create(blocker / "keys", "ES256", now=T0)
    assert "issuer.keys_dir" in str(err.value)


def test_relative_keys_dir_and_unknown_alg_are_refused(tmp_path):
    with pytest.raises(ConfigurationError):
        Keyring.load_or_create(tmp_path.relative_to(tmp_path.anchor), "ES256", now=T0)
    with pytest.raises(ConfigurationError):
        Keyring.load_or_create(tmp_path / "k", "HS256", now=T0)


@pytest.mark.parametrize("bad", [-1, 1.5, True, "600"])
def test_rotate_refuses_nonsense_durations(keys_dir, bad):
    ring = Keyring.load_or_create(keys_dir, "ES256", now=T0)
    with pytest.raises(ValueError):
        ring.rotate(T0, bad, max_token_ttl=TTL)
    with pytest.raises(ValueError):
        ring.rotate(T0, DELAY, max_token_ttl=bad)
    assert len(_files(keys_dir)) == 1
