"""Admin access on real servers: every admin RPC needs credentials where the policy says so, and nothing else does."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator, Sequence
from pathlib import Path

import grpc
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from clients import InferenceClient, InferenceServerError
from server.admin.cli import main as admin_main
from server.grpc.admin_guard import ADMIN_SERVICE, INFERENCE_ADMIN_METHODS, ROUTING_ADMIN_METHODS
from server.grpc.registration import SERVICE as INFERENCE_SERVICE
from tests.integration.test_tls import _certificate, _key_pem, _pem
from tests.support import onnx_models
from tests.support.process import ServerProcess
from tests.support.servers import ThreadedServer, running_app

TOKEN = "test-admin-token-0123456789"
ADMIN_PATHS = [f"/{INFERENCE_SERVICE.full_name}/{name}" for name in sorted(INFERENCE_ADMIN_METHODS)] + [
    f"/{ADMIN_SERVICE.full_name}/{name}" for name in sorted(ROUTING_ADMIN_METHODS)
]
OPEN_PATHS = [f"/{INFERENCE_SERVICE.full_name}/{name}" for name in ("ServerLive", "RepositoryIndex", "ModelStatistics")]
REFUSED = {grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED}
Metadata = Sequence[tuple[str, str]]
#: Without it, channels to one address share grpc's global subchannel pool, hence one connection (one worker).
OWN_CONNECTION = [("grpc.use_local_subchannel_pool", 1)]


def call(
    address: str, path: str, metadata: Metadata = (), credentials: grpc.ChannelCredentials | None = None
) -> tuple[grpc.StatusCode, str]:
    """One call of `path` on a new connection with an empty request (all fields at their defaults): status, message."""
    if credentials is None:
        channel = grpc.insecure_channel(address, OWN_CONNECTION)
    else:
        channel = grpc.secure_channel(address, credentials, OWN_CONNECTION)
    with channel:
        method = channel.unary_unary(path, request_serializer=bytes, response_deserializer=bytes)
        try:
            method(b"", timeout=10, metadata=metadata)
        except grpc.RpcError as error:
            return error.code(), error.details() or ""
    return grpc.StatusCode.OK, ""


async def acall(
    address: str, path: str, metadata: Metadata = (), credentials: grpc.ChannelCredentials | None = None
) -> tuple[grpc.StatusCode, str]:
    """`call` off the event loop that serves the App under test."""
    return await asyncio.to_thread(call, address, path, metadata, credentials)


@pytest.fixture(scope="module")
def repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("admin-models")
    onnx_models.write_model(root, "identity", onnx_models.identity("FP32"))
    return root


@pytest.fixture(scope="module")
def token_server(repository: Path) -> Iterator[ThreadedServer]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SERVER_ADMIN_TOKEN", TOKEN)
        server = ThreadedServer(repository)  # reads the environment here
    with server:
        yield server


@pytest.fixture(scope="module")
def loopback_server(repository: Path) -> Iterator[ThreadedServer]:
    with ThreadedServer(repository) as server:
        yield server


@pytest.mark.parametrize("path", ADMIN_PATHS)
def test_every_admin_rpc_needs_the_token(token_server: ThreadedServer, path: str) -> None:
    method = path.rsplit("/", 1)[1]
    assert call(token_server.address, path) == (
        grpc.StatusCode.UNAUTHENTICATED,
        f"admin RPC {method} needs `authorization: Bearer <token>` metadata",
    )
    assert call(token_server.address, path, [("authorization", f"Basic {TOKEN}")])[0] is grpc.StatusCode.UNAUTHENTICATED
    code, message = call(token_server.address, path, [("authorization", "Bearer wrong")])
    assert code is grpc.StatusCode.PERMISSION_DENIED and "not valid" in message
    # The right token passes the guard; the empty request may still be refused by the RPC itself.
    assert call(token_server.address, path, [("authorization", f"Bearer {TOKEN}")])[0] not in REFUSED


@pytest.mark.parametrize("path", OPEN_PATHS)
def test_other_rpcs_stay_open(token_server: ThreadedServer, path: str) -> None:
    assert call(token_server.address, path)[0] is grpc.StatusCode.OK


def test_the_right_token_works_from_the_client_and_the_cli(
    token_server: ThreadedServer, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OIP_ADMIN_TOKEN", raising=False)
    with InferenceClient(token_server.address) as anonymous:
        with pytest.raises(InferenceServerError) as refused:
            anonymous.unload_model("identity")
        assert refused.value.code is grpc.StatusCode.UNAUTHENTICATED
        assert anonymous.is_model_ready("identity")
    with InferenceClient(token_server.address, admin_token=TOKEN) as admin:
        admin.unload_model("identity")
        assert not admin.is_model_ready("identity")
        admin.load_model("identity")
        assert admin.is_model_ready("identity")

    assert admin_main(["--address", token_server.address, "show"]) == 1
    assert "UNAUTHENTICATED" in capsys.readouterr().err
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    assert admin_main(["--address", token_server.address, "--token-file", str(token_file), "show"]) == 0
    assert "no model has a [routing] section" in capsys.readouterr().out
    monkeypatch.setenv("OIP_ADMIN_TOKEN", TOKEN)
    assert admin_main(["--address", token_server.address, "show"]) == 0


@pytest.mark.parametrize("path", ADMIN_PATHS)
def test_loopback_default_is_open(loopback_server: ThreadedServer, path: str) -> None:
    assert call(loopback_server.address, path)[0] not in REFUSED


async def test_public_address_without_credentials_refuses_admin(
    repository: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO):
        async with running_app(repository, host="0.0.0.0") as app:
            address = f"127.0.0.1:{app.grpc_port}"
            for path in ADMIN_PATHS:
                code, message = await acall(address, path, [("authorization", "Bearer guess")])
                assert code is grpc.StatusCode.PERMISSION_DENIED, path
                assert "--admin-token-file" in message and "--allow-unauthenticated-admin" in message
            assert (await acall(address, OPEN_PATHS[0]))[0] is grpc.StatusCode.OK
    events = [getattr(record, "event", None) for record in caplog.records]
    assert "admin_refused_by_default" in events and "admin_unauthenticated" not in events
    refused = [record for record in caplog.records if record.getMessage() == "admin call refused"]
    assert len(refused) == 1 and refused[0].levelno == logging.WARNING  # rate-limited: one line for 9 refusals
    assert all("guess" not in str(record.__dict__) for record in caplog.records)


async def test_allowed_unauthenticated_public_admin_works_and_warns(
    repository: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SERVER_ADMIN_ALLOW_UNAUTHENTICATED", "true")
    with caplog.at_level(logging.INFO):
        async with running_app(repository, host="0.0.0.0") as app:
            path = f"/{ADMIN_SERVICE.full_name}/GetRouting"
            assert (await acall(f"127.0.0.1:{app.grpc_port}", path))[0] is grpc.StatusCode.OK
    warnings = [r for r in caplog.records if getattr(r, "event", None) == "admin_unauthenticated"]
    assert len(warnings) == 1 and warnings[0].levelno == logging.WARNING


async def test_admin_off_refuses_even_the_right_token(repository: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SERVER_ADMIN_MODE", "off")
    monkeypatch.setenv("SERVER_ADMIN_TOKEN", TOKEN)
    async with running_app(repository) as app:
        for path in ADMIN_PATHS:
            metadata = [("authorization", f"Bearer {TOKEN}")]
            code, message = await acall(f"127.0.0.1:{app.grpc_port}", path, metadata)
            assert code is grpc.StatusCode.PERMISSION_DENIED and "disabled" in message, path


@pytest.mark.parametrize("identity", ["ops", "CN=ops"])  # the subject's CN, or the whole subject (RFC 2253)
async def test_listed_client_certificates_are_admins(
    repository: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, identity: str
) -> None:
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _certificate("test-ca", ca_key, None, ca=True)
    keys = {name: ec.generate_private_key(ec.SECP256R1()) for name in ("localhost", "ops", "intruder")}
    certs = {name: _certificate(name, key, (ca.subject, ca_key), ca=False) for name, key in keys.items()}
    for name, content in (("ca", _pem(ca)), ("cert", _pem(certs["localhost"])), ("key", _key_pem(keys["localhost"]))):
        (tmp_path / f"{name}.pem").write_bytes(content)
    monkeypatch.setenv("SERVER_ADMIN_CLIENT_IDENTITIES", json.dumps([identity]))
    tls = {"tls_certificate": tmp_path / "cert.pem", "tls_private_key": tmp_path / "key.pem"}
    async with running_app(repository, **tls, tls_client_ca=tmp_path / "ca.pem") as app:
        address = f"localhost:{app.grpc_port}"
        path = f"/{ADMIN_SERVICE.full_name}/GetRouting"
        for name, expected in (("ops", grpc.StatusCode.OK), ("intruder", grpc.StatusCode.PERMISSION_DENIED)):
            credentials = grpc.ssl_channel_credentials(_pem(ca), _key_pem(keys[name]), _pem(certs[name]))
            assert (await acall(address, path, (), credentials))[0] is expected, name


def test_the_cli_speaks_tls_and_presents_a_client_certificate(
    repository: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _certificate("test-ca", ca_key, None, ca=True)
    keys = {name: ec.generate_private_key(ec.SECP256R1()) for name in ("localhost", "ops", "intruder")}
    for name, key in keys.items():
        (tmp_path / f"{name}.pem").write_bytes(_pem(_certificate(name, key, (ca.subject, ca_key), ca=False)))
        (tmp_path / f"{name}.key").write_bytes(_key_pem(key))
    (tmp_path / "ca.pem").write_bytes(_pem(ca))
    monkeypatch.setenv("SERVER_ADMIN_CLIENT_IDENTITIES", json.dumps(["ops"]))
    monkeypatch.delenv("OIP_ADMIN_TOKEN", raising=False)
    tls = {"tls_certificate": tmp_path / "localhost.pem", "tls_private_key": tmp_path / "localhost.key"}
    with ThreadedServer(repository, **tls, tls_client_ca=tmp_path / "ca.pem") as server:
        address = f"localhost:{server.app.grpc_port}" if server.app else ""

        def cli(name: str) -> int:
            client = ["--tls-cert", str(tmp_path / f"{name}.pem"), "--tls-key", str(tmp_path / f"{name}.key")]
            return admin_main(["--address", address, "--tls-ca", str(tmp_path / "ca.pem"), *client, "show"])

        assert cli("ops") == 0
        assert "no model has a [routing] section" in capsys.readouterr().out
        assert cli("intruder") == 1
        assert "PERMISSION_DENIED" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        admin_main(["--address", address, "--tls-cert", str(tmp_path / "ops.pem"), "show"])  # no key
    assert "--tls-cert and --tls-key together" in capsys.readouterr().err


INFER_PATH = f"/{INFERENCE_SERVICE.full_name}/ModelInfer"
INDEX_PATH = f"/{INFERENCE_SERVICE.full_name}/RepositoryIndex"
HEALTH_PATH = "/grpc.health.v1.Health/Check"


async def test_an_admin_listener_serves_the_admin_rpcs_and_the_grpc_port_refuses_them(
    repository: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Public gRPC host, loopback admin listener: the policy is judged where admin calls arrive (open on loopback).
    monkeypatch.setenv("SERVER_ADMIN_PORT", "0")
    monkeypatch.setenv("SERVER_ADMIN_HOST", "127.0.0.1")
    async with running_app(repository, host="0.0.0.0") as app:
        assert app.admin_port is not None and app.admin_port != app.grpc_port
        public, admin = f"127.0.0.1:{app.grpc_port}", f"127.0.0.1:{app.admin_port}"
        for path in ADMIN_PATHS:
            code, message = await acall(public, path)
            assert code is grpc.StatusCode.PERMISSION_DENIED and "--admin-port" in message, path
            assert (await acall(admin, path))[0] not in REFUSED, path
        for path in (INDEX_PATH, HEALTH_PATH):
            assert (await acall(admin, path))[0] is grpc.StatusCode.OK, path
        assert (await acall(admin, INFER_PATH))[0] is grpc.StatusCode.UNIMPLEMENTED  # no inference there
        assert (await acall(public, OPEN_PATHS[0]))[0] is grpc.StatusCode.OK


async def test_the_admin_listener_needs_the_token_when_one_is_set(
    repository: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SERVER_ADMIN_PORT", "0")
    monkeypatch.setenv("SERVER_ADMIN_TOKEN", TOKEN)
    async with running_app(repository) as app:
        admin = f"127.0.0.1:{app.admin_port}"
        for path in ADMIN_PATHS:
            assert (await acall(admin, path))[0] is grpc.StatusCode.UNAUTHENTICATED, path
            assert (await acall(admin, path, [("authorization", f"Bearer {TOKEN}")]))[0] not in REFUSED, path


def test_workers_share_the_admin_listener(repository: Path) -> None:
    with ServerProcess(repository, "--workers", "2", "--admin-port", "0") as server:
        [listening] = [line for line in server.logs if line.get("msg") == "server listening"]
        admin = f"127.0.0.1:{listening['admin_port']}"
        for _ in range(4):  # new connections, spread over both workers
            assert call(admin, f"/{ADMIN_SERVICE.full_name}/GetRouting")[0] is grpc.StatusCode.OK
        code, message = call(server.address, f"/{ADMIN_SERVICE.full_name}/GetRouting")
        assert code is grpc.StatusCode.PERMISSION_DENIED and "--admin-port" in message


def test_every_worker_enforces_the_token(repository: Path, tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN)
    with ServerProcess(repository, "--workers", "2", "--admin-token-file", str(token_file)) as server:
        path = f"/{ADMIN_SERVICE.full_name}/GetRouting"
        # A channel per call is a connection per call, which the kernel spreads over both workers.
        for _ in range(12):
            assert call(server.address, path)[0] is grpc.StatusCode.UNAUTHENTICATED
        assert call(server.address, path, [("authorization", f"Bearer {TOKEN}")])[0] is grpc.StatusCode.OK
    refusing = {entry.get("worker") for entry in server.logs if entry.get("msg") == "admin call refused"}
    assert refusing == {0, 1}
    assert all(TOKEN not in str(entry) for entry in server.logs)
