"""Client-chosen names and text: what a model name may be, and how client text appears in messages.

Error messages travel back as gRPC status details, which are trailing metadata: a message echoing a
100 kB name would exceed the peer's metadata limit and turn a NOT_FOUND into RESOURCE_EXHAUSTED. So every
message that embeds text a client chose (model names, versions, input and output names, datatypes,
parameter names) passes it through `shown`.
"""

from __future__ import annotations

from collections.abc import Iterable

from server.errors import InvalidInputError

#: Characters of one client string that a message shows (the rest is summarized by its length).
SHOWN_CHARS = 128
#: Names a message lists before it says "and N more".
SHOWN_NAMES = 8
#: A model name is a directory name: NAME_MAX on Linux (ext4, xfs, overlayfs) and macOS.
MAX_MODEL_NAME_BYTES = 255


def shown(text: str, limit: int = SHOWN_CHARS) -> str:
    """`text` as a message may embed it: whole when short, else its first `limit` characters and its size."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… ({len(text.encode('utf-8', 'surrogatepass'))} bytes)"


def shown_names(names: Iterable[str], limit: int = SHOWN_NAMES) -> str:
    """Quoted names for a message, at most `limit` of them, each `shown`."""
    listed = list(names)
    quoted = ", ".join(repr(shown(name)) for name in listed[:limit])
    hidden = len(listed) - limit
    return f"{quoted} and {hidden} more" if hidden > 0 else quoted


def check_model_name(name: str) -> str:
    """The name, if a model directory could have it; else InvalidInputError saying what a name may be.

    Called wherever a client names a model to load or unload, before the name reaches the file system
    (a name over NAME_MAX made `stat` fail with ENAMETOOLONG, which surfaced as INTERNAL).
    """
    size = len(name.encode("utf-8", "surrogatepass"))
    if size > MAX_MODEL_NAME_BYTES:
        raise InvalidInputError(
            f"model name {shown(name)!r} is {size} bytes long; a model name is a directory name of at most "
            f"{MAX_MODEL_NAME_BYTES} bytes (UTF-8)"
        )
    if "\x00" in name:
        raise InvalidInputError(f"model name {shown(name)!r} contains a NUL character; no directory can have it")
    return name
