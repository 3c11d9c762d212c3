"""The hot path's cheaper checks accept and refuse exactly what the rules say (issue 12)."""

from __future__ import annotations

import base64
import random
import re
import string
from collections.abc import Callable
from urllib.parse import parse_qsl

import pytest

from service.errors import TokenInvalid
from service.grants.base import _scope_token
from service.grants.throttle import address_key
from service.http.bearer import is_token68
from service.http.forms import _CONTROL, MAX_FIELDS, parse_pairs
from service.validation.jwt_checks import _B64_VALUE, b64url_decode

#: RFC 6750 §2.1 b64token, the reference the fast check replaced
TOKEN68 = re.compile(r"[A-Za-z0-9\-._~+/]+=*")


@pytest.mark.parametrize("token", [
    "abc", "a==", "A-._~+/9", "eyJhbGciOi.eyJzdWIi.c2ln", "x" * 4000 + "=",
    "", "=", "==", "a=b", "a b", "a\tb", "a\nb", "ab\u00e9", "a,b", "a;b", "a\x00", "é", "a=\u00e9",
    "tok\u0663en", "a==b==", " a", "a ",
])
def test_token68_agrees_with_the_rfc_grammar(token: str) -> None:
    assert is_token68(token) is bool(TOKEN68.fullmatch(token))


def test_token68_every_single_character() -> None:
    for code in range(0x300):
        c = chr(code)
        assert is_token68(c) is bool(TOKEN68.fullmatch(c)), repr(c)
        assert is_token68("a" + c) is bool(TOKEN68.fullmatch("a" + c)), repr(c)


def test_form_field_names_control_characters() -> None:
    for code in range(0x80):
        c = chr(code)
        expected = code < 0x20 and c != "\t"
        assert bool(_CONTROL(f"name{c}x")) is expected, repr(c)
    assert not _CONTROL(string.printable.replace("\n", "").replace("\r", "").replace("\x0b", "").replace("\x0c", ""))


def test_address_key_is_memoised_and_still_right() -> None:
    assert address_key("2001:db8:1:2:aaaa::1") == "2001:db8:1:2::/64"
    assert address_key("2001:db8:1:2:aaaa::1") == "2001:db8:1:2::/64"   # from the memo
    assert address_key("::ffff:192.0.2.7") == "192.0.2.7"
    assert address_key("not an address") == "not an address"
    assert address_key.cache_info().hits >= 1


FORMS = ["a=1&b=2", "a=1&&b=", "a", "=x", "a+b=c+d", "a%20b=%E2%82%AC", "a=1&a=2", "", "&", "&&a=1&",
         "a=b=c", "+=+", "%2B=%2b", "a;b=c", "x=%zz", "x=%", "x=%4", "%7e=%7E", "a=1&" * (MAX_FIELDS - 1),
         "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Atoken-exchange&subject_token=eyJ.eyJ.sig",
         "audience=a%2Bb+c&scope=read+write&scope=read%20write", "audience=" + "%41" * 300]


@pytest.mark.parametrize("text", FORMS)
def test_form_pairs_agree_with_parse_qsl(text: str) -> None:
    assert parse_pairs(text) == parse_qsl(text, keep_blank_values=True, errors="strict", max_num_fields=MAX_FIELDS)


@pytest.mark.parametrize("text", ["x=%FF", "%C3%28=1", "a=%E2%82", "a=1&" * MAX_FIELDS, "scope=%FF", "scope=%FF"])
def test_form_pairs_refuse_what_parse_qsl_refuses(text: str) -> None:
    with pytest.raises((ValueError, UnicodeDecodeError)):
        parse_qsl(text, keep_blank_values=True, errors="strict", max_num_fields=MAX_FIELDS)
    with pytest.raises((ValueError, UnicodeDecodeError)):
        parse_pairs(text)


def test_scope_tokens_every_single_character() -> None:
    """RFC 6749 §3.3 scope-token, against the per-character reference it replaced."""
    def reference(s: str) -> bool:
        return bool(s) and all(c == "\x21" or "\x23" <= c <= "\x5b" or "\x5d" <= c <= "\x7e" for c in s)
    for code in range(0x300):
        for s in (chr(code), "a" + chr(code), chr(code) + "b"):
            assert _scope_token(s) is reference(s), repr(s)


def _b64url_reference(segment: str) -> bytes:
    """The regex + lenient-decode + canonical-bits check that b64url_decode replaced."""
    if not re.fullmatch(r"[A-Za-z0-9_-]*", segment) or len(segment) % 4 == 1:
        raise TokenInvalid("malformed", "bad base64url")
    raw = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    rem = len(segment) % 4
    if rem and _B64_VALUE[segment[-1]] & (0x0F if rem == 2 else 0x03):
        raise TokenInvalid("malformed", "non-canonical base64url")
    return raw


def _outcome(fn: Callable[[str], bytes], segment: str) -> object:
    try:
        return fn(segment)
    except TokenInvalid as e:
        return (e.reason, e.detail)


def test_b64url_decode_agrees_with_the_reference_on_random_segments() -> None:
    alphabet = string.ascii_letters + string.digits + "-_"
    hostile = alphabet + "+/= \n\t.\x00é\u0663"
    rnd = random.Random(12)
    for _ in range(50_000):
        chars = hostile if rnd.random() < 0.3 else alphabet
        segment = "".join(rnd.choice(chars) for _ in range(rnd.randint(0, 12)))
        assert _outcome(b64url_decode, segment) == _outcome(_b64url_reference, segment), repr(segment)
