"""The errors a run reports to its user in one line, naming the file, URL or key and the cause.

Every module raises these and only these for problems of the input; anything else is a bug
and fails the run with its traceback.
"""

from __future__ import annotations

import errno


class Nc2IceError(Exception):
    """A problem of the input or the environment, told in one line."""


class ConfigError(Nc2IceError, ValueError):
    """A config that cannot run; the message names the key."""


class AccessError(Nc2IceError, RuntimeError):
    """A URL that no configured store can serve, or a source that cannot be read."""


class ScanError(Nc2IceError, RuntimeError):
    """A source that is not a readable netCDF/HDF5 file: a fault of the file or its server,
    which ``on_error: skip`` may leave out."""


class CombineError(Nc2IceError, ValueError):
    """The files cannot be combined faithfully; the message lists which files differ and how."""


class CommitError(Nc2IceError, RuntimeError):
    """The store refused part of a dataset; nothing was committed."""


class PublishError(Nc2IceError, RuntimeError):
    """A validated snapshot that could not be published, or one that failed validation."""


_NO_ROOM = {errno.ENOSPC: "no space left on the device", errno.EDQUOT: "the disk quota is exceeded"}
# How Icechunk's (Rust) errors say it: std::io's words and the OS error number.
_NO_ROOM_WORDS = {
    errno.ENOSPC: ("No space left on device", f"os error {errno.ENOSPC})"),
    errno.EDQUOT: ("Disk quota exceeded", f"os error {errno.EDQUOT})"),
}
_RERUN = (
    "free some space (or raise the quota), then run again: the rerun continues where this "
    "one stopped"
)


def out_of_space(exc: BaseException) -> str | None:
    """One line for a write that failed for want of room (a full disk or a quota, the usual
    fault on /scratch), naming the path where the error knows it; None for any other error."""
    seen: BaseException | None = exc
    while seen is not None:
        code = seen.errno if isinstance(seen, OSError) else None
        if code not in _NO_ROOM:
            text = str(seen)
            code = next(
                (c for c, words in _NO_ROOM_WORDS.items() if any(w in text for w in words)), None
            )
        if code is not None:
            path = getattr(seen, "filename", None)
            return f"{f'{path}: ' if path else ''}{_NO_ROOM[code]}: {_RERUN}"
        seen = seen.__cause__ or seen.__context__
    return None
