"""A throwaway Debian `redis-server` with TLS only (certificate from the session CA) and ACL
users, on a free port, like Azure Cache for Redis: no plain port, no default user.

    server = TlsRedis(pki, users={"broker": "broker-password"})
    server.url("broker", "broker-password")     # rediss://broker:broker-password@127.0.0.1:<port>/0
    server.admin()                               # a sync client as the admin user (ACL SETUSER, INFO)
    server.stop()
"""

from __future__ import annotations

import secrets
import subprocess
from pathlib import Path
from urllib.parse import quote

import redis

from emulators.pki import Pki
from tests.support.serve_process import WAIT, free_port, wait_until_serving


class TlsRedis:
    def __init__(self, pki: Pki, workdir: Path, *, users: dict[str, str]) -> None:
        self.port = free_port()
        self.ca = str(pki.ca_pem)
        self._admin_password = secrets.token_hex(16)
        lines = [
            "port 0", f"tls-port {self.port}", "bind 127.0.0.1", f"tls-cert-file {pki.cert_pem}",
            f"tls-key-file {pki.key_pem}", f"tls-ca-cert-file {pki.ca_pem}", "tls-auth-clients no",
            'save ""', "appendonly no", f"dir {workdir}", "user default off",
            f"user admin on >{self._admin_password} ~* &* +@all",
            *(f"user {name} on >{password} ~* &* +@all -@dangerous" for name, password in users.items()),
        ]
        conf = workdir / f"redis-tls-{self.port}.conf"
        conf.write_text("\n".join(lines) + "\n")
        self.proc = subprocess.Popen(["redis-server", str(conf)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        wait_until_serving(self, f"TLS redis-server on port {self.port}")

    def url(self, user: str = "", password: str = "", *, prefix: str = "") -> str:
        auth = quote(user, safe="") + (f":{quote(password, safe='')}" if password else "") + "@" if user else ""
        query = f"?prefix={prefix}" if prefix else ""
        return f"rediss://{auth}127.0.0.1:{self.port}/0{query}"

    def admin(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, ssl=True, ssl_ca_certs=self.ca,
                           username="admin", password=self._admin_password, socket_timeout=5,
                           protocol=3)   # HELLO AUTH: leaves cmdstat_auth to the broker

    def _answers(self) -> bool:
        try:
            with self.admin() as client:
                return bool(client.ping())
        except (redis.RedisError, OSError):
            return False

    def auth_stats(self) -> dict[str, int]:
        """`INFO commandstats` of AUTH: calls and failed_calls."""
        with self.admin() as client:
            stats = client.info("commandstats").get("cmdstat_auth", {})
        return {"calls": int(stats.get("calls", 0)), "failed_calls": int(stats.get("failed_calls", 0))}

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=WAIT)
