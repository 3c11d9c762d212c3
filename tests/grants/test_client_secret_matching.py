"""Client-secret comparison is exact for plain and sha256-hashed secrets."""

from __future__ import annotations

import hashlib

import pytest

from service.grants.client_auth import secret_matches


@pytest.mark.parametrize(("presented", "configured", "expected"), [
    ("s3cret", "s3cret", True),
    ("s3cret", "s3cret-and-more", False),            # a prefix of the secret
    ("s3cret-and-more", "s3cret", False),            # the secret as a prefix
    ("", "s3cret", False),
    ("s3cret", "", False),
    ("ümlaut:with:colons", "ümlaut:with:colons", True),
    ("s3cret", "sha256:" + hashlib.sha256(b"s3cret").hexdigest(), True),
    ("s3cret", "sha256:" + hashlib.sha256(b"s3cret").hexdigest().upper(), True),
    ("sha256:" + hashlib.sha256(b"s3cret").hexdigest(), "sha256:" + hashlib.sha256(b"s3cret").hexdigest(), False),
    (hashlib.sha256(b"s3cret").hexdigest(), "sha256:" + hashlib.sha256(b"s3cret").hexdigest(), False),
    ("S3cret", "s3cret", False),
])
def test_secret_matching_is_exact_for_plain_and_hashed_secrets(presented, configured, expected):
    assert secret_matches(presented, configured) is expected
