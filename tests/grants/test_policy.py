"""The policy matrix, both ways (ZITADEL's CVE: test what is refused as well as what is allowed)."""

from __future__ import annotations

import pytest

from service.errors import InvalidRequest, InvalidScope, InvalidTarget, UnauthorizedClient
from service.grants.base import REFRESH_TOKEN, TOKEN_EXCHANGE
from service.grants.policy import PolicyInput, enforce, evaluate, translate_scopes
from service.settings import ClientSettings

CLIENT = ClientSettings(client_id="portal", grant_types=(TOKEN_EXCHANGE,), allowed_issuers=("entra", "self"),
                        allowed_audiences=("dashboard", "reports"), allowed_scopes=("read", "write"))


def inp(**kw) -> PolicyInput:
    values = dict(client=CLIENT, grant_type=TOKEN_EXCHANGE, issuer="entra", audiences=("dashboard",),
                  requested_scopes=None, subject_scopes=frozenset({"read"}))
    values.update(kw)
    return PolicyInput(**values)


@pytest.mark.parametrize("kw, rule, error", [
    ({"grant_type": REFRESH_TOKEN}, "grant_type", UnauthorizedClient),
    ({"issuer": "partner"}, "issuer", InvalidRequest),
    ({"audiences": ()}, "audience", InvalidTarget),
    ({"audiences": ("dashboard", "archive")}, "audience", InvalidTarget),
    ({"requested_scopes": ("admin",)}, "scope.client", InvalidScope),
    ({"requested_scopes": ("write",)}, "scope.subject", InvalidScope),
])
def test_each_denial_names_its_rule_and_maps_to_its_error(kw, rule, error):
    decision = evaluate(inp(**kw))
    assert not decision.allowed and decision.rule == rule
    with pytest.raises(error) as caught:
        enforce(decision)
    assert caught.value.reason == decision.reason


def test_without_a_requested_scope_the_intersection_is_issued_in_client_order():
    decision = evaluate(inp(subject_scopes=frozenset({"write", "read", "admin"})))
    assert decision.allowed and decision.scopes == ("read", "write")


def test_a_requested_scope_within_both_is_issued_exactly():
    assert evaluate(inp(requested_scopes=("read",))).scopes == ("read",)


def test_before_the_subject_is_known_only_the_client_bounds_the_scope():
    assert evaluate(inp(subject_scopes=None, requested_scopes=("write",))).allowed


def test_no_subject_scope_in_common_means_no_scope_never_more():
    assert evaluate(inp(subject_scopes=frozenset({"admin"}))).scopes == ()


def test_scope_map_translates_and_drops_unmapped_scopes():
    mapping = {"user_impersonation": ("read", "write")}
    assert translate_scopes({"user_impersonation", "openid"}, mapping) == {"read", "write"}
    assert translate_scopes({"openid"}, {}) == {"openid"}


def test_deny_by_default_for_an_empty_client():
    bare = ClientSettings(client_id="bare", grant_types=(TOKEN_EXCHANGE,))
    assert evaluate(inp(client=bare)).rule == "issuer"
    assert evaluate(inp(client=ClientSettings(client_id="b", grant_types=(TOKEN_EXCHANGE,),
                                              allowed_issuers=("entra",)))).rule == "audience"
