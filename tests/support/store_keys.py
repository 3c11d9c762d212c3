"""The `[store] encryption_key` of the tests (required with Redis; harmless elsewhere).

A fixed, public TEST key: base64 of 32 bytes. Never use it outside tests.
"""

TEST_ENCRYPTION_KEY = "dG9rZW5icm9rZXItdGVzdC1vbmx5LWtleS0zMmJ5dGU="      # b"tokenbroker-test-only-key-32byte"
STORE_KEY_LINE = f'encryption_key = "{TEST_ENCRYPTION_KEY}"'
