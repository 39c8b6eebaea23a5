"""TLS and mutual TLS on the gRPC port, with certificates made by the test."""

from __future__ import annotations

import datetime
import ipaddress
from pathlib import Path

import grpc
import numpy as np
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from clients import AsyncInferenceClient, InferenceServerError
from tests.support import onnx_models
from tests.support.servers import running_app


def _certificate(
    name: str, key: ec.EllipticCurvePrivateKey, issuer: tuple[x509.Name, ec.EllipticCurvePrivateKey] | None, ca: bool
) -> x509.Certificate:
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    issuer_name, issuer_key = issuer if issuer else (subject, key)
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if not ca:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
    return builder.sign(issuer_key, hashes.SHA256())


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


@pytest.fixture
def pki(tmp_path: Path) -> dict[str, Path | bytes]:
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _certificate("test-ca", ca_key, None, ca=True)
    server_key = ec.generate_private_key(ec.SECP256R1())
    server = _certificate("localhost", server_key, (ca.subject, ca_key), ca=False)
    client_key = ec.generate_private_key(ec.SECP256R1())
    client = _certificate("client", client_key, (ca.subject, ca_key), ca=False)
    files = {"ca": _pem(ca), "cert": _pem(server), "key": _key_pem(server_key)}
    for name, content in files.items():
        (tmp_path / f"{name}.pem").write_bytes(content)
    onnx_models.write_model(tmp_path / "models", "identity", onnx_models.identity("FP32"))
    return {
        "models": tmp_path / "models",
        "ca_path": tmp_path / "ca.pem",
        "cert_path": tmp_path / "cert.pem",
        "key_path": tmp_path / "key.pem",
        "ca": files["ca"],
        "client_cert": _pem(client),
        "client_key": _key_pem(client_key),
    }


async def test_tls_serves_trusting_clients_only(pki) -> None:
    async with running_app(pki["models"], tls_certificate=pki["cert_path"], tls_private_key=pki["key_path"]) as app:
        address = f"127.0.0.1:{app.grpc_port}"
        async with AsyncInferenceClient(address, tls=True, root_certificates=pki["ca"]) as client:
            data = np.ones((1, 3), np.float32)
            outputs = await client.infer("identity", {"INPUT0": data})
            np.testing.assert_array_equal(outputs["OUTPUT0"], data)
        async with AsyncInferenceClient(address, retry=None, timeout=5) as plaintext:
            with pytest.raises(InferenceServerError) as caught:
                await plaintext.is_server_live()
            assert caught.value.code == grpc.StatusCode.UNAVAILABLE


async def test_mutual_tls_requires_a_client_certificate(pki) -> None:
    settings = {
        "tls_certificate": pki["cert_path"],
        "tls_private_key": pki["key_path"],
        "tls_client_ca": pki["ca_path"],
    }
    async with running_app(pki["models"], **settings) as app:
        address = f"127.0.0.1:{app.grpc_port}"
        trusted = AsyncInferenceClient(
            address,
            tls=True,
            root_certificates=pki["ca"],
            private_key=pki["client_key"],
            certificate_chain=pki["client_cert"],
        )
        async with trusted as client:
            assert await client.is_server_ready()
        async with AsyncInferenceClient(address, tls=True, root_certificates=pki["ca"], timeout=5) as anonymous:
            with pytest.raises(InferenceServerError) as caught:
                await anonymous.is_server_live()
            assert caught.value.code == grpc.StatusCode.UNAVAILABLE
