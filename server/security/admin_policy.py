"""The admin access policy: from (method, credentials, peer identity) to allow or a refusal.

Pure and transport-free: `server.grpc.admin_guard` reads the metadata and the TLS peer, asks
`AdminPolicy.decide`, and maps a `Refusal` to a gRPC status. The admin surface is every RPC that
changes state or reveals control data (see `server.grpc.admin_guard.ADMIN_METHODS`).

Without configured credentials the surface is open only on a loopback bind: anyone who can reach a
loopback port is already on the machine. Anywhere else it needs a token, an allowed client
certificate, or the explicit --allow-unauthenticated-admin.
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import Enum

from pydantic import SecretStr

from server.settings import AdminSettings, is_token_text

_BEARER = "bearer "


class RefusalKind(Enum):
    """Why an admin call is refused; the transport maps each to its status code."""

    UNAUTHENTICATED = "unauthenticated"  # no credentials, or unreadable ones
    PERMISSION_DENIED = "permission_denied"  # credentials that are not allowed, or admin off


@dataclass(frozen=True)
class Refusal:
    kind: RefusalKind
    reason: str
    """A short, fixed label for logs and metrics (never client text)."""
    message: str
    """What the client is told: how to get in, never the expected secret."""


def is_loopback(host: str) -> bool:
    """Whether a bind address only accepts connections from this machine (127.0.0.0/8, ::1, localhost)."""
    host = host.strip().strip("[]").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # any other host name: it may resolve to a public address
        return False


def read_token(settings: AdminSettings) -> bytes | None:
    """The configured token as bytes: from the file (surrounding whitespace dropped) or the variable.

    Read once, when the server starts; a changed file takes effect on restart. OSError when the file
    cannot be read or holds no usable token (the CLI reports it as a failed start, exit code 1).
    """
    if settings.token_file is not None:
        token = settings.token_file.read_bytes().strip()
        if not token:
            raise OSError(f"admin token file {settings.token_file} is empty")
        if not is_token_text(token.decode("latin-1")):
            raise OSError(f"admin token file {settings.token_file} must hold one token of printable ASCII")
        return token
    if settings.token is not None:
        return settings.token.get_secret_value().encode()
    return None


def with_token_read(settings: AdminSettings) -> AdminSettings:
    """`settings` with the token file already read into `token`.

    The --workers supervisor hands this to its workers, so every worker, even one restarted after the
    file changed, enforces the token the server started with.
    """
    token = read_token(settings)
    if settings.token_file is None or token is None:
        return settings
    return settings.model_copy(update={"token": SecretStr(token.decode()), "token_file": None})


@dataclass(frozen=True)
class AdminPolicy:
    """The resolved policy of one server process."""

    enabled: bool
    token: bytes | None = field(repr=False)  # never in a repr, so never in a log line or a traceback
    identities: frozenset[str]
    """Client certificate names (subject CN, full subject or a SAN) allowed without a token."""
    open_without_credentials: bool
    """No credentials configured and either a loopback bind or --allow-unauthenticated-admin."""
    loopback: bool

    @classmethod
    def from_settings(cls, settings: AdminSettings, host: str) -> AdminPolicy:
        token = read_token(settings)
        identities = frozenset(settings.client_identities)
        loopback = is_loopback(host)
        unconfigured = token is None and not identities
        return cls(
            enabled=settings.mode == "on",
            token=token,
            identities=identities,
            open_without_credentials=unconfigured and (loopback or settings.allow_unauthenticated),
            loopback=loopback,
        )

    @property
    def open_publicly(self) -> bool:
        """Open to anyone who reaches a non-loopback address: worth a warning at start."""
        return self.enabled and self.open_without_credentials and not self.loopback

    @property
    def closed_by_default(self) -> bool:
        """Refusing every admin call because nothing lets anyone in on this non-loopback address."""
        return self.enabled and not self.has_credentials and not self.open_without_credentials

    @property
    def has_credentials(self) -> bool:
        return self.token is not None or bool(self.identities)

    def describe(self) -> str:
        """One word for the start-up log: off, token, mtls, token+mtls, open or refused."""
        if not self.enabled:
            return "off"
        if self.has_credentials:
            return "+".join(name for name, on in (("token", self.token), ("mtls", self.identities)) if on)
        return "open" if self.open_without_credentials else "refused"

    def decide(self, method: str, authorization: str | None, peer_identities: Iterable[str]) -> Refusal | None:
        """None to allow `method`, else why not. `authorization` is the metadata value, if any."""
        if not self.enabled:
            return Refusal(
                RefusalKind.PERMISSION_DENIED,
                "disabled",
                f"admin RPC {method} is disabled on this server (--admin off, SERVER_ADMIN_MODE=off)",
            )
        if not self.has_credentials:
            if self.open_without_credentials:
                return None
            return Refusal(
                RefusalKind.PERMISSION_DENIED,
                "no_credentials_configured",
                f"admin RPC {method} is refused: the server listens on a non-loopback address without admin "
                "credentials; start it with --admin-token-file (or SERVER_ADMIN_TOKEN), --admin-client-identity "
                "with mTLS, or --allow-unauthenticated-admin",
            )
        if self.identities and not self.identities.isdisjoint(peer_identities):
            return None
        if self.token is None:  # certificates only: whoever is not on the list is refused
            return Refusal(
                RefusalKind.PERMISSION_DENIED,
                "identity_not_allowed",
                f"admin RPC {method} needs a client certificate listed by --admin-client-identity",
            )
        presented = _bearer(authorization)
        if presented is None:
            return Refusal(
                RefusalKind.UNAUTHENTICATED,
                "missing_token",
                f"admin RPC {method} needs `authorization: Bearer <token>` metadata",
            )
        # compare_digest on bytes: its time does not depend on where the strings differ.
        if hmac.compare_digest(presented.encode(), self.token):
            return None
        return Refusal(
            RefusalKind.PERMISSION_DENIED, "wrong_token", f"admin RPC {method}: the admin token is not valid"
        )


def _bearer(authorization: str | None) -> str | None:
    """The token of an `authorization: Bearer <token>` value; None when absent or another scheme."""
    if authorization is None or authorization[: len(_BEARER)].lower() != _BEARER:
        return None
    token = authorization[len(_BEARER) :].strip()
    return token or None
