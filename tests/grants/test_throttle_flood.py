"""The failure throttle cannot be flushed (issue 14, finding 3), through the real Throttle.

The reproduced attack: with `[throttle]` on, 100,000 failures with random client ids from
5,000 addresses (20 each) over 55 seconds, after a victim client id and the attacker's own
address were locked. Locks must survive until their lockout ends, memory stays bounded, and an
IPv6 host cannot dodge its lock by moving inside its /64.
"""

from __future__ import annotations

import secrets

from service.grants.throttle import MAX_KEYS, Throttle, throttle_keys

T0 = 1_000_000.0
LIMIT = 20


def attempt(throttle: Throttle, keys: tuple[str, ...], now: float) -> bool:
    """What the endpoints do: refused while locked (not counted), else a failure is counted."""
    if throttle.check(keys, now) is not None:
        return False
    throttle.record_failure(keys, now)
    return True


def test_a_flood_of_random_client_ids_from_5000_addresses_lifts_no_lock():
    throttle = Throttle(max_failures=LIMIT, window=60, lockout=300)
    victim, attacker = throttle_keys("portal", "198.51.100.7"), ("ip:198.51.100.7",)
    for _ in range(LIMIT):
        attempt(throttle, victim, T0)
    assert throttle.check(victim, T0) == 300 and throttle.check(attacker, T0) == 300
    counted = 0
    addresses = [f"10.{a // 250}.{a % 250}.1" for a in range(5_000)]
    for n in range(100_000):                          # 5,000 addresses × 20, spread over 55 s
        now = T0 + 55 * n / 100_000
        counted += attempt(throttle, throttle_keys(secrets.token_hex(8), addresses[n // LIMIT]), now)
    end = T0 + 55
    assert counted == 100_000
    assert len(throttle) <= MAX_KEYS                   # memory stays bounded
    assert throttle.check(("client:portal",), end) is not None, "the victim's lock was flushed"
    assert throttle.check(attacker, end) is not None, "the attacker's lock was flushed"
    assert all(throttle.check((f"ip:{a}",), end) for a in addresses)   # every flooding address locked too
    assert throttle.check(("client:portal",), T0 + 300) is None  # ...until the lockout ends


def test_a_victim_counter_outlives_a_flood_of_one_failure_counters():
    throttle = Throttle(max_failures=LIMIT, window=600, lockout=300, max_keys=1_000)
    for _ in range(LIMIT - 1):
        throttle.record_failure(("client:portal",), T0)
    for n in range(5_000):
        throttle.record_failure((f"client:{secrets.token_hex(8)}",), T0 + 1 + n / 1_000)
    assert len(throttle) <= 1_000
    assert throttle.record_failure(("client:portal",), T0 + 10) == ["client:portal"]


def test_when_only_locks_remain_a_new_key_is_not_tracked_and_no_lock_is_dropped():
    throttle = Throttle(max_failures=1, window=60, lockout=300, max_keys=10)
    for n in range(10):
        assert throttle.record_failure((f"client:c{n}",), T0) == [f"client:c{n}"]
    assert throttle.record_failure(("client:new",), T0) == []
    assert len(throttle) == 10 and all(throttle.check((f"client:c{n}",), T0) for n in range(10))
    assert throttle.record_failure(("client:new",), T0 + 300) == ["client:new"]  # expired locks make room


def test_an_ipv6_host_is_counted_per_64_and_a_mapped_ipv4_as_ipv4():
    from service.grants.throttle import address_key
    assert address_key("2001:db8:1:2:aaaa::1") == address_key("2001:db8:1:2:ffff:1:2:3") == "2001:db8:1:2::/64"
    assert address_key("2001:db8:1:3::1") != address_key("2001:db8:1:2::1")
    assert address_key("::ffff:192.0.2.1") == "192.0.2.1" and address_key("192.0.2.1") == "192.0.2.1"
    throttle = Throttle(max_failures=LIMIT, window=60, lockout=60)
    for n in range(LIMIT):                              # a new address of the same /64 each time
        attempt(throttle, throttle_keys(f"guess-{n}", f"2001:db8:1:2::{n + 1:x}"), T0)
    assert throttle.check(throttle_keys("another", "2001:db8:1:2:dead:beef:0:1"), T0) == 60


def test_one_key_locked_again_and_again_keeps_memory_flat():
    throttle = Throttle(max_failures=2, window=60, lockout=10)
    for n in range(1_000):                             # locked, lockout over, locked again ...
        throttle.record_failure(("client:portal",), T0 + 20 * n)
        throttle.record_failure(("client:portal",), T0 + 20 * n)
    assert len(throttle) == 1 and len(throttle._expiry) <= 2
