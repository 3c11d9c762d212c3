"""Token lists for the bench: one template from the Entra emulator, re-signed locally N times.

Asking the emulator for 40,000 tokens would take minutes; instead the bench asks it once per
token kind (so claims, issuer and `kid` are exactly what it issues) and re-signs copies that
differ in one claim (`n`) with the emulator's own signing key (its PEM sits in the bench's PKI
folder). Every copy is a distinct token with a distinct sha256, so it misses every cache.
"""

from __future__ import annotations

import base64
import json
import ssl
import urllib.request
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def mint_template(entra_url: str, ca_pem: str, body: dict) -> str:
    """One token from the emulator's test-only mint endpoint."""
    ctx = ssl.create_default_context(cafile=ca_pem)
    req = urllib.request.Request(f"{entra_url}/_emulator/token", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(req, context=ctx, timeout=30) as resp:
        return str(json.loads(resp.read())["access_token"])


def _sign_range(args: tuple[bytes, str, dict, str, int, int]) -> list[str]:
    key_pem, header_b64, payload, tag, start, stop = args
    key = serialization.load_pem_private_key(key_pem, password=None)
    out = []
    for i in range(start, stop):
        body = _b64(json.dumps({**payload, "n": f"{tag}{i}"}, separators=(",", ":")).encode())
        signing_input = f"{header_b64}.{body}".encode()
        sig = key.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())  # type: ignore[union-attr]
        out.append(f"{header_b64}.{body}.{_b64(sig)}")
    return out


def distinct_copies(template: str, key_pem: bytes, count: int, *, tag: str, jobs: int = 2) -> list[str]:
    """`count` distinct tokens like `template`, signed with the emulator key (in `jobs` processes)."""
    header_b64, payload_b64, _ = template.split(".")
    payload = json.loads(_unb64(payload_b64))
    step = max(1, -(-count // jobs))
    chunks = [(key_pem, header_b64, payload, tag, s, min(count, s + step)) for s in range(0, count, step)]
    if len(chunks) == 1:
        return _sign_range(chunks[0])
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        return [t for part in pool.map(_sign_range, chunks) for t in part]


def write_list(path: Path, tokens: list[str]) -> Path:
    path.write_text("\n".join(tokens) + "\n")
    return path
