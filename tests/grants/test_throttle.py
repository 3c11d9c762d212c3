"""The brute-force failure counter (service.grants.throttle): windows, lockouts, bounds, what counts."""

from __future__ import annotations

import base64

import pytest

from service.errors import (
    InvalidClient,
    InvalidGrant,
    InvalidRequest,
    InvalidScope,
    InvalidTarget,
    TooManyAttempts,
    UnauthorizedClient,
    UnsupportedGrantType,
)
from service.grants.throttle import Throttle, claimed_client_id, counts_as_failure, throttle_keys
from service.settings import ConfigurationError, ThrottleSettings, load_settings

T0 = 1_000_000.0
KEYS = ("client:portal", "ip:127.0.0.1")


def fail(throttle: Throttle, keys, times: int, now: float = T0) -> list[str]:
    locked: list[str] = []
    for _ in range(times):
        locked += throttle.record_failure(keys, now)
    return locked


def test_a_key_locks_at_max_failures_and_says_how_long():
    t = Throttle(max_failures=3, window=60, lockout=30)
    assert fail(t, KEYS, 2) == [] and t.check(KEYS, T0) is None
    assert fail(t, KEYS, 1) == list(KEYS), "the third failure locks both keys, once"
    assert t.check(KEYS, T0) == 30
    assert t.check(("client:portal",), T0 + 10.5) == 20, "rounded up"
    assert t.record_failure(KEYS, T0 + 1) == [], "failures while locked neither count nor relock"


def test_the_lock_expires_after_lockout_and_counting_starts_afresh():
    t = Throttle(max_failures=2, window=60, lockout=30)
    fail(t, KEYS, 2)
    assert t.check(KEYS, T0 + 29.9) == 1
    assert t.check(KEYS, T0 + 30) is None
    assert fail(t, KEYS, 1, T0 + 31) == [] and t.check(KEYS, T0 + 31) is None
    assert fail(t, KEYS, 1, T0 + 32) == list(KEYS)


def test_failures_older_than_the_window_do_not_count():
    t = Throttle(max_failures=3, window=60, lockout=30)
    fail(t, KEYS, 2, T0)
    assert fail(t, KEYS, 1, T0 + 60) == [] and t.check(KEYS, T0 + 60) is None
    assert fail(t, KEYS, 2, T0 + 61) == list(KEYS), "the window slides: 3 failures within 60 s"


def test_keys_are_counted_separately():
    t = Throttle(max_failures=2, window=60, lockout=30)
    fail(t, ("client:portal", "ip:10.0.0.1"), 1)
    fail(t, ("client:portal", "ip:10.0.0.2"), 1)
    assert t.check(("client:portal",), T0) == 30
    assert t.check(("ip:10.0.0.1",), T0) is None and t.check(("ip:10.0.0.2",), T0) is None
    assert t.check(("client:dashboard", "ip:10.0.0.3"), T0) is None
    assert t.check(("client:dashboard", "ip:10.0.0.3", "client:portal"), T0) == 30, "any locked key locks"


def test_max_failures_zero_disables():
    t = Throttle(max_failures=0, window=60, lockout=30)
    assert fail(t, KEYS, 1000) == [] and t.check(KEYS, T0) is None and len(t) == 0


def test_memory_is_bounded_least_recently_touched_counter_first_never_a_lock():
    t = Throttle(max_failures=2, window=60, lockout=30, max_keys=3)
    fail(t, ("client:a",), 2)            # locked
    fail(t, ("client:b",), 1)
    fail(t, ("client:c",), 1)
    fail(t, ("client:b",), 1)            # b locked too
    fail(t, ("client:d",), 1)            # the table is full: c (an unlocked counter) goes
    assert len(t) == 3
    assert t.check(("client:a",), T0) == 30, "a lock is never evicted before its lockout ends"
    assert t.check(("client:b",), T0) == 30
    fail(t, ("client:c",), 1)            # c starts again from zero: one failure, not locked
    assert t.check(("client:c",), T0) is None


def test_huge_claimed_ids_cost_no_more_memory_than_short_ones():
    t = Throttle(max_failures=2, window=60, lockout=30)
    fail(t, ("client:" + "x" * 60_000,), 2)
    assert all(len(k) < 64 for k in t._locked)
    assert t.check(("client:" + "x" * 60_000,), T0) == 30


@pytest.mark.parametrize("exc", [
    InvalidClient(reason="bad_secret"), InvalidClient(reason="assertion_signature"),
    InvalidGrant(reason="unknown_refresh_token"), InvalidRequest(reason="subject_signature"),
    InvalidRequest(reason="subject_expired"), InvalidRequest(reason="subject_replayed"),
    InvalidRequest(reason="actor_audience"), InvalidRequest(reason="subject_untrusted_issuer"),
])
def test_guessing_counts(exc):
    assert counts_as_failure(exc)


@pytest.mark.parametrize("exc", [
    InvalidScope(reason="scope_not_allowed"), InvalidTarget(reason="audience_not_allowed"),
    UnauthorizedClient(reason="grant_type_not_allowed"), UnsupportedGrantType(),
    InvalidRequest(reason="missing_grant_type"), InvalidRequest(reason="subject_issuer_not_allowed"),
    InvalidGrant(reason="refresh_tokens_disabled"), TooManyAttempts(retry_after=5),
])
def test_policy_answers_do_not_count(exc):
    assert not counts_as_failure(exc)


def test_the_claimed_client_id_comes_from_basic_form_or_assertion():
    basic = "Basic " + base64.b64encode(b"port%61l:secret").decode()
    assert claimed_client_id(basic, {}) == "portal"
    assert claimed_client_id(None, {"client_id": ["portal"], "client_secret": ["x"]}) == "portal"
    assertion = "e30." + base64.urlsafe_b64encode(b'{"iss":"svc","sub":"svc"}').decode().rstrip("=") + ".c2ln"
    form = {"client_assertion": [assertion],
            "client_assertion_type": ["urn:ietf:params:oauth:client-assertion-type:jwt-bearer"]}
    assert claimed_client_id(None, form) == "svc"
    assert claimed_client_id("Basic !!!", {"client_id": ["portal"]}) == "portal", "unparsable: the form's id"
    assert claimed_client_id(None, {}) == ""


def test_keys_name_the_client_and_the_address():
    assert throttle_keys("portal", "127.0.0.1") == ("client:portal", "ip:127.0.0.1")
    assert throttle_keys("", None) == ()


def test_too_many_attempts_renders_429_with_retry_after():
    status, body, headers = TooManyAttempts(retry_after=42).render()
    assert status == 429 and b'"too_many_attempts"' in body and headers["Retry-After"] == "42"


# --- [throttle] settings ------------------------------------------------------------------

def test_throttle_settings_default_and_configure(tmp_path):
    assert load_settings("", {}, base_dir=tmp_path).throttle == ThrottleSettings(0, 60, 60)  # off by default
    s = load_settings("[throttle]\nmax_failures = 5\nwindow = 10\nlockout = 900\n",
                      {"TOKENBROKER_THROTTLE__LOCKOUT": "120"}, base_dir=tmp_path)
    assert s.throttle == ThrottleSettings(5, 10, 120)
    t = Throttle.from_settings(s.throttle)
    assert (t.max_failures, t.window, t.lockout) == (5, 10, 120)


def test_throttle_settings_are_checked(tmp_path):
    with pytest.raises(ConfigurationError) as e:
        load_settings('[throttle]\nmax_failures = -1\nwindow = 0\nlockout = "1m"\nburst = 3\n', {},
                      base_dir=tmp_path)
    problems = "\n".join(e.value.problems)
    for key in ("throttle.max_failures", "throttle.window", "throttle.lockout", "throttle.burst"):
        assert key in problems
