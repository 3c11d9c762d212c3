"""Configuration rules that keep the issuer routing unambiguous: one issuer URL, one trusted issuer."""

from __future__ import annotations

import pytest

from service.errors import ConfigurationError
from service.settings import load_settings

ISS = "https://idp.review.example"
AUD = "https://broker.example"


def _issuers_toml(*entries: tuple[str, str]) -> str:
    out = '[server]\npublic_url = "https://broker.example"\n'
    for name, iss in entries:
        out += (f'\n[[trusted_issuers]]\nname = "{name}"\nissuer = "{iss}"\n'
                f'secret = "{"s" * 40}"\naudiences = ["{AUD}"]\nalgorithms = ["HS256"]\n')
    return out


def test_two_trusted_issuers_with_the_same_issuer_url_are_a_configuration_error(tmp_path):
    """The unverified `iss` routes a token to exactly one validator: a second entry with the
    same `issuer` would silently shadow the first (its keys, audiences, replay_check, scope_map)."""
    with pytest.raises(ConfigurationError) as caught:
        load_settings(_issuers_toml(("partner-a", ISS), ("partner-b", ISS)), {}, base_dir=tmp_path)
    assert any(p.startswith("trusted_issuers[partner-b].issuer:") for p in caught.value.problems), \
        caught.value.problems


def test_a_trusted_issuer_may_not_claim_the_brokers_own_issuer(tmp_path):
    with pytest.raises(ConfigurationError) as caught:
        load_settings(_issuers_toml(("partner", "https://broker.example")), {}, base_dir=tmp_path)
    assert any(p.startswith("trusted_issuers[partner].issuer:") for p in caught.value.problems), \
        caught.value.problems
