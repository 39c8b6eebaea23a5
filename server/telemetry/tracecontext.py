"""W3C Trace Context: the trace id a caller sent in its `traceparent` gRPC metadata (https://www.w3.org/TR/trace-context/)."""

from __future__ import annotations

import re
from typing import Any

_TRACEPARENT = re.compile(r"^[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}")


def trace_id_from(metadata: Any) -> str:
    """The 32-hex trace id of a valid `traceparent` entry, else "" (an all-zero id is invalid)."""
    for key, value in metadata or ():
        if key == "traceparent" and isinstance(value, str):
            match = _TRACEPARENT.match(value.strip())
            if match and match.group(1) != "0" * 32:
                return match.group(1)
            return ""
    return ""
