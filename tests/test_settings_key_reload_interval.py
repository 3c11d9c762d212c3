"""`[issuer] key_reload_interval`: how often keys_dir is re-read (default 5 s, 1..3600)."""

from __future__ import annotations

import pytest

from service.errors import ConfigurationError
from service.settings import load_settings

BASE = '[issuer]\nkeys_dir = "keys"\n'


def test_the_default_is_five_seconds(tmp_path):
    assert load_settings(BASE, {}, base_dir=tmp_path).issuer.key_reload_interval == 5


def test_file_and_environment_set_it(tmp_path):
    assert load_settings(BASE + "key_reload_interval = 1\n", {}, base_dir=tmp_path).issuer.key_reload_interval == 1
    env = {"TOKENBROKER_ISSUER__KEY_RELOAD_INTERVAL": "30"}
    assert load_settings(BASE, env, base_dir=tmp_path).issuer.key_reload_interval == 30


@pytest.mark.parametrize("value", ["0", "3601", '"5"'])
def test_out_of_range_or_not_an_integer_is_a_configuration_error(tmp_path, value):
    with pytest.raises(ConfigurationError) as caught:
        load_settings(BASE + f"key_reload_interval = {value}\n", {}, base_dir=tmp_path)
    assert any(p.startswith("issuer.key_reload_interval:") for p in caught.value.problems), caught.value.problems
