"""server.telemetry.gone_peers: grpc.aio's traceback for a send to a departed client becomes one DEBUG line."""

from __future__ import annotations

import logging

import pytest

from server.telemetry.gone_peers import GRPC_AIO_LOGGER, GonePeerFilter, quiet_gone_peers


def test_the_failed_send_traceback_becomes_a_debug_line(caplog: pytest.LogCaptureFixture) -> None:
    quiet_gone_peers()
    quiet_gone_peers()  # idempotent
    grpc_logger = logging.getLogger(GRPC_AIO_LOGGER)
    assert sum(isinstance(f, GonePeerFilter) for f in grpc_logger.filters) == 1
    with caplog.at_level(logging.DEBUG):
        try:
            raise RuntimeError("Failed 'execute_batch'")
        except RuntimeError:
            grpc_logger.exception(
                "ExecuteBatchError raised in core by servicer method [%s]", "/inference.GRPCInferenceService/X"
            )
        grpc_logger.error("Unexpected [%s] raised by servicer method [%s]", "ValueError", "/m")
    records = [(record.name, record.levelno, record.getMessage()) for record in caplog.records]
    assert (GRPC_AIO_LOGGER, logging.ERROR, "Unexpected [ValueError] raised by servicer method [/m]") in records
    assert not any("ExecuteBatchError" in message for _, _, message in records)
    [quiet] = [record for record in caplog.records if record.name == "server.telemetry.gone_peers"]
    assert quiet.levelno == logging.DEBUG and quiet.method == "/inference.GRPCInferenceService/X"  # type: ignore[attr-defined]
