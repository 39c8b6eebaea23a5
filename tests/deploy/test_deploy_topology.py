"""The objects around the server agree with it and with each other: Services, ServiceMonitor, NetworkPolicy,
autoscaling on metrics the server really exports, disruption budgets, what each overlay changes, and KServe."""

from __future__ import annotations

import json
import re

import pytest
import yaml
from prometheus_client import CollectorRegistry

from server.telemetry.metrics import ServerMetrics
from tests.deploy.manifests import find, kserve_objects, rendered, standalone_objects
from tests.deploy.workload import Workload, load_settings_of, match_labels, quantity, selects, workload

KUSTOMIZED = ("base", "dev", "prod", "gpu")
OPERATOR_NAMESPACES = {"oip.io/operator": "true"}


def _server_metric_names() -> set[str]:
    """Every family the server registers (counters also under their _total sample name)."""
    names = set()
    registry = CollectorRegistry()
    ServerMetrics(registry)
    for family in registry.collect():
        names.add(family.name)
        if family.type == "counter":
            names.add(f"{family.name}_total")
    return names


@pytest.mark.parametrize("name", KUSTOMIZED)
def test_services_select_the_pods_and_reach_the_container_ports(name: str) -> None:
    deployment = workload(name)
    spec = find(rendered(name), "Deployment")["spec"]
    assert selects(match_labels(spec["selector"]), deployment.pod_labels)
    services = [o for o in rendered(name) if o["kind"] == "Service"]
    assert {s["spec"].get("clusterIP") for s in services} == {None, "None"}, "a ClusterIP and a headless Service"
    for service in services:
        assert selects(service["spec"]["selector"], deployment.pod_labels)
        for port in service["spec"]["ports"]:
            assert port["port"] == deployment.port(port["targetPort"]), "same number outside and in"
    headless = find(rendered(name), "Service", "oip-inference-server-headless")
    assert {p["name"] for p in headless["spec"]["ports"]} == {"grpc", "admin"}, "per-pod gRPC and admin"


@pytest.mark.parametrize("name", KUSTOMIZED)
def test_the_service_monitor_scrapes_metrics_on_one_service(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    deployment = workload(name)
    settings = load_settings_of(deployment.container, monkeypatch)
    monitor = find(rendered(name), "ServiceMonitor")
    selector = match_labels(monitor["spec"]["selector"])
    scraped = [o for o in rendered(name) if o["kind"] == "Service" and selects(selector, o["metadata"]["labels"])]
    assert len(scraped) == 1, "one Service, or every pod is scraped twice"
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["path"] == "/metrics"
    (port,) = [p for p in scraped[0]["spec"]["ports"] if p["name"] == endpoint["port"]]
    assert deployment.port(port["targetPort"]) == settings.http.port


def _allowed_ports(rule: dict[str, object]) -> set[int]:
    ports = rule["ports"]
    assert isinstance(ports, list)
    return {p["port"] for p in ports}


@pytest.mark.parametrize("name", KUSTOMIZED)
def test_the_network_policy_keeps_the_admin_port_to_operator_namespaces(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    deployment = workload(name)
    settings = load_settings_of(deployment.container, monkeypatch)
    policy = find(rendered(name), "NetworkPolicy")["spec"]
    assert selects(match_labels(policy["podSelector"]), deployment.pod_labels)
    assert policy["policyTypes"] == ["Ingress"]
    open_rules = [r for r in policy["ingress"] if r["from"] == [{"namespaceSelector": {}}]]
    operator_rules = [
        r for r in policy["ingress"] if r["from"] == [{"namespaceSelector": {"matchLabels": OPERATOR_NAMESPACES}}]
    ]
    assert len(open_rules) + len(operator_rules) == len(policy["ingress"]), "no other rule"
    open_ports = set().union(*map(_allowed_ports, open_rules))
    assert open_ports == {settings.grpc.port, settings.http.port}
    assert settings.admin.port is not None
    assert settings.admin.port not in open_ports
    assert set().union(*map(_allowed_ports, operator_rules)) == {settings.admin.port}
    container_ports = {p["containerPort"] for p in deployment.container["ports"]}
    assert container_ports == open_ports | {settings.admin.port}, "every port the server listens on is covered"


@pytest.mark.parametrize("name", KUSTOMIZED)
def test_autoscaling_targets_the_deployment_and_metrics_the_server_exports(name: str) -> None:
    hpa = find(rendered(name), "HorizontalPodAutoscaler")["spec"]
    deployment = find(rendered(name), "Deployment")
    assert hpa["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "oip-inference-server"}
    assert hpa["minReplicas"] <= deployment["spec"]["replicas"] <= hpa["maxReplicas"]
    exported = _server_metric_names()
    for metric in hpa["metrics"]:
        if metric["type"] == "Pods":
            assert metric["pods"]["metric"]["name"] in exported
        else:
            assert metric["type"] == "Resource"
            assert (
                metric["resource"]["name"]
                in deployment["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"]
            ), "utilization is measured against the request"


def test_the_adapter_rule_serves_the_metric_the_hpa_asks_for() -> None:
    (configmap,) = standalone_objects()
    (rule,) = yaml.safe_load(configmap["data"]["config.yaml"])["rules"]
    series = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)\{", rule["seriesQuery"])
    assert series is not None
    assert series.group(1) in _server_metric_names()
    assert re.fullmatch(rule["name"]["matches"], series.group(1))
    asked = {
        m["pods"]["metric"]["name"]
        for name in ("prod", "gpu")
        for m in find(rendered(name), "HorizontalPodAutoscaler")["spec"]["metrics"]
        if m["type"] == "Pods"
    }
    assert asked == {rule["name"]["as"]}


@pytest.mark.parametrize("name", KUSTOMIZED)
def test_the_disruption_budget_selects_the_pods_and_lets_a_drain_proceed(name: str) -> None:
    deployment = workload(name)
    pdb = find(rendered(name), "PodDisruptionBudget")["spec"]
    replicas = find(rendered(name), "Deployment")["spec"]["replicas"]
    assert selects(match_labels(pdb["selector"]), deployment.pod_labels)
    assert len({"minAvailable", "maxUnavailable"} & set(pdb)) == 1
    assert pdb.get("maxUnavailable", 1) >= 1
    assert pdb.get("minAvailable", 0) < replicas, "a node drain must be able to evict a pod"


def _env(deployment: Workload) -> dict[str, str]:
    return {v["name"]: v["value"] for v in deployment.container.get("env", [])}


def test_dev_is_one_small_replica_with_debug_logs(monkeypatch: pytest.MonkeyPatch) -> None:
    dev, base = workload("dev"), workload("base")
    assert find(rendered("dev"), "Deployment")["spec"]["replicas"] == 1
    assert load_settings_of(dev.container, monkeypatch).log.level == "DEBUG"
    for kind in ("requests", "limits"):
        for resource in ("cpu", "memory"):
            assert quantity(dev.container["resources"][kind][resource]) < quantity(
                base.container["resources"][kind][resource]
            )


def test_prod_runs_workers_on_at_least_three_guaranteed_replicas(monkeypatch: pytest.MonkeyPatch) -> None:
    prod = workload("prod")
    assert find(rendered("prod"), "Deployment")["spec"]["replicas"] >= 3
    assert load_settings_of(prod.container, monkeypatch).workers > 1
    resources = prod.container["resources"]
    assert resources["requests"] == resources["limits"], "Guaranteed QoS"
    assert find(rendered("prod"), "PodDisruptionBudget")["spec"]["minAvailable"] >= 2
    spread = prod.pod["topologySpreadConstraints"]
    assert {c["topologyKey"] for c in spread} == {"kubernetes.io/hostname", "topology.kubernetes.io/zone"}


def test_gpu_uses_the_gpu_image_a_gpu_and_gpu_nodes(monkeypatch: pytest.MonkeyPatch) -> None:
    gpu, base = workload("gpu"), workload("base")
    assert gpu.container["image"] == "oip-inference-server:0.1.0-gpu"
    assert base.container["image"] == "oip-inference-server:0.1.0"
    assert gpu.container["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert load_settings_of(gpu.container, monkeypatch).runtime.providers[0] == "CUDAExecutionProvider"
    assert json.loads(_env(gpu)["SERVER_RUNTIME_PROVIDERS"])[-1] == "CPUExecutionProvider"
    assert gpu.pod["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in gpu.pod["tolerations"]
    gpu_startup, base_startup = gpu.container["startupProbe"], base.container["startupProbe"]
    assert gpu_startup["failureThreshold"] > base_startup["failureThreshold"]
    assert gpu_startup["grpc"] == base_startup["grpc"], "the patch keeps the base's probe"


def test_the_inference_service_uses_the_runtime_over_grpc(monkeypatch: pytest.MonkeyPatch) -> None:
    objects = kserve_objects()
    runtime = find(objects, "ServingRuntime")
    model = find(objects, "InferenceService")["spec"]["predictor"]["model"]
    assert model["runtime"] == runtime["metadata"]["name"]
    formats = {f["name"] for f in runtime["spec"]["supportedModelFormats"]}
    assert formats == {"onnx"} and model["modelFormat"]["name"] in formats
    assert runtime["spec"]["protocolVersions"] == ["v2", "grpc-v2"]
    assert model["protocolVersion"] == "grpc-v2", "this server answers the protocol over gRPC only"
    assert runtime["spec"]["multiModel"] is False
    container = workload("kserve").container
    assert container["name"] == "kserve-container"
    (port,) = container["ports"]
    assert port["name"] == "h2c", "KServe and Knative recognise gRPC by this port name"
    assert "--model-name={{.Name}}" in runtime["spec"]["containers"][0]["args"], "KServe fills in the name"
    settings = load_settings_of(container, monkeypatch)
    assert str(settings.model_repository) == "/mnt/models", "KServe puts the model there"
    assert settings.model_name == find(objects, "InferenceService")["metadata"]["name"]
    assert runtime["spec"]["grpcDataEndpoint"] == f"port:{settings.grpc.port}"
    assert runtime["spec"]["annotations"]["prometheus.kserve.io/port"] == str(settings.http.port)
