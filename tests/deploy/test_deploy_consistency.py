"""The manifests agree with the server: flags and variables exist, ports, probes and shutdown timing match what the
server does, and resources follow the sizing rule written in deploy/kubernetes/base/deployment.yaml."""

from __future__ import annotations

import pytest

from server.cli import build_parser
from tests.deploy.workload import (
    WORKLOADS,
    flag_environment,
    flag_names,
    load_settings_of,
    quantity,
    server_args,
    settings_environment,
    workload,
)

#: Measured (docs/reliability.md, "Memory after large requests"): RSS of an idle server process with the example
#: models, and the peak cost of a request in flight relative to its size (one 128 MiB request: +600 MB).
IDLE_RSS_BYTES = 100 * 2**20
PEAK_BYTES_PER_REQUEST_BYTE = 4.7
#: README "Shutdown": after the drain, at most 2 s of quiet before gRPC stops; under --workers the supervisor kills
#: a worker drain + grace + 10 s after SIGTERM.
QUIET_S = 2
SUPERVISOR_MARGIN_S = 10
#: Time to unload models and exit, on top of the above.
EXIT_MARGIN_S = 5
#: "Several minutes" of model loading before the startup probe gives up.
MIN_STARTUP_BUDGET_S = 180


@pytest.mark.parametrize("name", WORKLOADS)
def test_every_flag_exists(name: str) -> None:
    known = {flag for action in build_parser()._actions for flag in action.option_strings}
    flags = flag_names(server_args(workload(name).container))
    assert flags, "the container passes flags"
    assert set(flags) <= known, f"unknown flags: {sorted(set(flags) - known)}"
    assert len(flags) == len(set(flags)), "a flag is given twice"
    assert all(arg.startswith("--") and "=" in arg for arg in server_args(workload(name).container))


@pytest.mark.parametrize("name", WORKLOADS)
def test_every_variable_is_a_settings_field_and_not_overridden_by_a_flag(name: str) -> None:
    container = workload(name).container
    variables = [v["name"] for v in container.get("env", [])]
    assert set(variables) <= settings_environment(), f"not settings: {set(variables) - settings_environment()}"
    by_flag = flag_environment()
    shadowed = {by_flag[flag] for flag in flag_names(server_args(container))} & set(variables)
    assert not shadowed, f"flags win over the environment, so these variables do nothing: {shadowed}"
    assert all(set(v) == {"name", "value"} for v in container.get("env", [])), "plain values, loadable here"


@pytest.mark.parametrize("name", WORKLOADS)
def test_the_server_loads_the_settings_and_listens_on_the_container_ports(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    deployment = workload(name)
    settings = load_settings_of(deployment.container, monkeypatch)
    grpc_port = deployment.port("h2c" if name == "kserve" else "grpc")
    assert settings.grpc.port == grpc_port == 8001
    assert settings.grpc.host == "0.0.0.0"
    assert settings.http.port == 8002
    if name == "kserve":
        assert {p["containerPort"] for p in deployment.container["ports"]} == {grpc_port}, "KServe: one port"
        assert settings.admin.mode == "off"
    else:
        assert deployment.port("metrics") == settings.http.port
        assert deployment.port("admin") == settings.admin.port == 8003
        assert settings.admin.mode == "on"
    assert len({settings.grpc.port, settings.http.port, settings.admin.port}) == 3


@pytest.mark.parametrize("name", WORKLOADS)
def test_startup_and_readiness_are_native_grpc_probes_on_the_grpc_port(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    deployment = workload(name)
    settings = load_settings_of(deployment.container, monkeypatch)
    for probe in ("startupProbe", "readinessProbe"):
        spec = deployment.container[probe]
        assert set(spec) & {"grpc", "httpGet", "tcpSocket", "exec"} == {"grpc"}, probe
        assert spec["grpc"]["port"] == settings.grpc.port, probe
        assert spec["grpc"].get("service", "") == "", "service '' is the whole server"
    startup = deployment.container["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= MIN_STARTUP_BUDGET_S
    assert settings.grpc.tls_certificate is None, "kubelet gRPC probes speak plaintext"


@pytest.mark.parametrize("name", WORKLOADS)
def test_liveness_asks_the_live_endpoint_which_does_not_follow_the_models(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    deployment = workload(name)
    settings = load_settings_of(deployment.container, monkeypatch)
    liveness = deployment.container["livenessProbe"]
    assert set(liveness) & {"grpc", "httpGet", "tcpSocket", "exec"} == {"httpGet"}
    assert liveness["httpGet"]["path"] == "/v2/health/live"
    assert deployment.port(liveness["httpGet"]["port"]) == settings.http.port


@pytest.mark.parametrize("name", WORKLOADS)
def test_shutdown_fits_the_termination_grace_period(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    deployment = workload(name)
    settings = load_settings_of(deployment.container, monkeypatch)
    drain, grace = settings.grpc.drain_delay_s, settings.grpc.graceful_shutdown_s
    tail = SUPERVISOR_MARGIN_S if settings.workers > 1 else QUIET_S
    assert deployment.pod["terminationGracePeriodSeconds"] >= drain + grace + tail + EXIT_MARGIN_S
    # The server's drain delay is the pre-stop delay; a preStop hook would only postpone SIGTERM.
    assert "lifecycle" not in deployment.container
    readiness = deployment.container["readinessProbe"]
    assert drain >= readiness["periodSeconds"] * readiness["failureThreshold"], "out of endpoints before draining"
    liveness = deployment.container["livenessProbe"]
    assert liveness["periodSeconds"] * liveness["failureThreshold"] > drain + grace + QUIET_S, (
        "grpc.health.v1 is NOT_SERVING during shutdown: liveness must not restart a draining server"
    )


@pytest.mark.parametrize("name", WORKLOADS)
def test_memory_limit_covers_the_in_flight_bound_of_every_process(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    deployment = workload(name)
    settings = load_settings_of(deployment.container, monkeypatch)
    resources = deployment.container["resources"]
    per_process = IDLE_RSS_BYTES + PEAK_BYTES_PER_REQUEST_BYTE * settings.grpc.max_inflight_bytes
    supervisor = IDLE_RSS_BYTES if settings.workers > 1 else 0
    assert quantity(resources["limits"]["memory"]) >= settings.workers * per_process + supervisor
    assert quantity(resources["requests"]["memory"]) >= settings.workers * IDLE_RSS_BYTES + supervisor
    assert quantity(resources["requests"]["memory"]) <= quantity(resources["limits"]["memory"])


@pytest.mark.parametrize("name", WORKLOADS)
def test_onnx_runtime_threads_fit_the_cpu_limit(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    deployment = workload(name)
    settings = load_settings_of(deployment.container, monkeypatch)
    resources = deployment.container["resources"]
    intra_op = settings.runtime.intra_op_threads
    assert intra_op > 0, "0 = ONNX Runtime counts the node's cores, not the container's"
    assert settings.workers * intra_op <= quantity(resources["limits"]["cpu"])
    assert quantity(resources["requests"]["cpu"]) <= quantity(resources["limits"]["cpu"])


@pytest.mark.parametrize("name", WORKLOADS)
def test_runs_unprivileged_on_a_read_only_root_and_writes_only_to_volumes(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    deployment = workload(name)
    settings = load_settings_of(deployment.container, monkeypatch)
    context = {**deployment.pod.get("securityContext", {}), **deployment.container["securityContext"]}
    assert context["runAsNonRoot"] is True
    assert context["runAsUser"] == 10001, "the image's user"
    assert context["readOnlyRootFilesystem"] is True
    assert context["allowPrivilegeEscalation"] is False
    assert context["capabilities"] == {"drop": ["ALL"]}
    mounts = {m["name"] for m in deployment.container["volumeMounts"]}
    assert mounts <= {v["name"] for v in deployment.pod["volumes"]}, "every mount names a volume"
    # Written: the routing state, and the temporary directory (--workers' metrics files).
    for path in (str(settings.state_dir), "/tmp"):
        mount = deployment.mount_for(path)
        assert mount is not None and not mount.get("readOnly", False), path
        assert "emptyDir" in deployment.volume(mount["name"]) or "persistentVolumeClaim" in deployment.volume(
            mount["name"]
        )


@pytest.mark.parametrize("name", ["base", "dev", "prod", "gpu"])
def test_models_come_read_only_from_the_volume_and_the_token_from_the_secret(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    deployment = workload(name)
    settings = load_settings_of(deployment.container, monkeypatch)
    models = deployment.mount_for(str(settings.model_repository))
    assert models is not None and models["readOnly"] is True
    assert deployment.volume(models["name"])["persistentVolumeClaim"]["claimName"] == "oip-models"
    token_file = settings.admin.token_file
    assert token_file is not None
    token = deployment.mount_for(str(token_file))
    assert token is not None and token["readOnly"] is True
    secret = deployment.volume(token["name"])["secret"]
    (item,) = secret["items"]
    assert f"{token['mountPath']}/{item['path']}" == str(token_file)
    assert secret["secretName"] == "oip-admin-token" and item["key"] == "token"
    assert secret["defaultMode"] & 0o007 == 0, "not readable by others"
    assert deployment.pod["securityContext"]["fsGroup"] == 10001, "group-readable by the server's group"
