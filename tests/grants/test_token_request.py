"""Parsing of token requests: single-valued parameters, repeated targets, empty values, scope syntax."""

from __future__ import annotations

import pytest

from service.errors import InvalidRequest
from service.grants.base import TokenRequest, scope_for_response
from service.settings import ClientSettings

CLIENT = ClientSettings(client_id="c")


def test_audience_and_resource_repeat_and_merge_without_duplicates():
    req = TokenRequest.from_form({"grant_type": ["g"], "audience": ["a", "b"], "resource": ["b", "c"]}, CLIENT)
    assert req.targets == ("a", "b", "c")


def test_any_other_repeated_parameter_is_invalid_request():
    with pytest.raises(InvalidRequest):
        TokenRequest.from_form({"grant_type": ["g"], "subject_token": ["x", "y"]}, CLIENT)


def test_an_empty_value_counts_as_omitted():
    req = TokenRequest.from_form({"grant_type": ["g"], "scope": [""], "actor_token": [""]}, CLIENT)
    assert req.get("scope") is None and req.requested_scopes() is None and req.get("actor_token") is None


@pytest.mark.parametrize("scope", ['a "b"', "a\\b", "   "])
def test_a_malformed_scope_is_invalid_request(scope):
    with pytest.raises(InvalidRequest):
        TokenRequest.from_form({"scope": [scope]}, CLIENT).requested_scopes()


def test_scope_is_returned_only_when_it_differs_from_the_request():
    assert scope_for_response(("read",), ("read",)) is None
    assert scope_for_response(None, ("read",)) == "read"
    assert scope_for_response(None, ()) is None
