"""strict_json_object's orjson fast path changes nothing about what is refused or accepted."""

from __future__ import annotations

import json

import pytest

from service.errors import TokenInvalid
from service.validation.jwt_checks import strict_json_object

ACCEPTED = [b'{"a":1,"b":"x","c":[1,2,{"d":null}],"e":true,"f":1.5}', '{"name":"Zoë"}'.encode(),
            b'{"a":"\\u00e9","b":1e5,"c":-0}', b'{ "spaced" : 1 }', b'{"big":123456789012345678901234567890}',
            b'{"esc":"\\/\\n"}']
REFUSED = [b'{"a":1,"a":2}', b'{"a":{"b":1,"b":2}}', b'{"a":[{"c":1,"c":1}]}', b'{"a":NaN}',
           b'{"a":Infinity}', b'{"a":"\\ud800"}', b'{"a":"\xff"}', b'[1]', b'"s"', b'{"a":1', b'']


@pytest.mark.parametrize("raw", ACCEPTED)
def test_accepted_objects_parse_to_what_the_standard_library_reads(raw):
    assert strict_json_object(raw, "payload") == json.loads(raw)


@pytest.mark.parametrize("raw", REFUSED)
def test_duplicates_at_any_depth_and_non_json_are_refused_as_malformed(raw):
    with pytest.raises(TokenInvalid) as err:
        strict_json_object(raw, "payload")
    assert err.value.reason == "malformed"
