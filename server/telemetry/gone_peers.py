"""grpc.aio's ERROR traceback for a response it could not send to a client that had already gone, made quiet.

When a client dies or cancels while its stream (or call) still has a response or the final status to send,
grpc-core fails the send and grpc.aio logs "ExecuteBatchError raised in core by servicer method [...]" at ERROR,
with a traceback, from inside its own handler wrapper, out of reach of our code. Nothing was wrong with the
server: the peer went away. The record is rewritten as one DEBUG line on our own logger, so a client that
disconnects cannot fill the log with tracebacks (issue 10, item 11); every other grpc record passes untouched.
"""

from __future__ import annotations

import logging

GRPC_AIO_LOGGER = "grpc._cython.cygrpc"
_GONE_PEER_PREFIX = "ExecuteBatchError raised in core by servicer method"

log = logging.getLogger(__name__)


class GonePeerFilter(logging.Filter):
    """Drops grpc.aio's failed-send tracebacks (logging a DEBUG line instead); passes everything else."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not str(record.msg).startswith(_GONE_PEER_PREFIX):
            return True
        method = record.args[0] if isinstance(record.args, tuple) and record.args else ""
        log.debug("a response could not be sent: the client had gone", extra={"method": str(method)})
        return False


def quiet_gone_peers() -> None:
    """Install the filter on grpc.aio's logger (idempotent)."""
    logger = logging.getLogger(GRPC_AIO_LOGGER)
    if not any(isinstance(existing, GonePeerFilter) for existing in logger.filters):
        logger.addFilter(GonePeerFilter())
