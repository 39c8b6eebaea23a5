"""Persists the run-time routing state (rollbacks, overrides) as one JSON file, written atomically."""

from __future__ import annotations

import json
import logging
import os
import tempfile
from pathlib import Path

from server.routing.changes import ModelRoutingState

log = logging.getLogger(__name__)

STATE_FILE = "routing-state.json"


class RoutingStateStore:
    """`directory/routing-state.json`; None keeps the state in memory only (lost on restart)."""

    def __init__(self, directory: Path | None) -> None:
        self.path = None if directory is None else directory / STATE_FILE

    def load(self) -> dict[str, ModelRoutingState]:
        """Every model's state; an unreadable file is logged and treated as empty (config routing applies)."""
        if self.path is None or not self.path.is_file():
            return {}
        try:
            raw = json.loads(self.path.read_text(encoding="utf-8"))
            return {str(model): ModelRoutingState.from_json(state) for model, state in raw["models"].items()}
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
            log.error(
                "routing state file is unreadable; using the configured routing",
                extra={"path": str(self.path), "error": f"{type(error).__name__}: {error}"},
            )
            return {}

    def save(self, states: dict[str, ModelRoutingState]) -> None:
        """Write every model's state; a failure is logged (the state still applies until restart)."""
        if self.path is None:
            return
        body = json.dumps({"models": {m: s.to_json() for m, s in sorted(states.items())}}, indent=2, sort_keys=True)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # Write beside the file and rename over it: a crash mid-write never leaves half a file.
            descriptor, temporary = tempfile.mkstemp(prefix=".routing-state.", dir=self.path.parent)
            with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
                handle.write(body + "\n")
            os.replace(temporary, self.path)
        except OSError as error:
            log.error(
                "could not persist the routing state; it holds until the next restart",
                extra={"path": str(self.path), "error": str(error)},
            )
