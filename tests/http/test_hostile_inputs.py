"""Every bad input gets a clear 4xx JSON error and nothing is lost: never a 500, a stack trace
or a hang (RFC 6749 §5.2, RFC 6750).

The whole broker runs against the real Entra and ACS emulators. Every route listed in
`/openapi.json` (checked against the router) is hit with every method, allowed or not, under a
matrix of hostile credentials, headers, bodies, paths and query strings. Each answer must be
below 500, carry `X-Request-Id`, never echo what was presented, and, when it is an error, be
JSON with a string `error` and an RFC 6749 §5.2-safe `error_description`.
"""

from __future__ import annotations

import asyncio
import base64
import gzip
import json
import re
from urllib.parse import quote

import pytest
from multidict import CIMultiDict

from service.typedefs import METRICS
from tests.http.token_support import basic
from tests.support.full_broker import PORTAL_SECRET, bearer, start

METHODS = ("GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD")
BODY_METHODS = ("POST", "PUT", "DELETE", "PATCH")
SAFE_DESCRIPTION = re.compile(r"[\x20-\x21\x23-\x5b\x5d-\x7e]*")
HUGE = "a" * 20_000
TEAMS_GARBAGE = "teams-garbage-" + "Z" * 40
PRESENTED_HEADERS = ("authorization", "teams-user-aad-token", "x-request-id")   # hostile ids only
DOWNSTREAM = "workspace"      # the value given to path parameters


@pytest.fixture(name="broker")
async def _broker(aiohttp_client, entra, acs, tmp_path):
    client, _keys = await start(aiohttp_client, entra, acs, tmp_path)
    return client


async def targets(broker) -> list[str]:
    """Every documented route (parameters filled in), after checking that the router serves
    exactly the documented routes."""
    doc = await (await broker.get("/openapi.json")).json()
    served = {r.resource.canonical for r in broker.app.router.routes() if r.resource is not None}
    assert served == set(doc["paths"]), "every served route is documented, and only those"
    paths = [re.sub(r"\{[^}]+\}", DOWNSTREAM, path) for path in doc["paths"]]
    assert {"/oauth2/token", "/api/token/obo/workspace", "/api/token/teams", "/api/user"} <= set(paths)
    return paths


class Credentials:
    """Valid credentials per route: the client's Basic secret at /oauth2/*, else one Entra bearer."""

    def __init__(self, entra) -> None:
        self.basic = basic("portal", PORTAL_SECRET)
        self.bearer = {"Authorization": f"Bearer {bearer(entra)}"}

    def __call__(self, path: str) -> dict[str, str]:
        return self.basic if path.startswith("/oauth2/") else self.bearer


def presented(headers) -> list[str]:
    """The credentials and ids a request presents (without an auth scheme), never to be echoed."""
    values = (v.split(" ", 1)[-1] for k, v in headers.items() if k.lower() in PRESENTED_HEADERS)
    return [PORTAL_SECRET, *(v for v in values if len(v) >= 8)]


async def check(resp, presented: list[str]) -> None:
    """The guarantees every answer keeps, whatever was sent."""
    where = f"{resp.method} {resp.url.path} -> {resp.status}"
    raw = await resp.read()
    text = raw.decode("utf-8", "replace")
    assert resp.status < 500, f"{where}: {text[:300]}"
    assert resp.headers.get("X-Request-Id"), where
    assert "Traceback" not in text and 'File "' not in text, where
    for secret in presented:
        assert secret not in text, f"{where} echoes what was presented"
        assert all(secret not in v for v in resp.headers.values()), f"{where} echoes it in a header"
    if resp.status >= 400 and resp.method != "HEAD":
        assert resp.content_type == "application/json", f"{where}: {resp.content_type} {text[:200]}"
        body = await resp.json()
        assert isinstance(body, dict) and isinstance(body.get("error"), str) and body["error"], where
        if "error_description" in body:
            assert SAFE_DESCRIPTION.fullmatch(body["error_description"]), where


async def send_everywhere(broker, entra, *, headers=None, data=None, methods=METHODS,
                          with_credentials=False) -> int:
    """Sends one hostile request to every route with every method; returns how many were checked."""
    creds, sent = Credentials(entra), 0
    for path in await targets(broker):
        for method in methods:
            hdrs = CIMultiDict(creds(path) if with_credentials else {})
            hdrs.extend(headers or {})
            resp = await broker.request(method, path, headers=hdrs, data=data)
            await check(resp, presented(hdrs))
            sent += 1
    return sent


def dup_authorization() -> CIMultiDict:
    return CIMultiDict([("Authorization", "Bearer abc.def.ghi"), ("Authorization", "Basic Zm9vOmJhcg==")])


AUTH_CASES = {
    "no_auth": {},
    "bearer_without_token": {"Authorization": "Bearer"},
    "bearer_20kb": {"Authorization": f"Bearer {HUGE}"},
    "bearer_non_ascii": {"Authorization": "Bearer t\u00f6k\u00e9n\u2603.\u00e4.\u00fc"},
    "basic_garbage": {"Authorization": "Basic !!!"},
    "basic_without_colon": {"Authorization": "Basic " + base64.b64encode(b"portal-no-colon").decode()},
    "unknown_scheme": {"Authorization": "Negotiate " + "Q" * 64},
    "duplicated_authorization": dup_authorization(),
    "junk_request_id": {"X-Request-Id": "\u00e9" * 10 + "<script>"},
}


@pytest.mark.parametrize("headers", list(AUTH_CASES.values()), ids=list(AUTH_CASES))
async def test_hostile_credentials_get_json_4xx_on_every_route_and_method(broker, entra, headers):
    assert await send_everywhere(broker, entra, headers=headers) >= 15 * len(METHODS)


TEAMS_CASES = {"garbage": TEAMS_GARBAGE, "huge": "T" * 20_000, "empty": "",
               "duplicated": None}


@pytest.mark.parametrize("teams", list(TEAMS_CASES.values()), ids=list(TEAMS_CASES))
async def test_a_valid_bearer_with_a_hostile_teams_header_gets_json_4xx(broker, entra, teams):
    headers = CIMultiDict({"teams-user-aad-token": teams} if teams is not None else
                          [("teams-user-aad-token", TEAMS_GARBAGE), ("teams-user-aad-token", "x.y.z")])
    await send_everywhere(broker, entra, headers=headers, with_credentials=True)
    with_bearer = CIMultiDict(Credentials(entra)("/api/token/teams"))
    with_bearer.extend(headers)
    resp = await broker.get("/api/token/teams", headers=with_bearer)
    await check(resp, presented(with_bearer))
    body = await resp.json()
    assert resp.status == 400 and body["error"] in ("invalid_teams_token", "invalid_request"), body


FORM = "application/x-www-form-urlencoded"
BODY_CASES = {
    "empty_form": ({"Content-Type": FORM}, b""),
    "invalid_json": ({"Content-Type": "application/json"}, b'{"grant_type": "tok'),
    "json_array": ({"Content-Type": "application/json"}, b"[1, 2, 3]"),
    "binary_garbage": ({"Content-Type": "application/octet-stream"}, bytes(range(256)) * 8),
    "invalid_utf8_form": ({"Content-Type": FORM}, b"grant_type=\xff\xfe&subject_token=%ff%fe"),
    "form_1000_params": ({"Content-Type": FORM}, "&".join(f"p{i}=v" for i in range(1000)).encode()),
    "form_repeated_params": ({"Content-Type": FORM}, b"grant_type=a&grant_type=b&token=x&token=y"),
    "form_300kb": ({"Content-Type": FORM}, b"token=" + b"x" * 300_000),
    "non_utf8_charset": ({"Content-Type": f"{FORM}; charset=latin-1"}, b"token=\xe9"),
    "wrong_content_type": ({"Content-Type": "text/plain"}, b"grant_type=refresh_token"),
    "corrupt_gzip": ({"Content-Type": FORM, "Content-Encoding": "gzip"}, b"\x1f\x8b\x08\x00garbage!"),
    "truncated_gzip": ({"Content-Type": FORM, "Content-Encoding": "gzip"},
                       gzip.compress(b"grant_type=refresh_token&refresh_token=x")[:-12]),
    "not_gzip_at_all": ({"Content-Type": FORM, "Content-Encoding": "gzip"}, b"grant_type=refresh_token" * 40),
    "corrupt_deflate": ({"Content-Type": FORM, "Content-Encoding": "deflate"}, b"\x78\x9c" + b"\xff" * 64),
    "unknown_encoding": ({"Content-Type": FORM, "Content-Encoding": "br-nonsense"}, b"token=a&token=b"),
}


@pytest.mark.parametrize("case", list(BODY_CASES.values()), ids=list(BODY_CASES))
async def test_hostile_bodies_get_json_4xx_with_valid_credentials(broker, entra, case):
    headers, data = case
    await send_everywhere(broker, entra, headers=headers, data=data, methods=BODY_METHODS,
                          with_credentials=True)


@pytest.mark.parametrize("case", list(BODY_CASES.values()), ids=list(BODY_CASES))
async def test_the_form_endpoints_answer_a_hostile_body_with_invalid_request(broker, entra, case):
    headers, data = case
    creds = Credentials(entra)
    for path in ("/oauth2/token", "/oauth2/introspect", "/oauth2/revoke"):
        resp = await broker.post(path, data=data, headers={**headers, **creds(path)})
        await check(resp, [PORTAL_SECRET])
        undecodable = headers.get("Content-Encoding") == "br-nonsense"       # 415, issue 14
        assert resp.status == (413 if len(data) > 256 * 1024 else 415 if undecodable else 400), path
        assert (await resp.json())["error"] == "invalid_request", path


HOSTILE_NAMES = ["%00", "..", "%2e%2e", "..%2f..%2fetc%2fpasswd", "a" * 8000, quote("ünïcødé☃"),
                 "%ff%fe", "work%20space", "workspace%00", "%u0000", ";", "workspace;x=1"]


@pytest.mark.parametrize("name", HOSTILE_NAMES, ids=lambda n: n[:20])
async def test_hostile_downstream_names_are_a_json_404_after_authentication(broker, entra, name):
    path = f"/api/token/obo/{name}"
    resp = await broker.post(path, headers=Credentials(entra)(path))
    await check(resp, [name] if len(name) >= 8 else [])
    assert resp.status == 404, path
    unauthenticated = await broker.post(path)
    await check(unauthenticated, [])
    assert unauthenticated.status in (401, 404)


QUERIES = ["?%ff%fe=%00", "?a=" + "x" * 8000, "?scope=a&scope=b&token=%00", "?;;;&&&===",
           "?token=" + "Bearer%20abc", "?%E2%98%83=%E2%98%83", "?" + "&".join(f"q{i}=1" for i in range(1000))]


@pytest.mark.parametrize("query", QUERIES, ids=lambda q: q[:16])
async def test_junk_query_strings_get_no_5xx_anywhere(broker, entra, query):
    creds = Credentials(entra)
    for path in await targets(broker):
        for method in ("GET", "POST"):
            resp = await broker.request(method, path + query, headers=creds(path))
            await check(resp, presented(creds(path)))


def answered(broker, route: str | None = None) -> dict[str, float]:
    """Requests the app answered, by status (from its own request metrics)."""
    counts: dict[str, float] = {}
    for metric in broker.app[METRICS].registry.collect():
        for sample in metric.samples:
            if sample.name == "tokenbroker_requests_total" and route in (None, sample.labels["route"]):
                counts[sample.labels["status"]] = counts.get(sample.labels["status"], 0) + sample.value
    return counts


def no_server_errors(broker) -> None:
    errors = {status: n for status, n in answered(broker).items() if status.startswith("5")}
    assert not errors, f"the app answered {errors}"


async def raw_request(broker, *pieces: bytes) -> tuple[int, dict[str, str], bytes]:
    """One request written byte for byte on its own connection (nothing normalised by a client),
    in pieces that reach the server one after the other."""
    reader, writer = await asyncio.open_connection(broker.host, broker.port)
    try:
        for i, piece in enumerate(pieces):
            if i:
                await asyncio.sleep(0.05)       # let the server start on what it has
            writer.write(piece)
            await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        status_line, *lines = head.decode("latin-1").split("\r\n")
        fields = (line.partition(":") for line in lines if line)
        headers = {k.strip().lower(): v.strip() for k, _, v in fields}
        body = await reader.readexactly(int(headers.get("content-length", "0")))
        return int(status_line.split()[1]), headers, body
    finally:
        writer.close()
        await writer.wait_closed()


@pytest.mark.parametrize("path", ["/api/token/obo/../../etc/passwd", "/api/../oauth2/token",
                                  "/api/token/obo/%2e%2e/%2e%2e/healthz", "//api//me", "/api/me/",
                                  "/oauth2/token/../../openapi.json", "/.well-known/../../api/me"])
async def test_raw_paths_with_dot_segments_are_answered_as_json(broker, path):
    status, headers, body = await raw_request(
        broker, f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".encode())
    assert status < 500 and headers.get("x-request-id"), (path, status, body[:200])
    if status >= 400:
        assert headers["content-type"].startswith("application/json") and b"error" in body, (path, body)


async def test_an_incomplete_body_from_a_client_that_leaves_does_not_hurt_the_server(broker, entra):
    # A declared body larger than what is sent: some clients leave, one stays silent.
    partial = (b"POST /oauth2/token HTTP/1.1\r\nHost: x\r\nContent-Type: " + FORM.encode() +
               b"\r\nContent-Length: 5000\r\n\r\ngrant_type=refresh_token&refresh")
    for _ in range(5):
        _reader, writer = await asyncio.open_connection(broker.host, broker.port)
        writer.write(partial)
        await writer.drain()
        writer.close()
        await writer.wait_closed()
    _stuck_reader, stuck = await asyncio.open_connection(broker.host, broker.port)
    stuck.write(partial)
    await stuck.drain()
    try:
        health = await broker.get("/healthz")
        assert health.status == 200 and await health.json() == {"status": "ok"}
        resp = await broker.post("/oauth2/token", headers=basic("portal", PORTAL_SECRET),
                                 data={"grant_type": "refresh_token", "refresh_token": "nope"})
        assert resp.status == 400 and (await resp.json())["error"] == "invalid_grant"
        for _ in range(500):                         # until the five abandoned requests are settled
            if sum(answered(broker, "/oauth2/token").values()) >= 6:
                break
            await asyncio.sleep(0.01)
        # Abandoned requests count as 499 (cancelled) or 400 (unreadable body), never as a 5xx.
        assert set(answered(broker, "/oauth2/token")) <= {"400", "499"}
    finally:
        stuck.close()
        await stuck.wait_closed()


async def test_the_server_still_answers_after_a_concurrent_barrage(broker, entra):
    hostile = [*AUTH_CASES.values(), *(h for h, _ in BODY_CASES.values())]
    bodies = [d for _, d in BODY_CASES.values()]
    tasks = []
    for path in await targets(broker):
        for i, headers in enumerate(hostile):
            method = METHODS[i % len(METHODS)]
            tasks.append(broker.request(method, path, headers=headers,
                                        data=bodies[i % len(bodies)] if method in BODY_METHODS else None))
    responses = await asyncio.gather(*tasks)
    for resp in responses:
        await check(resp, [HUGE])
    no_server_errors(broker)
    health = await broker.get("/healthz")
    assert health.status == 200 and await health.json() == {"status": "ok"}
    me = await broker.get("/api/me", headers=Credentials(entra)("/api/me"))
    assert me.status == 200, await me.text()


async def test_a_form_arriving_in_several_packets_is_read_whole(broker):
    # A client may send the body in pieces; the form must not be parsed from the first one only.
    form = f"grant_type=refresh_token&refresh_token={'r' * 3000}&scope=read".encode()
    head = (f"POST /oauth2/token HTTP/1.1\r\nHost: x\r\nContent-Type: {FORM}\r\n"
            f"Authorization: {basic('portal', PORTAL_SECRET)['Authorization']}\r\n"
            f"Content-Length: {len(form)}\r\nConnection: close\r\n\r\n").encode()
    status, _, body = await raw_request(broker, head + form[:20], form[20:])   # "grant_type=refresh_t"
    assert (status, json.loads(body)["error"]) == (400, "invalid_grant"), body   # the whole form was read


@pytest.mark.parametrize(("where", "route"), [
    ("bearer", "/api/me"), ("bearer", "/api/token/teams"), ("bearer", "/api/token"),
    ("bearer", "/api/token/obo/workspace"), ("teams", "/api/token/teams")])
async def test_bytes_that_are_not_utf8_in_a_token_header_are_a_json_4xx(broker, entra, route, where):
    """aiohttp hands such bytes on as lone surrogates, which no token hash can encode: they must
    be refused as malformed before anything hashes them (never a 500)."""
    hostile = b"eyJhbGciOi\xff\xfe.eyJ\xc3(.sig"
    if where == "bearer":
        auth, teams = b"Bearer " + hostile, b""
    else:
        auth = f"Bearer {bearer(entra)}".encode()
        teams = b"teams-user-aad-token: " + hostile + b"\r\n"
    method = b"POST" if route.endswith("workspace") else b"GET"
    status, headers, body = await raw_request(
        broker, method + b" " + route.encode() + b" HTTP/1.1\r\nHost: x\r\nAuthorization: " + auth + b"\r\n"
        + teams + b"Content-Length: 0\r\nConnection: close\r\n\r\n")
    assert 400 <= status < 500, (status, body[:300])
    assert headers["content-type"].startswith("application/json") and b"error" in body
    assert b"\xff" not in body and b"eyJhbGciOi" not in body
    no_server_errors(broker)
