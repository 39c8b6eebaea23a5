"""The one error type the CLI turns into a one-line message and a non-zero exit."""


class LoadTestError(Exception):
    """Bad flags, an unreachable target, an unknown model: anything the user must fix."""
