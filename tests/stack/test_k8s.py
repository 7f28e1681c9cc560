"""deploy/k8s checked offline: rendered like `kubectl kustomize`, every manifest valid against
the Kubernetes JSON schemas (kubernetes-validate), and kept parallel to docker-compose.yml and
the Dockerfile: same environment, command, image, user, metrics directory and Redis settings;
probes on paths the app serves, readiness staying ready while Redis is down.

The kustomizations use only what `render` below implements (resources, metadata labels,
strategic-merge patches of maps and `$patch: delete`); `kubectl kustomize`, where installed,
is checked to give the same documents.
"""

from __future__ import annotations

import copy
import re
import shutil
import subprocess
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from service import create_app
from service.config import load_config
from tests.stack.gunicorn_settings import gunicorn_settings

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
KUSTOMIZATIONS = [K8S / "base", K8S / "overlays" / "redis-cluster", K8S / "overlays" / "dev"]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
DOCKERFILE = (ROOT / "Dockerfile").read_text()
SCHEMA_VERSIONS = ["1.30.0", kubernetes_validate.latest_version()]


def _merge(target: dict, patch: dict) -> None:
    """Strategic merge of maps (what our patches use): nested maps merge, other values replace."""
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            _merge(target[key], value)
        else:
            target[key] = copy.deepcopy(value)


def _identity(document: dict) -> tuple[str, str]:
    return document["kind"], document["metadata"]["name"]


def render(directory: Path) -> list[dict]:
    """The documents `kustomize build directory` gives, for the features used here."""
    kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text())
    assert set(kustomization) <= {"apiVersion", "kind", "resources", "labels", "patches"}
    documents: list[dict] = []
    for resource in kustomization.get("resources", []):
        path = directory / resource
        documents += render(path) if path.is_dir() else [
            d for d in yaml.safe_load_all(path.read_text()) if d]
    for label in kustomization.get("labels", []):
        assert set(label) == {"pairs"}  # metadata labels only, selectors untouched
        for document in documents:
            document["metadata"].setdefault("labels", {}).update(label["pairs"])
    for patch in kustomization.get("patches", []):
        for change in yaml.safe_load_all((directory / patch["path"]).read_text()):
            documents = _apply_patch(documents, change)
    return documents


def _apply_patch(documents: list[dict], change: dict) -> list[dict]:
    change = dict(change)
    delete = change.pop("$patch", None) == "delete"
    matches = [d for d in documents if _identity(d) == _identity(change)]
    assert len(matches) == 1, f"patch {_identity(change)} matches {len(matches)} resources"
    if delete:
        return [d for d in documents if d is not matches[0]]
    _merge(matches[0], change)
    return documents


def _by_identity(documents: list[dict]) -> dict[tuple[str, str], dict]:
    indexed = {_identity(d): d for d in documents}
    assert len(indexed) == len(documents), "two resources share a kind and name"
    return indexed


def _api_container(documents: list[dict]) -> dict:
    deployment = _by_identity(documents)["Deployment", "chainrule-api"]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return container


@pytest.mark.parametrize("directory", KUSTOMIZATIONS, ids=lambda p: p.name)
def test_render_matches_kubectl_kustomize(directory):
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.fail("kubectl (with its built-in kustomize) is part of this machine's image")
    built = subprocess.run([kubectl, "kustomize", str(directory)], capture_output=True,
                           text=True, timeout=60, check=True).stdout
    assert _by_identity(list(yaml.safe_load_all(built))) == _by_identity(render(directory))


@pytest.mark.parametrize("version", SCHEMA_VERSIONS)
@pytest.mark.parametrize("directory", KUSTOMIZATIONS, ids=lambda p: p.name)
def test_every_manifest_is_valid_kubernetes(directory, version):
    documents = render(directory)
    assert documents
    for document in documents:
        # strict: a misspelt or misplaced field is an error, not silently ignored
        kubernetes_validate.validate(document, version, strict=True)


def test_base_has_the_api_its_autoscaling_and_a_development_redis():
    kinds = set(_by_identity(render(K8S / "base")))
    assert kinds == {
        ("ConfigMap", "chainrule-api"), ("Deployment", "chainrule-api"),
        ("Service", "chainrule-api"), ("HorizontalPodAutoscaler", "chainrule-api"),
        ("PodDisruptionBudget", "chainrule-api"), ("Deployment", "chainrule-redis"),
        ("Service", "chainrule-redis"),
    }


def test_config_map_is_the_compose_api_environment_but_redis_url():
    resources = _by_identity(render(K8S / "base"))
    data = resources["ConfigMap", "chainrule-api"]["data"]
    compose_env = {k: str(v) for k, v in COMPOSE["services"]["api"]["environment"].items()}
    assert {k: v for k, v in data.items() if k != "REDIS_URL"} == \
        {k: v for k, v in compose_env.items() if k != "REDIS_URL"}
    # the base's REDIS_URL names its own Redis Service and port
    redis_service = resources["Service", "chainrule-redis"]["spec"]["ports"][0]["port"]
    assert data["REDIS_URL"] == f"redis://chainrule-redis:{redis_service}/0"
    assert set(data) == set(compose_env)
    assert _api_container(render(K8S / "base"))["envFrom"] == [
        {"configMapRef": {"name": "chainrule-api"}},
        {"secretRef": {"name": "chainrule-api-secrets", "optional": True}}]


def test_the_secrets_deploy_readme_creates_are_the_ones_the_api_reads():
    readme = (ROOT / "deploy" / "README.md").read_text()
    created = re.search(r"kubectl create secret generic (\S+) \\\n(.*)", readme)
    name, literals = created.group(1), re.findall(r"--from-literal=(\w+)=", created.group(2))
    (secret,) = [source["secretRef"] for source in _api_container(render(K8S / "base"))["envFrom"]
                 if "secretRef" in source]
    assert secret["name"] == name and secret["optional"] is True
    assert set(literals) == {"API_KEYS", "METRICS_TOKEN"} <= set(load_config(environ={}))


def test_redis_cluster_overlay_points_at_a_cluster_and_drops_the_dev_redis():
    resources = _by_identity(render(K8S / "overlays" / "redis-cluster"))
    url = resources["ConfigMap", "chainrule-api"]["data"]["REDIS_URL"]
    assert re.fullmatch(r"redis\+cluster://[\w.-]+:\d+(,[\w.-]+:\d+)*", url)
    assert not [name for _, name in resources if name == "chainrule-redis"]
    base = _by_identity(render(K8S / "base"))
    assert resources["Deployment", "chainrule-api"] == base["Deployment", "chainrule-api"]


def test_dev_overlay_is_one_small_replica_without_a_budget():
    resources = _by_identity(render(K8S / "overlays" / "dev"))
    assert resources["Deployment", "chainrule-api"]["spec"]["replicas"] == 1
    assert resources["HorizontalPodAutoscaler", "chainrule-api"]["spec"]["minReplicas"] == 1
    assert ("PodDisruptionBudget", "chainrule-api") not in resources
    data = resources["ConfigMap", "chainrule-api"]["data"]
    assert data["REDIS_URL"] == "redis://chainrule-redis:6379/0"
    assert load_config(environ=data)["WEB_CONCURRENCY"] == 2


def test_api_runs_the_image_and_command_of_compose_as_the_dockerfile_user():
    documents = render(K8S / "base")
    container = _api_container(documents)
    api = COMPOSE["services"]["api"]
    assert container["image"] == api["image"]
    assert container["command"] == api["command"]
    assert container["ports"][0]["containerPort"] == int(re.search(r"PORT=(\d+)",
                                                                   DOCKERFILE).group(1))
    pod = _by_identity(documents)["Deployment", "chainrule-api"]["spec"]["template"]["spec"]
    uid = int(re.search(r"useradd .*--uid (\d+)", DOCKERFILE).group(1))
    assert pod["securityContext"]["runAsUser"] == uid
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert set(container["resources"]) == {"requests", "limits"}
    # gunicorn's graceful shutdown, under the pod's settings, fits in the pod's grace period
    environment = _by_identity(documents)["ConfigMap", "chainrule-api"]["data"]
    graceful = gunicorn_settings(environment)["graceful_timeout"]
    assert pod["terminationGracePeriodSeconds"] > graceful


def test_metrics_directory_is_on_an_in_memory_volume():
    documents = render(K8S / "base")
    container = _api_container(documents)
    pod = _by_identity(documents)["Deployment", "chainrule-api"]["spec"]["template"]["spec"]
    metrics_dir = Path(_by_identity(documents)["ConfigMap", "chainrule-api"]["data"][
        "PROMETHEUS_MULTIPROC_DIR"])
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volume_name = mounts[str(metrics_dir.parent)]
    volume = next(v for v in pod["volumes"] if v["name"] == volume_name)
    assert volume["emptyDir"]["medium"] == "Memory"


def test_probes_use_paths_the_app_serves_and_readiness_survives_redis_down(redis_server):
    container = _api_container(render(K8S / "base"))
    probes = [container[name]["httpGet"] for name in
              ("livenessProbe", "readinessProbe", "startupProbe")]
    assert all(probe["port"] == container["ports"][0]["name"] for probe in probes)
    app = create_app({"REDIS_URL": redis_server.url, "PROMETHEUS_MULTIPROC_DIR": None})
    try:
        client = app.test_client()
        for probe in probes:
            assert client.get(probe["path"]).status_code == 200
        redis_server.stop()  # Redis down: /readyz says so, readiness stays green
        assert client.get("/readyz").status_code == 503
        assert client.get(container["readinessProbe"]["httpGet"]["path"]).status_code == 200
    finally:
        app.extensions["chainrule"].close()


def test_service_pdb_and_autoscaler_select_the_api_pods():
    resources = _by_identity(render(K8S / "base"))
    deployment = resources["Deployment", "chainrule-api"]
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    for selector in (resources["Service", "chainrule-api"]["spec"]["selector"],
                     resources["PodDisruptionBudget", "chainrule-api"]["spec"]["selector"][
                         "matchLabels"],
                     deployment["spec"]["selector"]["matchLabels"]):
        assert selector.items() <= pod_labels.items()
    hpa = resources["HorizontalPodAutoscaler", "chainrule-api"]
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1", "kind": "Deployment", "name": "chainrule-api"}
    assert [m["resource"]["name"] for m in hpa["spec"]["metrics"]] == ["cpu"]
    assert 1 <= hpa["spec"]["minReplicas"] < hpa["spec"]["maxReplicas"]
    # the budget never blocks every drain: it keeps fewer pods than the autoscaler's floor
    assert resources["PodDisruptionBudget", "chainrule-api"]["spec"]["minAvailable"] < \
        hpa["spec"]["minReplicas"]
    # the container's CPU request is what the autoscaler's utilisation is measured against
    assert "cpu" in _api_container(render(K8S / "base"))["resources"]["requests"]


def test_development_redis_is_configured_as_the_compose_one():
    resources = _by_identity(render(K8S / "base"))
    pod = resources["Deployment", "chainrule-redis"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["args"] == COMPOSE["services"]["redis"]["command"]
    assert container["image"] == COMPOSE["services"]["redis"]["image"]
    assert pod["securityContext"]["runAsNonRoot"] is True


def test_config_map_values_are_valid_settings():
    data = _by_identity(render(K8S / "base"))["ConfigMap", "chainrule-api"]["data"]
    config = load_config(environ=data)
    assert config["MAX_BODY_BYTES"] == int(data["MAX_BODY_BYTES"])
