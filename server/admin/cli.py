"""`python -m server.admin`: show and change version routing on a running server.

    python -m server.admin [--address HOST:PORT] show [MODEL]
    python -m server.admin set-weights MODEL VERSION=WEIGHT [VERSION=WEIGHT ...]
    python -m server.admin promote MODEL VERSION
    python -m server.admin rollback MODEL VERSION [--reason TEXT]
    python -m server.admin reset MODEL
    python -m server.admin pause-judge MODEL | resume-judge MODEL
    python -m server.admin drift --model MODEL

Each change answers with the model's routing as it now stands (under --workers: in every worker). `drift` shows
the latest drift scores of a model's versions against their reference profiles (the inference_drift_score gauge).

When the server requires an admin token, pass it with --token-file FILE or the OIP_ADMIN_TOKEN environment
variable; it is sent as `authorization: Bearer <token>` metadata.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import grpc
from google.protobuf.json_format import MessageToDict

from oip.v1 import routing_admin_pb2 as admin_pb
from oip.v1 import routing_admin_pb2_grpc as admin_grpc

#: The environment variable the admin token is read from when --token-file is not given.
TOKEN_ENV = "OIP_ADMIN_TOKEN"


def _weights(pairs: Sequence[str]) -> dict[int, int]:
    weights = {}
    for pair in pairs:
        version, sep, weight = pair.partition("=")
        if not sep or not version.strip().isdecimal() or not weight.strip().lstrip("-").isdecimal():
            raise argparse.ArgumentTypeError(f"expected VERSION=WEIGHT with whole numbers, got {pair!r}")
        weights[int(version)] = int(weight)
    return weights


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m server.admin", description="Version routing admin.")
    parser.add_argument("--address", default="localhost:8001", help="the server's gRPC address [localhost:8001]")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for an answer [30]")
    parser.add_argument("--json", action="store_true", help="print the answer as JSON")
    parser.add_argument(
        "--token-file",
        type=Path,
        default=None,
        help=f"file holding the server's admin token [default: the {TOKEN_ENV} environment variable, if set]",
    )
    tls = parser.add_argument_group("TLS", "for a server started with --tls-certificate (any of these turns TLS on)")
    tls.add_argument("--tls", action="store_true", help="connect with TLS, trusting the system's CAs")
    tls.add_argument("--tls-ca", type=Path, help="PEM CA certificates that signed the server's certificate")
    tls.add_argument("--tls-cert", type=Path, help="PEM client certificate chain (mTLS: an --admin-client-identity)")
    tls.add_argument("--tls-key", type=Path, help="PEM private key of --tls-cert")
    commands = parser.add_subparsers(dest="command", required=True)
    show = commands.add_parser("show", help="routing, weights, verdicts and rollbacks")
    show.add_argument("model", nargs="?", default="", help="one model; all routed models when omitted")
    weights = commands.add_parser("set-weights", help="replace the weights (unlisted versions get 0)")
    weights.add_argument("model")
    weights.add_argument("weights", nargs="+", metavar="VERSION=WEIGHT")
    for name, text in (("promote", "send all traffic to a version"), ("rollback", "take a version out of routing")):
        command = commands.add_parser(name, help=text)
        command.add_argument("model")
        command.add_argument("version", type=int)
        if name == "rollback":
            command.add_argument("--reason", default="manual", help="recorded with the rollback [manual]")
    for name, text in (
        ("reset", "back to config.toml: drop run-time weights and rollbacks"),
        ("pause-judge", "stop automatic rollbacks and promotions"),
        ("resume-judge", "restart automatic rollbacks and promotions"),
    ):
        commands.add_parser(name, help=text).add_argument("model")
    drift = commands.add_parser("drift", help="drift scores of a model's versions against their reference profiles")
    drift.add_argument("--model", required=True)
    return parser


def token_metadata(token_file: Path | None) -> tuple[tuple[str, str], ...]:
    """The `authorization` metadata for the admin token of --token-file, else of OIP_ADMIN_TOKEN; none without."""
    token = token_file.read_text().strip() if token_file is not None else os.environ.get(TOKEN_ENV, "").strip()
    return (("authorization", f"Bearer {token}"),) if token else ()


def call(stub: admin_grpc.RoutingAdminStub, args: argparse.Namespace, metadata: Sequence[tuple[str, str]] = ()) -> Any:
    """Send the command's RPC with `metadata`; returns the response message."""
    timeout = args.timeout
    command = args.command
    if command == "show":
        return stub.GetRouting(admin_pb.GetRoutingRequest(model=args.model), timeout=timeout, metadata=metadata)
    if command == "set-weights":
        request = admin_pb.SetWeightsRequest(model=args.model, weights=_weights(args.weights))
        return stub.SetWeights(request, timeout=timeout, metadata=metadata)
    if command == "promote":
        promote = admin_pb.VersionRequest(model=args.model, version=args.version)
        return stub.Promote(promote, timeout=timeout, metadata=metadata)
    if command == "rollback":
        rollback = admin_pb.RollbackRequest(model=args.model, version=args.version, reason=args.reason)
        return stub.Rollback(rollback, timeout=timeout, metadata=metadata)
    if command == "reset":
        return stub.Reset(admin_pb.ModelRequest(model=args.model), timeout=timeout, metadata=metadata)
    if command == "drift":
        return stub.GetDrift(admin_pb.ModelRequest(model=args.model), timeout=timeout, metadata=metadata)
    paused = command == "pause-judge"
    pause = admin_pb.PauseJudgeRequest(model=args.model, paused=paused)
    return stub.PauseJudge(pause, timeout=timeout, metadata=metadata)


def _cell(value: object) -> str:
    return "-" if value in ("", None) else str(value)


def format_state(state: admin_pb.RoutingState) -> str:
    """A routing state as an aligned table, with rollback and verdict evidence below it."""
    judge = "off" if not state.judge_enabled else ("paused" if state.judge_paused else "on")
    source = "set at run time" if state.overridden else "from config.toml"
    head = [f"model {state.model}  (weights {source}, judge {judge}"]
    if state.sticky_key:
        head.append(f", sticky key {state.sticky_key}")
    if state.shadow_version:
        head.append(f", shadow v{state.shadow_version} at {state.shadow_fraction:g}")
    lines = ["".join(head) + ")"]
    rows = [("version", "ready", "weight", "config", "role", "verdict", "failed", "rolled back")]
    for v in state.versions:
        rolled = f"{v.rollback_reason} at {v.rolled_back_at}" if v.rolled_back else ""
        rows.append(
            (
                str(v.version),
                "yes" if v.ready else "no",
                str(v.effective_weight),
                str(v.configured_weight),
                v.role,
                _cell(v.verdict),
                _cell(v.failed_checks if v.verdict else ""),
                _cell(rolled),
            )
        )
    lines += _table(rows)
    for v in state.versions:
        if v.rolled_back and v.rollback_evidence:
            lines.append(f"  v{v.version} rollback evidence: {_evidence(v.rollback_evidence)}")
        if v.verdict and v.verdict_evidence:
            lines.append(f"  v{v.version} last check ({v.checked_at}): {_evidence(v.verdict_evidence)}")
    return "\n".join(lines)


def _table(rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        "  " + "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows
    ]


NO_DRIFT_SCORES = "no drift scores yet: a version needs a reference profile and min_samples predictions in its window"


def format_drift(report: admin_pb.DriftReport) -> str:
    """A drift report as an aligned table of scores, with a note on versions that cannot be scored."""
    lines = [f"model {report.model}  (drift of recent predictions against each version's reference profile)"]
    if report.scores:
        rows = [("version", "output", "method", "value", "samples")]
        rows += [(str(s.version), s.output, s.method, f"{s.value:.4f}", str(s.window_samples)) for s in report.scores]
        lines += _table(rows)
    else:
        lines.append(f"  {NO_DRIFT_SCORES}")
    for version in report.versions:
        if not version.has_reference:
            lines.append(f"  v{version.version} has no reference profile (reference.json): it is never scored")
    return "\n".join(lines)


def _evidence(values: Any) -> str:
    return ", ".join(f"{key}={values[key]:.6g}" for key in sorted(values))


def render(response: Any, as_json: bool) -> str:
    if as_json:
        return json.dumps(MessageToDict(response, preserving_proto_field_name=True), indent=2, sort_keys=True)
    if isinstance(response, admin_pb.DriftReport):
        return format_drift(response)
    states = list(response.models) if isinstance(response, admin_pb.GetRoutingResponse) else [response]
    if not states:
        return "no model has a [routing] section"
    return "\n\n".join(format_state(state) for state in states)


def channel_credentials(args: argparse.Namespace) -> grpc.ChannelCredentials | None:
    """TLS credentials from the --tls* options, or None for plaintext; ValueError for a lone --tls-cert/--tls-key."""
    if not (args.tls or args.tls_ca or args.tls_cert or args.tls_key):
        return None
    if (args.tls_cert is None) != (args.tls_key is None):
        raise ValueError("give --tls-cert and --tls-key together (a client certificate needs its key)")
    return grpc.ssl_channel_credentials(
        root_certificates=args.tls_ca.read_bytes() if args.tls_ca else None,
        private_key=args.tls_key.read_bytes() if args.tls_key else None,
        certificate_chain=args.tls_cert.read_bytes() if args.tls_cert else None,
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "set-weights":
            _weights(args.weights)
    except argparse.ArgumentTypeError as error:
        parser.error(str(error))
    try:
        metadata = token_metadata(args.token_file)
    except (OSError, UnicodeDecodeError) as error:
        parser.error(f"cannot read --token-file: {error}")
    try:
        credentials = channel_credentials(args)
    except (OSError, ValueError) as error:
        parser.error(str(error))
    opened = (
        grpc.insecure_channel(args.address) if credentials is None else grpc.secure_channel(args.address, credentials)
    )
    with opened as channel:
        try:
            response = call(admin_grpc.RoutingAdminStub(channel), args, metadata)  # type: ignore[no-untyped-call]
        except grpc.RpcError as error:
            print(f"error: {error.code().name}: {error.details()}", file=sys.stderr)
            return 1
    print(render(response, args.json))
    return 0
