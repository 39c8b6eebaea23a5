"""The admin access policy as a pure decision table, and the settings and flags that configure it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError

from server import cli
from server.security.admin_policy import AdminPolicy, RefusalKind, is_loopback, read_token, with_token_read
from server.settings import AdminSettings

TOKEN = "s3cret-token"
AUTH = f"Bearer {TOKEN}"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith("SERVER_"):
            monkeypatch.delenv(key)


def policy(host: str = "0.0.0.0", **admin: object) -> AdminPolicy:
    return AdminPolicy.from_settings(AdminSettings(**admin), host)


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True), ("127.3.2.1", True), ("::1", True), ("[::1]", True), ("localhost", True),
        ("LOCALHOST", True), ("0.0.0.0", False), ("::", False), ("[::]", False), ("10.0.0.1", False),
        ("example.com", False), ("localhost.example.com", False),
    ],
)  # fmt: skip
def test_loopback_hosts(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_without_credentials_open_on_loopback_only() -> None:
    assert policy("127.0.0.1").decide("SetWeights", None, ()) is None
    refusal = policy("0.0.0.0").decide("SetWeights", None, ())
    assert refusal is not None and refusal.kind is RefusalKind.PERMISSION_DENIED
    assert "--admin-token-file" in refusal.message and "--allow-unauthenticated-admin" in refusal.message
    assert policy("0.0.0.0").closed_by_default and not policy("127.0.0.1").closed_by_default


def test_allow_unauthenticated_opens_a_public_address_and_says_so() -> None:
    allowed = policy("0.0.0.0", allow_unauthenticated=True)
    assert allowed.decide("RepositoryModelUnload", None, ()) is None
    assert allowed.open_publicly and not policy("127.0.0.1").open_publicly
    assert allowed.describe() == "open"


@pytest.mark.parametrize("host", ["127.0.0.1", "0.0.0.0"])
def test_a_configured_token_is_required_everywhere(host: str) -> None:
    guarded = policy(host, token=SecretStr(TOKEN))
    assert guarded.decide("Promote", AUTH, ()) is None
    assert guarded.decide("Promote", f"bearer   {TOKEN}  ", ()) is None  # the scheme is case-insensitive
    for missing in (None, "", "Bearer", "Bearer  ", f"Basic {TOKEN}", TOKEN):
        refusal = guarded.decide("Promote", missing, ())
        assert refusal is not None and refusal.kind is RefusalKind.UNAUTHENTICATED, missing
        assert refusal.message == "admin RPC Promote needs `authorization: Bearer <token>` metadata"
    for wrong in ("Bearer nope", f"Bearer {TOKEN}x", f"Bearer {TOKEN[:-1]}", "Bearer é"):
        refusal = guarded.decide("Promote", wrong, ())
        assert refusal is not None and refusal.kind is RefusalKind.PERMISSION_DENIED, wrong
        assert TOKEN not in refusal.message


def test_listed_client_identities_need_no_token() -> None:
    both = policy(token=SecretStr(TOKEN), client_identities=("ops", "spiffe://x/admin"))
    assert both.decide("Reset", None, ["client", "ops"]) is None
    assert both.decide("Reset", None, iter(["spiffe://x/admin"])) is None
    refusal = both.decide("Reset", None, ["someone"])
    assert refusal is not None and refusal.kind is RefusalKind.UNAUTHENTICATED  # the token remains a way in
    assert both.decide("Reset", AUTH, ["someone"]) is None
    certificates_only = policy(client_identities=("ops",))
    refusal = certificates_only.decide("Reset", AUTH, ["someone"])
    assert refusal is not None and refusal.kind is RefusalKind.PERMISSION_DENIED
    assert both.describe() == "token+mtls" and certificates_only.describe() == "mtls"


def test_admin_off_refuses_everything() -> None:
    off = policy("127.0.0.1", mode="off", token=SecretStr(TOKEN))
    refusal = off.decide("GetRouting", AUTH, ())
    assert refusal is not None and refusal.kind is RefusalKind.PERMISSION_DENIED
    assert "disabled" in refusal.message and off.describe() == "off"


def test_token_file_is_read_stripped_and_checked(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text(f"  {TOKEN}\n")
    settings = AdminSettings(token_file=path)
    assert read_token(settings) == TOKEN.encode()
    resolved = with_token_read(settings)
    assert resolved.token_file is None and resolved.token is not None
    assert resolved.token.get_secret_value() == TOKEN
    assert TOKEN not in repr(resolved)  # SecretStr: never in a repr or a log of the settings
    assert TOKEN not in repr(AdminPolicy.from_settings(resolved, "0.0.0.0"))
    for content in ("\n", "two words"):
        path.write_text(content)
        with pytest.raises(OSError, match="admin token file"):
            read_token(settings)
    with pytest.raises(FileNotFoundError):
        read_token(AdminSettings(token_file=tmp_path / "absent"))


def test_env_and_flags_reach_the_admin_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SERVER_ADMIN_TOKEN", TOKEN)
    assert read_token(cli.settings_from_args([]).admin) == TOKEN.encode()
    monkeypatch.delenv("SERVER_ADMIN_TOKEN")
    settings = cli.settings_from_args(
        ["--admin", "off", "--admin-token-file", str(tmp_path / "t"), "--tls-certificate", "c", "--tls-private-key",
         "k", "--tls-client-ca", "ca", "--admin-client-identity", "ops", "--admin-client-identity", "CN=ci"]
    )  # fmt: skip
    admin = settings.admin
    assert (admin.mode, admin.token_file, admin.client_identities) == ("off", tmp_path / "t", ("ops", "CN=ci"))
    assert cli.settings_from_args(["--allow-unauthenticated-admin"]).admin.allow_unauthenticated is True
    assert cli.settings_from_args([]).admin == AdminSettings()


@pytest.mark.parametrize(
    ("argv", "error"),
    [
        (["--admin", "maybe"], "mode"),
        (["--allow-unauthenticated-admin", "--admin-token-file", "t"], "contradicts"),
        (["--admin-client-identity", "ops"], "tls_client_ca"),
    ],
)
def test_contradictory_admin_settings_are_rejected(argv: list[str], error: str) -> None:
    with pytest.raises(ValidationError, match=error):
        cli.settings_from_args(argv)


def test_token_from_both_sources_or_unprintable_is_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SERVER_ADMIN_TOKEN", TOKEN)
    with pytest.raises(ValidationError, match="not both"):
        cli.settings_from_args(["--admin-token-file", "t"])
    monkeypatch.setenv("SERVER_ADMIN_TOKEN", "has space")
    with pytest.raises(ValidationError, match="printable ASCII"):
        cli.settings_from_args([])


def test_an_empty_token_variable_means_no_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SERVER_ADMIN_TOKEN", "")
    monkeypatch.setenv("SERVER_ADMIN_TOKEN_FILE", "")
    admin = cli.settings_from_args([]).admin
    assert (admin.token, admin.token_file) == (None, None)
